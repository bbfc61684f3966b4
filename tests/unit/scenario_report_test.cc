// The figures of `bench --scenario` computed from made-up per-request records: throughput windows
// and the time back to full throughput, the breaker's timeline, and each scenario's analysis.
#include "cli/scenario_report.h"

#include <gtest/gtest.h>

#include "cli/breaker_timeline.h"
#include "cli/throughput_windows.h"

namespace bridgepool::cli {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

WindowCounts counts_of(const std::vector<std::uint32_t>& per_window) {
  WindowCounts c(milliseconds(100), milliseconds(100) * (per_window.size() - 1));
  for (std::size_t i = 0; i < per_window.size(); ++i) {
    for (std::uint32_t k = 0; k < per_window[i]; ++k)
      c.add(milliseconds(100) * i + milliseconds(50));
  }
  return c;
}

TEST(ThroughputWindows, CountsByWindowAndAveragesWholeWindowsOnly) {
  WindowCounts c(milliseconds(100), seconds(1));
  ASSERT_EQ(c.counts().size(), 11u);
  c.add(milliseconds(-3));   // first window
  c.add(milliseconds(99));   // first window
  c.add(milliseconds(100));  // second
  c.add(seconds(5));         // past the span: last window
  EXPECT_EQ(c.counts()[0], 2u);
  EXPECT_EQ(c.counts()[1], 1u);
  EXPECT_EQ(c.counts()[10], 1u);
  EXPECT_DOUBLE_EQ(c.mean_between(Duration::zero(), milliseconds(200)), 1.5);
  EXPECT_DOUBLE_EQ(c.mean_between(Duration::zero(), milliseconds(150)), 2.0);   // [100,200) is cut
  EXPECT_DOUBLE_EQ(c.mean_between(milliseconds(150), milliseconds(199)), 0.0);  // no whole window
}

TEST(ThroughputWindows, TheHeadersExampleRecoversIn300Ms) {
  // Windows of 100 ms from 0; fault at 2.0 s; 98, 12, 40, 130 from 2.0 s.
  std::vector<std::uint32_t> per(20, 100);
  per.insert(per.end(), {98, 12, 40, 130, 100});
  EXPECT_EQ(time_to_recover(counts_of(per), seconds(2), seconds(3), 100), milliseconds(300));
}

TEST(ThroughputWindows, NoDipCostsNothingAndNoRecoveryIsNothing) {
  std::vector<std::uint32_t> steady(30, 100);
  EXPECT_EQ(time_to_recover(counts_of(steady), seconds(1), seconds(3), 100), Duration::zero());
  std::vector<std::uint32_t> dead(10, 100);
  dead.insert(dead.end(), 10, 0);
  EXPECT_FALSE(time_to_recover(counts_of(dead), seconds(1), seconds(2), 100).has_value());
  // A dip that starts after the horizon is not this fault's.
  std::vector<std::uint32_t> late(10, 100);
  late.insert(late.end(), 12, 100);
  late.insert(late.end(), {0, 100});
  EXPECT_EQ(time_to_recover(counts_of(late), seconds(1), seconds(3), 100), Duration::zero());
  EXPECT_EQ(time_to_recover(counts_of(dead), seconds(1), seconds(2), 0), Duration::zero());
}

TEST(ThroughputWindows, TheEmptyWindowsAfterTheLoadAreNoDip) {
  // The load ends at 1.5 s: the zeros after it are the end of the requests, not of the pool.
  std::vector<std::uint32_t> per(15, 100);
  per.insert(per.end(), 10, 0);
  EXPECT_EQ(time_to_recover(counts_of(per), milliseconds(1200), milliseconds(1500), 100),
            Duration::zero());
  // Load end inside a window: that window is cut short, so it does not count either.
  EXPECT_EQ(time_to_recover(counts_of(per), milliseconds(1200), milliseconds(1550), 100),
            Duration::zero());
}

TEST(BreakerTimeline, OpensRefusesAndClosesAroundTheFault) {
  // Fault 1.0-2.0 s; the 5th failure at 1.010 s opens it; refusals until 2.1 s; closed at 2.2 s.
  std::vector<BreakerObservation> seen = {
      {milliseconds(500), milliseconds(501), false, true},
      {milliseconds(1000), milliseconds(1001), false, true},
      {milliseconds(1009), milliseconds(1010), false, false},  // the call that opened it
      {milliseconds(1500), milliseconds(1500), true, false},
      {milliseconds(2100), milliseconds(2100), true, false},
      {milliseconds(2150), milliseconds(2151), false, false},  // a half-open trial
      {milliseconds(2200), milliseconds(2201), false, true},
      {milliseconds(2300), milliseconds(2301), false, true},
  };
  BreakerTimeline t = breaker_timeline(seen, seconds(1), seconds(2));
  EXPECT_EQ(t.opened_after, milliseconds(10));
  EXPECT_EQ(t.closed_after, milliseconds(201));
  EXPECT_EQ(t.refused, 2u);
  EXPECT_EQ(t.refused_before_fault, 0u);
}

TEST(BreakerTimeline, ABreakerThatNeverOpenedHasNoTimes) {
  std::vector<BreakerObservation> seen = {{milliseconds(1500), milliseconds(1501), false, true}};
  BreakerTimeline t = breaker_timeline(seen, seconds(1), seconds(2));
  EXPECT_FALSE(t.opened_after.has_value());
  EXPECT_FALSE(t.closed_after.has_value());
}

// Records for `n` slots at 100/s (10 ms apart), each done and ok after 1 ms.
std::vector<SlotRecord> steady_records(std::size_t n) {
  std::vector<SlotRecord> r(n);
  for (std::size_t i = 0; i < n; ++i) {
    r[i].sent = milliseconds(10) * i;
    r[i].completed = r[i].sent + milliseconds(1);
    r[i].done = r[i].ok = true;
    r[i].attempts = 1;
  }
  return r;
}

TEST(AnalyseScenario, CascadeFindsEachWavesRecoveryAndCountsFailuresAndRetriesPerKind) {
  ScenarioPlan plan = plan_scenario(Scenario::kCascade, seconds(8), 2, 1);  // waves at 2 s, 5 s
  SendSchedule schedule(100, seconds(8));
  auto records = steady_records(schedule.size());
  for (std::size_t i = 0; i < records.size(); ++i) records[i].group = int(i % 2);
  // Wave 1: nothing completes in [2.0, 2.3) s; those requests complete at 2.3 s instead.
  for (std::size_t i = 200; i < 230; ++i) records[i].completed = milliseconds(2300);
  records[201].ok = false;  // a submit lost with its worker
  records[201].category = "worker_died";
  records[201].first_error = "worker died";
  records[202].attempts = 2;  // an echo retried
  ScenarioOutcome out = analyse_scenario({plan, schedule, records, {}, nlohmann::json::array(), 2});
  const auto& f = out.figures;
  EXPECT_EQ(f["name"], "cascade");
  EXPECT_DOUBLE_EQ(f["baseline_per_window"].get<double>(), 10.0);
  EXPECT_DOUBLE_EQ(f["waves"][0]["recovery_ms"].get<double>(), 300.0);
  EXPECT_DOUBLE_EQ(f["waves"][1]["recovery_ms"].get<double>(), 0.0);  // no dip at all
  // Slot 200 (due at 2.0 s) waited until 2.3 s; slot 201 failed.
  EXPECT_DOUBLE_EQ(f["waves"][0]["next_second"]["max_us"].get<double>(), 300'000.0);
  EXPECT_EQ(f["waves"][0]["next_second"]["failed"], 1);
  EXPECT_EQ(f["waves"][0]["next_second"]["sent"], 100);
  EXPECT_DOUBLE_EQ(f["waves"][1]["next_second"]["max_us"].get<double>(), 1000.0);
  EXPECT_EQ(f["submit"]["failed"], 1);
  EXPECT_EQ(f["submit"]["errors"]["worker_died"], 1);
  EXPECT_EQ(f["echo"]["failed"], 0);
  EXPECT_EQ(f["echo"]["retried"], 1);
  EXPECT_EQ(f["submit"]["retried"], 0);
  EXPECT_EQ(out.subject.sent, records.size());
  EXPECT_EQ(out.first_error, "worker died");
}

TEST(AnalyseScenario, TimeoutsJudgeTheOthersApartFromTheHungCalls) {
  ScenarioPlan plan = plan_scenario(Scenario::kTimeouts, seconds(1), 2, 1);
  SendSchedule schedule(100, seconds(1));
  auto records = steady_records(schedule.size());
  for (std::size_t i : {3, 50, 77}) {
    records[i].group = 1;
    records[i].ok = false;
    records[i].category = "timeout";
    records[i].completed = records[i].sent + milliseconds(100);
  }
  PoolStats stats;
  stats.replaced = 3;
  ScenarioOutcome out = analyse_scenario({plan, schedule, records, stats, {}, 2});
  EXPECT_EQ(out.figures["hung"]["errors"]["timeout"], 3);
  EXPECT_EQ(out.figures["others"]["sent"], 97);
  EXPECT_EQ(out.figures["workers_replaced"], 3);
  EXPECT_EQ(out.subject.sent, 97u);
  EXPECT_EQ(out.subject.failed, 0u);
  EXPECT_NEAR(out.subject.latency_us.p99, 1000.0, 1.0);  // the hung 100 ms are not in it
  EXPECT_EQ(out.subject_name, "the other 98%");
}

TEST(AnalyseScenario, SlowReportsTheSlowWorkersShareDuringTheWindow) {
  ScenarioPlan plan = plan_scenario(Scenario::kSlow, seconds(8), 4, 1);  // 2.0-4.0 s
  SendSchedule schedule(100, seconds(8));
  auto records = steady_records(schedule.size());
  for (std::size_t i = 200; i < 400; i += 20) records[i].group = 1;  // 10 of the window's 200
  ScenarioOutcome out = analyse_scenario({plan, schedule, records, {}, {}, 4});
  EXPECT_DOUBLE_EQ(out.figures["slow_worker_share"].get<double>(), 0.05);
  EXPECT_DOUBLE_EQ(out.figures["blind_share"].get<double>(), 0.25);
  EXPECT_EQ(out.figures["slow_worker"]["sent"], 10);
  EXPECT_EQ(out.figures["others_during"]["sent"], 190);
}

TEST(AnalyseScenario, FallbackCountsEachAdapterPerPhaseAndTheReturnToThePool) {
  ScenarioPlan plan = plan_scenario(Scenario::kFallback, seconds(8), 2, 1);  // down 2.0-4.0 s
  SendSchedule schedule(100, seconds(8));
  auto records = steady_records(schedule.size());
  for (std::size_t i = 0; i < records.size(); ++i) {
    Duration at = schedule.intended(i);
    records[i].adapter = at < seconds(2) || at >= milliseconds(4200) ? "pool"
                         : at < seconds(3)                           ? "bridge"
                         : at < seconds(4)                           ? "mock"
                                                                     : "bridge";
  }
  ScenarioOutcome out = analyse_scenario({plan, schedule, records, {}, {}, 2});
  const auto& f = out.figures;
  EXPECT_EQ(f["before"]["served_by"]["pool"], 200);
  EXPECT_EQ(f["pool_down"]["served_by"]["bridge"], 100);
  EXPECT_EQ(f["pool_and_bridge_down"]["served_by"]["mock"], 100);
  EXPECT_DOUBLE_EQ(f["pool_down"]["served_per_s"]["bridge"].get<double>(), 100.0);
  EXPECT_EQ(f["after"]["served_by"]["bridge"], 20);
  EXPECT_DOUBLE_EQ(f["pool_back_after_ms"].get<double>(), 200.0);
}

}  // namespace
}  // namespace bridgepool::cli
