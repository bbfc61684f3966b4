// PoolMetrics' collector (pool_metrics_state.h): at scrape time, copies the PoolStats table into
// its exported counters and gauges and sets the gauges read from workers() and the breaker.
#include <map>

#include "bridgepool/circuit_breaker.h"
#include "telemetry/pool_metrics_state.h"

namespace bridgepool {

void PoolMetrics::State::collect_stats(const PoolStats& s) {
  std::size_t i = 0;
  s.for_each([&](const StatInfo& info, std::uint64_t value) {
    if (stat_metric_name(info).empty()) return;
    MetricFamily* family = stat_families[i++];
    if (info.kind == StatKind::kCounter) {
      family->counter({pool}).set(double(value));
    } else {
      family->gauge({pool}).set(double(value));
    }
  });
}

void PoolMetrics::State::collect_workers(const std::vector<WorkerInfo>& list) {
  std::array<double, kStates> by_state{};
  std::set<std::string> present;
  for (const WorkerInfo& w : list) {
    by_state[static_cast<std::size_t>(w.state)] += 1;
    families.worker_rss->gauge({pool, w.id}).set(double(w.rss_bytes));
    present.insert(w.id);
  }
  for (std::size_t s = 0; s < kStates; ++s) {
    families.workers->gauge({pool, std::string(to_string(static_cast<WorkerState>(s)))})
        .set(by_state[s]);
  }
  // A worker that left takes its series with it: worker ids are bounded by the pool size only
  // if the ids of gone workers do not pile up.
  for (const std::string& id : rss_workers_) {
    if (present.count(id) == 0) families.worker_rss->remove({pool, id});
  }
  rss_workers_ = std::move(present);
}

void PoolMetrics::State::collect_breaker(const std::string& state) {
  for (CircuitState c : {CircuitState::kClosed, CircuitState::kOpen, CircuitState::kHalfOpen}) {
    const std::string s(circuit_state_name(c));
    if (state.empty()) {
      families.breaker_state->remove({pool, s});
    } else {
      families.breaker_state->gauge({pool, s}).set(s == state ? 1.0 : 0.0);
    }
  }
}

void PoolMetrics::State::collect() {
  const PoolStats s = stats();
  collect_stats(s);
  collect_workers(workers());
  collect_breaker(s.breaker_state);
}

}  // namespace bridgepool
