// ServiceTelemetry: what `bridgepool serve` observes of its pool, packaged as the ServiceHooks
// the HttpService takes (http_service.h).
//
// It owns a MetricsRegistry with the pool's PoolMetrics (GET /metrics renders it) and an
// ErrorReporter attached to the pool's events, with a log sink (GET /v1/status lists its active
// alerts; docs/alerts.md). The service's ticker thread calls every_second, which samples the
// pool's stats and runs the alert rules, so hold times are judged to the second.
// Thread-safety: the hooks may be called from any thread (the registry and the reporter are
// thread-safe); the object must outlive the HttpService that holds its hooks.
#pragma once

#include <memory>

#include "bridgepool/error_reporter.h"
#include "bridgepool/metrics.h"
#include "bridgepool/pool.h"
#include "bridgepool/pool_metrics.h"
#include "server/http_service.h"

namespace bridgepool::server {

class ServiceTelemetry {
 public:
  // `pool` and `clock` must outlive this object. Alerts are logged through `logger`.
  ServiceTelemetry(Pool& pool, std::shared_ptr<Logger> logger, const Clock& clock,
                   ErrorReporterConfig reporter_config = {});
  ServiceTelemetry(const ServiceTelemetry&) = delete;
  ServiceTelemetry& operator=(const ServiceTelemetry&) = delete;

  // metrics_text: the registry in Prometheus text; alerts: the reporter's active alerts as the
  // status document's "alerts" array; every_second: sample the pool and evaluate the rules.
  ServiceHooks hooks();

  MetricsRegistry& registry() { return registry_; }
  ErrorReporter& reporter() { return reporter_; }

 private:
  Pool& pool_;
  MetricsRegistry registry_;
  PoolMetrics metrics_;  // after registry_: detaches before the registry goes
  ErrorReporter reporter_;
};

}  // namespace bridgepool::server
