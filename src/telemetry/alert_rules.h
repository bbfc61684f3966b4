// AlertRules: the reporter's five rules (error_rate, breaker_open, crash_loop, queue_saturation,
// replacement_storm) as one hysteresis gate each, turning the values the reporter measured at an
// evaluation into Alert records: what changed state, and which alerts are active.
//
// What each value is, and why the defaults are what they are, is in docs/alerts.md; measuring
// the values (windows, counter growth, breaker times) is the reporter's job (error_reporter.cc),
// so the rules are tested with plain numbers and a manual clock.
// Thread-safety: none; the reporter locks.
#pragma once

#include <array>
#include <chrono>
#include <optional>
#include <vector>

#include "bridgepool/error_reporter.h"
#include "telemetry/hysteresis_gate.h"

namespace bridgepool::internal {

// One value per rule, indexed by AlertRule.
using RuleValues = std::array<double, kAlertRuleCount>;

class AlertRules {
 public:
  explicit AlertRules(const ErrorReporterConfig& config);

  // Updates every enabled rule with its value at `now` (wall time `wall`, the alerts' `since`);
  // returns the alerts that were raised or cleared, in rule order.
  std::vector<Alert> evaluate(const RuleValues& values, TimePoint now,
                              std::chrono::system_clock::time_point wall);
  // The raised alerts, in rule order, as they were when raised.
  std::vector<Alert> active() const;

 private:
  struct Rule {
    AlertThreshold threshold;
    HysteresisGate gate;
    std::optional<Alert> raised;
  };

  std::vector<Rule> rules_;  // indexed by AlertRule
};

}  // namespace bridgepool::internal
