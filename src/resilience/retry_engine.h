// RetryEngine: the one loop that decides, for any operation, whether and when a failed attempt
// runs again (SPEC §6). The pool's request path and with_retry (bridgepool/retry.h) both run
// it; they differ only in the hooks they give it.
//
//   before attempt n    quarantined?   (poison request: abandon)           -> refusal
//                       breaker open?  (circuit_open: failover)            -> refusal
//   attempt n           run it, avoiding the worker that failed attempt n-1
//   after attempt n     breaker.record, quarantine kill/survival
//                       ok                                                 -> the value
//                       classify the error (severity, strategy)
//                       should it retry? the strategy allows it (or a custom rule says so),
//                         n < min(max_attempts, strategy budget: immediate 3, backoff 5),
//                         the attempt did not use up its own time budget, and the owner is
//                         not stopping (hooks.stop: the pool shuts down)
//                       delay: 0 for immediate_retry, else the policy's backoff
//                       deadline: elapsed + delay > min(request deadline, policy.deadline)
//                         -> stop ("no time left for a retry before the deadline")
//                       sleep the delay (on the injected clock)
//                       budget: try_begin_retry() -> denied: stop ("retry budget exhausted")
//                       -> attempt n+1
//
// Why the budget is asked after the sleep: it bounds the retries actually sent (Envoy's "active
// retries"); a request that waited its backoff is not refused because others were merely
// waiting too. A refusal before an attempt (quarantine, breaker) is what the caller gets; its
// cause names the previous attempt's error, and it is classified as a first attempt of its own
// kind (no worker was touched), so a breaker that opened during a call's retries still reads
// `failover`, not the `abandon` of a third critical attempt.
//
// Events (when hooks.events is set): "retry.attempt" when a retry is about to run (after its
// delay and budget grant), "retry.gave_up" when the loop returns an error — except after a first
// attempt whose error simply may not be retried (a Python ValueError is not a retry story) —,
// "retry.recovered" when an attempt after the first succeeds.
// Thread-safety: run() runs (and sleeps) on the calling thread; hooks are called there.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "bridgepool/circuit_breaker.h"
#include "bridgepool/clock.h"
#include "bridgepool/error.h"
#include "bridgepool/event_bus.h"
#include "bridgepool/event_names.h"
#include "bridgepool/retry.h"
#include "bridgepool/retry_budget.h"

namespace bridgepool {

class PoisonQuarantine;

// Counters an owner keeps across calls (the pool's stats). Any thread.
struct RetryCounters {
  std::atomic<std::uint64_t> retries{0};             // attempts after the first
  std::atomic<std::uint64_t> retries_denied{0};      // retries refused by the budget
  std::atomic<std::uint64_t> recovered{0};           // calls that succeeded after a failure
  std::atomic<std::uint64_t> circuit_rejected{0};    // attempts the breaker refused
  std::atomic<std::uint64_t> quarantine_refused{0};  // attempts the quarantine refused
};

// One attempt as the engine sees it.
struct AttemptReport {
  Error* error = nullptr;      // null: the attempt succeeded; else owned by the caller
  std::string worker_id;       // the worker it ran on ("" if none was checked out)
  bool may_have_run = false;   // written to a worker that may have read it
  bool killed_worker = false;  // the worker died or was killed (crash, hang, broken stream)
  bool no_time_left = false;   // the attempt used up its own time budget (checkout timeout)
  // How this attempt counts for the breaker when not by its error's category (e.g. a pool
  // refusing work because it shuts down is not the target failing: kIgnored).
  std::optional<BreakerOutcome> breaker_outcome;
};

struct RetryHooks {
  std::string name;              // events' "name" ("pool:default")
  std::string command;           // events' "command" ("" for none)
  const Clock* clock = nullptr;  // default SteadyClock::instance()
  UniformRandom random;          // default thread_local_uniform
  // Waits a delay > 0; default: sleep on `clock`.
  std::function<void(std::chrono::microseconds)> sleep;
  EventBus* events = nullptr;  // must outlive run()
  // The request's own deadline; retries also stop at start + policy.deadline.
  std::optional<TimePoint> deadline;
  CircuitBreaker* breaker = nullptr;
  RetryBudget* budget = nullptr;  // the caller keeps the request in flight around run()
  PoisonQuarantine* quarantine = nullptr;
  std::function<std::uint64_t()> fingerprint;  // with a quarantine: the request's fingerprint
  // Fills the error's severity and strategy. For an attempt's error `report` is its report and
  // `attempt` its number; for a refusal (breaker, quarantine) `report` is null and `attempt` 1.
  // Null: errors arrive classified.
  std::function<void(Error&, std::uint32_t attempt, const AttemptReport* report)> classify;
  // Replaces the strategy-based decision (max_attempts and the deadline still apply).
  std::function<bool(const Error&, std::uint32_t attempt)> should_retry;
  // Asked before every retry: a reason to stop now ("shutting_down"), or nullopt.
  std::function<std::optional<std::string_view>()> stop;
  RetryCounters* counters = nullptr;
};

// Attempt n (1-based), avoiding `avoid_worker` (the worker of the failed attempt before it, ""
// for the first) when another one can serve.
using AttemptFn =
    std::function<AttemptReport(std::uint32_t attempt, const std::string& avoid_worker)>;

// Runs the loop above. nullopt once an attempt succeeded (the value is the caller's); else the
// error to return, with context.attempt = attempts made (a refused one included) and
// context.cause extended with why the loop stopped when a retry was otherwise possible.
// `attempts_made`, if given, receives the number of attempts made.
std::optional<Error> run_with_retries(const RetryPolicy& policy, const RetryHooks& hooks,
                                      const AttemptFn& attempt,
                                      std::uint32_t* attempts_made = nullptr);

}  // namespace bridgepool
