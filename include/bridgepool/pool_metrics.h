// PoolMetrics: one pool's (or bridge's) metrics in a MetricsRegistry (metrics.h), for GET /metrics.
//
// Two sources, each metric from exactly one:
//  * events: PoolMetrics attaches to the pool's EventBus and counts what only events tell —
//    calls by command and outcome, latency histograms, errors by category and severity, worker
//    transitions and time per state, worker start times, breaker transitions. These count from
//    the moment PoolMetrics attached. Calls and worker transitions, which happen on every call,
//    arrive as the bus's typed observations (call_observer.h: no Event is built for them unless
//    an Event handler is attached too); worker starts and breaker transitions as Events.
//  * the PoolStats table (pool_stats.h): a collector run at scrape time copies every statistic
//    the pool already keeps (retries, retries denied, quarantine refusals, session hits/misses/
//    losses/rebinds/expirations, starts, exits, ...) into counters and gauges, so no statistic is
//    counted twice in two places that could disagree; it also sets the gauges of workers by
//    state, breaker state and worker resident memory from stats() and workers().
// BRIDGEPOOL_POOL_METRICS below declares the first kind and the gauges once; kStatExports says
// under which name each PoolStats statistic is exported (or why not). docs/metrics.md is
// generated from both (a unit test fails when it differs).
// Every series carries `pool`. `command` is bounded by the registry's label limit (the first
// PoolMetricsOptions::command_limit distinct commands, then "other"); `worker` by the pool size
// plus overflow: series of workers that left are dropped at the next scrape.
// Thread-safety: construct and destroy on one thread; events may arrive on any thread and
// render_prometheus() may run concurrently. The destructor detaches from the bus, removes the
// collector (waiting for a scrape in progress) and drops this pool's series.
#pragma once

#include <array>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bridgepool/event_bus.h"
#include "bridgepool/metrics.h"
#include "bridgepool/pool_stats.h"

// COUNTER/GAUGE/HISTOGRAM(member, metric name, labels, source, help)
#define BRIDGEPOOL_POOL_METRICS(COUNTER, GAUGE, HISTOGRAM)                                        \
  COUNTER(requests, "bridgepool_requests_total", "pool,command,outcome", "pool.request",          \
          "Calls that ended, by command and outcome: `ok` or the error category")                 \
  HISTOGRAM(request_duration, "bridgepool_request_duration_seconds", "pool,command",              \
            "pool.request", "Call latency, entry to return: queue wait plus execution")           \
  HISTOGRAM(request_queue_wait, "bridgepool_request_queue_wait_seconds", "pool", "pool.request",  \
            "Time calls waited for a free worker")                                                \
  HISTOGRAM(request_execution, "bridgepool_request_execution_seconds", "pool", "pool.request",    \
            "Call latency minus queue wait: on workers, retries and their back-off included")     \
  COUNTER(errors, "bridgepool_errors_total", "pool,category,severity", "pool.request",            \
          "Failed calls by error category and severity")                                          \
  COUNTER(worker_transitions, "bridgepool_worker_transitions_total", "pool,from,to,reason",       \
          "pool.worker.transition",                                                               \
          "Worker state changes; `to=\"terminating\"` by reason counts recycles, replacements, "  \
          "failed probes, timeouts and shutdowns")                                                \
  COUNTER(worker_state_seconds, "bridgepool_worker_state_seconds_total", "pool,state",            \
          "pool.worker.transition", "Time workers spent in each state, added when they leave it") \
  HISTOGRAM(worker_startup, "bridgepool_worker_startup_seconds", "pool", "pool.worker.ready",     \
            "Worker start time: spawn to handshake and init commands done")                       \
  COUNTER(breaker_transitions, "bridgepool_breaker_transitions_total", "pool,breaker,from,to",    \
          "breaker.transition",                                                                   \
          "Circuit breaker state changes on the pool's bus; the pool's own breaker is "           \
          "`pool:<name>` (`bridge:<name>` for a bridge)")                                         \
  GAUGE(workers, "bridgepool_workers", "pool,state", "workers()",                                 \
        "Workers by state now (every state listed, 0 included)")                                  \
  GAUGE(breaker_state, "bridgepool_breaker_state", "pool,state", "stats()",                       \
        "1 for the pool breaker's current state (closed, open, half_open), 0 for the others; "    \
        "absent without a breaker")                                                               \
  GAUGE(worker_rss, "bridgepool_worker_resident_memory_bytes", "pool,worker", "workers()",        \
        "Resident memory of each worker process (0: unknown); series of removed workers are "     \
        "dropped")

namespace bridgepool {

class Pool;
class Bridge;
struct WorkerInfo;

struct PoolMetricInfo {
  MetricType type;
  std::string_view name;
  std::string_view labels;  // comma-separated label names
  std::string_view source;  // the event, or the getter a collector reads
  std::string_view help;
};

inline constexpr std::array kPoolMetrics = {
#define BRIDGEPOOL_PM_COUNTER(member, name, labels, source, help) \
  PoolMetricInfo{MetricType::kCounter, name, labels, source, help},
#define BRIDGEPOOL_PM_GAUGE(member, name, labels, source, help) \
  PoolMetricInfo{MetricType::kGauge, name, labels, source, help},
#define BRIDGEPOOL_PM_HISTOGRAM(member, name, labels, source, help) \
  PoolMetricInfo{MetricType::kHistogram, name, labels, source, help},
    BRIDGEPOOL_POOL_METRICS(BRIDGEPOOL_PM_COUNTER, BRIDGEPOOL_PM_GAUGE, BRIDGEPOOL_PM_HISTOGRAM)
#undef BRIDGEPOOL_PM_COUNTER
#undef BRIDGEPOOL_PM_GAUGE
#undef BRIDGEPOOL_PM_HISTOGRAM
};

// How a PoolStats statistic is exported. By default a counter `x` becomes
// `bridgepool_x_total` and a gauge `x` becomes `bridgepool_x`, labelled {pool}; this table lists
// the exceptions: a better name, or "" with the reason it is not exported.
struct StatExport {
  std::string_view field;
  std::string_view metric;      // "" = not exported
  std::string_view not_reason;  // why not, when metric is ""
};

inline constexpr std::array kStatExports = {
    StatExport{"size", "bridgepool_pool_size", ""},
    StatExport{"live", "", "sum of `bridgepool_workers` over ready, busy and degraded"},
    StatExport{"idle", "", "`bridgepool_workers{state=\"ready\"}`"},
    StatExport{"busy", "", "`bridgepool_workers{state=\"busy\"}`"},
    StatExport{"degraded", "", "`bridgepool_workers{state=\"degraded\"}`"},
    StatExport{"starting", "bridgepool_workers_starting", ""},
    StatExport{"sessions", "bridgepool_live_sessions", ""},
    StatExport{"requests", "", "`bridgepool_requests_total` counts calls by command and outcome"},
    StatExport{"ok", "", "`bridgepool_requests_total{outcome=\"ok\"}`"},
    StatExport{"started", "bridgepool_worker_starts_total", ""},
    StatExport{"replaced", "bridgepool_worker_replacements_total", ""},
    StatExport{"init_failures", "bridgepool_worker_init_failures_total", ""},
    StatExport{"exits", "bridgepool_worker_exits_total", ""},
    StatExport{"recycled", "bridgepool_worker_recycles_total", ""},
    StatExport{"rerouted", "bridgepool_rerouted_requests_total", ""},
    StatExport{"discarded_workers", "bridgepool_worker_discards_total", ""},
    StatExport{"recovered", "bridgepool_recovered_requests_total", ""},
    StatExport{"circuit_rejected", "bridgepool_circuit_rejected_requests_total", ""},
    StatExport{"quarantine_refused", "bridgepool_quarantine_refused_requests_total", ""},
};

// The metric name a statistic is exported under, or "" if it is not exported.
std::string stat_metric_name(const StatInfo& info);

struct PoolMetricsOptions {
  // Distinct `command` label values before "other" (registry-wide: MetricsRegistry::limit_label).
  std::size_t command_limit = MetricsRegistry::kDefaultCommandLimit;
};

class PoolMetrics {
 public:
  using StatsGetter = std::function<PoolStats()>;
  using WorkersGetter = std::function<std::vector<WorkerInfo>()>;

  // Binds `pool` (`bridge`) to `registry`; both must outlive this object.
  PoolMetrics(Pool& pool, MetricsRegistry& registry, PoolMetricsOptions options = {});
  PoolMetrics(Bridge& bridge, MetricsRegistry& registry, PoolMetricsOptions options = {});
  // From what it really needs: the bus to observe and the two snapshots a scrape reads (the
  // pool's name is stats().name). `events` and `registry` must outlive this object.
  PoolMetrics(EventBus& events, StatsGetter stats, WorkersGetter workers, MetricsRegistry& registry,
              PoolMetricsOptions options = {});
  ~PoolMetrics();
  PoolMetrics(const PoolMetrics&) = delete;
  PoolMetrics& operator=(const PoolMetrics&) = delete;

  const std::string& pool_name() const;

  struct State;  // shared with the bus handlers (pool_metrics_state.h)

 private:
  EventBus& events_;
  MetricsRegistry& registry_;
  std::shared_ptr<State> state_;
  EventBus::HandlerId observer_ = 0;
  std::vector<EventBus::HandlerId> handlers_;
  MetricsRegistry::CollectorId collector_ = 0;
};

}  // namespace bridgepool
