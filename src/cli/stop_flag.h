// StopFlag: how `bridgepool bench` tells its load threads to stop early (SIGINT/SIGTERM; see
// signal_watch.h, which sets it). Load threads check stop_requested() before each request, and
// open-loop senders wait for their next send time in sleep_until(), which a stop ends at once.
// The thread that winds the run down waits in wait() for either a stop or the end of the load.
//
// Header-only and free of signals, so it is unit-tested with plain threads
// (tests/unit/open_loop_test.cc). Every method may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>

namespace bridgepool::cli {

class StopFlag {
 public:
  // Requests a stop on behalf of signal `signo` (any value > 0; 0 for "no signal"). The first
  // request wins; later ones change nothing. Wakes every sleep_until() and wait().
  void request(int signo) {
    {
      std::lock_guard lock(mutex_);
      if (requested_.load(std::memory_order_relaxed)) return;
      signo_ = signo;
      requested_.store(true, std::memory_order_release);
    }
    wake_.notify_all();
  }

  // Returns whether a stop was requested. Lock-free: cheap enough to ask before every request.
  bool stop_requested() const { return requested_.load(std::memory_order_acquire); }

  // Returns the signal passed to the first request(), or 0 when there was none.
  int signal_number() const {
    std::lock_guard lock(mutex_);
    return signo_;
  }

  // Sleeps until `when`. Returns true if it got there, false as soon as a stop is requested
  // (also when one was requested before the call).
  bool sleep_until(std::chrono::steady_clock::time_point when) {
    std::unique_lock lock(mutex_);
    return !wake_.wait_until(lock, when, [this] { return stop_requested(); });
  }

  // Blocks until a stop is requested or `done()` holds. `done` is evaluated under the flag's
  // lock, at the call and after every notify(): whoever makes it true must call notify().
  // Returns true when it returned because of a stop.
  bool wait(const std::function<bool()>& done) {
    std::unique_lock lock(mutex_);
    wake_.wait(lock, [&] { return stop_requested() || done(); });
    return stop_requested();
  }

  // Wakes wait() to look at its `done` again.
  void notify() {
    // Taking the lock orders the waker's change before the waiter's next look: without it, a
    // notify between the waiter's check of done() and its sleep would be lost.
    { std::lock_guard lock(mutex_); }
    wake_.notify_all();
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<bool> requested_{false};
  int signo_ = 0;
};

}  // namespace bridgepool::cli
