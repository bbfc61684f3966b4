// WorkerTelemetry: how one pool reports what happens to its workers — state transitions (applied,
// logged at debug level and emitted as pool.worker.transition), other events from the
// event_names.h table, and log lines — with the pool's name attached to every one.
//
// The supervisor (process life) and the pool (service life) both change worker states; they go
// through the same instance, so a transition is recorded, logged and emitted the same way
// whoever makes it.
// Thread-safety: every method may be called from any thread (the logger and bus are thread-safe,
// a Worker's state machine has its own mutex).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "bridgepool/clock.h"
#include "bridgepool/event_bus.h"
#include "bridgepool/event_names.h"
#include "bridgepool/logging.h"
#include "worker/worker.h"

namespace bridgepool {

class WorkerTelemetry {
 public:
  // Events are stamped with `clock`'s wall time (a test's ManualClock moves them too).
  WorkerTelemetry(std::string pool_name, std::shared_ptr<Logger> logger,
                  std::shared_ptr<EventBus> events, const Clock& clock);

  // Moves `worker` to `to`. False (and nothing recorded) if the state machine refuses.
  bool transit(Worker& worker, WorkerState to, TransitionReason reason,
               std::map<std::string, std::string> metadata = {}) const;

  // True when a handler wants event `id`: build its measurements and metadata only then.
  bool emitting(EventId id) const { return events_->wants(id); }
  // A call ended: to the bus's observers (call_observer.h), with this pool's name. The caller
  // builds the pool.request Event itself, only when emitting(EventId::kRequest).
  void observe_call(CallObservation call) const {
    if (!events_->observing()) return;
    call.pool = pool_name_;
    events_->observe(call);
  }
  // Stamped now, or at `wall_time` when given (e.g. when what it reports began).
  void emit(EventId id, std::map<std::string, double> measurements,
            std::map<std::string, std::string> metadata,
            std::optional<std::chrono::system_clock::time_point> wall_time = std::nullopt) const;
  const Clock& clock() const { return clock_; }

  // Logs as component "pool" with the pool's name; on the request path also with the session and
  // the wire request id (0: none).
  void log(LogLevel level, std::string message, std::string_view worker_id = {},
           std::string_view session_id = {}, std::uint64_t request_id = 0) const;
  Logger& logger() const { return *logger_; }
  const std::string& pool_name() const { return pool_name_; }

 private:
  std::string pool_name_;
  std::shared_ptr<Logger> logger_;
  std::shared_ptr<EventBus> events_;
  const Clock& clock_;
};

}  // namespace bridgepool
