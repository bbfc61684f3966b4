// ErrorReporter: measures the rules' values (request windows, counter growth between samples,
// breaker times, queue against size) and hands the alerts that change state to sinks and the bus.
// Lock order: attach_mu (attach/detach) before mu; deliver_mu (one evaluation's delivery at a
// time) before mu (the counts and rules).
#include "bridgepool/error_reporter.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <utility>

#include <fmt/format.h>

#include "bridgepool/event_names.h"
#include "telemetry/alert_rules.h"
#include "telemetry/request_counts.h"
#include "telemetry/sliding_window.h"

namespace bridgepool {
namespace {

// Pools and breakers tracked at once; more names than this are ignored (bounded memory).
constexpr std::size_t kMaxTracked = 64;

Duration longest(const std::vector<Duration>& windows) {
  return *std::max_element(windows.begin(), windows.end());
}

const ErrorReporterConfig& checked(const ErrorReporterConfig& config) {
  if (auto ok = validate(config); !ok) {
    std::fprintf(stderr, "bridgepool: ErrorReporter: %s\n", ok.error().message.c_str());
    std::abort();
  }
  return config;
}

// The last `replaced` seen for one pool, and its queue against its size.
struct PoolSample {
  std::uint64_t replaced = 0;
  double queue_ratio = 0;
};

// A worker lost without the pool asking (crash_loop): a failed start, or a worker in service
// leaving it because its process exited (`pool.worker.transition` to terminating, reason
// exited). Planned exits (recycling, rolling restart, shutdown) leave with other reasons, and
// the exit of a worker already terminating is not a transition to terminating.
// A worker in service whose process exited without the pool asking (a failed start is the other
// kind of loss, seen as pool.worker.init_failed).
bool is_worker_loss(const TransitionObservation& t) {
  return t.to == WorkerState::kTerminating && t.reason == TransitionReason::kExited;
}

// Growth of a counter since the last sample; a counter that went back (a new pool under the same
// name) grew by its whole value.
std::uint64_t growth(std::uint64_t now, std::uint64_t before) {
  return now >= before ? now - before : now;
}

// The named counts of one window; only the kinds that occurred appear.
WindowSummary summarize(Duration window, const internal::RequestCounts& c) {
  WindowSummary w;
  w.window = window;
  w.requests = c.requests;
  w.errors = c.errors;
  w.error_rate = c.error_rate();
  for (std::size_t cat = 0; cat < internal::kCategoryCount; ++cat) {
    for (std::size_t sev = 0; sev < internal::kSeverityCount; ++sev) {
      const std::uint64_t n = c.by_kind[cat][sev];
      if (n == 0) continue;
      const std::string category(category_name(static_cast<ErrorCategory>(cat)));
      const std::string severity(severity_name(static_cast<ErrorSeverity>(sev)));
      w.by_category[category] += n;
      w.by_severity[severity] += n;
      w.by_category_severity[category][severity] += n;
    }
  }
  return w;
}

}  // namespace

struct ErrorReporter::State {
  State(ErrorReporterConfig c, const Clock& clk)
      : config(std::move(c)),
        clock(clk),
        logger(config.logger ? config.logger : std::make_shared<Logger>(LogLevel::kWarn)),
        requests(config.bucket_width, longest(config.windows)),
        losses(config.bucket_width, config.crash_loop_window),
        replacements(config.bucket_width, std::chrono::minutes(1)),
        rules(config) {}

  void record_request(std::string_view result, std::string_view severity, bool from_bus);
  void record_loss(bool from_bus);
  void record_breaker_locked(const std::string& name, std::string_view to, TimePoint now);
  internal::RuleValues values_locked(TimePoint now) const;
  void deliver(const std::vector<Alert>& alerts, const std::shared_ptr<EventBus>& bus);

  const ErrorReporterConfig config;
  const Clock& clock;
  const std::shared_ptr<Logger> logger;

  mutable std::mutex mu;
  internal::SlidingWindow<internal::RequestCounts> requests;
  internal::SlidingWindow<std::uint64_t> losses;
  internal::SlidingWindow<std::uint64_t> replacements;
  std::map<std::string, std::optional<TimePoint>> breakers;  // name -> not closed since
  std::map<std::string, PoolSample> pools;                   // by pool name
  internal::AlertRules rules;
  std::shared_ptr<EventBus> bus;  // the attached bus, null when detached

  std::mutex attach_mu;                       // attach() and detach() one at a time
  std::vector<EventBus::HandlerId> handlers;  // under attach_mu
  EventBus::HandlerId observer = 0;           // under attach_mu; 0: none

  std::mutex deliver_mu;
  std::vector<Sink> sinks;  // under deliver_mu
};

// What the reporter observes of every call and transition on its bus (call_observer.h).
class ErrorReporter::Observer final : public CallObserver {
 public:
  explicit Observer(std::weak_ptr<State> state) : state_(std::move(state)) {}
  void on_call(const CallObservation& call) override {
    if (auto s = state_.lock()) s->record_request(call.result, call.severity, true);
  }
  void on_transition(const TransitionObservation& transition) override {
    if (!is_worker_loss(transition)) return;
    if (auto s = state_.lock()) s->record_loss(true);
  }

 private:
  std::weak_ptr<State> state_;
};

void ErrorReporter::State::record_breaker_locked(const std::string& name, std::string_view to,
                                                 TimePoint now) {
  auto it = breakers.find(name);
  if (it == breakers.end()) {
    if (breakers.size() >= kMaxTracked) return;
    it = breakers.emplace(name, std::nullopt).first;
  }
  if (to == "closed") {
    it->second.reset();
  } else if (!it->second) {
    it->second = now;  // open and half_open alike: not serving normally since then
  }
}

internal::RuleValues ErrorReporter::State::values_locked(TimePoint now) const {
  internal::RuleValues v{};
  const internal::RequestCounts window = requests.sum(now, config.error_rate_window);
  v[static_cast<std::size_t>(AlertRule::kErrorRate)] =
      window.requests >= config.error_rate_min_requests ? window.error_rate() : 0.0;
  double open_s = 0;
  for (const auto& [name, since] : breakers) {
    if (since) open_s = std::max(open_s, std::chrono::duration<double>(now - *since).count());
  }
  v[static_cast<std::size_t>(AlertRule::kBreakerOpen)] = open_s;
  v[static_cast<std::size_t>(AlertRule::kCrashLoop)] =
      static_cast<double>(losses.sum(now, config.crash_loop_window));
  double queue = 0;
  for (const auto& [name, pool] : pools) queue = std::max(queue, pool.queue_ratio);
  v[static_cast<std::size_t>(AlertRule::kQueueSaturation)] = queue;
  v[static_cast<std::size_t>(AlertRule::kReplacementStorm)] =
      static_cast<double>(replacements.sum(now, std::chrono::minutes(1)));
  return v;
}

void ErrorReporter::State::deliver(const std::vector<Alert>& alerts,
                                   const std::shared_ptr<EventBus>& event_bus) {
  for (const Alert& alert : alerts) {
    for (const Sink& sink : sinks) {
      try {
        sink(alert);
      } catch (const std::exception& e) {
        logger->log(LogLevel::kError, "alerts",
                    fmt::format("an alert sink threw ({}); alert: {}", e.what(), alert.message));
      } catch (...) {
        logger->log(LogLevel::kError, "alerts",
                    fmt::format("an alert sink threw; alert: {}", alert.message));
      }
    }
    if (!event_bus || !event_bus->has_handlers()) continue;
    const bool raised = alert.state == Alert::State::kRaised;
    Event e;
    e.name = std::string(event_name(raised ? EventId::kAlertRaised : EventId::kAlertCleared));
    e.measurements = {{"value", alert.value}, {"threshold", alert.threshold}};
    e.metadata = {{"rule", std::string(alert_rule_name(alert.rule))},
                  {"severity", std::string(alert_severity_name(alert.severity))},
                  {"message", alert.message}};
    e.time = alert.since;
    event_bus->emit(e);
  }
}

ErrorReporter::ErrorReporter(ErrorReporterConfig config, const Clock& clock)
    : state_(std::make_shared<State>(checked(config), clock)) {}

ErrorReporter::~ErrorReporter() { detach(); }

void ErrorReporter::attach(std::shared_ptr<EventBus> bus) {
  std::lock_guard attach_lock(state_->attach_mu);
  detach_locked();
  if (!bus) return;
  {
    std::lock_guard lock(state_->mu);
    state_->bus = bus;  // before the handlers: their first events count
  }
  std::weak_ptr<State> weak = state_;
  // Calls and transitions (several per call) come as typed observations: no Event is built per
  // call for the reporter's sake.
  state_->observer = bus->add_observer(std::make_shared<Observer>(weak));
  auto on_init_failed = [weak](const Event&) {
    if (auto s = weak.lock()) s->record_loss(true);
  };
  auto on_breaker = [weak](const Event& e) {
    auto name = e.metadata.find("breaker");
    auto to = e.metadata.find("to");
    if (name == e.metadata.end() || to == e.metadata.end()) return;
    if (auto s = weak.lock()) {
      std::lock_guard lock(s->mu);
      if (s->bus) s->record_breaker_locked(name->second, to->second, s->clock.now());
    }
  };
  state_->handlers = {
      bus->attach(std::string(event_name(EventId::kBreakerTransition)), on_breaker),
      bus->attach(std::string(event_name(EventId::kWorkerInitFailed)), on_init_failed)};
}

void ErrorReporter::detach() {
  std::lock_guard attach_lock(state_->attach_mu);
  detach_locked();
}

void ErrorReporter::detach_locked() {
  std::shared_ptr<EventBus> bus;
  {
    std::lock_guard lock(state_->mu);
    bus = std::exchange(state_->bus, nullptr);
  }
  for (auto id : std::exchange(state_->handlers, {})) bus->detach(id);
  if (auto id = std::exchange(state_->observer, 0)) bus->remove_observer(id);
}

void ErrorReporter::State::record_request(std::string_view result, std::string_view severity,
                                          bool from_bus) {
  const auto counts = internal::RequestCounts::one(result, severity);
  std::lock_guard lock(mu);
  // A bus handler that runs after detach() (the reporter may be being destroyed, and its clock
  // with it) counts nothing: detach() clears `bus` under this mutex.
  if (from_bus && !bus) return;
  requests.add(clock.now(), counts);
}

void ErrorReporter::record_request(std::string_view result, std::string_view severity) {
  state_->record_request(result, severity, false);
}

void ErrorReporter::record_breaker(const std::string& breaker, std::string_view state) {
  std::lock_guard lock(state_->mu);
  state_->record_breaker_locked(breaker, state, state_->clock.now());
}

void ErrorReporter::State::record_loss(bool from_bus) {
  std::lock_guard lock(mu);
  if (from_bus && !bus) return;  // after detach(): see record_request
  losses.add(clock.now(), 1);
}

void ErrorReporter::record_worker_loss() { state_->record_loss(false); }

void ErrorReporter::sample(const PoolStats& stats) {
  std::lock_guard lock(state_->mu);
  State& s = *state_;
  const TimePoint now = s.clock.now();
  auto it = s.pools.find(stats.name);
  if (it == s.pools.end()) {
    if (s.pools.size() >= kMaxTracked) return;
    // The first sample is the baseline: what a pool lost before the reporter watched it is not
    // a storm now.
    it = s.pools.emplace(stats.name, PoolSample{stats.replaced, 0}).first;
  }
  PoolSample& p = it->second;
  s.replacements.add(now, growth(stats.replaced, p.replaced));
  p.replaced = stats.replaced;
  // A pool of size 0 (all overflow) is judged against one worker.
  p.queue_ratio = static_cast<double>(stats.queue_length) /
                  static_cast<double>(std::max<std::uint64_t>(stats.size, 1));
  if (!stats.breaker_state.empty()) s.record_breaker_locked(stats.name, stats.breaker_state, now);
}

std::vector<Alert> ErrorReporter::evaluate() {
  State& s = *state_;
  std::lock_guard deliver_lock(s.deliver_mu);
  std::vector<Alert> changed;
  std::shared_ptr<EventBus> bus;
  {
    std::lock_guard lock(s.mu);
    const TimePoint now = s.clock.now();
    changed = s.rules.evaluate(s.values_locked(now), now, s.clock.wall_now());
    bus = s.bus;
  }
  s.deliver(changed, bus);
  return changed;
}

void ErrorReporter::add_sink(Sink sink) {
  std::lock_guard lock(state_->deliver_mu);
  state_->sinks.push_back(std::move(sink));
}

ErrorReporter::Sink ErrorReporter::log_sink(std::shared_ptr<Logger> logger) {
  return [logger = std::move(logger)](const Alert& alert) {
    LogLevel level = LogLevel::kInfo;
    if (alert.state == Alert::State::kRaised) {
      level = alert.severity == AlertSeverity::kCritical ? LogLevel::kError : LogLevel::kWarn;
    }
    logger->log(level, "alerts", alert.message);
  };
}

std::vector<Alert> ErrorReporter::active_alerts() const {
  std::lock_guard lock(state_->mu);
  return state_->rules.active();
}

std::vector<WindowSummary> ErrorReporter::summaries() const {
  std::vector<WindowSummary> out;
  std::lock_guard lock(state_->mu);
  const TimePoint now = state_->clock.now();
  for (Duration window : state_->config.windows) {
    out.push_back(summarize(window, state_->requests.sum(now, window)));
  }
  return out;
}

Json ErrorReporter::status_json() const {
  Json alerts = Json::array();
  for (const Alert& a : active_alerts()) alerts.push_back(a.to_json());
  Json windows = Json::array();
  for (const WindowSummary& w : summaries()) {
    windows.push_back({{"window_s", std::chrono::duration<double>(w.window).count()},
                       {"requests", w.requests},
                       {"errors", w.errors},
                       {"error_rate", w.error_rate},
                       {"by_category", w.by_category},
                       {"by_severity", w.by_severity},
                       {"by_category_severity", w.by_category_severity}});
  }
  return Json{{"alerts", std::move(alerts)}, {"windows", std::move(windows)}};
}

}  // namespace bridgepool
