// PoolMetrics' observer and event handlers (pool_metrics_state.h): each record or event updates
// the series it feeds. A call resolves its handles once per command (then one map lookup and
// atomic adds, nothing allocated); failed calls take the registry's lookup, slower but rare.
#include <algorithm>

#include "telemetry/pool_metrics_state.h"

namespace bridgepool {
namespace {

constexpr double kMicros = 1e-6;

const std::string* metadata(const Event& event, const std::string& key) {
  auto it = event.metadata.find(key);
  return it == event.metadata.end() ? nullptr : &it->second;
}

}  // namespace

const PoolMetrics::State::CommandSeries& PoolMetrics::State::command_series(
    std::string_view command) {
  // Most calls repeat the previous call's command: one atomic load and a compare, no lock.
  const CommandMap::value_type* last = last_command_.load(std::memory_order_acquire);
  if (last != nullptr && last->first == command) return last->second;
  std::lock_guard lock(mu_);
  auto it = commands_.find(command);
  if (it == commands_.end()) {
    // Only admitted commands are cached, so the cache is bounded by the command limit.
    const std::string label = registry.admit_label_value("command", std::string(command));
    if (label == LabelLimits::kOther) return other_;
    CommandSeries series{families.requests->counter({pool, label, "ok"}),
                         families.request_duration->histogram({pool, label})};
    it = commands_.emplace(label, std::move(series)).first;
  }
  last_command_.store(&*it, std::memory_order_release);
  return it->second;
}

void PoolMetrics::State::on_call(const CallObservation& call) {
  const double duration = std::max(0.0, call.duration_us) * kMicros;
  const double wait = std::clamp(call.queue_wait_us * kMicros, 0.0, duration);
  const CommandSeries& series = command_series(call.command);
  series.duration.observe(duration);
  queue_wait.observe(wait);
  execution.observe(duration - wait);
  if (call.result == "ok") {
    series.ok.inc();
    return;
  }
  const std::string result(call.result);
  const std::string label = registry.admit_label_value("command", std::string(call.command));
  families.requests->counter({pool, label, result}).inc();
  families.errors
      ->counter({pool, result, call.severity.empty() ? "unknown" : std::string(call.severity)})
      .inc();
}

const Counter& PoolMetrics::State::transition_counter(const TransitionObservation& t) {
  const std::size_t slot =
      (static_cast<std::size_t>(t.from) * kStates + static_cast<std::size_t>(t.to)) * kReasons +
      static_cast<std::size_t>(t.reason);
  std::atomic<const Counter*>& cached = transitions_.at(slot);
  if (const Counter* c = cached.load(std::memory_order_acquire)) return *c;
  std::lock_guard lock(mu_);
  if (const Counter* c = cached.load(std::memory_order_relaxed)) return *c;  // raced: made
  const Counter& made = transition_store_.emplace_back(families.worker_transitions->counter(
      {pool, std::string(to_string(t.from)), std::string(to_string(t.to)),
       std::string(to_string(t.reason))}));
  cached.store(&made, std::memory_order_release);
  return made;
}

void PoolMetrics::State::on_transition(const TransitionObservation& t) {
  transition_counter(t).inc();
  state_seconds.at(static_cast<std::size_t>(t.from))
      .inc(std::max(0.0, t.time_in_previous_ms) / 1000.0);
}

void PoolMetrics::State::on_worker_ready(const Event& event) {
  static const std::string kStartup = "startup_ms";
  auto it = event.measurements.find(kStartup);
  if (it != event.measurements.end()) startup.observe(std::max(0.0, it->second) / 1000.0);
}

void PoolMetrics::State::on_breaker_transition(const Event& event) {
  static const std::string kBreaker = "breaker", kFrom = "from", kTo = "to";
  const std::string* breaker = metadata(event, kBreaker);
  const std::string* from = metadata(event, kFrom);
  const std::string* to = metadata(event, kTo);
  if (!breaker || !from || !to) return;
  families.breaker_transitions->counter({pool, *breaker, *from, *to}).inc();
}

}  // namespace bridgepool
