// Retry: backoff arithmetic (saturating, capped), policy validation, and with_retry's entry into
// the one retry engine (resilience/retry_engine.h). The table of delays and the deadline rule are
// in include/bridgepool/retry.h.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "bridgepool/circuit_breaker.h"
#include "bridgepool/retry.h"
#include "bridgepool/retry_budget.h"
#include "resilience/retry_engine.h"

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

std::optional<Error> run_retry_loop(const RetryPolicy& policy, const RetryAttempt& attempt,
                                    const RetryOptions& options) {
  RetryHooks hooks;
  hooks.name = options.name;
  hooks.clock = options.clock;
  hooks.random = options.random;
  hooks.sleep = options.sleep;
  hooks.events = options.events.get();
  hooks.breaker = options.breaker;
  hooks.budget = options.budget;
  hooks.should_retry = options.should_retry;
  return run_with_retries(policy, hooks, [&attempt](std::uint32_t n, const std::string&) {
    AttemptReport report;
    report.error = attempt(n);
    return report;
  });
}

}  // namespace internal
}  // namespace bridgepool
