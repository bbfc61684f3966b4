// EventLoop: one background thread multiplexing descriptors (epoll), posted tasks and timers.
//
// The pool's monitor runs on it: pidfd exit notifications, worker stdout/stderr capture,
// handshakes, init timeouts and respawn backoff. Descriptor callbacks and tasks run on the loop
// thread, one at a time, so the state they touch needs no lock of its own.
// Timers follow the injected Clock: with a test's ManualClock a post_after() task runs once the
// test has advanced the clock past its time (the loop re-reads the clock every wait slice).
// Thread-safety: post(), post_after() and stop() from any thread; watch()/unwatch() only on the
// loop thread (from a task or callback).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <queue>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/unique_fd.h"
#include "bridgepool/clock.h"
#include "bridgepool/error.h"

namespace bridgepool {

class EventLoop {
 public:
  using Task = std::function<void()>;
  using FdCallback = std::function<void(std::uint32_t epoll_events)>;
  using WatchId = std::uint64_t;
  // `clock` must outlive the loop.
  explicit EventLoop(const Clock& clock = SteadyClock::instance());
  ~EventLoop();  // stops and joins
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Creates the epoll instance and starts the thread. Error if the kernel refuses (EMFILE...).
  Result<void> start();
  // Runs the tasks already posted, then ends the thread. Idempotent.
  void stop();

  void post(Task task);
  void post_after(std::chrono::nanoseconds delay, Task task);
  // Runs `task` once the clock reaches `when` (at once if it has).
  void post_at(TimePoint when, Task task);
  const Clock& clock() const { return clock_; }

  // Loop thread only. `events` are EPOLLIN etc.; the callback gets the ready events.
  WatchId watch(int fd, std::uint32_t events, FdCallback callback);
  void unwatch(WatchId id);

  bool in_loop_thread() const { return std::this_thread::get_id() == thread_id_.load(); }

 private:
  struct Timer {
    TimePoint when;
    std::uint64_t seq;
    Task task;
    bool operator>(const Timer& o) const { return when != o.when ? when > o.when : seq > o.seq; }
  };
  struct Watch {
    int fd;
    FdCallback callback;
  };

  void run();
  void run_due_tasks();
  int next_timeout_ms();
  void wake();

  const Clock& clock_;
  UniqueFd epoll_fd_;
  UniqueFd wake_fd_;  // eventfd: post() writes, the loop reads
  std::thread thread_;
  std::atomic<std::thread::id> thread_id_{};
  std::atomic<bool> stopping_{false};

  std::mutex mu_;  // guards tasks_, timers_, seq_
  std::vector<Task> tasks_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
  std::uint64_t seq_ = 0;

  // Loop thread only.
  std::unordered_map<WatchId, Watch> watches_;
  WatchId next_watch_ = 1;
};

}  // namespace bridgepool
