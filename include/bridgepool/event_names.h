// Event names: every telemetry event bridgepool emits on an EventBus (event_bus.h), declared once.
//
// BRIDGEPOOL_EVENTS lists each event with its id, its dotted name (what handlers attach to by
// prefix) and what it means, with its measurements (m:) and metadata (d:). The EventId enum, the
// name lookup and the reference in docs/telemetry.md are all generated from this one list (a unit
// test fails when the document differs from it), so an event cannot be emitted under a name that
// is not documented. Every pool event also carries the metadata "pool" (the pool's name).
// Thread-safety: constants and pure functions.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

// X(id, name, help)
#define BRIDGEPOOL_EVENTS(X)                                                                     \
  X(kWorkerSpawned, "pool.worker.spawned", "A worker process was started. m: pid; d: worker_id") \
  X(kWorkerReady, "pool.worker.ready",                                                           \
    "A worker completed its handshake and init commands. m: startup_ms, pid; d: worker_id")      \
  X(kWorkerInitFailed, "pool.worker.init_failed",                                                \
    "A worker could not start (spawn, import error, no handshake, init command). "               \
    "d: worker_id, error")                                                                       \
  X(kWorkerExited, "pool.worker.exited",                                                         \
    "A worker process was reaped. m: pid, exit_code (-1 if signaled), signal; "                  \
    "d: worker_id, status")                                                                      \
  X(kWorkerTransition, "pool.worker.transition",                                                 \
    "A worker changed state. m: time_in_previous_ms; d: worker_id, from, to, reason, ...")       \
  X(kWorkerSparePromoted, "pool.worker.spare_promoted",                                          \
    "A warm spare went into service: the pool is back at full capacity without a start. "        \
    "m: pid, spares (ready ones left); d: worker_id, replaces (the worker that left, or empty)") \
  X(kWorkerHealthCheck, "pool.worker.health_check",                                              \
    "A health probe ended. m: healthy (0/1); d: worker_id, degraded, spare")                     \
  X(kWorkerCheckinError, "pool.worker.checkin_error",                                            \
    "A handler said its worker is no longer trustworthy. m: failures; d: worker_id, reason, "    \
    "action")                                                                                    \
  X(kRequest, "pool.request",                                                                    \
    "A call ended. m: duration_us, queue_wait_us, attempts; d: command, result (ok or the "      \
    "error category), severity (failed calls)")                                                  \
  X(kSessionAffinity, "pool.session.affinity",                                                   \
    "Session routing: a call's lookup (d: outcome hit|miss|lost|rebind), bindings lost with a "  \
    "worker (m: lost) or expired (m: expired)")                                                  \
  X(kBroadcast, "pool.broadcast", "A broadcast ended. m: succeeded, failed; d: command")         \
  X(kMaintenanceRound, "pool.maintenance.round",                                                 \
    "A maintenance round ended (probes, recycling, session expiry); stamped with the time it "   \
    "began. m: probes, duration_us")                                                             \
  X(kRollingRestart, "pool.rolling_restart",                                                     \
    "Rolling restart progress. m: generation; d: phase started|finished|failed")                 \
  X(kRetryAttempt, "retry.attempt",                                                              \
    "A retry is about to run. m: attempt, delay_us, elapsed_us; d: name, command, category, "    \
    "strategy, backoff")                                                                         \
  X(kRetryGaveUp, "retry.gave_up",                                                               \
    "A call that could have retried returns its error. m: attempts, elapsed_us; d: name, "       \
    "command, category, strategy, reason")                                                       \
  X(kRetryRecovered, "retry.recovered",                                                          \
    "A call succeeded after failed attempts. m: attempts, elapsed_us; d: name, command")         \
  X(kBreakerTransition, "breaker.transition",                                                    \
    "A circuit breaker changed state. m: failure_rate, consecutive_failures, epoch; "            \
    "d: breaker, from, to, reason")                                                              \
  X(kFallbackServed, "fallback.served", "A fallback chain answered. d: adapter, ...")            \
  X(kFallbackFailover, "fallback.failover", "A fallback chain moved to its next adapter.")       \
  X(kFallbackRecovered, "fallback.recovered", "An adapter of a chain serves again.")             \
  X(kHandlerFailed, "telemetry.handler_failed", "An event handler threw and was detached.")      \
  X(kAlertRaised, "alert.raised",                                                                \
    "An ErrorReporter alert was raised (docs/alerts.md). m: value, threshold (raise); "          \
    "d: rule, severity (warning|critical), message")                                             \
  X(kAlertCleared, "alert.cleared",                                                              \
    "An ErrorReporter alert was cleared. m: value, threshold (clear); d: rule, severity, "       \
    "message")

namespace bridgepool {

enum class EventId {
#define BRIDGEPOOL_EVENT_ENUM(id, name, help) id,
  BRIDGEPOOL_EVENTS(BRIDGEPOOL_EVENT_ENUM)
#undef BRIDGEPOOL_EVENT_ENUM
};

struct EventInfo {
  EventId id;
  std::string_view name;
  std::string_view help;
};

inline constexpr std::array kEvents = {
#define BRIDGEPOOL_EVENT_INFO(id, name, help) EventInfo{EventId::id, name, help},
    BRIDGEPOOL_EVENTS(BRIDGEPOOL_EVENT_INFO)
#undef BRIDGEPOOL_EVENT_INFO
};

// The dotted name of an event ("pool.worker.ready").
constexpr std::string_view event_name(EventId id) {
  return kEvents[static_cast<std::size_t>(id)].name;
}

}  // namespace bridgepool
