// HysteresisGate and AlertRules: raising and clearing with thresholds and holds, no flapping
// around the raise threshold, and the Alert records they produce (alert_rules.h).
#include "telemetry/alert_rules.h"

#include <cmath>

#include <gtest/gtest.h>

namespace bridgepool::internal {
namespace {

using std::chrono::seconds;
using Change = HysteresisGate::Change;

TimePoint at(seconds s) { return TimePoint(s); }

AlertThreshold threshold(double raise, double clear, Duration raise_hold = Duration(0),
                         Duration clear_hold = Duration(0)) {
  return AlertThreshold{true, AlertSeverity::kWarning, raise, clear, raise_hold, clear_hold};
}

TEST(HysteresisGate, RaisesAtTheRaiseThresholdAndClearsOnlyAtTheClearOne) {
  HysteresisGate gate(threshold(0.10, 0.05));
  EXPECT_EQ(gate.update(0.09, at(seconds(1))), Change::kNone);
  EXPECT_EQ(gate.update(0.10, at(seconds(2))), Change::kRaised);  // >= raise
  EXPECT_EQ(gate.update(0.06, at(seconds(3))), Change::kNone);    // between: stays raised
  EXPECT_TRUE(gate.active());
  EXPECT_EQ(gate.update(0.05, at(seconds(4))), Change::kCleared);  // <= clear
  EXPECT_FALSE(gate.active());
}

TEST(HysteresisGate, AValueOscillatingAroundTheRaiseThresholdDoesNotFlap) {
  HysteresisGate gate(threshold(0.10, 0.05));
  int changes = 0;
  for (int i = 0; i < 100; ++i) {
    const double value = i % 2 ? 0.11 : 0.09;
    changes += gate.update(value, at(seconds(i))) != Change::kNone;
  }
  EXPECT_EQ(changes, 1);  // raised once at the first 0.11, never cleared
  EXPECT_TRUE(gate.active());
}

TEST(HysteresisGate, RaiseHoldNeedsTheValueAtEveryEvaluationForThatLong) {
  HysteresisGate gate(threshold(2, 1, seconds(30), seconds(60)));
  EXPECT_EQ(gate.update(3, at(seconds(0))), Change::kNone);
  EXPECT_EQ(gate.update(3, at(seconds(20))), Change::kNone);
  EXPECT_EQ(gate.update(1.5, at(seconds(25))), Change::kNone);  // dipped: the hold restarts
  EXPECT_EQ(gate.update(3, at(seconds(30))), Change::kNone);
  EXPECT_EQ(gate.update(3, at(seconds(59))), Change::kNone);
  EXPECT_EQ(gate.update(3, at(seconds(60))), Change::kRaised);  // held 30 s since 30
  EXPECT_EQ(gate.update(0.5, at(seconds(61))), Change::kNone);
  EXPECT_EQ(gate.update(2.5, at(seconds(100))), Change::kNone);  // above clear: restarts
  EXPECT_EQ(gate.update(0.5, at(seconds(110))), Change::kNone);
  EXPECT_EQ(gate.update(0.5, at(seconds(169))), Change::kNone);
  EXPECT_EQ(gate.update(0.5, at(seconds(170))), Change::kCleared);  // held 60 s since 110
}

TEST(HysteresisGate, AnOscillationFasterThanTheRaiseHoldNeverRaises) {
  HysteresisGate gate(threshold(2, 1, seconds(30)));
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(gate.update(i % 2 ? 2.5 : 1.9, at(seconds(10 * i))), Change::kNone) << i;
  }
}

TEST(HysteresisGate, NaNChangesNothing) {
  HysteresisGate gate(threshold(1, 0));
  EXPECT_EQ(gate.update(std::nan(""), at(seconds(1))), Change::kNone);
  EXPECT_EQ(gate.update(1, at(seconds(2))), Change::kRaised);
  EXPECT_EQ(gate.update(std::nan(""), at(seconds(3))), Change::kNone);
  EXPECT_TRUE(gate.active());
}

RuleValues values(double error_rate, double breaker, double crash, double queue, double storm) {
  return RuleValues{error_rate, breaker, crash, queue, storm};
}

TEST(AlertRules, EachRuleRaisesAndClearsWithItsOwnThresholds) {
  ErrorReporterConfig config;
  config.queue_saturation.raise_hold = Duration(0);
  for (AlertThreshold* t : {&config.error_rate, &config.breaker_open, &config.crash_loop,
                            &config.queue_saturation, &config.replacement_storm}) {
    t->clear_hold = Duration(0);
  }
  AlertRules rules(config);
  const auto wall = std::chrono::system_clock::time_point(seconds(1'767'225'600));
  // Each value just at its raise threshold (defaults: 0.10, 30 s, 5, 2x, 10).
  auto raised = rules.evaluate(values(0.10, 30, 5, 2, 10), at(seconds(1)), wall);
  ASSERT_EQ(raised.size(), kAlertRuleCount);
  for (std::size_t i = 0; i < kAlertRuleCount; ++i) {
    EXPECT_EQ(raised[i].rule, static_cast<AlertRule>(i));
    EXPECT_EQ(raised[i].state, Alert::State::kRaised);
    EXPECT_EQ(raised[i].since, wall);
  }
  EXPECT_EQ(raised[0].severity, AlertSeverity::kCritical);
  EXPECT_DOUBLE_EQ(raised[0].threshold, 0.10);
  EXPECT_EQ(raised[0].message,
            "error_rate raised: errors / requests over error_rate_window = 0.1 >= 0.1");
  EXPECT_EQ(raised[3].severity, AlertSeverity::kWarning);
  EXPECT_EQ(rules.active().size(), kAlertRuleCount);
  // Just above each clear threshold (0.05, 0, 1, 1, 3): nothing clears.
  EXPECT_TRUE(rules.evaluate(values(0.051, 0.001, 2, 1.01, 4), at(seconds(2)), wall).empty());
  // At the clear thresholds: every one clears.
  auto cleared = rules.evaluate(values(0.05, 0, 1, 1, 3), at(seconds(3)), wall);
  ASSERT_EQ(cleared.size(), kAlertRuleCount);
  EXPECT_EQ(cleared[2].state, Alert::State::kCleared);
  EXPECT_DOUBLE_EQ(cleared[2].threshold, 1);
  EXPECT_EQ(cleared[2].message,
            "crash_loop cleared: workers lost (exits in service, failed starts) over "
            "crash_loop_window = 1 <= 1");
  EXPECT_TRUE(rules.active().empty());
}

TEST(AlertRules, ADisabledRuleNeverRaises) {
  ErrorReporterConfig config;
  config.crash_loop.enabled = false;
  AlertRules rules(config);
  auto changed = rules.evaluate(values(0, 0, 1000, 0, 0), at(seconds(1)), {});
  EXPECT_TRUE(changed.empty());
  EXPECT_TRUE(rules.active().empty());
}

TEST(AlertRules, ActiveAlertsKeepTheRecordOfTheirRaise) {
  AlertRules rules(ErrorReporterConfig{});
  const auto t0 = std::chrono::system_clock::time_point(seconds(100));
  rules.evaluate(values(0.5, 0, 0, 0, 0), at(seconds(1)), t0);
  rules.evaluate(values(0.07, 0, 0, 0, 0), at(seconds(2)), t0 + seconds(1));
  auto active = rules.active();
  ASSERT_EQ(active.size(), 1u);
  EXPECT_EQ(active[0].rule, AlertRule::kErrorRate);
  EXPECT_EQ(active[0].since, t0);
  EXPECT_DOUBLE_EQ(active[0].value, 0.5);
}

}  // namespace
}  // namespace bridgepool::internal
