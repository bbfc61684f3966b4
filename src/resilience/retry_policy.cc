// Retry: backoff arithmetic (saturating, capped), policy validation and the retry loop behind
// with_retry. The table of delays and the deadline rule are in include/bridgepool/retry.h.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <thread>

#include "bridgepool/circuit_breaker.h"
#include "bridgepool/retry.h"
#include "resilience/retry_budget.h"

namespace bridgepool {
namespace {

using std::chrono::microseconds;
using Rep = microseconds::rep;  // signed 64-bit; every value below is >= 0

constexpr std::array<std::pair<BackoffStrategy, std::string_view>, 6> kStrategyNames = {{
    {BackoffStrategy::kLinear, "linear"},
    {BackoffStrategy::kExponential, "exponential"},
    {BackoffStrategy::kFibonacci, "fibonacci"},
    {BackoffStrategy::kDecorrelatedJitter, "decorrelated_jitter"},
    {BackoffStrategy::kFullJitter, "full_jitter"},
    {BackoffStrategy::kCustom, "custom"},
}};

// One draw in [0, 1]: NaN and negatives read as 0, values above 1 as 1.
double draw(const UniformRandom& random) {
  const double u = random ? random() : thread_local_uniform();
  if (!(u >= 0.0)) return 0.0;
  return std::min(u, 1.0);
}

Rep non_negative(microseconds d) { return std::max<Rep>(d.count(), 0); }

// a·b, or `cap` when a·b > cap; a, b, cap >= 0. a > cap / b (integer division) is exactly
// a·b > cap, decided without computing a product that could overflow.
Rep mul_capped(Rep a, Rep b, Rep cap) {
  if (a == 0 || b == 0) return 0;
  if (a > cap / b) return cap;
  return a * b;
}

// fib(n)·base with F1 = F2 = 1, or cap once it passes the cap. The sequence is walked only while
// it stays <= cap / base, at most 92 steps (F93 > 2^63), and in unsigned arithmetic, where the
// sum of two values <= 2^63 - 1 cannot overflow.
Rep fibonacci_delay(Rep base, Rep cap, std::uint32_t n) {
  if (base == 0) return 0;
  const std::uint64_t limit = static_cast<std::uint64_t>(cap / base);
  std::uint64_t previous = 0;  // F0
  std::uint64_t current = 1;   // F1
  for (std::uint32_t i = 1; i < n; ++i) {
    const std::uint64_t next = previous + current;
    previous = current;
    current = next;
    if (current > limit) return cap;
  }
  return mul_capped(static_cast<Rep>(current), base, cap);
}

// base·2^(n-1), or cap once it passes the cap. 2^62 is the largest power of two a Rep holds; a
// larger multiplier with base >= 1 is above any cap.
Rep exponential_delay(Rep base, Rep cap, std::uint32_t n) {
  if (base == 0) return 0;
  if (n - 1 > 62) return cap;
  return mul_capped(base, Rep{1} << (n - 1), cap);
}

// floor(u·span) for u in [0, 1], never above span. (double)span may round up (2^63 - 1 reads as
// 2^63), so the comparison is made in doubles first and the result clamped again.
Rep scale(Rep span, double u) {
  const double scaled = u * static_cast<double>(span);
  if (scaled >= static_cast<double>(span)) return span;
  return std::min(static_cast<Rep>(scaled), span);
}

// min(cap, uniform(base, max(base, 3·previous))), previous 0 reading as base. Base 10 ms,
// previous 40 ms, u = 0.5: 10 + 0.5·(120 - 10) = 65 ms.
Rep decorrelated_delay(Rep base, Rep cap, Rep previous, double u) {
  const Rep from = previous > 0 ? previous : base;
  const Rep high = std::max(base, mul_capped(from, 3, std::numeric_limits<Rep>::max()));
  return std::min(cap, base + scale(high - base, u));
}

Rep custom_delay(const RetryPolicy& policy, std::uint32_t retry, microseconds previous, Rep cap) {
  if (!policy.custom) return std::min(non_negative(policy.base_delay), cap);
  return std::clamp<Rep>(policy.custom(retry, previous).count(), 0, cap);
}

tl::unexpected<Error> invalid(std::string message) {
  Error e(ErrorCategory::kInvalidRequest, "retry policy: " + std::move(message));
  e.context.operation = "retry_policy";
  return tl::unexpected<Error>(std::move(e));
}

}  // namespace

double thread_local_uniform() {
  thread_local std::mt19937_64 engine{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(engine);
}

std::string_view backoff_strategy_name(BackoffStrategy strategy) {
  for (const auto& [s, name] : kStrategyNames) {
    if (s == strategy) return name;
  }
  return "unknown";
}

std::optional<BackoffStrategy> backoff_strategy_from_name(std::string_view name) {
  for (const auto& [s, n] : kStrategyNames) {
    if (n == name) return s;
  }
  return std::nullopt;
}

RetryPolicy RetryPolicy::none() {
  RetryPolicy p;
  p.max_attempts = 1;
  return p;
}

Result<void> RetryPolicy::validate() const {
  if (max_attempts < 1) return invalid("max_attempts must be at least 1 (got 0)");
  if (base_delay.count() < 0) {
    return invalid(fmt::format("base_delay must not be negative (got {}us)", base_delay.count()));
  }
  if (max_delay.count() < 0) {
    return invalid(fmt::format("max_delay must not be negative (got {}us)", max_delay.count()));
  }
  if (base_delay > max_delay) {
    return invalid(fmt::format("base_delay ({}us) must not exceed max_delay ({}us)",
                               base_delay.count(), max_delay.count()));
  }
  if (deadline && deadline->count() <= 0) {
    return invalid(fmt::format("deadline must be positive (got {}us)", deadline->count()));
  }
  if (strategy == BackoffStrategy::kCustom && !custom) {
    return invalid("strategy custom needs a custom function");
  }
  return {};
}

std::chrono::microseconds backoff_delay(const RetryPolicy& policy, std::uint32_t retry,
                                        std::chrono::microseconds previous,
                                        const UniformRandom& random) {
  if (retry == 0) return microseconds(0);
  const Rep base = non_negative(policy.base_delay);
  const Rep cap = non_negative(policy.max_delay);
  switch (policy.strategy) {
    case BackoffStrategy::kLinear:
      return microseconds(mul_capped(base, retry, cap));
    case BackoffStrategy::kExponential:
      return microseconds(exponential_delay(base, cap, retry));
    case BackoffStrategy::kFibonacci:
      return microseconds(fibonacci_delay(base, cap, retry));
    case BackoffStrategy::kFullJitter:
      return microseconds(scale(exponential_delay(base, cap, retry), draw(random)));
    case BackoffStrategy::kDecorrelatedJitter:
      return microseconds(decorrelated_delay(base, cap, non_negative(previous), draw(random)));
    case BackoffStrategy::kCustom:
      return microseconds(custom_delay(policy, retry, previous, cap));
  }
  return microseconds(0);
}

BreakerOutcome breaker_outcome_of(const Error& error) {
  switch (error.category) {
    case ErrorCategory::kConnection:
    case ErrorCategory::kCommunication:
    case ErrorCategory::kTimeout:
    case ErrorCategory::kInitialization:
    case ErrorCategory::kResource:
    case ErrorCategory::kHealthCheck:
    case ErrorCategory::kSystem:
      return BreakerOutcome::kFailure;
    case ErrorCategory::kPython:
    case ErrorCategory::kInvalidRequest:
    case ErrorCategory::kSession:
    case ErrorCategory::kCircuitOpen:
      return BreakerOutcome::kIgnored;
  }
  return BreakerOutcome::kIgnored;
}

bool default_should_retry(const Error& error, std::uint32_t attempt) {
  return error.retryable() && attempt < attempt_budget(error.strategy);
}

namespace internal {
namespace {

void append_cause(Error& e, std::string_view note) {
  e.context.cause =
      e.context.cause.empty() ? std::string(note) : fmt::format("{}; {}", e.context.cause, note);
}

// One run of with_retry: the state that lives across attempts, and the decisions between them.
class RetryLoop {
 public:
  RetryLoop(const RetryPolicy& policy, const RetryOptions& options)
      : policy_(policy),
        options_(options),
        clock_(options.clock != nullptr ? *options.clock : SteadyClock::instance()),
        start_(clock_.now()),
        max_attempts_(std::max<std::uint32_t>(policy.max_attempts, 1)) {}

  std::optional<Error> run(const RetryAttempt& attempt_fn);

 private:
  // What follows a failed attempt: a retry after `delay` (reason empty; a budget grant, if any,
  // is held), or the end of the loop for `reason`, with `note` for the error's cause.
  struct Next {
    std::string_view reason;
    std::string note;
    microseconds delay{0};
  };
  Next next_after(const Error& error, std::uint32_t attempt);
  std::optional<Error> refused(Error refusal, std::uint32_t attempt, const Error* last);
  Error gave_up(Error& error, const Next& next);
  microseconds elapsed() const { return std::chrono::ceil<microseconds>(clock_.now() - start_); }
  bool emitting() const { return options_.events != nullptr && options_.events->has_handlers(); }
  void emit(std::string name, std::map<std::string, double> measurements, const Error& error,
            std::string_view reason);

  const RetryPolicy& policy_;
  const RetryOptions& options_;
  const Clock& clock_;
  const TimePoint start_;
  const std::uint32_t max_attempts_;
  microseconds previous_{0};    // the delay before the last retry
  bool holding_grant_ = false;  // a budget grant taken for the attempt about to run
};

std::optional<Error> RetryLoop::run(const RetryAttempt& attempt_fn) {
  const Error* last = nullptr;  // the previous attempt's error, still owned by the caller
  for (std::uint32_t attempt = 1;; ++attempt) {
    CircuitBreaker::Permit permit;
    if (options_.breaker != nullptr) {
      auto admitted = options_.breaker->acquire();
      if (!admitted) return refused(std::move(admitted.error()), attempt, last);
      permit = *admitted;
    }
    Error* error = attempt_fn(attempt);
    if (holding_grant_) options_.budget->end_retry();
    holding_grant_ = false;
    if (options_.breaker != nullptr) {
      options_.breaker->record(
          permit, error != nullptr ? breaker_outcome_of(*error) : BreakerOutcome::kSuccess);
    }
    if (error == nullptr) return std::nullopt;
    error->context.attempt = static_cast<int>(attempt);
    Next next = next_after(*error, attempt);
    if (!next.reason.empty()) return gave_up(*error, next);
    if (emitting()) {
      emit("retry.attempt",
           {{"attempt", double(attempt + 1)},
            {"delay_us", double(next.delay.count())},
            {"elapsed_us", double(elapsed().count())}},
           *error, {});
    }
    if (next.delay.count() > 0) {
      if (options_.sleep) {
        options_.sleep(next.delay);
      } else {
        std::this_thread::sleep_for(next.delay);
      }
    }
    previous_ = next.delay;
    holding_grant_ = options_.budget != nullptr;
    last = error;
  }
}

RetryLoop::Next RetryLoop::next_after(const Error& error, std::uint32_t attempt) {
  // The attempt limit: max_attempts, and with the default decision also what the error's
  // strategy allows (immediate_retry 3, backoff_retry 5), as in the pool's own loop.
  std::uint32_t limit = max_attempts_;
  if (options_.should_retry) {
    if (!options_.should_retry(error, attempt)) return {"not_retryable", {}};
  } else {
    if (!error.retryable()) return {"not_retryable", {}};
    limit = std::min(limit, attempt_budget(error.strategy));
  }
  if (attempt >= limit) {
    return {"attempts_exhausted", fmt::format("gave up after {} attempts", attempt)};
  }
  // immediate_retry means "try again now" (error.h): only backoff_retry waits. A custom
  // should_retry decides *whether*; the policy's backoff still paces what it allows.
  const bool immediate =
      !options_.should_retry && error.strategy == RecoveryStrategy::kImmediateRetry;
  const microseconds delay =
      immediate ? microseconds(0) : backoff_delay(policy_, attempt, previous_, options_.random);
  // delay > deadline - elapsed, rather than elapsed + delay > deadline: a delay near the Rep
  // maximum (a huge max_delay) must not overflow the sum.
  if (policy_.deadline && delay > std::max(*policy_.deadline, microseconds(0)) - elapsed()) {
    return {"deadline", "no time left for a retry before the deadline"};
  }
  if (options_.budget != nullptr && !options_.budget->try_begin_retry()) {
    return {"budget_exhausted", "retry budget exhausted (too many retries in flight)"};
  }
  return {{}, {}, delay};
}

std::optional<Error> RetryLoop::refused(Error refusal, std::uint32_t attempt, const Error* last) {
  if (holding_grant_) options_.budget->end_retry();  // the retry it was granted for never ran
  holding_grant_ = false;
  refusal.context.attempt = static_cast<int>(attempt);
  if (last != nullptr) {
    append_cause(refusal,
                 fmt::format("after attempt {} failed: {}", attempt - 1, last->to_string()));
  }
  if (emitting()) {
    emit("retry.gave_up",
         {{"attempts", double(attempt)}, {"elapsed_us", double(elapsed().count())}}, refusal,
         "circuit_open");
  }
  return refusal;
}

Error RetryLoop::gave_up(Error& error, const Next& next) {
  if (!next.note.empty()) append_cause(error, next.note);
  if (emitting()) {
    emit("retry.gave_up",
         {{"attempts", double(error.context.attempt)}, {"elapsed_us", double(elapsed().count())}},
         error, next.reason);
  }
  return std::move(error);
}

void RetryLoop::emit(std::string name, std::map<std::string, double> measurements,
                     const Error& error, std::string_view reason) {
  Event event;
  event.name = std::move(name);
  event.measurements = std::move(measurements);
  event.metadata = {{"name", options_.name},
                    {"category", std::string(category_name(error.category))},
                    {"strategy", std::string(strategy_name(error.strategy))}};
  if (reason.empty()) {
    event.metadata["backoff"] = std::string(backoff_strategy_name(policy_.strategy));
  } else {
    event.metadata["reason"] = std::string(reason);
  }
  event.time = clock_.wall_now();
  options_.events->emit(event);
}

}  // namespace

std::optional<Error> run_retry_loop(const RetryPolicy& policy, const RetryAttempt& attempt,
                                    const RetryOptions& options) {
  return RetryLoop(policy, options).run(attempt);
}

}  // namespace internal
}  // namespace bridgepool
