// HealthTracker: probe scheduling to the nanosecond under a ManualClock (interval, recheck of a
// degraded worker, activity as proof of life, never while busy or while a probe is in flight),
// and the degrade / restore / remove outcomes of probes.
#include "pool/health_tracker.h"

#include <gtest/gtest.h>

namespace bridgepool {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

constexpr bool kIdle = true;
constexpr bool kBusy = false;

HealthConfig test_config() {
  HealthConfig c;
  c.interval = seconds(30);
  c.recheck_interval = milliseconds(200);
  c.max_failures = 3;
  return c;
}

TEST(HealthTracker, StartsHealthyWithDefaultsFromTheSpec) {
  ManualClock clock;
  HealthTracker t(HealthConfig{}, clock.now());
  EXPECT_EQ(t.health(), WorkerHealth::kHealthy);
  EXPECT_EQ(t.consecutive_failures(), 0u);
  EXPECT_FALSE(t.degraded());
  EXPECT_EQ(t.config().interval, seconds(30));
  EXPECT_EQ(t.config().timeout, seconds(5));
  EXPECT_EQ(t.config().max_failures, 3u);
  EXPECT_EQ(t.config().recheck_interval, milliseconds(200));
  EXPECT_EQ(t.probes(), 0u);
}

TEST(HealthTracker, IntervalIsRespectedExactly) {
  ManualClock clock;
  HealthTracker t(test_config(), clock.now());
  EXPECT_EQ(t.next_due(), clock.now() + seconds(30));
  clock.advance(seconds(30) - nanoseconds(1));
  EXPECT_FALSE(t.due(clock.now(), kIdle));
  clock.advance(nanoseconds(1));
  EXPECT_TRUE(t.due(clock.now(), kIdle));
}

TEST(HealthTracker, NextProbeCountsFromTheLastOutcome) {
  ManualClock clock;
  HealthTracker t(test_config(), clock.now());
  clock.advance(seconds(30));
  t.begin_probe();
  clock.advance(milliseconds(40));  // the probe took 40 ms
  EXPECT_FALSE(t.record_success(clock.now()));
  clock.advance(seconds(30) - nanoseconds(1));
  EXPECT_FALSE(t.due(clock.now(), kIdle));
  clock.advance(nanoseconds(1));
  EXPECT_TRUE(t.due(clock.now(), kIdle));
}

TEST(HealthTracker, NeverDueWhileBusy) {
  ManualClock clock;
  HealthTracker t(test_config(), clock.now());
  clock.advance(seconds(3600));
  EXPECT_FALSE(t.due(clock.now(), kBusy));
  EXPECT_TRUE(t.due(clock.now(), kIdle));
  // Degraded and busy (e.g. checked out for the probe itself): still not due.
  t.record_failure(clock.now());
  clock.advance(seconds(1));
  EXPECT_FALSE(t.due(clock.now(), kBusy));
}

TEST(HealthTracker, NotDueWhileAProbeIsInFlight) {
  ManualClock clock;
  HealthTracker t(test_config(), clock.now());
  clock.advance(seconds(30));
  t.begin_probe();
  EXPECT_TRUE(t.probe_in_flight());
  clock.advance(seconds(60));
  EXPECT_FALSE(t.due(clock.now(), kIdle));
  t.record_success(clock.now());
  EXPECT_FALSE(t.probe_in_flight());
  EXPECT_EQ(t.probes(), 1u);  // begin + record is one probe
}

TEST(HealthTracker, ActivityPostponesTheNextProbe) {
  ManualClock clock;
  const TimePoint start = clock.now();
  HealthTracker t(test_config(), start);
  clock.advance(seconds(20));
  t.note_activity(clock.now());  // a request ended at +20 s: next probe at +50 s, not +30 s
  clock.advance(seconds(10));
  EXPECT_FALSE(t.due(clock.now(), kIdle));
  EXPECT_EQ(t.next_due(), start + seconds(50));
  clock.advance(seconds(20) - nanoseconds(1));
  EXPECT_FALSE(t.due(clock.now(), kIdle));
  clock.advance(nanoseconds(1));
  EXPECT_TRUE(t.due(clock.now(), kIdle));
  // An older activity report (arriving late) does not pull the schedule back.
  t.note_activity(start + seconds(1));
  EXPECT_EQ(t.next_due(), start + seconds(50));
}

TEST(HealthTracker, DegradedWorkerIsRecheckedAfterTheShortInterval) {
  ManualClock clock;
  HealthTracker t(test_config(), clock.now());
  clock.advance(seconds(30));
  const RecoveryDecision d = t.record_failure(clock.now());
  EXPECT_EQ(d.worker, WorkerAction::kDegradeAndProbeSoon);
  EXPECT_FALSE(d.replace);
  EXPECT_EQ(d.transition, TransitionReason::kHealthCheckFailed);
  EXPECT_TRUE(t.degraded());
  EXPECT_EQ(t.health(), WorkerHealth::kUnhealthy);
  clock.advance(milliseconds(200) - nanoseconds(1));
  EXPECT_FALSE(t.due(clock.now(), kIdle));
  clock.advance(nanoseconds(1));
  EXPECT_TRUE(t.due(clock.now(), kIdle));
}

TEST(HealthTracker, DegradeThenRestore) {
  ManualClock clock;
  HealthTracker t(test_config(), clock.now());
  clock.advance(seconds(30));
  t.record_failure(clock.now());
  clock.advance(milliseconds(200));
  t.record_failure(clock.now());
  EXPECT_EQ(t.consecutive_failures(), 2u);
  clock.advance(milliseconds(200));
  EXPECT_TRUE(t.record_success(clock.now()));  // restores the degraded worker
  EXPECT_EQ(t.health(), WorkerHealth::kHealthy);
  EXPECT_EQ(t.consecutive_failures(), 0u);
  EXPECT_FALSE(t.degraded());
  // Back on the full interval.
  EXPECT_EQ(t.next_due(), clock.now() + seconds(30));
  // A second success restores nothing.
  EXPECT_FALSE(t.record_success(clock.now()));
  EXPECT_EQ(t.probes(), 4u);
  EXPECT_EQ(t.successes(), 2u);
  EXPECT_EQ(t.failures(), 2u);
}

TEST(HealthTracker, RemovalDecisionAtExactlyMaxFailures) {
  ManualClock clock;
  HealthTracker t(test_config(), clock.now());
  for (std::uint32_t n = 1; n <= 2; ++n) {
    clock.advance(milliseconds(200));
    EXPECT_EQ(t.record_failure(clock.now()).worker, WorkerAction::kDegradeAndProbeSoon) << n;
  }
  clock.advance(milliseconds(200));
  const RecoveryDecision d = t.record_failure(clock.now());
  EXPECT_EQ(d.worker, WorkerAction::kRemove);
  EXPECT_TRUE(d.replace);
  EXPECT_EQ(d.transition, TransitionReason::kMaxFailures);
  EXPECT_EQ(t.consecutive_failures(), 3u);
  // Condemned: no more probes, however long it waits.
  clock.advance(seconds(3600));
  EXPECT_FALSE(t.due(clock.now(), kIdle));
}

TEST(HealthTracker, NoReplacementWhileShuttingDown) {
  ManualClock clock;
  HealthConfig c = test_config();
  c.max_failures = 1;
  HealthTracker t(c, clock.now());
  const RecoveryDecision d = t.record_failure(clock.now(), /*shutting_down=*/true);
  EXPECT_EQ(d.worker, WorkerAction::kRemove);
  EXPECT_FALSE(d.replace);
}

TEST(HealthTracker, MaxFailuresComesFromTheConfiguration) {
  ManualClock clock;
  HealthConfig c = test_config();
  c.max_failures = 5;
  HealthTracker t(c, clock.now());
  for (int n = 1; n <= 4; ++n) {
    EXPECT_EQ(t.record_failure(clock.now()).worker, WorkerAction::kDegradeAndProbeSoon) << n;
  }
  EXPECT_EQ(t.record_failure(clock.now()).worker, WorkerAction::kRemove);
}

}  // namespace
}  // namespace bridgepool
