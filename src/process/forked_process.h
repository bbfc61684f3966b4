// ForkedProcess: a worker forked by a zygote (ForkServer) rather than spawned by the host.
//
// It is the zygote's child, not ours, so two things differ from PidfdProcess: the exit status
// comes from the zygote (which reaps its children and reports each status over its socket), and
// the zygote, not reap(), ends what is left of the worker's process group. Exit detection is the
// same: the pidfd the zygote passed back becomes readable when the worker exits. If the zygote
// died first, the worker was re-parented (to init) and its status is unknown; reap() then ends
// the worker's group itself. The process keeps its ForkServer alive (shared_ptr), so a retired
// zygote lives until the last worker it forked is reaped.
// Thread-safety: as ChildProcess.
#pragma once

#include <memory>

#include "process/child_process.h"

namespace bridgepool {

class ForkServer;

class ForkedProcess final : public ChildProcess {
 public:
  ForkedProcess(pid_t pid, UniqueFd pidfd, UniqueFd request_fd, UniqueFd response_fd,
                UniqueFd stdout_fd, UniqueFd stderr_fd, std::shared_ptr<ForkServer> server);
  ~ForkedProcess() override;

  int exit_fd() const override { return pidfd_.get(); }
  bool signal(int sig) const override;
  std::optional<ExitStatus> reap() override;
  std::optional<ExitStatus> peek_exit_status() const override;
  std::optional<std::uint64_t> resident_bytes() const override;

 private:
  UniqueFd pidfd_;
  std::shared_ptr<ForkServer> server_;
};

}  // namespace bridgepool
