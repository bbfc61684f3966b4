// Rolling restart: the migration path from one worker version to the next (SPEC §5). A new
// spawn generation is installed in Capacity (so every start from now on — replacements
// included — uses the new code), then the old workers leave `batch` at a time: idle ones at once,
// busy ones at their next checkin, so no request fails and at least size - batch serve.
#include <fmt/format.h>

#include "base/clock_wait.h"
#include "pool/pool_impl.h"
#include "pool/worker_command.h"

namespace bridgepool {

Result<void> Pool::rolling_restart(const PoolConfig& new_config, std::size_t batch,
                                   milliseconds timeout) {
  Impl& s = *impl_;
  batch = std::max<std::size_t>(1, batch);
  // Only how workers are started changes; sizing, timeouts and telemetry stay the pool's.
  PoolConfig next = s.config;
  next.python = new_config.python.empty() ? s.config.python : new_config.python;
  next.python_args = new_config.python_args;
  next.handlers = new_config.handlers.empty() ? s.config.handlers : new_config.handlers;
  next.python_path = new_config.python_path.empty() ? s.config.python_path : new_config.python_path;
  next.env = new_config.env;
  next.version_tag = new_config.version_tag;
  next.init_commands = new_config.init_commands;
  if (s.capacity.closed()) return tl::unexpected(s.shutting_down_error("rolling_restart"));
  const std::uint64_t gen_number = s.capacity.generation()->number + 1;
  GenerationPtr previous = s.capacity.install_generation(std::make_shared<const SpawnGeneration>(
      SpawnGeneration{gen_number, next, build_worker_env(next)}));
  s.telemetry.emit(EventId::kRollingRestart, {{"generation", double(gen_number)}},
                   {{"phase", "started"}});
  // Spares of the old generation never serve again: new ones replace them.
  s.retire_stale_spares();
  const TimePoint deadline = s.clock.now() + timeout;
  for (;;) {
    if (s.capacity.closed()) return tl::unexpected(s.shutting_down_error("rolling_restart"));
    // Done when every worker in service is of the new generation and the pool is full again.
    std::size_t old_count = 0, leaving = 0;
    s.registry.for_each_tracking([&](const std::string&, Tracking& t) {
      if (t.generation < gen_number) {
        ++old_count;
        leaving += t.retire_when_idle ? 1 : 0;
      }
    });
    const CapacitySnapshot cap = s.capacity.snapshot();
    const RegistryCounts counts = s.registry.counts();
    if (old_count == 0 && counts.live >= s.config.size) break;
    // A new-generation worker failed to start: stop here and go back to the previous generation
    // for further starts, so the pool refills with code that works.
    if (cap.last_init_error && cap.consecutive_init_failures > 0 &&
        cap.last_failed_generation == gen_number) {
      s.capacity.restore_generation(previous);
      s.retire_stale_spares();
      s.registry.for_each_tracking(
          [](const std::string&, Tracking& t) { t.retire_when_idle = false; });
      Error e = *cap.last_init_error;
      e.message =
          fmt::format("rolling restart to generation {} stopped: {}", gen_number, e.message);
      s.telemetry.emit(EventId::kRollingRestart, {{"generation", double(gen_number)}},
                       {{"phase", "failed"}});
      return tl::unexpected(std::move(e));
    }
    // Start the next batch when the previous one has been replaced (pool back at size).
    std::vector<WorkerPtr> old_idle;
    if (leaving == 0 && counts.live >= s.config.size && cap.starting == 0) {
      std::size_t marked = 0;
      s.registry.for_each_tracking([&](const std::string&, Tracking& t) {
        if (t.generation < gen_number && marked < batch) {
          t.retire_when_idle = true;
          ++marked;
        }
      });
      // Idle ones leave now; busy ones at their checkin.
      old_idle = s.registry.take_idle(
          [](const WorkerPtr&, Tracking& t, bool) { return t.retire_when_idle; });
    }
    for (const auto& w : old_idle) {
      s.checkin_remove(w, TransitionReason::kReplaced, false, "rolling restart");
    }
    if (!old_idle.empty()) continue;
    if (s.clock.now() >= deadline) {
      return make_error(ErrorCategory::kTimeout,
                        fmt::format("rolling restart to generation {} did not finish within {} ms",
                                    gen_number, timeout.count()));
    }
    s.registry.wait(
        [&](const RegistryCounts& c) {
          return c.live != counts.live || c.idle != counts.idle || c.busy != counts.busy;
        },
        std::min(deadline, s.clock.now() + std::chrono::milliseconds(50)));
  }
  s.telemetry.emit(EventId::kRollingRestart, {{"generation", double(gen_number)}},
                   {{"phase", "finished"}});
  return {};
}

}  // namespace bridgepool
