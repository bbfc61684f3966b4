#include "worker/worker_telemetry.h"

#include <fmt/format.h>

namespace bridgepool {

WorkerTelemetry::WorkerTelemetry(std::string pool_name, std::shared_ptr<Logger> logger,
                                 std::shared_ptr<EventBus> events, const Clock& clock)
    : pool_name_(std::move(pool_name)),
      logger_(std::move(logger)),
      events_(std::move(events)),
      clock_(clock) {}

bool WorkerTelemetry::transit(Worker& worker, WorkerState to, TransitionReason reason,
                              std::map<std::string, std::string> metadata) const {
  auto t = worker.transition(to, reason, std::move(metadata));
  if (!t) return false;
  if (logger_->enabled(LogLevel::kDebug)) {
    LogRecord r;
    r.level = LogLevel::kDebug;
    r.pool = pool_name_;
    r.component = "worker";
    r.message =
        fmt::format("{} -> {} ({})", to_string(t->from), to_string(t->to), to_string(t->reason));
    r.worker_id = worker.id();
    logger_->log(std::move(r));
  }
  const double time_in_previous_ms =
      std::chrono::duration<double, std::milli>(t->time_in_previous).count();
  if (events_->observing()) {
    events_->observe(TransitionObservation{pool_name_, worker.id(), t->from, t->to, t->reason,
                                           time_in_previous_ms});
  }
  if (emitting(EventId::kWorkerTransition)) {
    std::map<std::string, std::string> meta = t->metadata;
    meta["worker_id"] = worker.id();
    meta["from"] = to_string(t->from);
    meta["to"] = to_string(t->to);
    meta["reason"] = to_string(t->reason);
    emit(EventId::kWorkerTransition, {{"time_in_previous_ms", time_in_previous_ms}},
         std::move(meta));
  }
  return true;
}

void WorkerTelemetry::emit(EventId id, std::map<std::string, double> measurements,
                           std::map<std::string, std::string> metadata,
                           std::optional<std::chrono::system_clock::time_point> wall_time) const {
  if (!events_->wants(id)) return;
  Event e;
  e.name = std::string(event_name(id));
  e.measurements = std::move(measurements);
  e.metadata = std::move(metadata);
  e.metadata.emplace("pool", pool_name_);
  e.time = wall_time ? *wall_time : clock_.wall_now();
  events_->emit(e);
}

void WorkerTelemetry::log(LogLevel level, std::string message, std::string_view worker_id,
                          std::string_view session_id, std::uint64_t request_id) const {
  if (!logger_->enabled(level)) return;
  LogRecord r;
  r.level = level;
  r.pool = pool_name_;
  r.component = "pool";
  r.message = std::move(message);
  r.worker_id = worker_id;
  r.session_id = session_id;
  r.request_id = request_id;
  logger_->log(std::move(r));
}

}  // namespace bridgepool
