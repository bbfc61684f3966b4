#include "process/forked_process.h"

#include <poll.h>
#include <signal.h>

#include <chrono>

#include "process/fork_server.h"
#include "process/pidfd.h"

namespace bridgepool {
namespace {

// The zygote reaps on SIGCHLD and reports within microseconds; past this it is taken as hung
// (stopped, livelocked): killed and replaced, and the status is unknown. Bounded because reap()
// runs on the supervisor's loop.
constexpr std::chrono::milliseconds kReportPatience{500};
// peek_exit_status() of an exited worker: long enough for a report under load, short enough for
// an error message path.
constexpr std::chrono::milliseconds kPeekPatience{200};

ExitStatus unknown_status() {
  ExitStatus s;
  s.unknown = true;
  return s;
}

}  // namespace

ForkedProcess::ForkedProcess(pid_t pid, UniqueFd pidfd, UniqueFd request_fd, UniqueFd response_fd,
                             UniqueFd stdout_fd, UniqueFd stderr_fd,
                             std::shared_ptr<ForkServer> server)
    : ChildProcess(pid, std::move(request_fd), std::move(response_fd), std::move(stdout_fd),
                   std::move(stderr_fd)),
      pidfd_(std::move(pidfd)),
      server_(std::move(server)) {}

ForkedProcess::~ForkedProcess() { server_->forget(pid()); }

bool ForkedProcess::signal(int sig) const {
  return ::pidfd_send_signal(pidfd_.get(), sig, nullptr, 0) == 0;
}

std::optional<ExitStatus> ForkedProcess::reap() {
  if (reaped()) return std::nullopt;
  std::optional<ExitStatus> status = server_->exit_of(pid(), kReportPatience);
  if (!status && server_->alive()) {
    server_->abandon("did not report a worker's exit within 500 ms");
  }
  if (!status) {
    // Nobody will report it: the zygote is gone and init adopted the worker. Its group id stays
    // reserved while any member lives, so this reaches only what the worker left behind.
    ::kill(-pid(), SIGKILL);
    status = unknown_status();
  }
  record_exit(*status);
  return status;
}

std::optional<ExitStatus> ForkedProcess::peek_exit_status() const {
  if (auto s = exit_status()) return s;
  pollfd p{pidfd_.get(), POLLIN, 0};
  if (::poll(&p, 1, 0) <= 0) return std::nullopt;  // still running
  // It has exited; the zygote's report follows within microseconds of its SIGCHLD.
  if (auto s = server_->exit_of(pid(), kPeekPatience)) return s;
  return server_->alive() ? std::nullopt : std::optional(unknown_status());
}

std::optional<std::uint64_t> ForkedProcess::resident_bytes() const {
  if (reaped()) return std::nullopt;
  return resident_bytes_of(pid());
}

}  // namespace bridgepool
