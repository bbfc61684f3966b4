// Background care of idle workers, on the pool's maintenance thread: health probes (SPEC §4
// "Health monitoring") and recycling by request count or RSS. A busy worker is never touched:
// only workers taken off the idle stack (or the degraded list) are probed or recycled.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

#include "pool/pool_impl.h"

namespace bridgepool {
namespace {

// Resident set size of a process from /proc/<pid>/statm (second field, in pages); 0 if unknown.
double rss_mb_of(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/statm", static_cast<int>(pid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[128] = {0};
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  unsigned long size = 0, resident = 0;
  if (n <= 0 || std::sscanf(buf, "%lu %lu", &size, &resident) != 2) return 0;
  return double(resident) * double(::sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

}  // namespace

std::chrono::milliseconds Pool::Impl::maintenance_tick() const {
  // Often enough to honour the shortest configured period (a degraded worker's recheck), never
  // a busy loop: between 10 ms and 1 s.
  std::chrono::milliseconds tick = std::min<std::chrono::milliseconds>(
      std::chrono::milliseconds(1000), config.session_cleanup_interval);
  if (config.health_check_interval.count() > 0) {
    tick = std::min({tick, config.health_check_interval / 2, config.health_recheck_interval / 2});
  }
  return std::clamp(tick, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
}

void Pool::Impl::schedule_maintenance() {
  loop.post_after(maintenance_tick(), [this] {
    // One round at a time: a slow probe must not pile rounds up behind it.
    if (!maintenance_running.exchange(true)) {
      if (!maintenance->submit([this] {
            maintenance_round();
            maintenance_running = false;
          })) {
        return;  // shutting down
      }
    }
    schedule_maintenance();
  });
}

bool Pool::Impl::recycle_if_due_locked(const WorkerPtr& worker) {
  auto t = tracking.find(worker->id());
  if (t == tracking.end() || !t->second.recycle_due) return false;
  return RecyclePolicy::may_recycle_now(live.size(), config.size, starting);
}

void Pool::Impl::maintenance_round() {
  TimePoint now = clock.now();
  std::vector<std::pair<WorkerPtr, bool>> to_probe;
  std::vector<WorkerPtr> to_recycle, to_sample;
  WorkerPtr to_retire_overflow;
  {
    std::lock_guard lock(mu);
    if (shutting_down) return;
    auto take = [&](std::vector<WorkerPtr>& from, bool was_degraded) {
      for (auto it = from.begin(); it != from.end();) {
        auto t = tracking.find((*it)->id());
        if (t != tracking.end() && t->second.health.due(now, true)) {
          t->second.health.begin_probe();
          to_probe.emplace_back(*it, was_degraded);
          ++borrowed;
          it = from.erase(it);
        } else {
          ++it;
        }
      }
    };
    if (config.health_check_interval.count() > 0) {
      take(idle, false);
      take(degraded, true);
    }
    for (auto it = idle.begin(); it != idle.end(); ++it) {
      if (recycle_if_due_locked(*it)) {
        to_recycle.push_back(*it);
        ++borrowed;
        idle.erase(it);
        break;  // one at a time: capacity never dips below size - 1
      }
    }
    if (config.max_rss_mb > 0) to_sample = idle;
    // Overflow: above `size`, the idle worker unused for longest goes after the idle timeout.
    if (live.size() > config.size && !idle.empty()) {
      auto oldest = std::min_element(idle.begin(), idle.end(), [&](const auto& a, const auto& b) {
        return tracking.at(a->id()).last_used < tracking.at(b->id()).last_used;
      });
      if (now - tracking.at((*oldest)->id()).last_used >= config.overflow_idle_timeout) {
        to_retire_overflow = *oldest;
        ++borrowed;
        ++overflow_retired;
        idle.erase(oldest);
      }
    }
  }
  for (const auto& w : to_sample) {
    double rss = rss_mb_of(w->pid());
    std::lock_guard lock(mu);
    auto t = tracking.find(w->id());
    if (t == tracking.end()) continue;
    t->second.rss_mb = rss;
    if (auto why = recycle.check(w->requests(), rss, t->second.recycle_limit)) {
      t->second.recycle_due = why;
    }
  }
  if (to_retire_overflow) {
    checkin_remove(to_retire_overflow, TransitionReason::kRecycled, false, "overflow worker idle");
  }
  for (const auto& w : to_recycle) {
    {
      std::lock_guard lock(mu);
      ++recycled;
    }
    checkin_remove(w, TransitionReason::kRecycled, false, "recycled while idle");
  }
  for (const auto& [w, was_degraded] : to_probe) probe(w, was_degraded);
  if (now - last_session_sweep >= config.session_cleanup_interval) {
    last_session_sweep = now;
    sweep_sessions();
  }
  flush_pending_closes();
}

void Pool::Impl::return_unused(const WorkerPtr& worker) {
  std::shared_ptr<Waiter> wake;
  {
    std::lock_guard lock(mu);
    --borrowed;
    auto it = live.find(worker->id());
    if (it != live.end() && it->second == worker) wake = give_back_locked(worker);
    state_cv.notify_all();
  }
  if (wake) wake->cv.notify_one();
}

void Pool::Impl::probe(const WorkerPtr& w, bool was_degraded) {
  wire::Request request{0, "health_check", Json::object(), std::nullopt, std::nullopt};
  TimePoint deadline = clock.now() + config.health_check_timeout;
  CallOutcome outcome = w->call(request, deadline, nullptr);
  bool answered = outcome.fault == WorkerFault::kNone && outcome.result.has_value();
  bool healthy = answered && outcome.result->is_object() &&
                 outcome.result->value("status", "") == "healthy";
  {
    std::lock_guard lock(mu);
    ++health_checks;
    if (!healthy) ++health_check_failures;
  }
  emit("pool.worker.health_check", {{"healthy", healthy ? 1.0 : 0.0}},
       {{"worker_id", w->id()}, {"degraded", was_degraded ? "true" : "false"}});
  if (outcome.fault != WorkerFault::kNone) {
    // The channel itself failed (exit, bad frame, no answer in time): untrustworthy, remove.
    checkin_remove(w, outcome.fault == WorkerFault::kTimeout ? TransitionReason::kTimeout
                                                             : TransitionReason::kHealthCheckFailed,
                   true, "health check: " + outcome.result.error().message);
    return;
  }
  std::optional<RecoveryDecision> failure;
  {
    std::lock_guard lock(mu);
    auto t = tracking.find(w->id());
    if (t != tracking.end()) {
      if (healthy) {
        t->second.health.record_success(clock.now());
      } else {
        failure = t->second.health.record_failure(clock.now(), shutting_down);
      }
    }
  }
  if (healthy) {
    w->set_health(WorkerHealth::kHealthy);
    if (was_degraded) transit(w, WorkerState::kReady, TransitionReason::kHealthCheckPassed);
    return_unused(w);
    return;
  }
  w->set_health(WorkerHealth::kUnhealthy);
  std::string detail = answered ? outcome.result->dump() : outcome.result.error().message;
  if (failure && failure->removes_worker()) {
    checkin_remove(w, TransitionReason::kMaxFailures, false, "health check failed: " + detail);
    return;
  }
  if (!was_degraded) transit(w, WorkerState::kDegraded, TransitionReason::kHealthCheckFailed);
  std::lock_guard lock(mu);
  --borrowed;
  auto it = live.find(w->id());
  if (it != live.end() && it->second == w) degraded.push_back(w);
  state_cv.notify_all();
}

}  // namespace bridgepool
