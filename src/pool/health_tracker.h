// HealthTracker: health-check bookkeeping for one worker (SPEC §4 "Health monitoring"), pure.
//
// The pool keeps one per worker and asks it when to probe; the prober reports each probe's
// outcome back. Time is passed in (no clock, no I/O), so tests drive it with a ManualClock.
//
// When a probe is due (and never while the worker is busy: a probe never interrupts a request):
//   healthy worker   idle and now >= max(last activity, last probe) + interval (default 30 s).
//                    A completed request is proof of life too, so a busy worker is not probed
//                    right after its request: with interval 30 s, a request ending at t=100 s
//                    moves the next probe from t=120 s (probe at t=90 s) to t=130 s.
//   degraded worker  (1 .. max_failures-1 consecutive failures, or marked suspect after a checkin
//                    error) idle and now >= last probe +
//                    recheck_interval (default 200 ms): waiting a full 30 s would keep one worker
//                    of capacity out for 30 s after a single slow probe; 200 ms gets it back at
//                    once if it recovered, while a dead-but-idle worker fails its 2nd and 3rd
//                    probes 200 ms apart and is removed ~0.4 s (plus probe times) after the 1st.
//   condemned        (>= max_failures failures) never: the pool is removing it.
//   probe in flight  never: one probe at a time.
//
// The degrade/remove rule itself is RecoveryPolicy's (FailureKind::kHealthCheckFailed), so the
// health prober and every other failure path agree on it.
// Thread-safety: none; the pool's mutex guards it. Any thread holding that mutex may call it.
#pragma once

#include <chrono>
#include <cstdint>

#include "bridgepool/clock.h"
#include "worker/recovery_policy.h"
#include "worker/worker_state_machine.h"

namespace bridgepool {

struct HealthConfig {
  std::chrono::milliseconds interval{30'000};       // between probes of a healthy idle worker
  std::chrono::milliseconds timeout{5'000};         // per probe; carried for the prober
  std::uint32_t max_failures = 3;                   // consecutive failures before removal
  std::chrono::milliseconds recheck_interval{200};  // between probes of a degraded worker
};

class HealthTracker {
 public:
  // `ready_at` is when the worker completed its handshake: proof of life, so it starts healthy
  // and its first probe is due one interval later.
  HealthTracker(const HealthConfig& config, TimePoint ready_at);

  // Whether the prober should probe now. `idle`: the worker is not checked out (ready or
  // degraded). See the header comment for the rules.
  bool due(TimePoint now, bool idle) const;
  // The earliest time a probe can be due (if the worker is idle then), for the prober's timer.
  TimePoint next_due() const;

  // A probe was sent; due() is false until its outcome is recorded. The outcome's time, not the
  // send time, schedules the next probe, so a slow probe does not shorten the gap after it.
  void begin_probe();
  // The probe succeeded: failures reset, health healthy. Returns true when this restores a
  // degraded worker (the pool moves it degraded -> ready, reason health_check_passed).
  bool record_success(TimePoint now);
  // The probe failed (unhealthy answer, error or timeout): failures + 1, health unhealthy.
  // Returns RecoveryPolicy's decision: kDegradeAndProbeSoon below max_failures, kRemove at it.
  RecoveryDecision record_failure(TimePoint now, bool shutting_down = false);
  // A request completed on the worker: proof of life, postpones the next routine probe.
  void note_activity(TimePoint now);
  // A handler marked the worker unhealthy (a checkin error): it is degraded until a probe
  // passes, and the next probe is due one recheck_interval from now. Health failures are not
  // counted (the checkin error limit is RecoveryPolicy's, on the worker's own counter).
  void mark_suspect(TimePoint now);

  WorkerHealth health() const { return health_; }
  std::uint32_t consecutive_failures() const { return consecutive_failures_; }
  bool degraded() const { return consecutive_failures_ > 0 || suspect_; }
  bool probe_in_flight() const { return probe_in_flight_; }
  const HealthConfig& config() const { return config_; }

  // Counters since construction. A record_* without begin_probe counts as a probe too.
  std::uint64_t probes() const { return probes_; }
  std::uint64_t successes() const { return successes_; }
  std::uint64_t failures() const { return failures_; }

 private:
  void end_probe(TimePoint now);

  HealthConfig config_;
  RecoveryPolicy policy_;
  TimePoint last_activity_;
  TimePoint last_probe_;  // when the last probe's outcome was recorded (== ready_at before any)
  WorkerHealth health_ = WorkerHealth::kHealthy;
  std::uint32_t consecutive_failures_ = 0;
  bool probe_in_flight_ = false;
  bool suspect_ = false;  // mark_suspect() until the next successful probe
  std::uint64_t probes_ = 0;
  std::uint64_t successes_ = 0;
  std::uint64_t failures_ = 0;
};

}  // namespace bridgepool
