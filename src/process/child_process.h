// ChildProcess: one started worker process as its parent sees it — the descriptors the parent
// keeps, how to learn that it exited, how to signal it and how to collect its exit status.
//
// The parent keeps the write end of the request pipe (child fd 3), the read end of the response
// pipe (child fd 4) and the read ends of the child's stdout and stderr pipes; all are O_CLOEXEC
// and the protocol ends O_NONBLOCK. exit_fd() becomes readable (poll/epoll) when the process has
// exited, so exit detection is an event, never polling.
//
// Two implementations: PidfdProcess (process/pidfd_process.h), a real child spawned by
// PosixSpawner and watched through a pidfd; and the fakes of tests/fakes, in-process "workers"
// that speak the real protocol over real pipes, so pool logic can be tested without Python.
// Thread-safety: signal(), has_exited(), peek_exit_status() and the accessors may be called from
// any thread; reap() by exactly one thread (the supervisor's) once exit_fd() is readable;
// close_request_pipe() and the output owners by the thread that owns the process's lifecycle.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "base/unique_fd.h"

namespace bridgepool {

struct ExitStatus {
  bool signaled = false;
  int code = 0;          // exit code when !signaled
  int signal = 0;        // terminating signal when signaled
  bool unknown = false;  // a forked worker whose fork server died before reporting it
  // "exit code 3" / "killed by signal 9 (SIGKILL)" / "exit status unknown (...)"
  std::string describe() const;
};

class ChildProcess {
 public:
  ChildProcess(pid_t pid, UniqueFd request_fd, UniqueFd response_fd, UniqueFd stdout_fd,
               UniqueFd stderr_fd);
  virtual ~ChildProcess() = default;
  ChildProcess(ChildProcess&&) = delete;

  pid_t pid() const { return pid_; }
  int request_fd() const { return request_fd_.get(); }
  int response_fd() const { return response_fd_.get(); }
  int stdout_fd() const { return stdout_fd_.get(); }
  int stderr_fd() const { return stderr_fd_.get(); }

  // Closes the request pipe: the worker sees EOF and exits (the gentlest way to end it).
  void close_request_pipe() { request_fd_.reset(); }
  UniqueFd& stdout_owner() { return stdout_fd_; }
  UniqueFd& stderr_owner() { return stderr_fd_; }

  // Readable once the process has exited (and stays readable after reap()).
  virtual int exit_fd() const = 0;
  // Sends `sig`. Returns false if the process has already exited.
  virtual bool signal(int sig) const = 0;
  // True once the process has exited (non-blocking).
  bool has_exited() const;

  // Ends what is left of the child's process group, then collects its exit status. Only after
  // exit_fd() became readable. nullopt if it was already reaped.
  virtual std::optional<ExitStatus> reap() = 0;
  bool reaped() const { return reaped_.load(std::memory_order_acquire); }
  std::optional<ExitStatus> exit_status() const;
  // How it ended, without reaping: reap()'s status once reaped, else peeked if it has exited,
  // else nullopt (still running).
  virtual std::optional<ExitStatus> peek_exit_status() const = 0;
  // peek_exit_status(), waiting up to `patience` for an exit that is under way (a process closes
  // its pipes a moment before it becomes a zombie). "exit code 1", "killed by signal 9
  // (SIGKILL)", or "still running after N ms" when it really is still alive.
  std::string describe_exit(
      std::chrono::milliseconds patience = std::chrono::milliseconds(200)) const;
  // Resident memory of the process now, in bytes; nullopt once reaped (its pid may belong to
  // someone else by then) or where the platform cannot tell (fakes).
  virtual std::optional<std::uint64_t> resident_bytes() const { return std::nullopt; }

 protected:
  // For reap(): publishes the status (exit_status(), reaped()).
  void record_exit(const ExitStatus& status);

 private:
  pid_t pid_;
  UniqueFd request_fd_;
  UniqueFd response_fd_;
  UniqueFd stdout_fd_;
  UniqueFd stderr_fd_;
  std::atomic<bool> reaped_{false};
  ExitStatus status_;  // valid once reaped_
};

// Resident memory of process `pid` from /proc/PID/statm (resident pages x page size); nullopt if
// it cannot be read. A zombie reads 0.
std::optional<std::uint64_t> resident_bytes_of(pid_t pid);

}  // namespace bridgepool
