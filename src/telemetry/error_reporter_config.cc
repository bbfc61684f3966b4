// The error reporter's names, its Alert record's JSON and the validation of its configuration.
#include <algorithm>

#include <fmt/format.h>

#include "bridgepool/error_reporter.h"

namespace bridgepool {
namespace {

tl::unexpected<Error> invalid_config(std::string message) {
  Error e(ErrorCategory::kInvalidRequest, "error reporter config: " + std::move(message));
  e.severity = ErrorSeverity::kMajor;
  e.strategy = RecoveryStrategy::kAbandon;
  e.context.operation = "error_reporter_config";
  return tl::unexpected(std::move(e));
}

double seconds_of(Duration d) { return std::chrono::duration<double>(d).count(); }

tl::expected<void, Error> validate_threshold(AlertRule rule, const AlertThreshold& t) {
  if (!t.enabled) return {};
  if (!(t.clear < t.raise)) {
    return invalid_config(
        fmt::format("{}: clear ({}) must be below raise ({}), or the alert could "
                    "flap or never clear",
                    alert_rule_name(rule), t.clear, t.raise));
  }
  if (t.raise_hold < Duration(0) || t.clear_hold < Duration(0)) {
    return invalid_config(
        fmt::format("{}: hold times must not be negative", alert_rule_name(rule)));
  }
  return {};
}

tl::expected<void, Error> validate_windows(const ErrorReporterConfig& c) {
  if (c.bucket_width <= Duration(0)) return invalid_config("bucket_width must be positive");
  if (c.windows.empty()) return invalid_config("windows must list at least one window");
  for (Duration w : c.windows) {
    if (w <= Duration(0) || w % c.bucket_width != Duration(0)) {
      return invalid_config(
          fmt::format("window {} s is not a positive whole number of {} s buckets", seconds_of(w),
                      seconds_of(c.bucket_width)));
    }
  }
  const Duration longest = *std::max_element(c.windows.begin(), c.windows.end());
  if (static_cast<std::size_t>(longest / c.bucket_width) > ErrorReporterConfig::kMaxBuckets) {
    return invalid_config(
        fmt::format("the longest window ({} s) needs {} buckets of {} s; at most {} "
                    "(use wider buckets)",
                    seconds_of(longest), longest / c.bucket_width, seconds_of(c.bucket_width),
                    ErrorReporterConfig::kMaxBuckets));
  }
  for (auto [name, w] : {std::pair{"error_rate_window", c.error_rate_window},
                         std::pair{"crash_loop_window", c.crash_loop_window}}) {
    if (w <= Duration(0) || w > longest || w % c.bucket_width != Duration(0)) {
      return invalid_config(
          fmt::format("{} ({} s) must be a whole number of buckets, at most the "
                      "longest window ({} s)",
                      name, seconds_of(w), seconds_of(longest)));
    }
  }
  return {};
}

struct RuleNames {
  std::string_view name;
  std::string_view value;
};

constexpr RuleNames kRuleNames[] = {
#define BRIDGEPOOL_ALERT_RULE_NAMES(id, name, value) {name, value},
    BRIDGEPOOL_ALERT_RULES(BRIDGEPOOL_ALERT_RULE_NAMES)
#undef BRIDGEPOOL_ALERT_RULE_NAMES
};

}  // namespace

std::string_view alert_rule_name(AlertRule rule) {
  return kRuleNames[static_cast<std::size_t>(rule)].name;
}

std::string_view alert_rule_value(AlertRule rule) {
  return kRuleNames[static_cast<std::size_t>(rule)].value;
}

std::string_view alert_severity_name(AlertSeverity severity) {
  return severity == AlertSeverity::kCritical ? "critical" : "warning";
}

const AlertThreshold& ErrorReporterConfig::threshold(AlertRule rule) const {
  switch (rule) {
    case AlertRule::kErrorRate:
      return error_rate;
    case AlertRule::kBreakerOpen:
      return breaker_open;
    case AlertRule::kCrashLoop:
      return crash_loop;
    case AlertRule::kQueueSaturation:
      return queue_saturation;
    case AlertRule::kReplacementStorm:
      return replacement_storm;
  }
  return error_rate;
}

Json Alert::to_json() const {
  return Json{{"rule", alert_rule_name(rule)},
              {"severity", alert_severity_name(severity)},
              {"state", state == State::kRaised ? "raised" : "cleared"},
              {"since", format_rfc3339(since)},
              {"value", value},
              {"threshold", threshold},
              {"message", message}};
}

tl::expected<void, Error> validate(const ErrorReporterConfig& config) {
  if (auto ok = validate_windows(config); !ok) return ok;
  for (std::size_t i = 0; i < kAlertRuleCount; ++i) {
    const auto rule = static_cast<AlertRule>(i);
    if (auto ok = validate_threshold(rule, config.threshold(rule)); !ok) return ok;
  }
  return {};
}

}  // namespace bridgepool
