// Ctrl-C and SIGTERM (and SIGHUP if asked) for `bridgepool bench` and `bridgepool serve`
// (bench_command.cc and serve_command.cc decide what they do).
//
// SignalWatch turns SIGINT and SIGTERM into calls on an ordinary thread. A signal handler may
// only do async-signal-safe work, and what an interrupted bench must do — stop its load threads,
// let requests in flight finish, print a summary, shut a pool down — is none of that. So the
// signals are never delivered to a handler: start() blocks them in the calling thread (every
// thread created afterwards, the pool's included, inherits that mask) and a watcher thread reads
// them from a signalfd. The workers are unaffected: the spawner gives every child an empty mask
// and default dispositions (process/posix_spawner.cc).
//
// kill_child_process_groups() is for the one case in which the pool cannot end its workers
// itself: a second signal, or a signal during Pool::start (which cannot be cancelled), after
// which the process must exit now.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "base/unique_fd.h"
#include "bridgepool/error.h"

namespace bridgepool::cli {

class SignalWatch {
 public:
  using Callback = std::function<void(int signo)>;

  // Blocks SIGINT and SIGTERM and starts the watcher thread. Must be called while the calling
  // thread is the only one in the process: a thread that already exists keeps its mask, and
  // the kernel would deliver the signal to it (default action: the process dies). The first
  // signal calls on_first(signo), every later one on_again(signo); both run on the watcher
  // thread, one at a time, so on_first must not block for long (on_again may exit the process).
  // Returns a system error when the signalfd or the thread cannot be created.
  // With `on_hangup` (`bridgepool serve`: reload), SIGHUP is watched too and calls it, on the
  // same thread; hang-ups are not counted as first or later signals.
  static Result<std::unique_ptr<SignalWatch>> start(Callback on_first, Callback on_again,
                                                    Callback on_hangup = nullptr);

  // Stops and joins the watcher thread. SIGINT and SIGTERM stay blocked: the process is about
  // to exit, and unblocking would let a signal that arrived meanwhile kill it mid-summary.
  ~SignalWatch();
  SignalWatch(const SignalWatch&) = delete;
  SignalWatch& operator=(const SignalWatch&) = delete;

  // "SIGINT", "SIGTERM", or "signal N".
  static std::string name_of(int signo);

 private:
  SignalWatch(UniqueFd signal_fd, UniqueFd wake_fd, Callback on_first, Callback on_again,
              Callback on_hangup);
  void run();

  UniqueFd signal_fd_;
  UniqueFd wake_fd_;  // an eventfd: written by the destructor to end run()
  Callback on_first_;
  Callback on_again_;
  Callback on_hangup_;
  int received_ = 0;  // signals read so far (watcher thread only)
  std::thread thread_;
};

// SIGKILLs the process group of every child of this process: in `bridgepool bench` the children
// are the pool's workers, each the leader of its own group (the spawner's POSIX_SPAWN_SETPGROUP),
// so this also ends whatever their handlers started. For the exits that cannot wait for the
// pool's own shutdown. Returns how many groups it signalled. Any thread; reads /proc.
std::size_t kill_child_process_groups();

}  // namespace bridgepool::cli
