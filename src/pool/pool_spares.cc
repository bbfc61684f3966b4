// Warm spares (PoolConfig::spare_workers): workers started, handshaken and initialized like any
// other, then kept aside in the SpareSet. A slot that opens in service (a worker died, was
// removed or recycled, or a caller made the pool grow) is filled by promoting a spare on the
// monitor thread — the same turn as the exit that opened it, no spawn on the way — and a new
// spare starts in the background. Spares are probed and recycled (max_rss_mb) like idle
// workers, but one that fails is simply replaced: it serves nobody, so there is nothing to
// degrade or wait for. Counting and replenishing decisions are Capacity's (capacity.h).
#include <fmt/format.h>

#include "pool/pool_impl.h"

namespace bridgepool {

void Pool::Impl::fill_slot(std::chrono::milliseconds delay, std::string replaces) {
  if (config.spare_workers == 0) {
    launch_after(delay);
    return;
  }
  // Promotion admits a worker: it happens on the monitor thread, like every admission, so an
  // exit noticed there is never lost between taking the spare and admitting it.
  auto fill = [this, delay, replaces = std::move(replaces)] {
    if (!promote_spare(replaces)) launch_after(delay);
  };
  if (loop.in_loop_thread()) {
    fill();
  } else {
    loop.post(std::move(fill));
  }
}

bool Pool::Impl::promote_spare(const std::string& replaces) {
  if (capacity.closed()) return false;  // the counted start is cancelled by launch_after
  const std::uint64_t generation = capacity.generation()->number;
  std::optional<SpareSet::Entry> spare = spares.take_for_promotion(generation);
  if (!spare) return false;
  const WorkerPtr worker = spare->worker;
  const auto refill = capacity.on_promoted();
  spare->tracking.last_used = clock.now();
  note_commands(worker, generation);
  affinity.add_worker(worker->number());
  registry.admit(worker, std::move(spare->tracking));
  telemetry.emit(EventId::kWorkerSparePromoted,
                 {{"pid", double(worker->pid())}, {"spares", double(spares.size())}},
                 {{"worker_id", worker->id()}, {"replaces", replaces}});
  telemetry.log(LogLevel::kInfo,
                replaces.empty()
                    ? std::string("spare promoted into service")
                    : fmt::format("spare promoted into service, replacing {}", replaces),
                worker->id());
  if (refill) launch_after(*refill, StartRole::kSpare);
  return true;
}

void Pool::Impl::admit_spare(const WorkerPtr& worker, std::uint64_t generation) {
  spares.add(worker, new_tracking(generation));
  telemetry.log(LogLevel::kDebug, "kept aside as a warm spare", worker->id());
  // A rolling restart installed a newer generation while it started: it never serves.
  if (generation != capacity.generation()->number) retire_stale_spares();
}

void Pool::Impl::spare_left(const WorkerPtr& worker, TransitionReason reason, bool kill,
                            const std::string& detail) {
  if (auto delay = capacity.on_removed(StartRole::kSpare)) {
    launch_after(*delay, StartRole::kSpare);
  }
  telemetry.transit(*worker, WorkerState::kTerminating, reason,
                    {{"detail", detail}, {"spare", "true"}});
  if (kill) supervisor.kill(worker);
  telemetry.log(LogLevel::kWarn, fmt::format("spare removed ({}): {}", to_string(reason), detail),
                worker->id());
}

std::size_t Pool::Impl::retire_spares(const std::function<bool(const Tracking&)>& pick,
                                      TransitionReason reason, const std::string& detail) {
  const std::vector<WorkerPtr> leaving = spares.take_if(pick);
  for (const WorkerPtr& w : leaving) {
    spare_left(w, reason, false, detail);
    supervisor.terminate(w, config.shutdown_grace);
  }
  return leaving.size();
}

void Pool::Impl::retire_stale_spares() {
  const std::uint64_t current = capacity.generation()->number;
  retire_spares([current](const Tracking& t) { return t.generation != current; },
                TransitionReason::kReplaced, "spare of another generation");
}

void Pool::Impl::care_for_spares(TimePoint now) {
  if (config.spare_workers == 0) return;
  const std::size_t recycled =
      retire_spares([](const Tracking& t) { return t.recycle_due.has_value(); },
                    TransitionReason::kRecycled, "recycled while a spare");
  counters.recycled.fetch_add(recycled, std::memory_order_relaxed);
  // Spares a rolling restart could not retire while they were being probed.
  retire_stale_spares();
  if (config.health_check_interval.count() == 0) return;
  std::vector<WorkerPtr> due = spares.begin_probes([now](Tracking& t) {
    if (!t.health.due(now, true)) return false;
    t.health.begin_probe();
    return true;
  });
  for (const WorkerPtr& w : due) probe_spare(w);
}

void Pool::Impl::probe_spare(const WorkerPtr& w) {
  const ProbeResult probed = send_probe(w, false, true);
  if (probed.healthy) {
    spares.end_probe(w, [&](Tracking& t) { t.health.record_success(clock.now()); });
    return;
  }
  // A spare that fails one probe is replaced: it serves nobody, waiting for it gains nothing.
  // SIGKILL when its channel cannot be trusted (no answer, a bad frame).
  if (!spares.remove(w)) return;  // it left meanwhile (its exit was noticed)
  const bool kill = probed.fault != WorkerFault::kNone;
  spare_left(w, TransitionReason::kHealthCheckFailed, kill, probed.detail);
  if (!kill) supervisor.terminate(w, config.shutdown_grace);
}

}  // namespace bridgepool
