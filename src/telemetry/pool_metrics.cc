// PoolMetrics (pool_metrics.h): registration of the families, attaching to the bus and the
// registry, detaching. The event handlers are in pool_metrics_events.cc, the collector in
// pool_metrics_collect.cc.
#include "bridgepool/pool_metrics.h"

#include "bridgepool/bridge.h"
#include "bridgepool/event_names.h"
#include "bridgepool/pool.h"
#include "telemetry/pool_metrics_state.h"

namespace bridgepool {
namespace {

std::vector<std::string> split_labels(std::string_view labels) {
  std::vector<std::string> out;
  while (!labels.empty()) {
    const std::size_t comma = labels.find(',');
    out.emplace_back(labels.substr(0, comma));
    if (comma == std::string_view::npos) break;
    labels.remove_prefix(comma + 1);
  }
  return out;
}

MetricFamily* register_family(MetricsRegistry& registry, const PoolMetricInfo& info) {
  MetricSpec spec{std::string(info.name), std::string(info.help), split_labels(info.labels), {}};
  switch (info.type) {
    case MetricType::kCounter:
      return &registry.counter_family(std::move(spec));
    case MetricType::kGauge:
      return &registry.gauge_family(std::move(spec));
    case MetricType::kHistogram:
      return &registry.histogram_family(std::move(spec));
  }
  return nullptr;
}

}  // namespace

std::string stat_metric_name(const StatInfo& info) {
  for (const StatExport& e : kStatExports) {
    if (e.field == info.name) return std::string(e.metric);
  }
  std::string name = "bridgepool_" + std::string(info.name);
  return info.kind == StatKind::kCounter ? name + "_total" : name;
}

PoolMetrics::State::State(MetricsRegistry& registry_in, std::string pool_name, StatsGetter stats_in,
                          WorkersGetter workers_in)
    : registry(registry_in),
      pool(std::move(pool_name)),
      stats(std::move(stats_in)),
      workers(std::move(workers_in)) {
  std::size_t i = 0;
#define BRIDGEPOOL_PM_REGISTER(member, name, labels, source, help) \
  families.member = register_family(registry, kPoolMetrics[i++]);
  BRIDGEPOOL_POOL_METRICS(BRIDGEPOOL_PM_REGISTER, BRIDGEPOOL_PM_REGISTER, BRIDGEPOOL_PM_REGISTER)
#undef BRIDGEPOOL_PM_REGISTER
  PoolStats().for_each([&](const StatInfo& info, std::uint64_t) {
    const std::string name = stat_metric_name(info);
    if (name.empty()) return;
    MetricSpec spec{
        name, std::string(info.help) + " (" + std::string(info.unit) + ")", {"pool"}, {}};
    stat_families.push_back(info.kind == StatKind::kCounter
                                ? &registry.counter_family(std::move(spec))
                                : &registry.gauge_family(std::move(spec)));
  });
  queue_wait = families.request_queue_wait->histogram({pool});
  execution = families.request_execution->histogram({pool});
  startup = families.worker_startup->histogram({pool});
  for (std::size_t s = 0; s < kStates; ++s) {
    state_seconds[s] = families.worker_state_seconds->counter(
        {pool, std::string(to_string(static_cast<WorkerState>(s)))});
  }
  other_ = CommandSeries{families.requests->counter({pool, LabelLimits::kOther, "ok"}),
                         families.request_duration->histogram({pool, LabelLimits::kOther})};
}

void PoolMetrics::State::drop_series() {
#define BRIDGEPOOL_PM_DROP(member, name, labels, source, help) \
  families.member->remove_where("pool", pool);
  BRIDGEPOOL_POOL_METRICS(BRIDGEPOOL_PM_DROP, BRIDGEPOOL_PM_DROP, BRIDGEPOOL_PM_DROP)
#undef BRIDGEPOOL_PM_DROP
  for (MetricFamily* f : stat_families) f->remove_where("pool", pool);
}

PoolMetrics::PoolMetrics(Pool& pool, MetricsRegistry& registry, PoolMetricsOptions options)
    : PoolMetrics(
          pool.events(), [&pool] { return pool.stats(); }, [&pool] { return pool.workers(); },
          registry, options) {}

PoolMetrics::PoolMetrics(Bridge& bridge, MetricsRegistry& registry, PoolMetricsOptions options)
    : PoolMetrics(
          bridge.events(), [&bridge] { return bridge.stats(); },
          [&bridge] { return bridge.workers(); }, registry, options) {}

PoolMetrics::PoolMetrics(EventBus& events, StatsGetter stats, WorkersGetter workers,
                         MetricsRegistry& registry, PoolMetricsOptions options)
    : events_(events), registry_(registry) {
  registry.limit_label("command", options.command_limit);
  std::string name = stats().name;
  state_ = std::make_shared<State>(registry, std::move(name), std::move(stats), std::move(workers));
  auto state = state_;  // the handlers share ownership (pool_metrics_state.h)
  // Calls and transitions happen on every call: typed records, no Event (call_observer.h).
  observer_ = events.add_observer(state);
  handlers_.push_back(events.attach(std::string(event_name(EventId::kWorkerReady)),
                                    [state](const Event& e) { state->on_worker_ready(e); }));
  handlers_.push_back(events.attach(std::string(event_name(EventId::kBreakerTransition)),
                                    [state](const Event& e) { state->on_breaker_transition(e); }));
  collector_ = registry.add_collector([state] { state->collect(); });
}

PoolMetrics::~PoolMetrics() {
  events_.remove_observer(observer_);
  for (EventBus::HandlerId id : handlers_) events_.detach(id);
  registry_.remove_collector(collector_);
  state_->drop_series();
}

const std::string& PoolMetrics::pool_name() const { return state_->pool; }

}  // namespace bridgepool
