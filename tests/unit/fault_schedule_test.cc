// The failure scenarios' plans (cli/fault_schedule.h): names, timings scaled to the run, the
// cascade's waves, the hanging share, and the schedule handing events out as made-up time passes.
#include "cli/fault_schedule.h"

#include <set>

#include <gtest/gtest.h>

namespace bridgepool::cli {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(Scenario, NamesRoundTripAndUnknownOnesAreRefused) {
  for (auto s : {Scenario::kCascade, Scenario::kTimeouts, Scenario::kBreaker, Scenario::kSlow,
                 Scenario::kFallback}) {
    EXPECT_EQ(parse_scenario(scenario_name(s)), s);
  }
  EXPECT_FALSE(parse_scenario("Cascade").has_value());  // case matters
  EXPECT_FALSE(parse_scenario("").has_value());
  EXPECT_FALSE(parse_scenario("cascade ").has_value());
  EXPECT_EQ(scenario_names(), "cascade, timeouts, breaker, slow, fallback");
}

TEST(FaultAction, EveryActionHasItsName) {
  EXPECT_EQ(fault_action_name(FaultAction::kKillWorker), "kill_worker");
  EXPECT_EQ(fault_action_name(FaultAction::kSlowOff), "slow_off");
  EXPECT_EQ(fault_action_name(FaultAction::kPoolUp), "pool_up");
  EXPECT_EQ(fault_action_name(FaultAction::kBridgeUp), "bridge_up");
}

TEST(PlanScenario, CascadeKillsEveryWorkerWithin100MsTwice) {
  ScenarioPlan p = plan_scenario(Scenario::kCascade, seconds(60), 4, 7);
  ASSERT_EQ(p.fault_starts, (std::vector<Duration>{seconds(15), milliseconds(37'500)}));
  EXPECT_EQ(p.fault_length, milliseconds(100));
  ASSERT_EQ(p.events.size(), 8u);
  for (std::size_t wave = 0; wave < 2; ++wave) {
    std::set<std::size_t> targets;
    for (std::size_t i = 0; i < 4; ++i) {
      const FaultEvent& e = p.events[wave * 4 + i];
      EXPECT_EQ(e.action, FaultAction::kKillWorker);
      EXPECT_GE(e.at, p.fault_starts[wave]);
      EXPECT_LT(e.at, p.fault_starts[wave] + milliseconds(100));
      targets.insert(e.target);
    }
    EXPECT_EQ(targets, (std::set<std::size_t>{0, 1, 2, 3}));  // each worker once
    EXPECT_EQ(p.events[wave * 4].target, 0u);  // target 0 first: it snapshots the wave
    EXPECT_EQ(p.events[wave * 4].at, p.fault_starts[wave]);
  }
}

TEST(PlanScenario, TheSeedPicksTheOrderAndTheSameSeedTheSamePlan) {
  auto a = plan_scenario(Scenario::kCascade, seconds(60), 8, 1).events;
  EXPECT_EQ(a, plan_scenario(Scenario::kCascade, seconds(60), 8, 1).events);
  bool differs = false;
  for (std::uint64_t seed = 2; seed < 6 && !differs; ++seed) {
    differs = a != plan_scenario(Scenario::kCascade, seconds(60), 8, seed).events;
  }
  EXPECT_TRUE(differs);
}

TEST(PlanScenario, WindowsTakeTheIssuesFiguresOnLongRunsAndAQuarterOnShortOnes) {
  ScenarioPlan breaker = plan_scenario(Scenario::kBreaker, seconds(60), 4, 1);
  EXPECT_EQ(breaker.events, (std::vector<FaultEvent>{{seconds(15), FaultAction::kFailOn, 0},
                                                     {seconds(20), FaultAction::kFailOff, 0}}));
  EXPECT_EQ(breaker.breaker_open_timeout, seconds(1));
  ScenarioPlan smoke = plan_scenario(Scenario::kBreaker, seconds(2), 4, 1);
  EXPECT_EQ(smoke.events, (std::vector<FaultEvent>{{milliseconds(500), FaultAction::kFailOn, 0},
                                                   {seconds(1), FaultAction::kFailOff, 0}}));
  EXPECT_EQ(smoke.breaker_open_timeout, milliseconds(100));
  ScenarioPlan slow = plan_scenario(Scenario::kSlow, seconds(60), 4, 1);
  ASSERT_EQ(slow.events.size(), 2u);
  EXPECT_EQ(slow.events[1].at - slow.events[0].at, seconds(2));
  EXPECT_EQ(slow.events[0].target, slow.events[1].target);
  EXPECT_LT(slow.events[0].target, 4u);
  EXPECT_EQ(slow.slow_factor, 20);
  EXPECT_EQ(plan_scenario(Scenario::kCascade, seconds(2), 2, 1).fault_length, milliseconds(100));
  EXPECT_EQ(plan_scenario(Scenario::kCascade, milliseconds(200), 2, 1).fault_length,
            milliseconds(50));
}

TEST(PlanScenario, FallbackTakesThePoolDownThenTheBridgeForTheSecondHalf) {
  ScenarioPlan p = plan_scenario(Scenario::kFallback, seconds(60), 4, 1);
  EXPECT_EQ(p.events, (std::vector<FaultEvent>{{seconds(15), FaultAction::kPoolDown, 0},
                                               {milliseconds(17'500), FaultAction::kBridgeDown, 0},
                                               {seconds(20), FaultAction::kPoolUp, 0},
                                               {seconds(20), FaultAction::kBridgeUp, 0}}));
}

TEST(PlanScenario, TimeoutsHaveNoTimedEventsButAShareAndADeadline) {
  ScenarioPlan p = plan_scenario(Scenario::kTimeouts, seconds(10), 4, 1);
  EXPECT_TRUE(p.events.empty());
  EXPECT_DOUBLE_EQ(p.hang_share, 0.02);
  EXPECT_EQ(p.hang_deadline, milliseconds(100));
}

TEST(SlowCallLength, HalfOfWhatKeepsEveryWorkerBusyWithinOneToTenMs) {
  EXPECT_EQ(slow_call_length(1000, 4), milliseconds(2));
  EXPECT_EQ(slow_call_length(200, 2), milliseconds(5));
  EXPECT_EQ(slow_call_length(10000, 4), milliseconds(1));  // 0.2 ms: raised to 1 ms
  EXPECT_EQ(slow_call_length(10, 4), milliseconds(10));    // 200 ms: capped at 10 ms
  EXPECT_EQ(slow_call_length(0, 4), milliseconds(10));
}

TEST(Hangs, AboutTheShareOfSlotsSpreadOverTheRunAndReproducible) {
  std::size_t n = 0, first_half = 0;
  for (std::size_t slot = 0; slot < 100'000; ++slot) {
    if (!hangs(42, slot, 0.02)) continue;
    ++n;
    first_half += slot < 50'000;
  }
  // Binomial(100000, 0.02): mean 2000, sd 44; 10 sd either side.
  EXPECT_GT(n, 1560u);
  EXPECT_LT(n, 2440u);
  EXPECT_GT(first_half, n / 2 - 320);
  EXPECT_LT(first_half, n / 2 + 320);
  EXPECT_EQ(hangs(42, 1234, 0.02), hangs(42, 1234, 0.02));
  EXPECT_FALSE(hangs(42, 1234, 0.0));
  EXPECT_TRUE(hangs(42, 1234, 1.0));
}

TEST(FaultSchedule, HandsOutEachEventOnceWhenItsTimeHasCome) {
  FaultSchedule s(plan_scenario(Scenario::kFallback, seconds(60), 4, 1).events);
  EXPECT_EQ(s.next_due(), seconds(15));
  EXPECT_TRUE(s.take_due(milliseconds(14'999)).empty());
  auto first = s.take_due(seconds(15));
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].action, FaultAction::kPoolDown);
  EXPECT_TRUE(s.take_due(seconds(15)).empty());  // not twice
  auto late = s.take_due(seconds(30));           // a late injector gets everything due, in order
  ASSERT_EQ(late.size(), 3u);
  EXPECT_EQ(late[0].action, FaultAction::kBridgeDown);
  EXPECT_EQ(late[1].action, FaultAction::kPoolUp);
  EXPECT_EQ(late[2].action, FaultAction::kBridgeUp);
  EXPECT_TRUE(s.done());
  EXPECT_FALSE(s.next_due().has_value());
}

}  // namespace
}  // namespace bridgepool::cli
