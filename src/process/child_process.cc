#include "process/child_process.h"

#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

#include "process/pidfd.h"

#ifndef P_PIDFD
#define P_PIDFD 3  // linux/wait.h; glibc 2.36 does not always expose it
#endif

namespace bridgepool {

std::string ExitStatus::describe() const {
  if (!signaled) return fmt::format("exit code {}", code);
  const char* name = sigabbrev_np(signal);
  return fmt::format("killed by signal {} (SIG{})", signal, name ? name : "?");
}

ChildProcess::ChildProcess(pid_t pid, UniqueFd pidfd, UniqueFd request_fd, UniqueFd response_fd,
                           UniqueFd stdout_fd, UniqueFd stderr_fd)
    : pid_(pid),
      pidfd_(std::move(pidfd)),
      request_fd_(std::move(request_fd)),
      response_fd_(std::move(response_fd)),
      stdout_fd_(std::move(stdout_fd)),
      stderr_fd_(std::move(stderr_fd)) {}

bool ChildProcess::signal(int sig) const {
  // Through the pidfd: after the child is reaped its pid may belong to someone else, but the
  // pidfd still names our (dead) child and the call fails with ESRCH instead of hitting them.
  return ::pidfd_send_signal(pidfd_.get(), sig, nullptr, 0) == 0;
}

bool ChildProcess::has_exited() const {
  if (reaped()) return true;
  pollfd p{pidfd_.get(), POLLIN, 0};
  int rc;
  do {
    rc = ::poll(&p, 1, 0);
  } while (rc < 0 && errno == EINTR);
  return rc > 0;
}

std::optional<ExitStatus> ChildProcess::reap() {
  if (reaped()) return std::nullopt;
  // The leader is a zombie now, so the group id cannot be reused yet: end whatever the worker's
  // own children left behind in its group (no orphans), then collect the leader.
  ::kill(-pid_, SIGKILL);
  siginfo_t info{};
  int rc;
  do {
    rc = ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd_.get()), &info,
                  WEXITED);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return std::nullopt;
  status_.signaled = info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED;
  if (status_.signaled) {
    status_.signal = info.si_status;
  } else {
    status_.code = info.si_status;
  }
  reaped_.store(true, std::memory_order_release);
  return status_;
}

std::optional<ExitStatus> ChildProcess::exit_status() const {
  if (!reaped()) return std::nullopt;
  return status_;
}

}  // namespace bridgepool
