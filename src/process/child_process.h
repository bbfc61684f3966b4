// ChildProcess: one spawned worker process and the descriptors the parent keeps to it.
//
// The parent keeps: a pidfd (exit notification and race-free signalling), the write end of the
// request pipe (child fd 3), the read end of the response pipe (child fd 4), and the read ends of
// the child's stdout and stderr pipes. All are O_CLOEXEC and the protocol ends are O_NONBLOCK.
// The child leads its own process group (pgid == pid) so its own children can be ended with it.
// Thread-safety: signal() and the accessors may be called from any thread; reap() is called by
// exactly one thread (the pool's monitor) once the pidfd is readable.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <optional>
#include <string>

#include "base/unique_fd.h"
#include "bridgepool/error.h"

namespace bridgepool {

struct ExitStatus {
  bool signaled = false;
  int code = 0;    // exit code when !signaled
  int signal = 0;  // terminating signal when signaled
  // "exit code 3" / "killed by signal 9 (SIGKILL)"
  std::string describe() const;
};

class ChildProcess {
 public:
  ChildProcess(pid_t pid, UniqueFd pidfd, UniqueFd request_fd, UniqueFd response_fd,
               UniqueFd stdout_fd, UniqueFd stderr_fd);
  ChildProcess(ChildProcess&&) = delete;

  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_.get(); }
  int request_fd() const { return request_fd_.get(); }
  int response_fd() const { return response_fd_.get(); }
  int stdout_fd() const { return stdout_fd_.get(); }
  int stderr_fd() const { return stderr_fd_.get(); }

  // Closes the request pipe: the worker sees EOF and exits (the gentlest way to end it).
  void close_request_pipe() { request_fd_.reset(); }
  UniqueFd& stdout_owner() { return stdout_fd_; }
  UniqueFd& stderr_owner() { return stderr_fd_; }

  // Sends `sig` through the pidfd. Returns false if the process has already exited.
  bool signal(int sig) const;

  // True once the process has exited (non-blocking poll of the pidfd).
  bool has_exited() const;

  // Kills what is left of the child's process group, then collects its exit status. Must only
  // be called after the pidfd became readable (the child is a zombie, so its pid — and thus the
  // group id — cannot have been reused). Returns nullopt if it was already reaped.
  std::optional<ExitStatus> reap();
  bool reaped() const { return reaped_.load(std::memory_order_acquire); }
  std::optional<ExitStatus> exit_status() const;

 private:
  pid_t pid_;
  UniqueFd pidfd_;
  UniqueFd request_fd_;
  UniqueFd response_fd_;
  UniqueFd stdout_fd_;
  UniqueFd stderr_fd_;
  std::atomic<bool> reaped_{false};
  ExitStatus status_;  // valid once reaped_
};

}  // namespace bridgepool
