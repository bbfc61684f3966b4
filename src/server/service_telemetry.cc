#include "server/service_telemetry.h"

#include <utility>

namespace bridgepool::server {

namespace {

ErrorReporterConfig with_logger(ErrorReporterConfig config, std::shared_ptr<Logger> logger) {
  if (!config.logger) config.logger = std::move(logger);
  return config;
}

}  // namespace

ServiceTelemetry::ServiceTelemetry(Pool& pool, std::shared_ptr<Logger> logger, const Clock& clock,
                                   ErrorReporterConfig reporter_config)
    : pool_(pool),
      metrics_(pool, registry_),
      reporter_(with_logger(std::move(reporter_config), logger), clock) {
  reporter_.add_sink(ErrorReporter::log_sink(std::move(logger)));
  reporter_.attach(pool.config().events);
}

ServiceHooks ServiceTelemetry::hooks() {
  ServiceHooks hooks;
  hooks.metrics_text = [this] { return registry_.render_prometheus(); };
  hooks.alerts = [this] {
    Json alerts = Json::array();
    for (const Alert& alert : reporter_.active_alerts()) alerts.push_back(alert.to_json());
    return alerts;
  };
  hooks.every_second = [this] { reporter_.tick(pool_.stats()); };
  return hooks;
}

}  // namespace bridgepool::server
