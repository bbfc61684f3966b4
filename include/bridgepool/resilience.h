// ResilienceConfig: what the resilience layer does around every Pool call, with defaults that
// need no configuration (SPEC §6, issue "sane defaults"):
//
//   * retries for idempotent commands (and for Python errors the worker marked retryable), with
//     decorrelated jitter between 2 ms and 200 ms, at most 5 attempts — and never more than the
//     error's strategy allows (immediate_retry 3, backoff_retry 5) nor past the request deadline;
//   * one circuit breaker per pool ("pool:<name>"), on a failure-rate window: it opens when at
//     least half of the last 10 s of calls failed at the service level (worker died, timed out,
//     could not start, pool exhausted), judged only once 20 calls were seen, and half-opens
//     10 s later. A ValueError raised by user code is not a service failure and never opens it;
//   * a retry budget: retries in flight at most 20% of requests in flight (at least 3), so a
//     failing pool is not hit with (1 + retries) times its load;
//   * poison-request quarantine: a request (command + arguments) that keeps killing workers is
//     refused for a cooldown instead of taking the pool down one worker at a time.
//
// Per call, ExecuteOptions::retry overrides the retry policy (RetryPolicy::none() disables
// retries for that call). `enabled = false` bypasses the whole layer (benchmarks of its cost).
#pragma once

#include <chrono>
#include <memory>

#include "bridgepool/circuit_breaker.h"
#include "bridgepool/retry.h"

namespace bridgepool {

// Poison-request quarantine: src/resilience/poison_quarantine.h states the rule and its arithmetic.
struct QuarantineConfig {
  std::uint32_t window = 16;         // attempts remembered per fingerprint (1..64)
  std::uint32_t kill_threshold = 3;  // kills needed in the window, whatever the ratio (>= 1)
  std::chrono::milliseconds memory{60'000};         // older attempts do not count
  std::chrono::milliseconds cooldown{30'000};       // first refusal period; doubles per relapse
  std::chrono::milliseconds max_cooldown{600'000};  // cap of the doubling
  std::size_t max_fingerprints = 10'000;            // tracked entries at most (>= 1)
  bool enabled = true;                              // false: admit() always says yes, records no-op
};

// The pool's default breaker: a failure-rate window (the better production default, SPEC §6).
inline CircuitBreakerConfig default_pool_breaker() {
  CircuitBreakerConfig c;
  c.window = BreakerWindow::kTime;
  c.window_duration = std::chrono::seconds(10);
  c.minimum_calls = 20;
  c.failure_rate_threshold = 0.5;
  c.open_timeout = std::chrono::seconds(10);
  c.half_open_max_calls = 3;
  c.success_threshold = 3;
  return c;
}

inline RetryPolicy default_pool_retry() {
  RetryPolicy p;
  p.max_attempts = 5;
  p.strategy = BackoffStrategy::kDecorrelatedJitter;
  p.base_delay = std::chrono::milliseconds(2);
  p.max_delay = std::chrono::milliseconds(200);
  return p;
}

struct ResilienceConfig {
  bool enabled = true;
  RetryPolicy retry = default_pool_retry();
  bool breaker_enabled = true;
  CircuitBreakerConfig breaker = default_pool_breaker();
  // Where the pool's breaker lives; null: a registry of the pool's own. Share one registry to
  // see every breaker of a process in one place.
  std::shared_ptr<BreakerRegistry> breakers;
  double retry_budget_ratio = 0.2;
  std::uint32_t retry_budget_min = 3;
  QuarantineConfig quarantine;
};

}  // namespace bridgepool
