// The stand-in for GET /metrics until the integrator plugs the metrics registry in
// (ServiceHooks::metrics_text): the pool's PoolStats in the Prometheus text format, one
// `bridgepool_pool_<statistic>` family per table entry (counters with the `_total` suffix), and
// `bridgepool_pool_errors_total{category=...}`. Pure; any thread.
#pragma once

#include <string>

#include "bridgepool/pool_stats.h"

namespace bridgepool::server {

std::string pool_stats_text(const PoolStats& stats);

}  // namespace bridgepool::server
