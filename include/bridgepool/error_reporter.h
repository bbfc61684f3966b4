// ErrorReporter: error counts over sliding windows and alerts with hysteresis (SPEC §7).
//
// Inputs: what an EventBus carries (attach(): every call's end — the `pool.request` facts — counts
// the call and its error category and severity; `breaker.transition` tracks breakers;
// `pool.worker.init_failed` and transitions to terminating for reason exited count workers lost
// without the pool asking; calls and transitions come as the bus's typed observations,
// call_observer.h, so no Event is built per call for the reporter) and the pool's statistics, which
// the reporter's owner samples periodically (sample(), then evaluate(), or tick() for both): queue
// length against size, growth of `replaced`, and the breaker state. evaluate() runs the alert rules
// at the clock's time; an alert that changes state goes to every sink (add_sink(): log_sink()
// writes through a Logger, any std::function is a webhook-style callback) and is emitted as
// `alert.raised` / `alert.cleared` on the attached bus. The service's `GET /v1/status` reads
// active_alerts() and status_json().
//
// Rules (docs/alerts.md has the defaults and the reasoning): error_rate (errors / all requests of
// a window), breaker_open, crash_loop, queue_saturation, replacement_storm. Each has a raise and a
// lower clear threshold and hold times, so a value oscillating around the raise threshold does
// not flap. Error rate = errors / requests, where requests counts every call, failed or not.
// Time comes from the injected Clock only: tests drive the reporter with a ManualClock.
//
// Thread-safety: every method may be called from any thread; events arrive on the emitting
// threads (they only count, under one mutex). Sinks run on the thread that calls evaluate(),
// outside that mutex (a sink may call active_alerts(), not add_sink()), one alert at a time, in
// order. A sink that throws is logged and skipped; it never reaches the caller. Destroying the
// reporter detaches it; a handler still running on another thread at that moment counts nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>
#include <tl/expected.hpp>

#include "bridgepool/clock.h"
#include "bridgepool/error.h"
#include "bridgepool/event_bus.h"
#include "bridgepool/logging.h"
#include "bridgepool/pool_stats.h"

namespace bridgepool {

using Json = nlohmann::json;

// X(id, name, what the value is)
#define BRIDGEPOOL_ALERT_RULES(X)                                                                \
  X(kErrorRate, "error_rate", "errors / requests over error_rate_window")                        \
  X(kBreakerOpen, "breaker_open", "seconds a circuit breaker has not been closed")               \
  X(kCrashLoop, "crash_loop",                                                                    \
    "workers lost (exits in service, failed starts) over crash_loop_window")                     \
  X(kQueueSaturation, "queue_saturation", "callers waiting / configured workers (queue / size)") \
  X(kReplacementStorm, "replacement_storm", "worker replacements over the last minute")

enum class AlertRule {
#define BRIDGEPOOL_ALERT_RULE_ENUM(id, name, value) id,
  BRIDGEPOOL_ALERT_RULES(BRIDGEPOOL_ALERT_RULE_ENUM)
#undef BRIDGEPOOL_ALERT_RULE_ENUM
};
#define BRIDGEPOOL_ALERT_RULE_COUNT(id, name, value) +1
inline constexpr std::size_t kAlertRuleCount =
    0 BRIDGEPOOL_ALERT_RULES(BRIDGEPOOL_ALERT_RULE_COUNT);
#undef BRIDGEPOOL_ALERT_RULE_COUNT

std::string_view alert_rule_name(AlertRule rule);   // "error_rate", ...
std::string_view alert_rule_value(AlertRule rule);  // what the rule's value measures

enum class AlertSeverity { kWarning, kCritical };
std::string_view alert_severity_name(AlertSeverity severity);  // "warning" | "critical"

// One rule's thresholds. Inactive, the alert is raised once value >= raise has held at every
// evaluation for raise_hold; active, it is cleared once value <= clear has held for clear_hold.
// Between clear and raise nothing changes: that gap is the hysteresis.
struct AlertThreshold {
  bool enabled = true;
  AlertSeverity severity = AlertSeverity::kWarning;
  double raise = 0;
  double clear = 0;  // must be < raise
  Duration raise_hold{0};
  Duration clear_hold{0};
};

struct ErrorReporterConfig {
  // Windows summarised by status_json() (the longest sets the memory: longest / bucket_width
  // buckets, at most kMaxBuckets). Each a positive whole number of buckets.
  std::vector<Duration> windows = {std::chrono::minutes(1), std::chrono::minutes(5),
                                   std::chrono::minutes(15)};
  Duration bucket_width = std::chrono::seconds(1);

  Duration error_rate_window = std::chrono::minutes(5);  // at most the longest window
  // Fewer requests than this in the window: the rate counts as 0 (too few to judge).
  std::uint64_t error_rate_min_requests = 20;
  AlertThreshold error_rate{true,        AlertSeverity::kCritical, 0.10, 0.05,
                            Duration(0), std::chrono::minutes(2)};
  AlertThreshold breaker_open{true,        AlertSeverity::kCritical, 30, 0,
                              Duration(0), std::chrono::minutes(1)};
  Duration crash_loop_window = std::chrono::minutes(5);  // at most the longest window
  AlertThreshold crash_loop{true,        AlertSeverity::kCritical, 5, 1,
                            Duration(0), std::chrono::minutes(5)};
  AlertThreshold queue_saturation{true, AlertSeverity::kWarning,  2,
                                  1,    std::chrono::seconds(30), std::chrono::minutes(1)};
  AlertThreshold replacement_storm{true,        AlertSeverity::kWarning, 10, 3,
                                   Duration(0), std::chrono::minutes(2)};

  // For sinks that throw (and log_sink() users who pass none). Null: stderr at warn level.
  std::shared_ptr<Logger> logger;

  static constexpr std::size_t kMaxBuckets = 3600;

  // The thresholds of `rule` (error_rate, breaker_open, ...).
  const AlertThreshold& threshold(AlertRule rule) const;
};

// Refuses (category invalid_request, message naming the field) a config the reporter cannot run:
// no window, a non-positive or non-whole window, more than kMaxBuckets buckets, a rule window
// longer than the longest window, clear >= raise, a negative hold.
tl::expected<void, Error> validate(const ErrorReporterConfig& config);

struct Alert {
  enum class State { kRaised, kCleared };
  AlertRule rule = AlertRule::kErrorRate;
  AlertSeverity severity = AlertSeverity::kWarning;
  State state = State::kRaised;
  std::chrono::system_clock::time_point since;  // wall time it entered this state
  double value = 0;                             // the rule's value at that evaluation
  double threshold = 0;                         // raise threshold (raised) or clear (cleared)
  std::string message;

  // {"rule","severity","state","since" (RFC 3339, ms),"value","threshold","message"}
  Json to_json() const;
};

// Counts of one window ending now.
struct WindowSummary {
  Duration window{0};
  std::uint64_t requests = 0;  // every call that ended, failed or not
  std::uint64_t errors = 0;
  double error_rate = 0;                             // errors / requests; 0 without requests
  std::map<std::string, std::uint64_t> by_category;  // category name -> errors
  std::map<std::string, std::uint64_t> by_severity;  // severity name -> errors
  std::map<std::string, std::map<std::string, std::uint64_t>> by_category_severity;
};

class ErrorReporter {
 public:
  using Sink = std::function<void(const Alert&)>;

  // `config` must pass validate() (an invalid one aborts with validate()'s message).
  // `clock` must outlive the reporter.
  ErrorReporter(ErrorReporterConfig config, const Clock& clock);
  ~ErrorReporter();
  ErrorReporter(const ErrorReporter&) = delete;
  ErrorReporter& operator=(const ErrorReporter&) = delete;

  // Counts the events of `bus` from now on, and emits alert events on it. Replaces an earlier
  // attachment (a null bus only detaches). detach() stops both (also done by the destructor).
  void attach(std::shared_ptr<EventBus> bus);
  void detach();

  // Inputs without a bus (what attach() feeds in).
  void record_request(std::string_view result, std::string_view severity);
  void record_breaker(const std::string& breaker, std::string_view state);
  void record_worker_loss();  // a failed start, or a worker in service whose process exited
  void sample(const PoolStats& stats);

  // Runs the rules at the clock's time; delivers and returns the alerts that changed state.
  std::vector<Alert> evaluate();
  std::vector<Alert> tick(const PoolStats& stats) {
    sample(stats);
    return evaluate();
  }

  void add_sink(Sink sink);
  // A sink writing one line per alert through `logger`: raised at error level (critical) or
  // warn (warning), cleared at info.
  static Sink log_sink(std::shared_ptr<Logger> logger);

  std::vector<Alert> active_alerts() const;
  std::vector<WindowSummary> summaries() const;
  // {"alerts": [Alert::to_json()...], "windows": [{"window_s", "requests", "errors",
  //  "error_rate", "by_category", "by_severity", "by_category_severity"}...]}
  Json status_json() const;

 private:
  struct State;
  class Observer;
  void detach_locked();

  std::shared_ptr<State> state_;
};

}  // namespace bridgepool
