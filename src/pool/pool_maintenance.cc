// Background care of idle workers, on the pool's maintenance thread (maintenance.h paces it):
// health probes (SPEC §4 "Health monitoring"), recycling by request count or RSS, retirement of
// idle overflow workers, session expiry and the session closes owed to workers. A busy worker
// is never touched: only workers taken off the idle stack (or the degraded list) are probed,
// recycled or retired.
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
  return Maintenance::tick_for(config.health_check_interval, config.health_recheck_interval,
                               config.session_cleanup_interval);
}

void Pool::Impl::measure_rss() {
  if (config.max_rss_mb <= 0) return;
  auto record = [this](const WorkerPtr& w, double rss, Tracking& t) {
    t.rss_mb = rss;
    if (auto why = recycle.check(w->requests(), rss, t.recycle_limit)) t.recycle_due = why;
  };
  // Read outside the components' locks (a /proc read per worker).
  for (const WorkerPtr& w : registry.in_service()) {
    const double rss = rss_mb_of(w->pid());
    registry.with_tracking(w->id(), [&](Tracking& t) { record(w, rss, t); });
  }
  for (const WorkerPtr& w : spares.workers()) {
    const double rss = rss_mb_of(w->pid());
    spares.with_tracking(w->id(), [&](Tracking& t) { record(w, rss, t); });
  }
}

void Pool::Impl::maintenance_round() {
  if (capacity.closed()) return;
  const TimePoint now = clock.now();
  const auto began = clock.wall_now();
  // RSS first (it may make a worker due for recycling below).
  measure_rss();
  care_for_spares(now);
  // One decision pass under the registry's lock: who is probed, recycled or retired.
  std::vector<std::pair<WorkerPtr, bool>> to_probe;
  WorkerPtr to_recycle, to_retire;
  // Routine probes only when health checking is on; a degraded worker (a failed probe, or a
  // handler's checkin error) is probed in any case: a probe is its only way back into service.
  const bool probing = config.health_check_interval.count() > 0;
  const std::size_t live = registry.counts().live;
  const bool overflowing = live > config.size;
  WorkerPtr oldest_idle;
  TimePoint oldest_use = TimePoint::max();
  registry.take_idle([&](const WorkerPtr& w, Tracking& t, bool degraded) {
    if ((probing || degraded) && t.health.due(now, true)) {
      t.health.begin_probe();
      to_probe.emplace_back(w, degraded);
      return true;
    }
    // One recycle at a time: capacity never dips below size - 1.
    if (!degraded && !to_recycle && t.recycle_due && capacity.try_begin_recycle()) {
      to_recycle = w;
      return true;
    }
    if (!degraded && overflowing && t.last_used < oldest_use) {
      oldest_idle = w;
      oldest_use = t.last_used;
    }
    return false;
  });
  // Overflow: above `size`, the idle worker unused for longest goes after the idle timeout.
  if (oldest_idle && now - oldest_use >= config.overflow_idle_timeout) {
    auto taken = registry.take_idle([&](const WorkerPtr& w, Tracking&, bool degraded) {
      return !degraded && w == oldest_idle;
    });
    if (!taken.empty()) to_retire = oldest_idle;
  }
  if (to_retire) {
    counters.overflow_retired.fetch_add(1, std::memory_order_relaxed);
    checkin_remove(to_retire, TransitionReason::kRecycled, false, "overflow worker idle");
  }
  if (to_recycle) {
    counters.recycled.fetch_add(1, std::memory_order_relaxed);
    checkin_remove(to_recycle, TransitionReason::kRecycled, false, "recycled while idle", true);
  }
  for (const auto& [w, was_degraded] : to_probe) probe(w, was_degraded);
  if (now - last_session_sweep >= config.session_cleanup_interval) {
    last_session_sweep = now;
    sweep_sessions();
  }
  flush_pending_closes();
  telemetry.emit(
      EventId::kMaintenanceRound,
      {{"probes", double(to_probe.size())},
       {"duration_us",
        double(std::chrono::duration_cast<std::chrono::microseconds>(clock.now() - now).count())}},
      {}, began);
}

Pool::Impl::ProbeResult Pool::Impl::send_probe(const WorkerPtr& w, bool degraded, bool spare) {
  wire::Request request{0, "health_check", Json::object(), std::nullopt, std::nullopt};
  const TimePoint deadline = clock.now() + config.health_check_timeout;
  CallOutcome outcome = w->call(request, deadline, nullptr);
  const bool answered = outcome.fault == WorkerFault::kNone && outcome.result.has_value();
  const bool healthy =
      answered && outcome.result->is_object() && outcome.result->value("status", "") == "healthy";
  counters.health_checks.fetch_add(1, std::memory_order_relaxed);
  if (!healthy) counters.health_check_failures.fetch_add(1, std::memory_order_relaxed);
  telemetry.emit(EventId::kWorkerHealthCheck, {{"healthy", healthy ? 1.0 : 0.0}},
                 {{"worker_id", w->id()},
                  {"degraded", degraded ? "true" : "false"},
                  {"spare", spare ? "true" : "false"}});
  ProbeResult out{outcome.fault, healthy, {}};
  if (outcome.fault != WorkerFault::kNone) {
    // The channel itself failed (exit, bad frame, no answer in time).
    out.detail = "health check: " + (outcome.result ? std::string("data after the reply")
                                                    : outcome.result.error().message);
  } else if (!healthy) {
    out.detail = "health check failed: " +
                 (answered ? outcome.result->dump(-1, ' ', false, Json::error_handler_t::replace)
                           : outcome.result.error().message);
  }
  return out;
}

void Pool::Impl::probe(const WorkerPtr& w, bool was_degraded) {
  const ProbeResult probed = send_probe(w, was_degraded, false);
  if (probed.fault != WorkerFault::kNone) {
    // The channel itself failed: that failure's kind.
    worker_failed(w, failure_kind_of(probed.fault), 1, probed.detail, true);
    return;
  }
  const bool healthy = probed.healthy;
  std::uint32_t failures = 0;
  registry.with_tracking(w->id(), [&](Tracking& t) {
    if (healthy) {
      t.health.record_success(clock.now());
    } else {
      t.health.record_failure(clock.now());
      failures = t.health.consecutive_failures();
    }
  });
  if (healthy) {
    w->set_health(WorkerHealth::kHealthy);
    if (was_degraded) {
      telemetry.transit(*w, WorkerState::kReady, TransitionReason::kHealthCheckPassed);
    }
    return_unused(w);
    return;
  }
  worker_failed(w, FailureKind::kHealthCheckFailed, std::max<std::uint32_t>(failures, 1),
                probed.detail, true);
}

}  // namespace bridgepool
