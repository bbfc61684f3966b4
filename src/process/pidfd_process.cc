#include "process/pidfd_process.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "process/pidfd.h"

#ifndef P_PIDFD
#define P_PIDFD 3  // linux/wait.h; glibc 2.36 does not always expose it
#endif

namespace bridgepool {
namespace {

ExitStatus status_of(const siginfo_t& info) {
  ExitStatus s;
  s.signaled = info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED;
  (s.signaled ? s.signal : s.code) = info.si_status;
  return s;
}

}  // namespace

PidfdProcess::PidfdProcess(pid_t pid, UniqueFd pidfd, UniqueFd request_fd, UniqueFd response_fd,
                           UniqueFd stdout_fd, UniqueFd stderr_fd)
    : ChildProcess(pid, std::move(request_fd), std::move(response_fd), std::move(stdout_fd),
                   std::move(stderr_fd)),
      pidfd_(std::move(pidfd)) {}

bool PidfdProcess::signal(int sig) const {
  // Through the pidfd: after the child is reaped its pid may belong to someone else, but the
  // pidfd still names our (dead) child and the call fails with ESRCH instead of hitting them.
  return ::pidfd_send_signal(pidfd_.get(), sig, nullptr, 0) == 0;
}

std::optional<ExitStatus> PidfdProcess::reap() {
  if (reaped()) return std::nullopt;
  // The leader is a zombie now, so the group id cannot be reused yet: end whatever the worker's
  // own children left behind in its group (no orphans), then collect the leader.
  ::kill(-pid(), SIGKILL);
  siginfo_t info{};
  int rc;
  do {
    rc = ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd_.get()), &info, WEXITED);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) return std::nullopt;
  ExitStatus status = status_of(info);
  record_exit(status);
  return status;
}

std::optional<std::uint64_t> PidfdProcess::resident_bytes() const {
  // Not after reap: the pid may have been reused.
  if (reaped()) return std::nullopt;
  return resident_bytes_of(pid());
}

std::optional<ExitStatus> PidfdProcess::peek_exit_status() const {
  if (auto s = exit_status()) return s;
  // WNOWAIT leaves the zombie for the supervisor to reap; WNOHANG: never block here.
  siginfo_t info{};
  int rc = ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd_.get()), &info,
                    WEXITED | WNOWAIT | WNOHANG);
  if (rc != 0 && errno == ECHILD) {
    // The supervisor reaped it between our two looks and is about to publish the status: wait
    // for that (microseconds), so the caller's error can say how the worker ended.
    for (int i = 0; i < 2000 && !reaped(); ++i) ::usleep(50);
    return exit_status();
  }
  if (rc != 0 || info.si_pid == 0) return exit_status();  // still running
  return status_of(info);
}

}  // namespace bridgepool
