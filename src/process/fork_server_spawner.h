// ForkServerSpawner: the pool's Spawner. A SpawnSpec without template arguments is
// posix_spawned (PosixSpawner); one with them (StartMethod::kForkServer, see SpawnSpec) is forked
// from the zygote of its generation (ForkServer), which this spawner starts on first need and
// replaces when the generation — or anything the zygote loads (argv prefix, environment) —
// changes. A replaced zygote is retired, not killed: it lives until the last worker it forked is
// reaped, because it is their parent and reports their exit status.
//
// Never worse than spawn: while a zygote that once served is being replaced (it died; restarts
// follow respawn backoff), and for a generation whose modules started threads at import
// ("unsafe", warned once by the ForkServer), workers are spawned. Only the first zygote of a
// generation is waited for (when_ready): its imports are what every worker would do anyway.
// An import error in the zygote is every launch's initialization error until it loads.
//
// Thread-safety: every method may be called from any thread; when_ready callbacks run on the
// calling thread or on a ForkServer's thread, without locks held.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "process/fork_server.h"
#include "process/spawner.h"

namespace bridgepool {

// -- pure decisions (tests/unit/fork_server_spawner_test.cc) --------------------------------
enum class SpawnRoute { kFork, kSpawn, kFail };
// How spawn() starts a worker of a generation whose zygote is in `state`.
SpawnRoute route_for(ForkServer::State state);
// Whether when_ready waits: only while the first zygote of the generation loads its modules.
bool waits_for(ForkServer::State state, bool generation_had_ready_zygote);
// The delay before the n-th consecutive zygote restart (n >= 1): initial x 2^(n-1), capped.
std::chrono::milliseconds restart_delay(std::uint32_t n, std::chrono::milliseconds initial,
                                        std::chrono::milliseconds max);
// What identifies a zygote: the generation, the shared argv prefix and the environment.
std::string template_key(const SpawnSpec& spec);
// The zygote's own command line: the shared prefix + "--zygote".
SpawnSpec zygote_spec(const SpawnSpec& worker);

class ForkServerSpawner final : public Spawner {
 public:
  struct Options {
    std::chrono::milliseconds start_timeout{10'000};  // zygote spawn -> ready
    // One fork request; past it the zygote is taken as hung (killed, replaced) and the worker
    // spawned instead. A fork of even a multi-GiB interpreter takes tens of milliseconds.
    std::chrono::milliseconds fork_timeout{2'000};
    std::chrono::milliseconds backoff_initial{100};  // zygote restarts
    std::chrono::milliseconds backoff_max{10'000};
    ForkServer::LogSink log;
  };

  explicit ForkServerSpawner(Options options);
  ~ForkServerSpawner() override;

  Result<std::unique_ptr<ChildProcess>> spawn(const SpawnSpec& spec) override;
  void when_ready(const SpawnSpec& spec, std::function<void()> ready) override;
  void close() override;
  void stop() override;

  // The current zygote's pid (-1: none running), for tests and status.
  pid_t zygote_pid() const;

 private:
  struct Shared;
  // Under shared_->mu: makes shared_->server the zygote for `spec`, (re)started as needed; a
  // replaced one goes to shared_->retired: released by prune_retired outside the lock, never on
  // a ForkServer's own thread (its on_died callback replaces it from there).
  void ensure_locked(const SpawnSpec& spec);
  void start_locked(const SpawnSpec& spec, std::chrono::milliseconds delay);
  Result<std::unique_ptr<ChildProcess>> fork_from(const std::shared_ptr<ForkServer>& server,
                                                  const SpawnSpec& spec);
  void prune_retired();

  const Options options_;
  PosixSpawner posix_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace bridgepool
