// Spawner: starts a worker process with the pipes of the wire protocol (SPEC §2, §4).
//
// The interface exists so pool logic can be tested with a fake; PosixSpawner is the real one.
// Contract for the child: argv executed directly (never through a shell); fd 0 = /dev/null,
// fd 1/2 = pipes captured by the pool, fd 3 = requests, fd 4 = responses; every other descriptor
// closed; default signal dispositions and an empty signal mask; its own process group.
// Thread-safety: spawn() may be called from any thread, but the pool calls it only from its
// long-lived monitor thread, because PR_SET_PDEATHSIG in the child fires when the *thread* that
// created it exits, not the process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bridgepool/error.h"
#include "process/child_process.h"

namespace bridgepool {

struct SpawnSpec {
  std::vector<std::string> argv;  // argv[0] is the program; searched in PATH if it has no '/'
  std::vector<std::string> env;   // complete environment, "KEY=value"
  // Fork-server start (StartMethod::kForkServer): argv[0, template_args) is what every worker
  // of `generation` shares — what a zygote loads once (fork_server_spawner.h); the rest is
  // per worker (its id). 0: always a fresh process (posix_spawn).
  std::size_t template_args = 0;
  std::uint64_t generation = 0;
};

class Spawner {
 public:
  virtual ~Spawner() = default;
  // Initialization error (with errno text as cause) when the program cannot be executed;
  // resource error for EMFILE/ENFILE/EAGAIN (descriptor or process limits).
  virtual Result<std::unique_ptr<ChildProcess>> spawn(const SpawnSpec& spec) = 0;
  // Calls `ready` (on any thread, exactly once) when spawn(spec) can run without a long wait:
  // at once, except while a fork server for spec's generation loads its modules for the first
  // time. The supervisor calls spawn() from its loop only after this, so a zygote's import
  // never stalls the loop.
  virtual void when_ready(const SpawnSpec& spec, std::function<void()> ready) {
    (void)spec;
    ready();
  }
  // Shutting down: every pending when_ready callback fires now. Idempotent.
  virtual void close() {}
  // Shut down, every worker reaped: ends the helper processes (fork servers). Idempotent.
  virtual void stop() {}
};

class PosixSpawner final : public Spawner {
 public:
  Result<std::unique_ptr<ChildProcess>> spawn(const SpawnSpec& spec) override;
};

}  // namespace bridgepool
