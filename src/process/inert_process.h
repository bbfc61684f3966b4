// InertProcess: a ChildProcess with no process behind it — no pipes, never exits, ignores
// signals. For code that only keeps books about workers (WorkerRegistry, state machines): its
// tests and its micro-benchmarks (bench/checkout_bench.cc), where no byte is ever exchanged.
// Thread-safety: as ChildProcess (nothing here changes after construction).
#pragma once

#include <sys/eventfd.h>

#include <optional>

#include "base/unique_fd.h"
#include "process/child_process.h"

namespace bridgepool {

class InertProcess final : public ChildProcess {
 public:
  InertProcess() : ChildProcess(0, UniqueFd(), UniqueFd(), UniqueFd(), UniqueFd()) {
    exit_.reset(::eventfd(0, EFD_CLOEXEC));  // never written: never readable
  }
  int exit_fd() const override { return exit_.get(); }
  bool signal(int) const override { return false; }
  std::optional<ExitStatus> reap() override { return std::nullopt; }
  std::optional<ExitStatus> peek_exit_status() const override { return std::nullopt; }

 private:
  UniqueFd exit_;
};

}  // namespace bridgepool
