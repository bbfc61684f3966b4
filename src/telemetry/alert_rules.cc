#include "telemetry/alert_rules.h"

#include <fmt/format.h>

namespace bridgepool::internal {
namespace {

Alert make_alert(AlertRule rule, const AlertThreshold& t, bool raised, double value,
                 std::chrono::system_clock::time_point wall) {
  Alert a;
  a.rule = rule;
  a.severity = t.severity;
  a.state = raised ? Alert::State::kRaised : Alert::State::kCleared;
  a.since = wall;
  a.value = value;
  a.threshold = raised ? t.raise : t.clear;
  a.message = fmt::format("{} {}: {} = {:.4g} {} {:.4g}", alert_rule_name(rule),
                          raised ? "raised" : "cleared", alert_rule_value(rule), value,
                          raised ? ">=" : "<=", a.threshold);
  return a;
}

}  // namespace

AlertRules::AlertRules(const ErrorReporterConfig& config) {
  for (std::size_t i = 0; i < kAlertRuleCount; ++i) {
    const AlertThreshold& t = config.threshold(static_cast<AlertRule>(i));
    rules_.push_back(Rule{t, HysteresisGate(t), std::nullopt});
  }
}

std::vector<Alert> AlertRules::evaluate(const RuleValues& values, TimePoint now,
                                        std::chrono::system_clock::time_point wall) {
  std::vector<Alert> changed;
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    Rule& r = rules_[i];
    if (!r.threshold.enabled) continue;
    const auto change = r.gate.update(values[i], now);
    if (change == HysteresisGate::Change::kNone) continue;
    const bool raised = change == HysteresisGate::Change::kRaised;
    Alert a = make_alert(static_cast<AlertRule>(i), r.threshold, raised, values[i], wall);
    r.raised = raised ? std::optional<Alert>(a) : std::nullopt;
    changed.push_back(std::move(a));
  }
  return changed;
}

std::vector<Alert> AlertRules::active() const {
  std::vector<Alert> out;
  for (const Rule& r : rules_) {
    if (r.raised) out.push_back(*r.raised);
  }
  return out;
}

}  // namespace bridgepool::internal
