// Retry: how long to wait between attempts (RetryPolicy, backoff_delay) and a generic retry loop
// (with_retry) that goes through a circuit breaker and a retry budget (SPEC §6).
//
// The error classifier (src/resilience/error_classifier.h) decides *whether* a failure may be
// retried (Error::strategy); this header decides *when* and *how often*. with_retry runs the
// library's one retry engine — the same loop a Pool runs around every call, with the pool's
// quarantine, "another worker" and classification hooks — for any other operation.
//
// Delays before retry n (n = 1 is the first retry, after attempt 1 failed), base 10 ms, cap 1 s:
//
//   strategy             formula                               n = 1   2   3   4    5     8
//   linear               n·base                                   10  20  30  40   50    80
//   exponential          base·2^(n-1)                             10  20  40  80  160  1000 (1280)
//   fibonacci            fib(n)·base, F1 = F2 = 1                 10  10  20  30   50   210
//   full_jitter          uniform[0, min(cap, base·2^(n-1)))       the exponential row times u
//   decorrelated_jitter  min(cap, uniform(base, 3·previous))      previous 0 reads as base
//   custom               custom(n, previous), clamped to [0, cap]
//
// The cap holds for every strategy, jitter included: a delay is never above max_delay (a jittered
// value is drawn first and clamped, so decorrelated jitter piles up at the cap once 3·previous
// passes it, as in the standard formula). All arithmetic saturates: retry 1000 of exponential is
// the cap, not an overflow. Decorrelated jitter draws from [base, max(base, 3·previous)], so a
// delay is at least min(base, cap) and, once previous >= base, at most 3·previous.
//
// Deadline: with deadline 50 ms and exponential 10/20/40 ms, attempt 1 fails at 0 ms and sleeps
// 10, attempt 2 fails at 10 and sleeps 20, attempt 3 fails at 30: 30 + 40 = 70 > 50, so it
// stops there with attempt 3's error rather than sleep past the deadline. Time spent inside the
// attempts counts (it is read from the Clock), so the loop never sleeps past the deadline.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "bridgepool/clock.h"
#include "bridgepool/error.h"
#include "bridgepool/event_bus.h"

namespace bridgepool {

// A source of uniform doubles in [0, 1) (same alias as src/pool/recycle_policy.h). Values outside
// are clamped; NaN reads as 0.
using UniformRandom = std::function<double()>;
// Uniform [0, 1) from a per-thread engine seeded from std::random_device: the default wherever a
// UniformRandom is left empty. Any thread; no shared state.
double thread_local_uniform();

enum class BackoffStrategy {
  kLinear,
  kExponential,
  kFibonacci,
  kDecorrelatedJitter,
  kFullJitter,
  kCustom
};

// "linear", "exponential", "fibonacci", "decorrelated_jitter", "full_jitter", "custom". Any thread.
std::string_view backoff_strategy_name(BackoffStrategy strategy);
// The strategy of that exact name, or nullopt. Any thread.
std::optional<BackoffStrategy> backoff_strategy_from_name(std::string_view name);

struct RetryPolicy {
  std::uint32_t max_attempts = 3;  // the first attempt included; 1 = never retry
  BackoffStrategy strategy = BackoffStrategy::kExponential;
  std::chrono::microseconds base_delay{std::chrono::milliseconds(10)};
  // Cap for every strategy, jitter included: never exceeded.
  std::chrono::microseconds max_delay{std::chrono::milliseconds(1'000)};
  // Overall budget from the start of the first attempt: no retry whose delay would end past it.
  std::optional<std::chrono::microseconds> deadline;
  // kCustom: the delay before retry `retry` given the previous delay; clamped to [0, max_delay].
  // Must not throw; called on the retrying thread.
  std::function<std::chrono::microseconds(std::uint32_t retry, std::chrono::microseconds previous)>
      custom;

  // max_attempts = 1: the operation runs once, never retried.
  static RetryPolicy none();

  // Ok, or a kInvalidRequest error (context.operation "retry_policy") naming the first bad field:
  // max_attempts at least 1; base_delay and max_delay not negative; base_delay <= max_delay (a
  // base above the cap would make every delay the cap); deadline, if set, positive; custom set
  // when strategy is kCustom. Any thread.
  Result<void> validate() const;
};

// Delay before retry number `retry` (1 = the first retry, after attempt 1 failed), per the table
// above; 0 for retry 0. `previous` is the delay used before the previous retry (ignored by the
// deterministic strategies; decorrelated jitter reads 0 as base_delay). `random` is called exactly
// once by the two jitter strategies and never by the others; an empty `random` means a
// thread_local std::mt19937_64. Negative base_delay/max_delay/previous read as 0; kCustom without
// a function reads as base_delay (validate() rejects it). Result in [0, max_delay].
// Pure apart from `random`; any thread.
std::chrono::microseconds backoff_delay(const RetryPolicy& policy, std::uint32_t retry,
                                        std::chrono::microseconds previous,
                                        const UniformRandom& random);

class CircuitBreaker;       // include/bridgepool/circuit_breaker.h
enum class BreakerOutcome;  // include/bridgepool/circuit_breaker.h: kSuccess, kFailure, kIgnored
class RetryBudget;          // bridgepool/retry_budget.h

// How a failed call counts for its target's circuit breaker: kFailure when the target failed as
// a service (connection, communication, timeout, initialization, resource, health_check,
// system), kIgnored otherwise: a Python exception from user code, an invalid request, a lost
// session or a circuit_open refusal are not the target's fault and must not open its breaker.
// Pure; any thread.
BreakerOutcome breaker_outcome_of(const Error& error);

// The default retry decision of with_retry: the error's strategy allows a retry
// (Error::retryable()) and `attempt` (attempts made so far) is below what that strategy allows
// (attempt_budget: immediate_retry 3, backoff_retry 5). Pure; any thread.
bool default_should_retry(const Error& error, std::uint32_t attempt);

struct RetryOptions {
  std::string name;  // for events ("pool:default", ...)
  // Each attempt acquires a permit first and records its outcome (breaker_outcome_of); when the
  // breaker refuses, the loop stops with its circuit_open error. Must outlive the call.
  CircuitBreaker* breaker = nullptr;
  // Whether to retry after `error` from attempt number `attempt`; default default_should_retry.
  // max_attempts and the deadline apply on top of it.
  std::function<bool(const Error&, std::uint32_t attempt)> should_retry;
  const Clock* clock = nullptr;  // default SteadyClock::instance()
  UniformRandom random;          // default: a thread_local std::mt19937_64
  // Called once per retry with a delay > 0 (never with 0); default: sleep on `clock`.
  std::function<void(std::chrono::microseconds)> sleep;
  // Emits "retry.attempt", "retry.gave_up" and "retry.recovered" (see with_retry). Null: none.
  std::shared_ptr<EventBus> events;
  // A retry runs only if the budget grants it (try_begin_retry, just after the backoff sleep);
  // the grant is returned (end_retry) when that retry's attempt ends. Null: no budget. The caller
  // keeps the request in flight (RetryBudget::RequestScope) around with_retry. Must outlive the
  // call.
  RetryBudget* budget = nullptr;
};

namespace internal {
// One attempt of with_retry: runs the operation and returns nullptr on success, or its error
// (owned by the caller and valid until the next call; the loop may modify it).
using RetryAttempt = std::function<Error*(std::uint32_t attempt)>;
// The loop behind with_retry: nullopt once an attempt succeeded, else the error to return.
std::optional<Error> run_retry_loop(const RetryPolicy& policy, const RetryAttempt& attempt,
                                    const RetryOptions& options);
}  // namespace internal

// Runs op(attempt) (attempt = 1, 2, ...) until it succeeds, the error may not be retried
// (should_retry), max_attempts are used up, the deadline would pass, the breaker refuses or the
// budget denies a retry. Returns the successful result, or the error that ended the loop: the
// last attempt's, or the breaker's circuit_open error (its cause naming the last attempt's
// error). The returned Error has context.attempt set to the attempts made (a refused attempt
// included), and context.cause extended with why the loop stopped when a retry was otherwise
// possible ("gave up after 5 attempts", "no time left for a retry before the deadline", "retry
// budget exhausted ..."). Events, when options.events is set:
//   "retry.attempt" when a retry is about to run (after its delay and budget grant):
//     measurements attempt (the one about to run, 2 for the first retry), delay_us, elapsed_us;
//     metadata name, category (of the error being retried), strategy (its recovery strategy),
//     backoff (the policy's backoff strategy).
//   "retry.gave_up" when it returns an error, except after a first attempt whose error may not be
//     retried (that is not a retry story): measurements attempts, elapsed_us; metadata name,
//     category, strategy, reason ("not_retryable", "attempts_exhausted", "deadline",
//     "circuit_open", "budget_exhausted").
//   "retry.recovered" when an attempt after the first succeeds: measurements attempts,
//     elapsed_us; metadata name.
// max_attempts 0 reads as 1. `op` must not throw. Runs on (and sleeps on) the calling thread.
template <typename T>
Result<T> with_retry(const RetryPolicy& policy,
                     const std::function<Result<T>(std::uint32_t attempt)>& op,
                     const RetryOptions& options = {}) {
  std::optional<Result<T>> last;  // Result<T> need not be default-constructible
  std::optional<Error> failure = internal::run_retry_loop(
      policy,
      [&last, &op](std::uint32_t attempt) -> Error* {
        last.emplace(op(attempt));
        return last->has_value() ? nullptr : &last->error();
      },
      options);
  if (!failure) return std::move(*last);
  return tl::unexpected<Error>(std::move(*failure));
}

}  // namespace bridgepool
