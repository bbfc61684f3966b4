// Rolling restart (the migration path from one worker version to the next) and retirement of
// overflow workers that have gone idle.
#include <fmt/format.h>

#include "pool/pool_impl.h"
#include "pool/worker_command.h"

namespace bridgepool {

bool Pool::Impl::retire_on_return_locked(const WorkerPtr& worker) const {
  auto t = tracking.find(worker->id());
  if (t == tracking.end()) return false;
  if (t->second.retire_when_idle) return true;
  // An overflow worker that has nothing waiting for it goes as soon as the pool is above size
  // and it has been idle long enough; that check is the maintenance round's (it needs time).
  return false;
}

Result<void> Pool::rolling_restart(PoolConfig new_config, std::size_t batch, milliseconds timeout) {
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
  std::shared_ptr<const Impl::SpawnGeneration> previous;
  std::uint64_t gen_number;
  {
    std::lock_guard lock(s.mu);
    if (s.shutting_down) {
      return make_error(ErrorCategory::kResource, fmt::format("pool '{}' is shutting down", s.config.name));
    }
    previous = s.generation;
    gen_number = previous->number + 1;
    s.generation = std::make_shared<const Impl::SpawnGeneration>(
        Impl::SpawnGeneration{gen_number, next, build_worker_env(next)});
  }
  s.emit("pool.rolling_restart", {{"generation", double(gen_number)}}, {{"phase", "started"}});
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::vector<WorkerPtr> old_idle;
    std::unique_lock lock(s.mu);
    // Done when every worker in service is of the new generation and the pool is full again.
    std::size_t old_count = 0, in_flight = 0;
    for (const auto& [id, t] : s.tracking) {
      if (t.generation < gen_number) {
        ++old_count;
        in_flight += t.retire_when_idle ? 1 : 0;
      }
    }
    if (old_count == 0 && s.live.size() >= s.config.size) break;
    // A new-generation worker failed to start: stop here and go back to the previous generation
    // for further starts, so the pool refills with code that works.
    if (s.last_init_error && s.consecutive_init_failures > 0 &&
        s.last_failed_generation == gen_number) {
      Error e = *s.last_init_error;
      s.generation = previous;
      for (auto& [id, t] : s.tracking) t.retire_when_idle = false;
      lock.unlock();
      e.message = fmt::format("rolling restart to generation {} stopped: {}", gen_number, e.message);
      s.emit("pool.rolling_restart", {{"generation", double(gen_number)}}, {{"phase", "failed"}});
      return tl::unexpected(std::move(e));
    }
    // Start the next batch when the previous one has been replaced (pool back at size).
    std::size_t missing = s.config.size - std::min(s.config.size, s.live.size());
    if (in_flight == 0 && missing == 0 && s.starting == 0) {
      std::size_t marked = 0;
      for (auto& [id, t] : s.tracking) {
        if (t.generation < gen_number && marked < batch) {
          t.retire_when_idle = true;
          ++marked;
        }
      }
      // Idle ones leave now; busy ones at their checkin.
      for (auto it = s.idle.begin(); it != s.idle.end();) {
        auto t = s.tracking.find((*it)->id());
        if (t != s.tracking.end() && t->second.retire_when_idle) {
          old_idle.push_back(*it);
          ++s.borrowed;
          it = s.idle.erase(it);
        } else {
          ++it;
        }
      }
    }
    if (old_idle.empty()) {
      if (s.state_cv.wait_until(lock, deadline) == std::cv_status::timeout &&
          std::chrono::steady_clock::now() >= deadline) {
        return make_error(ErrorCategory::kTimeout,
                          fmt::format("rolling restart to generation {} did not finish within {} ms",
                                      gen_number, timeout.count()));
      }
      continue;
    }
    lock.unlock();
    for (const auto& w : old_idle) {
      s.checkin_remove(w, TransitionReason::kReplaced, false, "rolling restart");
    }
  }
  s.emit("pool.rolling_restart", {{"generation", double(gen_number)}}, {{"phase", "finished"}});
  return {};
}

}  // namespace bridgepool
