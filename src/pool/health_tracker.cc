// HealthTracker: when to probe one worker, and what its probe results mean (see the header).
#include "pool/health_tracker.h"

#include <algorithm>

namespace bridgepool {

namespace {

RecoveryLimits limits_for(const HealthConfig& config) {
  RecoveryLimits limits;
  limits.max_health_failures = config.max_failures;
  return limits;
}

}  // namespace

HealthTracker::HealthTracker(const HealthConfig& config, TimePoint ready_at)
    : config_(config),
      policy_(limits_for(config)),
      last_activity_(ready_at),
      last_probe_(ready_at) {}

TimePoint HealthTracker::next_due() const {
  if (degraded()) return last_probe_ + config_.recheck_interval;
  return std::max(last_activity_, last_probe_) + config_.interval;
}

bool HealthTracker::due(TimePoint now, bool idle) const {
  if (!idle || probe_in_flight_) return false;
  if (consecutive_failures_ >= config_.max_failures) return false;  // being removed
  return now >= next_due();
}

void HealthTracker::begin_probe() {
  probe_in_flight_ = true;
  ++probes_;
}

void HealthTracker::end_probe(TimePoint now) {
  if (!probe_in_flight_) ++probes_;  // reported without begin_probe: still a probe
  probe_in_flight_ = false;
  last_probe_ = now;
}

bool HealthTracker::record_success(TimePoint now) {
  end_probe(now);
  ++successes_;
  const bool restored = degraded();
  consecutive_failures_ = 0;
  suspect_ = false;
  health_ = WorkerHealth::kHealthy;
  return restored;
}

RecoveryDecision HealthTracker::record_failure(TimePoint now, bool shutting_down) {
  end_probe(now);
  ++failures_;
  ++consecutive_failures_;
  health_ = WorkerHealth::kUnhealthy;
  FailureReport report;
  report.kind = FailureKind::kHealthCheckFailed;
  report.consecutive_failures = consecutive_failures_;
  report.shutting_down = shutting_down;
  return policy_.decide(report);
}

void HealthTracker::note_activity(TimePoint now) { last_activity_ = std::max(last_activity_, now); }

void HealthTracker::mark_suspect(TimePoint now) {
  suspect_ = true;
  health_ = WorkerHealth::kUnhealthy;
  if (!probe_in_flight_) last_probe_ = now;
}

}  // namespace bridgepool
