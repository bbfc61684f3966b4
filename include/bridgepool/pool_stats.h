// PoolStats: a snapshot of a pool's counters and levels, every one declared once.
//
// BRIDGEPOOL_POOL_STATS lists each statistic with its kind — COUNTER (only grows, from the
// pool's start; rolling restarts do not reset it) or GAUGE (a level now) —, its field name, its
// unit and what it means. The PoolStats fields, PoolStats::for_each (what exporters iterate) and
// the reference in docs/telemetry.md (a unit test fails when the document differs) are all
// generated from this list, in the spirit of Envoy's ALL_*_STATS macros: a statistic cannot
// exist in one place and be missing in another.
// A Bridge (bridge.h) is a pool of one and reports the same PoolStats.
// Thread-safety: plain data.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

// COUNTER(field, unit, help) / GAUGE(field, unit, help)
#define BRIDGEPOOL_POOL_STATS(COUNTER, GAUGE)                                                    \
  GAUGE(size, "workers", "Configured number of workers")                                         \
  GAUGE(live, "workers", "Workers in service: idle, busy or degraded")                           \
  GAUGE(idle, "workers", "Workers in service waiting for work")                                  \
  GAUGE(busy, "workers", "Workers checked out (a request, a probe or a session close)")          \
  GAUGE(degraded, "workers", "Workers out of rotation until a health probe passes")              \
  GAUGE(starting, "workers", "Workers spawning, handshaking or waiting out a respawn backoff")   \
  GAUGE(spare_workers, "workers", "Warm spares ready and kept aside (not in live; no traffic)")  \
  GAUGE(spares_starting, "workers", "Spares spawning, handshaking or waiting out a backoff")     \
  GAUGE(queue_length, "callers", "Callers waiting for a free worker")                            \
  GAUGE(sessions, "sessions", "Session bindings, lost ones included until closed or expired")    \
  GAUGE(generation, "generation", "Current spawn generation: 1, +1 per rolling restart")         \
  COUNTER(started, "workers", "Workers that completed their handshake and init commands")        \
  COUNTER(replaced, "workers", "Replacements started for workers that left service")             \
  COUNTER(spare_promotions, "workers", "Spares put into service in place of a start")            \
  COUNTER(init_failures, "starts", "Worker starts that failed (spawn, import, handshake, init)") \
  COUNTER(exits, "processes", "Worker processes reaped")                                         \
  COUNTER(requests, "requests", "Calls accepted (they passed validation)")                       \
  COUNTER(ok, "requests", "Calls that returned a result")                                        \
  COUNTER(rerouted, "requests",                                                                  \
          "Requests moved to another worker because theirs was gone before reading them")        \
  COUNTER(discarded_workers, "workers", "Dead or unusable workers caught at checkout")           \
  COUNTER(health_checks, "probes", "Health probes sent")                                         \
  COUNTER(health_check_failures, "probes", "Health probes that failed")                          \
  COUNTER(checkin_errors, "replies", "Replies whose handler marked its worker unhealthy")        \
  COUNTER(recycled, "workers", "Workers replaced for a recycling limit or checkin errors")       \
  COUNTER(overflow_retired, "workers", "Overflow workers retired after going idle")              \
  COUNTER(session_hits, "calls", "Session calls routed to their bound worker")                   \
  COUNTER(session_misses, "calls", "First calls of new sessions")                                \
  COUNTER(session_rebinds, "calls", "Hint mode: sessions moved off a removed worker")            \
  COUNTER(session_expirations, "sessions", "Bindings expired after session_ttl without calls")   \
  COUNTER(session_losses, "sessions", "Bindings dropped because their worker was removed")       \
  COUNTER(session_lost_calls, "calls", "Calls failed with session_lost")                         \
  COUNTER(retries, "attempts", "Attempts after the first, whatever the cause")                   \
  COUNTER(retries_denied, "attempts", "Retries refused by the retry budget")                     \
  COUNTER(recovered, "calls", "Calls that succeeded after at least one failed attempt")          \
  COUNTER(circuit_rejected, "calls", "Calls the pool's breaker refused (no worker touched)")     \
  COUNTER(quarantine_refused, "calls", "Calls refused because their request is quarantined")

namespace bridgepool {

enum class StatKind { kCounter, kGauge };

struct StatInfo {
  StatKind kind;
  std::string_view name;  // the field name, e.g. "requests"
  std::string_view unit;
  std::string_view help;
};

struct PoolStats {
  std::string name;  // the pool's name
#define BRIDGEPOOL_STAT_FIELD(field, unit, help) std::uint64_t field = 0;
  BRIDGEPOOL_POOL_STATS(BRIDGEPOOL_STAT_FIELD, BRIDGEPOOL_STAT_FIELD)
#undef BRIDGEPOOL_STAT_FIELD
  std::map<std::string, std::uint64_t> errors;  // error category -> calls that failed with it
  std::string breaker_state;    // "closed", "open", "half_open"; "" without a breaker
  std::string last_init_error;  // message of the last failed worker start, "" if none

  // Calls f(const StatInfo&, std::uint64_t value) for every statistic of the table, in order.
  template <typename F>
  void for_each(F&& f) const {
#define BRIDGEPOOL_STAT_COUNTER(field, unit, help) \
  f(StatInfo{StatKind::kCounter, #field, unit, help}, field);
#define BRIDGEPOOL_STAT_GAUGE(field, unit, help) \
  f(StatInfo{StatKind::kGauge, #field, unit, help}, field);
    BRIDGEPOOL_POOL_STATS(BRIDGEPOOL_STAT_COUNTER, BRIDGEPOOL_STAT_GAUGE)
#undef BRIDGEPOOL_STAT_COUNTER
#undef BRIDGEPOOL_STAT_GAUGE
  }
};

}  // namespace bridgepool
