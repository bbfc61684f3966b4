// Retry, property-based: backoff_delay against the bounds promised in include/bridgepool/retry.h
// for arbitrary bases, caps, retry numbers, previous delays and random draws (huge values
// included, where naive arithmetic would overflow), the deterministic strategies against a
// 128-bit model, and with_retry against max_attempts and the deadline, with a ManualClock whose
// fake sleep advances time.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include "bridgepool/clock.h"
#include "bridgepool/retry.h"

namespace bridgepool {
namespace {

using std::chrono::microseconds;
using Rep = microseconds::rep;
constexpr Rep kRepMax = std::numeric_limits<Rep>::max();

// Durations: mostly realistic (up to 100 s), sometimes anywhere up to the Rep maximum.
rc::Gen<Rep> gen_duration() {
  return rc::gen::weightedOneOf<Rep>({
      {1, rc::gen::just<Rep>(0)},
      {6, rc::gen::inRange<Rep>(0, 100'000'001)},
      {2, rc::gen::inRange<Rep>(0, kRepMax)},
      {1, rc::gen::element<Rep>(1, kRepMax / 3, kRepMax / 3 + 1, kRepMax - 1, kRepMax)},
  });
}

rc::Gen<std::uint32_t> gen_retry() {
  return rc::gen::weightedOneOf<std::uint32_t>({
      {6, rc::gen::inRange<std::uint32_t>(0, 100)},
      {2, rc::gen::inRange<std::uint32_t>(0, std::numeric_limits<std::uint32_t>::max())},
      {1, rc::gen::element<std::uint32_t>(62, 63, 64, 92, 93, 94,
                                          std::numeric_limits<std::uint32_t>::max())},
  });
}

// Draws in [0, 1), with the ends and out-of-range values the source might produce.
rc::Gen<double> gen_uniform() {
  return rc::gen::weightedOneOf<double>({
      {8, rc::gen::map(rc::gen::inRange<int>(0, 1'000'000), [](int x) { return x / 1e6; })},
      {1, rc::gen::element<double>(0.0, std::nextafter(1.0, 0.0), 1.0)},
      {1,
       rc::gen::element<double>(-0.5, 1.5, std::nan(""), std::numeric_limits<double>::infinity())},
  });
}

rc::Gen<BackoffStrategy> gen_jitter_or_deterministic() {
  return rc::gen::element(BackoffStrategy::kLinear, BackoffStrategy::kExponential,
                          BackoffStrategy::kFibonacci, BackoffStrategy::kDecorrelatedJitter,
                          BackoffStrategy::kFullJitter);
}

rc::Gen<BackoffStrategy> gen_deterministic() {
  return rc::gen::element(BackoffStrategy::kLinear, BackoffStrategy::kExponential,
                          BackoffStrategy::kFibonacci);
}

RetryPolicy policy_of(BackoffStrategy strategy, Rep base, Rep cap) {
  RetryPolicy p;
  p.strategy = strategy;
  p.base_delay = microseconds(base);
  p.max_delay = microseconds(cap);
  return p;
}

UniformRandom constant(double u) {
  return [u] { return u; };
}

// The deterministic strategies in 128-bit arithmetic, no overflow possible below the cap.
Rep model_delay(BackoffStrategy strategy, Rep base, Rep cap, std::uint32_t n) {
  if (n == 0) return 0;
  using Wide = unsigned __int128;
  const Wide b = static_cast<Wide>(base);
  const Wide c = static_cast<Wide>(cap);
  Wide factor = 0;
  switch (strategy) {
    case BackoffStrategy::kLinear:
      factor = n;
      break;
    case BackoffStrategy::kExponential:
      if (base == 0) return 0;
      if (n - 1 >= 64) return cap;
      factor = Wide{1} << (n - 1);
      break;
    case BackoffStrategy::kFibonacci: {
      if (base == 0) return 0;
      Wide previous = 0, current = 1;
      for (std::uint32_t i = 1; i < n; ++i) {
        const Wide next = previous + current;
        previous = current;
        current = next;
        if (current > c) return cap;  // fib >= 1 per base >= 1: already past the cap
      }
      factor = current;
      break;
    }
    default:
      return -1;
  }
  return static_cast<Rep>(std::min(b * factor, c));
}

// The full-jitter ceiling min(cap, base·2^(n-1)).
Rep exponential_ceiling(Rep base, Rep cap, std::uint32_t n) {
  return model_delay(BackoffStrategy::kExponential, base, cap, n);
}

RC_GTEST_PROP(BackoffDelayProperty, EveryStrategyIsWithinZeroAndTheCap, ()) {
  const auto strategy = *rc::gen::element(
      BackoffStrategy::kLinear, BackoffStrategy::kExponential, BackoffStrategy::kFibonacci,
      BackoffStrategy::kDecorrelatedJitter, BackoffStrategy::kFullJitter, BackoffStrategy::kCustom);
  const Rep base = *gen_duration();
  const Rep cap = *gen_duration();
  const std::uint32_t retry = *gen_retry();
  const Rep previous = *rc::gen::oneOf(gen_duration(), rc::gen::inRange<Rep>(-1'000'000, 0));
  const double u = *gen_uniform();
  const Rep custom_result = *rc::gen::arbitrary<Rep>();
  RetryPolicy p = policy_of(strategy, base, cap);
  p.custom = [custom_result](std::uint32_t, microseconds) { return microseconds(custom_result); };
  const microseconds d = backoff_delay(p, retry, microseconds(previous), constant(u));
  RC_ASSERT(d.count() >= 0);
  RC_ASSERT(d.count() <= cap);
  if (retry == 0) RC_ASSERT(d.count() == 0);
}

RC_GTEST_PROP(BackoffDelayProperty, DecorrelatedIsBetweenBaseAndThreePreviousCapped, ()) {
  const Rep base = *gen_duration();
  const Rep cap = *gen_duration();
  const Rep previous = *gen_duration();
  const std::uint32_t retry = *rc::gen::inRange<std::uint32_t>(1, 1'000);
  const double u = *gen_uniform();
  const RetryPolicy p = policy_of(BackoffStrategy::kDecorrelatedJitter, base, cap);
  const Rep d = backoff_delay(p, retry, microseconds(previous), constant(u)).count();
  RC_ASSERT(d >= std::min(base, cap));
  RC_ASSERT(d <= cap);
  if (previous >= base && previous <= kRepMax / 3) RC_ASSERT(d <= 3 * previous);
  if (previous == 0 && base <= kRepMax / 3) RC_ASSERT(d <= 3 * base);
}

RC_GTEST_PROP(BackoffDelayProperty, FullJitterIsBelowTheExponentialCeiling, ()) {
  const Rep base = *gen_duration();
  const Rep cap = *gen_duration();
  const std::uint32_t retry = *gen_retry();
  const double u = *gen_uniform();
  const RetryPolicy p = policy_of(BackoffStrategy::kFullJitter, base, cap);
  const Rep d = backoff_delay(p, retry, microseconds(0), constant(u)).count();
  RC_ASSERT(d >= 0);
  RC_ASSERT(d <= exponential_ceiling(base, cap, retry));
  // A draw of 0 is no delay; a draw strictly inside [0, 1) stays strictly below a positive
  // ceiling of realistic size (doubles are exact there).
  if (u == 0.0) RC_ASSERT(d == 0);
  const Rep ceiling = exponential_ceiling(base, cap, retry);
  if (u >= 0.0 && u < 1.0 && ceiling > 0 && ceiling < (Rep{1} << 52)) RC_ASSERT(d < ceiling);
}

RC_GTEST_PROP(BackoffDelayProperty, DeterministicStrategiesMatchTheWideModel, ()) {
  const auto strategy = *gen_deterministic();
  const Rep base = *gen_duration();
  const Rep cap = *gen_duration();
  const std::uint32_t retry = *gen_retry();
  const RetryPolicy p = policy_of(strategy, base, cap);
  RC_ASSERT(backoff_delay(p, retry, microseconds(0), nullptr).count() ==
            model_delay(strategy, base, cap, retry));
}

RC_GTEST_PROP(BackoffDelayProperty, DeterministicStrategiesNeverDecrease, ()) {
  const auto strategy = *gen_deterministic();
  const Rep base = *gen_duration();
  const Rep cap = *gen_duration();
  const std::uint32_t retry =
      *rc::gen::inRange<std::uint32_t>(0, std::numeric_limits<std::uint32_t>::max());
  const Rep previous = *gen_duration();  // ignored by these strategies
  const RetryPolicy p = policy_of(strategy, base, cap);
  const auto now = backoff_delay(p, retry, microseconds(previous), nullptr);
  const auto next = backoff_delay(p, retry + 1, microseconds(0), nullptr);
  RC_ASSERT(now <= next);
}

RC_GTEST_PROP(BackoffDelayProperty, OnlyJitterStrategiesDrawAndExactlyOnce, ()) {
  const auto strategy = *gen_jitter_or_deterministic();
  const std::uint32_t retry = *rc::gen::inRange<std::uint32_t>(1, 200);
  const RetryPolicy p = policy_of(strategy, *gen_duration(), *gen_duration());
  int draws = 0;
  UniformRandom counting = [&draws] {
    ++draws;
    return 0.5;
  };
  backoff_delay(p, retry, microseconds(*gen_duration()), counting);
  const bool jitter =
      strategy == BackoffStrategy::kDecorrelatedJitter || strategy == BackoffStrategy::kFullJitter;
  RC_ASSERT(draws == (jitter ? 1 : 0));
}

// with_retry against an operation that fails `failures` times, then succeeds, each attempt taking
// `attempt_cost`: it makes min(failures + 1, max_attempts) attempts when no deadline intervenes,
// never more than max_attempts, never sleeps beyond the cap, and never sleeps past the deadline.
RC_GTEST_PROP(WithRetryProperty, NeverExceedsMaxAttemptsNorSleepsPastTheDeadline, ()) {
  const auto strategy = *gen_jitter_or_deterministic();
  const Rep base = *rc::gen::inRange<Rep>(0, 50'000);
  const Rep cap = *rc::gen::inRange<Rep>(base, 2'000'000);
  RetryPolicy p = policy_of(strategy, base, cap);
  p.max_attempts = *rc::gen::inRange<std::uint32_t>(1, 30);
  const bool has_deadline = *rc::gen::arbitrary<bool>();
  if (has_deadline) p.deadline = microseconds(*rc::gen::inRange<Rep>(1, 5'000'000));
  const std::uint32_t failures = *rc::gen::inRange<std::uint32_t>(0, 40);
  const Rep attempt_cost = *rc::gen::inRange<Rep>(0, 20'000);
  const double u = *gen_uniform();

  ManualClock clock;
  const TimePoint start = clock.now();
  std::vector<microseconds> sleeps;
  std::vector<TimePoint> sleep_ends;
  RetryOptions o;
  o.clock = &clock;
  o.random = constant(u);
  o.should_retry = [](const Error&, std::uint32_t) { return true; };
  o.sleep = [&](microseconds d) {
    sleeps.push_back(d);
    clock.advance(d);
    sleep_ends.push_back(clock.now());
  };
  std::uint32_t calls = 0;
  auto r = with_retry<std::uint32_t>(
      p,
      [&](std::uint32_t attempt) -> Result<std::uint32_t> {
        ++calls;
        RC_ASSERT(attempt == calls);
        clock.advance(microseconds(attempt_cost));
        if (attempt <= failures) return tl::unexpected(Error(ErrorCategory::kTimeout, "slow"));
        return attempt;
      },
      o);

  RC_ASSERT(calls >= 1u);
  RC_ASSERT(calls <= p.max_attempts);
  RC_ASSERT(sleeps.size() <= calls - 1);
  for (const microseconds d : sleeps) {
    RC_ASSERT(d.count() > 0);
    RC_ASSERT(d.count() <= cap);
  }
  if (p.deadline) {
    for (const TimePoint end : sleep_ends) RC_ASSERT(end - start <= *p.deadline);
  } else {
    RC_ASSERT(calls == std::min(failures + 1, p.max_attempts));
  }
  if (r) {
    RC_ASSERT(*r == calls);
    RC_ASSERT(calls == failures + 1);
  } else {
    RC_ASSERT(r.error().category == ErrorCategory::kTimeout);
    RC_ASSERT(r.error().context.attempt == static_cast<int>(calls));
  }
}

// A deadline stops only a retry that would overrun it: when with_retry gives up early with time
// left, the next delay would indeed have ended past the deadline.
RC_GTEST_PROP(WithRetryProperty, StopsEarlyOnlyWhenTheNextDelayWouldOverrunTheDeadline, ()) {
  const auto strategy = *gen_deterministic();
  const Rep base = *rc::gen::inRange<Rep>(1, 50'000);
  const Rep cap = *rc::gen::inRange<Rep>(base, 2'000'000);
  RetryPolicy p = policy_of(strategy, base, cap);
  p.max_attempts = *rc::gen::inRange<std::uint32_t>(2, 30);
  p.deadline = microseconds(*rc::gen::inRange<Rep>(1, 5'000'000));
  ManualClock clock;
  const TimePoint start = clock.now();
  RetryOptions o;
  o.clock = &clock;
  o.should_retry = [](const Error&, std::uint32_t) { return true; };
  o.sleep = [&clock](microseconds d) { clock.advance(d); };
  std::uint32_t calls = 0;
  auto r = with_retry<int>(
      p,
      [&](std::uint32_t) -> Result<int> {
        ++calls;
        return tl::unexpected(Error(ErrorCategory::kConnection, "gone"));
      },
      o);
  RC_ASSERT(!r);
  if (calls < p.max_attempts) {
    const auto next = backoff_delay(p, calls, microseconds(0), nullptr);
    RC_ASSERT((clock.now() - start) + next > *p.deadline);
  }
}

}  // namespace
}  // namespace bridgepool
