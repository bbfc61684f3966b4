// PidfdProcess: a real child process spawned by PosixSpawner, watched and signalled through a
// pidfd (Linux >= 5.3). A pidfd names one process for its whole life — unlike a pid it cannot be
// reused — so signalling through it can never hit an unrelated process, and it becomes readable
// when the process exits, which is how the supervisor's event loop notices every exit at once.
// The child leads its own process group (pgid == pid), so reap() can end its leftovers too.
// Thread-safety: as ChildProcess.
#pragma once

#include "process/child_process.h"

namespace bridgepool {

class PidfdProcess final : public ChildProcess {
 public:
  PidfdProcess(pid_t pid, UniqueFd pidfd, UniqueFd request_fd, UniqueFd response_fd,
               UniqueFd stdout_fd, UniqueFd stderr_fd);

  int exit_fd() const override { return pidfd_.get(); }
  bool signal(int sig) const override;
  std::optional<ExitStatus> reap() override;
  std::optional<ExitStatus> peek_exit_status() const override;
  // From /proc/PID/statm (resident pages x page size); nullopt once reaped.
  std::optional<std::uint64_t> resident_bytes() const override;

 private:
  UniqueFd pidfd_;
};

}  // namespace bridgepool
