// WorkerStateMachine: every (from, to) pair against the SPEC §4 table, the transition record
// (reason, metadata, time in the previous state) under a manual clock, and the derived predicates.
#include "worker/worker_state_machine.h"

#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace bridgepool {
namespace {

using std::chrono::milliseconds;
using S = WorkerState;

const std::vector<S> kAllStates = {S::kInitializing, S::kReady,       S::kBusy,
                                   S::kDegraded,     S::kTerminating, S::kTerminated};

// The table of SPEC §4, written out independently of the implementation.
// clang-format off
const std::set<std::pair<S, S>> kAllowed = {
    {S::kInitializing, S::kReady}, {S::kInitializing, S::kTerminated},
    {S::kReady, S::kBusy},         {S::kReady, S::kDegraded},          {S::kReady, S::kTerminating},
    {S::kBusy, S::kReady},         {S::kBusy, S::kDegraded},           {S::kBusy, S::kTerminating},
    {S::kDegraded, S::kReady},     {S::kDegraded, S::kTerminating},
    {S::kTerminating, S::kTerminated},
};
// clang-format on

// Allowed transitions that lead from initializing to `target`.
std::vector<S> path_to(S target) {
  switch (target) {
    case S::kInitializing:
      return {};
    case S::kReady:
      return {S::kReady};
    case S::kBusy:
      return {S::kReady, S::kBusy};
    case S::kDegraded:
      return {S::kReady, S::kDegraded};
    case S::kTerminating:
      return {S::kReady, S::kTerminating};
    case S::kTerminated:
      return {S::kTerminated};
  }
  return {};
}

class TransitionTableTest : public ::testing::TestWithParam<std::tuple<S, S>> {};

TEST_P(TransitionTableTest, MatchesSpecTable) {
  const auto [from, to] = GetParam();
  const bool expected = kAllowed.count({from, to}) > 0;
  EXPECT_EQ(WorkerStateMachine::allowed(from, to), expected);

  ManualClock clock;
  WorkerStateMachine machine(clock);
  for (S step : path_to(from)) {
    ASSERT_TRUE(machine.transition(step, TransitionReason::kInitComplete).has_value());
  }
  ASSERT_EQ(machine.state(), from);
  const std::size_t history_before = machine.history().size();

  auto result = machine.transition(to, TransitionReason::kCheckout);
  if (expected) {
    ASSERT_TRUE(result.has_value()) << result.error().to_string();
    EXPECT_EQ(result->from, from);
    EXPECT_EQ(result->to, to);
    EXPECT_EQ(machine.state(), to);
    EXPECT_EQ(machine.history().size(), history_before + 1);
    return;
  }
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().category, ErrorCategory::kSystem);
  EXPECT_EQ(result.error().message, "invalid worker transition: " + std::string(to_string(from)) +
                                        " -> " + std::string(to_string(to)) +
                                        " (reason: checkout)");
  EXPECT_EQ(machine.state(), from);
  EXPECT_EQ(machine.history().size(), history_before);
}

INSTANTIATE_TEST_SUITE_P(AllPairs, TransitionTableTest,
                         ::testing::Combine(::testing::ValuesIn(kAllStates),
                                            ::testing::ValuesIn(kAllStates)),
                         [](const ::testing::TestParamInfo<std::tuple<S, S>>& info) {
                           return std::string(to_string(std::get<0>(info.param))) + "_to_" +
                                  std::string(to_string(std::get<1>(info.param)));
                         });

TEST(WorkerStateMachineTest, TableHasElevenAllowedPairsAndNoSelfTransitions) {
  int allowed = 0;
  for (S from : kAllStates) {
    EXPECT_FALSE(WorkerStateMachine::allowed(from, from)) << to_string(from);
    for (S to : kAllStates) allowed += WorkerStateMachine::allowed(from, to) ? 1 : 0;
  }
  EXPECT_EQ(allowed, 11);
}

TEST(WorkerStateMachineTest, StartsInitializingWithUnknownHealth) {
  ManualClock clock;
  WorkerStateMachine machine(clock);
  EXPECT_EQ(machine.state(), S::kInitializing);
  EXPECT_EQ(machine.health(), WorkerHealth::kUnknown);
  EXPECT_TRUE(machine.history().empty());
  EXPECT_FALSE(machine.can_accept_work());
  EXPECT_FALSE(machine.must_remove());
}

TEST(WorkerStateMachineTest, HistoryRecordsReasonMetadataAndTimes) {
  ManualClock clock;
  WorkerStateMachine machine(clock);
  clock.advance(milliseconds(250));
  auto ready = machine.transition(S::kReady, TransitionReason::kInitComplete, {{"pid", "4242"}});
  ASSERT_TRUE(ready.has_value());
  EXPECT_EQ(ready->from, S::kInitializing);
  EXPECT_EQ(ready->to, S::kReady);
  EXPECT_EQ(ready->reason, TransitionReason::kInitComplete);
  EXPECT_EQ(ready->time_in_previous, milliseconds(250));
  EXPECT_EQ(ready->wall_time, clock.wall_now());
  EXPECT_EQ(ready->metadata, (std::map<std::string, std::string>{{"pid", "4242"}}));

  clock.advance(milliseconds(40));
  EXPECT_EQ(machine.time_in_state(), milliseconds(40));
  auto busy = machine.transition(S::kBusy, TransitionReason::kCheckout);
  ASSERT_TRUE(busy.has_value());
  EXPECT_EQ(busy->time_in_previous, milliseconds(40));
  EXPECT_TRUE(busy->metadata.empty());
  EXPECT_EQ(machine.time_in_state(), milliseconds(0));

  clock.advance(milliseconds(5));
  ASSERT_TRUE(machine.transition(S::kReady, TransitionReason::kCheckinOk).has_value());

  const auto& history = machine.history();
  ASSERT_EQ(history.size(), 3u);
  EXPECT_EQ(history[0].reason, TransitionReason::kInitComplete);
  EXPECT_EQ(history[0].metadata.at("pid"), "4242");
  EXPECT_EQ(history[1].reason, TransitionReason::kCheckout);
  EXPECT_EQ(history[2].from, S::kBusy);
  EXPECT_EQ(history[2].to, S::kReady);
  EXPECT_EQ(history[2].reason, TransitionReason::kCheckinOk);
  EXPECT_EQ(history[2].time_in_previous, milliseconds(5));
  EXPECT_EQ(history[2].wall_time - history[0].wall_time, milliseconds(45));
}

TEST(WorkerStateMachineTest, FailedTransitionDoesNotResetTimeInState) {
  ManualClock clock;
  WorkerStateMachine machine(clock);
  ASSERT_TRUE(machine.transition(S::kReady, TransitionReason::kInitComplete).has_value());
  clock.advance(milliseconds(10));
  ASSERT_FALSE(machine.transition(S::kTerminated, TransitionReason::kExited).has_value());
  clock.advance(milliseconds(10));
  auto busy = machine.transition(S::kBusy, TransitionReason::kCheckout);
  ASSERT_TRUE(busy.has_value());
  EXPECT_EQ(busy->time_in_previous, milliseconds(20));
}

TEST(WorkerStateMachineTest, HistoryIsBoundedOldestDropped) {
  ManualClock clock;
  WorkerStateMachine machine(clock, /*history_limit=*/4);
  ASSERT_TRUE(machine.transition(S::kReady, TransitionReason::kInitComplete).has_value());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(
        machine.transition(S::kBusy, TransitionReason::kCheckout, {{"round", std::to_string(i)}})
            .has_value());
    ASSERT_TRUE(machine.transition(S::kReady, TransitionReason::kCheckinOk).has_value());
  }
  const auto& history = machine.history();
  ASSERT_EQ(history.size(), 4u);
  // Newest four: busy(8), ready, busy(9), ready.
  EXPECT_EQ(history[0].to, S::kBusy);
  EXPECT_EQ(history[0].metadata.at("round"), "8");
  EXPECT_EQ(history[2].metadata.at("round"), "9");
  EXPECT_EQ(history[3].to, S::kReady);
}

TEST(WorkerStateMachineTest, DefaultHistoryLimit) {
  ManualClock clock;
  WorkerStateMachine machine(clock);
  ASSERT_TRUE(machine.transition(S::kReady, TransitionReason::kInitComplete).has_value());
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(machine.transition(S::kBusy, TransitionReason::kCheckout).has_value());
    ASSERT_TRUE(machine.transition(S::kReady, TransitionReason::kCheckinOk).has_value());
  }
  EXPECT_EQ(machine.history().size(), WorkerStateMachine::kDefaultHistoryLimit);
}

TEST(WorkerStateMachineTest, ZeroHistoryLimitKeepsNothingButStillTransitions) {
  ManualClock clock;
  WorkerStateMachine machine(clock, 0);
  auto ready = machine.transition(S::kReady, TransitionReason::kInitComplete);
  ASSERT_TRUE(ready.has_value());
  EXPECT_EQ(ready->to, S::kReady);
  EXPECT_EQ(machine.state(), S::kReady);
  EXPECT_TRUE(machine.history().empty());
}

TEST(WorkerStateMachineTest, CanAcceptWorkRequiresReadyAndHealthy) {
  ManualClock clock;
  WorkerStateMachine machine(clock);
  machine.set_health(WorkerHealth::kHealthy);
  EXPECT_FALSE(machine.can_accept_work());  // initializing
  ASSERT_TRUE(machine.transition(S::kReady, TransitionReason::kInitComplete).has_value());
  EXPECT_TRUE(machine.can_accept_work());
  machine.set_health(WorkerHealth::kUnknown);
  EXPECT_FALSE(machine.can_accept_work());
  machine.set_health(WorkerHealth::kUnhealthy);
  EXPECT_FALSE(machine.can_accept_work());
  EXPECT_EQ(machine.health(), WorkerHealth::kUnhealthy);
  machine.set_health(WorkerHealth::kHealthy);
  ASSERT_TRUE(machine.transition(S::kBusy, TransitionReason::kCheckout).has_value());
  EXPECT_FALSE(machine.can_accept_work());
  ASSERT_TRUE(machine.transition(S::kDegraded, TransitionReason::kCheckinError).has_value());
  EXPECT_FALSE(machine.can_accept_work());
}

TEST(WorkerStateMachineTest, MustRemoveOnlyWhenTerminatingOrTerminated) {
  ManualClock clock;
  for (S state : kAllStates) {
    WorkerStateMachine machine(clock);
    for (S step : path_to(state)) {
      ASSERT_TRUE(machine.transition(step, TransitionReason::kShutdown).has_value());
    }
    const bool expected = state == S::kTerminating || state == S::kTerminated;
    EXPECT_EQ(machine.must_remove(), expected) << to_string(state);
  }
}

TEST(WorkerStateMachineTest, NamesForEveryEnumValue) {
  EXPECT_EQ(to_string(S::kInitializing), "initializing");
  EXPECT_EQ(to_string(S::kReady), "ready");
  EXPECT_EQ(to_string(S::kBusy), "busy");
  EXPECT_EQ(to_string(S::kDegraded), "degraded");
  EXPECT_EQ(to_string(S::kTerminating), "terminating");
  EXPECT_EQ(to_string(S::kTerminated), "terminated");

  EXPECT_EQ(to_string(WorkerHealth::kHealthy), "healthy");
  EXPECT_EQ(to_string(WorkerHealth::kUnhealthy), "unhealthy");
  EXPECT_EQ(to_string(WorkerHealth::kUnknown), "unknown");

  using R = TransitionReason;
  const std::vector<std::pair<R, std::string>> reasons = {
      {R::kInitComplete, "init_complete"},
      {R::kCheckout, "checkout"},
      {R::kCheckinOk, "checkin_ok"},
      {R::kCheckinError, "checkin_error"},
      {R::kHealthCheckPassed, "health_check_passed"},
      {R::kHealthCheckFailed, "health_check_failed"},
      {R::kMaxFailures, "max_failures"},
      {R::kTimeout, "timeout"},
      {R::kExited, "exited"},
      {R::kShutdown, "shutdown"},
      {R::kRecycled, "recycled"},
      {R::kReplaced, "replaced"},
      {R::kProtocolError, "protocol_error"},
      {R::kInitFailed, "init_failed"},
      {R::kClosed, "closed"},
  };
  for (const auto& [reason, name] : reasons) EXPECT_EQ(to_string(reason), name);
}

TEST(WorkerStateMachineTest, InvalidTransitionMessageNamesReason) {
  ManualClock clock;
  WorkerStateMachine machine(clock);
  ASSERT_TRUE(machine.transition(S::kTerminated, TransitionReason::kInitFailed).has_value());
  auto result = machine.transition(S::kReady, TransitionReason::kCheckout);
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().category, ErrorCategory::kSystem);
  EXPECT_EQ(result.error().message,
            "invalid worker transition: terminated -> ready (reason: checkout)");
}

}  // namespace
}  // namespace bridgepool
