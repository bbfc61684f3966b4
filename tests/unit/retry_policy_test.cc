// Retry: the delay tables of every strategy (exact values, the cap, saturation), the jitter
// ranges at the ends of the random source, validation naming each bad field, and with_retry
// driven by a ManualClock whose fake sleep advances time: attempts, deadline, events, the
// circuit breaker and the retry budget. No test sleeps for real.
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "bridgepool/circuit_breaker.h"
#include "bridgepool/clock.h"
#include "bridgepool/retry.h"
#include "bridgepool/retry_budget.h"

namespace bridgepool {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

RetryPolicy policy_of(BackoffStrategy strategy, milliseconds base = milliseconds(10),
                      milliseconds cap = milliseconds(1'000)) {
  RetryPolicy p;
  p.strategy = strategy;
  p.base_delay = base;
  p.max_delay = cap;
  return p;
}

UniformRandom constant_random(double value) {
  return [value] { return value; };
}

// The delays of retries 1..n in milliseconds (deterministic strategies: previous unused).
std::vector<std::int64_t> delays_ms(const RetryPolicy& policy, std::uint32_t n) {
  std::vector<std::int64_t> out;
  for (std::uint32_t retry = 1; retry <= n; ++retry) {
    out.push_back(std::chrono::duration_cast<milliseconds>(
                      backoff_delay(policy, retry, microseconds(0), nullptr))
                      .count());
  }
  return out;
}

Error failure(ErrorCategory category, RecoveryStrategy strategy, std::string message = "boom") {
  Error e(category, std::move(message));
  e.strategy = strategy;
  return e;
}

Error retryable_connection() {
  return failure(ErrorCategory::kConnection, RecoveryStrategy::kBackoffRetry, "worker w1 exited");
}

// Options whose sleep advances `clock` and records each delay.
struct FakeTime {
  ManualClock clock;
  std::vector<microseconds> sleeps;

  RetryOptions options(std::string name = "test") {
    RetryOptions o;
    o.name = std::move(name);
    o.clock = &clock;
    o.random = constant_random(0.5);
    o.sleep = [this](microseconds d) {
      sleeps.push_back(d);
      clock.advance(d);
    };
    return o;
  }
};

struct EventLog {
  std::shared_ptr<EventBus> bus = std::make_shared<EventBus>();
  std::mutex mu;
  std::vector<Event> events;

  EventLog() {
    bus->attach("retry.", [this](const Event& e) {
      std::lock_guard lock(mu);
      events.push_back(e);
    });
  }
};

// ---- names ----

TEST(BackoffStrategyName, RoundTripsEveryStrategy) {
  const std::vector<std::pair<BackoffStrategy, std::string>> all = {
      {BackoffStrategy::kLinear, "linear"},
      {BackoffStrategy::kExponential, "exponential"},
      {BackoffStrategy::kFibonacci, "fibonacci"},
      {BackoffStrategy::kDecorrelatedJitter, "decorrelated_jitter"},
      {BackoffStrategy::kFullJitter, "full_jitter"},
      {BackoffStrategy::kCustom, "custom"},
  };
  for (const auto& [strategy, name] : all) {
    EXPECT_EQ(backoff_strategy_name(strategy), name);
    EXPECT_EQ(backoff_strategy_from_name(name), strategy);
  }
  EXPECT_EQ(backoff_strategy_from_name("Exponential"), std::nullopt);
  EXPECT_EQ(backoff_strategy_from_name(""), std::nullopt);
}

// ---- deterministic strategies ----

TEST(BackoffDelay, LinearIsRetryTimesBase) {
  EXPECT_EQ(delays_ms(policy_of(BackoffStrategy::kLinear), 5),
            (std::vector<std::int64_t>{10, 20, 30, 40, 50}));
}

TEST(BackoffDelay, ExponentialDoublesFromBaseUpToTheCap) {
  // 10 · 2^7 = 1280 > 1000: the 8th retry is capped.
  EXPECT_EQ(delays_ms(policy_of(BackoffStrategy::kExponential), 9),
            (std::vector<std::int64_t>{10, 20, 40, 80, 160, 320, 640, 1000, 1000}));
}

TEST(BackoffDelay, FibonacciStartsWithTwoBases) {
  EXPECT_EQ(delays_ms(policy_of(BackoffStrategy::kFibonacci), 10),
            (std::vector<std::int64_t>{10, 10, 20, 30, 50, 80, 130, 210, 340, 550}));
  // fib(16) = 987, fib(17) = 1597: the 17th retry is capped at 1 s.
  const RetryPolicy p = policy_of(BackoffStrategy::kFibonacci, milliseconds(1));
  EXPECT_EQ(backoff_delay(p, 16, microseconds(0), nullptr), milliseconds(987));
  EXPECT_EQ(backoff_delay(p, 17, microseconds(0), nullptr), milliseconds(1'000));
}

TEST(BackoffDelay, LinearIsCapped) {
  EXPECT_EQ(backoff_delay(policy_of(BackoffStrategy::kLinear), 101, microseconds(0), nullptr),
            milliseconds(1'000));
}

TEST(BackoffDelay, HugeRetryNumbersSaturateAtTheCapInsteadOfOverflowing) {
  for (auto strategy :
       {BackoffStrategy::kLinear, BackoffStrategy::kExponential, BackoffStrategy::kFibonacci}) {
    RetryPolicy p = policy_of(strategy, milliseconds(1'000), milliseconds(1'000));
    p.max_delay = microseconds::max();
    for (std::uint32_t retry : {63u, 64u, 93u, 1'000u, std::numeric_limits<std::uint32_t>::max()}) {
      const microseconds d = backoff_delay(p, retry, microseconds(0), nullptr);
      EXPECT_GT(d, microseconds(0)) << backoff_strategy_name(strategy) << " " << retry;
      EXPECT_LE(d, microseconds::max());
    }
    EXPECT_EQ(
        backoff_delay(p, std::numeric_limits<std::uint32_t>::max(), microseconds(0), nullptr),
        strategy == BackoffStrategy::kLinear
            ? microseconds(std::int64_t{1'000'000} * std::numeric_limits<std::uint32_t>::max())
            : microseconds::max());
  }
}

TEST(BackoffDelay, RetryZeroIsNoDelayAndDrawsNothing) {
  int draws = 0;
  UniformRandom counting = [&draws] {
    ++draws;
    return 0.5;
  };
  for (auto strategy : {BackoffStrategy::kLinear, BackoffStrategy::kFullJitter,
                        BackoffStrategy::kDecorrelatedJitter}) {
    EXPECT_EQ(backoff_delay(policy_of(strategy), 0, milliseconds(50), counting), microseconds(0));
  }
  EXPECT_EQ(draws, 0);
}

TEST(BackoffDelay, OnlyJitterStrategiesDrawOnceEach) {
  int draws = 0;
  UniformRandom counting = [&draws] {
    ++draws;
    return 0.25;
  };
  for (auto strategy :
       {BackoffStrategy::kLinear, BackoffStrategy::kExponential, BackoffStrategy::kFibonacci}) {
    backoff_delay(policy_of(strategy), 3, milliseconds(20), counting);
  }
  EXPECT_EQ(draws, 0);
  backoff_delay(policy_of(BackoffStrategy::kFullJitter), 3, milliseconds(20), counting);
  EXPECT_EQ(draws, 1);
  backoff_delay(policy_of(BackoffStrategy::kDecorrelatedJitter), 3, milliseconds(20), counting);
  EXPECT_EQ(draws, 2);
}

TEST(BackoffDelay, ZeroBaseMeansImmediateRetries) {
  for (auto strategy :
       {BackoffStrategy::kLinear, BackoffStrategy::kExponential, BackoffStrategy::kFibonacci,
        BackoffStrategy::kFullJitter, BackoffStrategy::kDecorrelatedJitter}) {
    EXPECT_EQ(backoff_delay(policy_of(strategy, milliseconds(0)), 4, microseconds(0),
                            constant_random(0.9)),
              microseconds(0))
        << backoff_strategy_name(strategy);
  }
}

TEST(BackoffDelay, NegativeDurationsReadAsZero) {
  RetryPolicy p = policy_of(BackoffStrategy::kExponential);
  p.base_delay = microseconds(-5);
  EXPECT_EQ(backoff_delay(p, 3, microseconds(0), nullptr), microseconds(0));
  p.base_delay = milliseconds(10);
  p.max_delay = microseconds(-1);
  EXPECT_EQ(backoff_delay(p, 3, microseconds(0), nullptr), microseconds(0));
}

// ---- full jitter ----

TEST(BackoffDelay, FullJitterScalesTheExponentialCeiling) {
  const RetryPolicy p = policy_of(BackoffStrategy::kFullJitter);
  // Retry 3: ceiling 40 ms.
  EXPECT_EQ(backoff_delay(p, 3, microseconds(0), constant_random(0.0)), microseconds(0));
  EXPECT_EQ(backoff_delay(p, 3, microseconds(0), constant_random(0.5)), milliseconds(20));
  EXPECT_EQ(backoff_delay(p, 3, microseconds(0), constant_random(std::nextafter(1.0, 0.0))),
            microseconds(39'999));
  // Retry 9: ceiling min(1000, 2560) = 1000 ms.
  EXPECT_EQ(backoff_delay(p, 9, microseconds(0), constant_random(0.5)), milliseconds(500));
}

TEST(BackoffDelay, OutOfRangeRandomValuesAreClamped) {
  const RetryPolicy p = policy_of(BackoffStrategy::kFullJitter);
  EXPECT_EQ(backoff_delay(p, 3, microseconds(0), constant_random(-3.0)), microseconds(0));
  EXPECT_EQ(backoff_delay(p, 3, microseconds(0), constant_random(std::nan(""))), microseconds(0));
  EXPECT_EQ(backoff_delay(p, 3, microseconds(0), constant_random(7.0)), milliseconds(40));
  EXPECT_EQ(backoff_delay(p, 3, microseconds(0),
                          constant_random(std::numeric_limits<double>::infinity())),
            milliseconds(40));
}

// ---- decorrelated jitter ----

TEST(BackoffDelay, DecorrelatedDrawsBetweenBaseAndThreePrevious) {
  const RetryPolicy p = policy_of(BackoffStrategy::kDecorrelatedJitter);
  // previous 40 ms: uniform(10, 120).
  EXPECT_EQ(backoff_delay(p, 2, milliseconds(40), constant_random(0.0)), milliseconds(10));
  EXPECT_EQ(backoff_delay(p, 2, milliseconds(40), constant_random(0.5)), milliseconds(65));
  EXPECT_EQ(backoff_delay(p, 2, milliseconds(40), constant_random(1.0)), milliseconds(120));
}

TEST(BackoffDelay, DecorrelatedReadsNoPreviousAsBase) {
  const RetryPolicy p = policy_of(BackoffStrategy::kDecorrelatedJitter);
  // uniform(10, 30).
  EXPECT_EQ(backoff_delay(p, 1, microseconds(0), constant_random(0.0)), milliseconds(10));
  EXPECT_EQ(backoff_delay(p, 1, microseconds(0), constant_random(0.5)), milliseconds(20));
}

TEST(BackoffDelay, DecorrelatedNeverGoesBelowBaseEvenAfterATinyPrevious) {
  const RetryPolicy p = policy_of(BackoffStrategy::kDecorrelatedJitter);
  // 3 · 1 ms < base: the range collapses to [base, base].
  EXPECT_EQ(backoff_delay(p, 2, milliseconds(1), constant_random(0.9)), milliseconds(10));
}

TEST(BackoffDelay, DecorrelatedNeverExceedsTheCap) {
  const RetryPolicy p = policy_of(BackoffStrategy::kDecorrelatedJitter);
  EXPECT_EQ(backoff_delay(p, 5, milliseconds(900), constant_random(0.9)), milliseconds(1'000));
  EXPECT_EQ(backoff_delay(p, 5, microseconds::max(), constant_random(1.0)), milliseconds(1'000));
  // A base above the cap (validate() rejects it) still yields the cap.
  const RetryPolicy inverted =
      policy_of(BackoffStrategy::kDecorrelatedJitter, milliseconds(50), milliseconds(20));
  EXPECT_EQ(backoff_delay(inverted, 1, microseconds(0), constant_random(0.0)), milliseconds(20));
}

TEST(BackoffDelay, DecorrelatedSequenceFromASeededSourceStaysInBounds) {
  const RetryPolicy p =
      policy_of(BackoffStrategy::kDecorrelatedJitter, milliseconds(2), milliseconds(200));
  std::uint64_t state = 12345;
  UniformRandom lcg = [&state] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<double>(state >> 11) / 9007199254740992.0;
  };
  microseconds previous{0};
  for (std::uint32_t retry = 1; retry <= 200; ++retry) {
    const microseconds d = backoff_delay(p, retry, previous, lcg);
    EXPECT_GE(d, milliseconds(2));
    EXPECT_LE(d, milliseconds(200));
    if (previous >= milliseconds(2)) {
      EXPECT_LE(d, 3 * previous);
    }
    previous = d;
  }
}

// ---- custom ----

TEST(BackoffDelay, CustomIsCalledWithRetryAndPreviousAndClamped) {
  RetryPolicy p = policy_of(BackoffStrategy::kCustom);
  std::vector<std::pair<std::uint32_t, microseconds>> calls;
  p.custom = [&calls](std::uint32_t retry, microseconds previous) {
    calls.emplace_back(retry, previous);
    if (retry == 1) return microseconds(-50);
    if (retry == 2) return microseconds(1234);
    return microseconds(std::chrono::hours(1));
  };
  EXPECT_EQ(backoff_delay(p, 1, microseconds(7), nullptr), microseconds(0));
  EXPECT_EQ(backoff_delay(p, 2, microseconds(8), nullptr), microseconds(1234));
  EXPECT_EQ(backoff_delay(p, 3, microseconds(9), nullptr), milliseconds(1'000));
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0], std::make_pair(1u, microseconds(7)));
  EXPECT_EQ(calls[2], std::make_pair(3u, microseconds(9)));
}

TEST(BackoffDelay, CustomWithoutAFunctionFallsBackToBase) {
  EXPECT_EQ(backoff_delay(policy_of(BackoffStrategy::kCustom), 4, microseconds(0), nullptr),
            milliseconds(10));
}

// ---- validation ----

void expect_invalid(const RetryPolicy& p, const std::string& field) {
  auto r = p.validate();
  ASSERT_FALSE(r) << field;
  EXPECT_EQ(r.error().category, ErrorCategory::kInvalidRequest);
  EXPECT_EQ(r.error().context.operation, "retry_policy");
  EXPECT_NE(r.error().message.find(field), std::string::npos) << r.error().message;
}

TEST(RetryPolicyValidate, DefaultsAndNoneAreValid) {
  EXPECT_TRUE(RetryPolicy{}.validate());
  const RetryPolicy none = RetryPolicy::none();
  EXPECT_TRUE(none.validate());
  EXPECT_EQ(none.max_attempts, 1u);
}

TEST(RetryPolicyValidate, NamesTheBadField) {
  RetryPolicy p;
  p.max_attempts = 0;
  expect_invalid(p, "max_attempts");

  p = {};
  p.base_delay = microseconds(-1);
  expect_invalid(p, "base_delay");

  p = {};
  p.max_delay = microseconds(-1);
  p.base_delay = microseconds(0);
  expect_invalid(p, "max_delay");

  p = {};
  p.base_delay = milliseconds(20);
  p.max_delay = milliseconds(10);
  expect_invalid(p, "base_delay (20000us) must not exceed max_delay (10000us)");

  p = {};
  p.deadline = microseconds(0);
  expect_invalid(p, "deadline");

  p = {};
  p.strategy = BackoffStrategy::kCustom;
  expect_invalid(p, "custom");
  p.custom = [](std::uint32_t, microseconds) { return microseconds(1); };
  EXPECT_TRUE(p.validate());
}

TEST(RetryPolicyValidate, ZeroDelaysAreValid) {
  RetryPolicy p;
  p.base_delay = microseconds(0);
  p.max_delay = microseconds(0);
  EXPECT_TRUE(p.validate());
}

// ---- breaker outcome and default decision ----

TEST(BreakerOutcomeOf, ServiceFailuresCountAndCallerFaultsAreIgnored) {
  const std::vector<std::pair<ErrorCategory, BreakerOutcome>> table = {
      {ErrorCategory::kInitialization, BreakerOutcome::kFailure},
      {ErrorCategory::kConnection, BreakerOutcome::kFailure},
      {ErrorCategory::kCommunication, BreakerOutcome::kFailure},
      {ErrorCategory::kTimeout, BreakerOutcome::kFailure},
      {ErrorCategory::kResource, BreakerOutcome::kFailure},
      {ErrorCategory::kHealthCheck, BreakerOutcome::kFailure},
      {ErrorCategory::kSystem, BreakerOutcome::kFailure},
      {ErrorCategory::kSession, BreakerOutcome::kIgnored},
      {ErrorCategory::kPython, BreakerOutcome::kIgnored},
      {ErrorCategory::kCircuitOpen, BreakerOutcome::kIgnored},
      {ErrorCategory::kInvalidRequest, BreakerOutcome::kIgnored},
  };
  for (const auto& [category, outcome] : table) {
    EXPECT_EQ(breaker_outcome_of(Error(category, "x")), outcome) << category_name(category);
  }
}

TEST(DefaultShouldRetry, FollowsTheStrategyAndItsAttemptBudget) {
  const Error immediate = failure(ErrorCategory::kConnection, RecoveryStrategy::kImmediateRetry);
  EXPECT_TRUE(default_should_retry(immediate, 1));
  EXPECT_TRUE(default_should_retry(immediate, 2));
  EXPECT_FALSE(default_should_retry(immediate, 3));
  const Error backoff = retryable_connection();
  EXPECT_TRUE(default_should_retry(backoff, 4));
  EXPECT_FALSE(default_should_retry(backoff, 5));
  for (auto s :
       {RecoveryStrategy::kAbandon, RecoveryStrategy::kFailover, RecoveryStrategy::kCircuitBreak}) {
    EXPECT_FALSE(default_should_retry(failure(ErrorCategory::kConnection, s), 1));
  }
  EXPECT_FALSE(default_should_retry(Error(ErrorCategory::kConnection, "unclassified"), 1));
}

// ---- with_retry ----

TEST(WithRetry, FirstSuccessReturnsAtOnceWithoutSleepOrEvents) {
  FakeTime time;
  EventLog log;
  RetryOptions o = time.options();
  o.events = log.bus;
  std::vector<std::uint32_t> attempts;
  auto r = with_retry<int>(
      RetryPolicy{},
      [&](std::uint32_t attempt) -> Result<int> {
        attempts.push_back(attempt);
        return 42;
      },
      o);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, 42);
  EXPECT_EQ(attempts, std::vector<std::uint32_t>{1});
  EXPECT_TRUE(time.sleeps.empty());
  EXPECT_TRUE(log.events.empty());
}

TEST(WithRetry, RetriesARetryableErrorWithTheBackoffDelaysUntilSuccess) {
  FakeTime time;
  std::vector<std::uint32_t> attempts;
  RetryPolicy p = policy_of(BackoffStrategy::kExponential);
  p.max_attempts = 5;
  auto r = with_retry<std::string>(
      p,
      [&](std::uint32_t attempt) -> Result<std::string> {
        attempts.push_back(attempt);
        if (attempt < 3) return tl::unexpected(retryable_connection());
        return std::string("ok");
      },
      time.options());
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, "ok");
  EXPECT_EQ(attempts, (std::vector<std::uint32_t>{1, 2, 3}));
  EXPECT_EQ(time.sleeps, (std::vector<microseconds>{milliseconds(10), milliseconds(20)}));
}

TEST(WithRetry, NonRetryableErrorIsReturnedAfterOneAttempt) {
  FakeTime time;
  int calls = 0;
  auto r = with_retry<int>(
      RetryPolicy{},
      [&](std::uint32_t) -> Result<int> {
        ++calls;
        return tl::unexpected(
            failure(ErrorCategory::kPython, RecoveryStrategy::kAbandon, "ValueError: bad"));
      },
      time.options());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().category, ErrorCategory::kPython);
  EXPECT_EQ(r.error().message, "ValueError: bad");
  EXPECT_EQ(r.error().context.attempt, 1);
  EXPECT_EQ(r.error().context.cause, "");
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(time.sleeps.empty());
}

TEST(WithRetry, StopsAfterMaxAttemptsWithTheLastError) {
  FakeTime time;
  RetryPolicy p = policy_of(BackoffStrategy::kLinear);
  p.max_attempts = 4;
  auto r = with_retry<int>(
      p,
      [&](std::uint32_t attempt) -> Result<int> {
        return tl::unexpected(failure(ErrorCategory::kTimeout, RecoveryStrategy::kBackoffRetry,
                                      "timeout " + std::to_string(attempt)));
      },
      time.options());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().category, ErrorCategory::kTimeout);
  EXPECT_EQ(r.error().message, "timeout 4");
  EXPECT_EQ(r.error().context.attempt, 4);
  EXPECT_EQ(r.error().context.cause, "gave up after 4 attempts");
  EXPECT_EQ(time.sleeps,
            (std::vector<microseconds>{milliseconds(10), milliseconds(20), milliseconds(30)}));
}

TEST(WithRetry, DefaultDecisionHonoursTheStrategysAttemptBudget) {
  FakeTime time;
  RetryPolicy p;
  p.max_attempts = 10;
  int calls = 0;
  auto r = with_retry<int>(
      p,
      [&](std::uint32_t) -> Result<int> {
        ++calls;
        return tl::unexpected(
            failure(ErrorCategory::kConnection, RecoveryStrategy::kImmediateRetry));
      },
      time.options());
  ASSERT_FALSE(r);
  EXPECT_EQ(calls, 3);  // immediate_retry allows 3 attempts
  EXPECT_EQ(r.error().context.attempt, 3);
}

TEST(WithRetry, CustomShouldRetryReplacesTheDefault) {
  FakeTime time;
  RetryOptions o = time.options();
  std::vector<std::uint32_t> asked;
  o.should_retry = [&asked](const Error& e, std::uint32_t attempt) {
    asked.push_back(attempt);
    return e.category == ErrorCategory::kPython;  // retry even an unclassified Python error
  };
  RetryPolicy p;
  p.max_attempts = 6;
  int calls = 0;
  auto r = with_retry<int>(
      p,
      [&](std::uint32_t attempt) -> Result<int> {
        ++calls;
        if (attempt < 6) return tl::unexpected(Error(ErrorCategory::kPython, "flaky"));
        return 6;
      },
      o);
  ASSERT_TRUE(r);
  EXPECT_EQ(calls, 6);  // beyond the 3 of immediate_retry: max_attempts is the only limit
  EXPECT_EQ(asked, (std::vector<std::uint32_t>{1, 2, 3, 4, 5}));
}

TEST(WithRetry, NeverSleepsPastTheDeadline) {
  FakeTime time;
  RetryPolicy p = policy_of(BackoffStrategy::kExponential);
  p.max_attempts = 10;
  p.deadline = milliseconds(50);
  int calls = 0;
  auto r = with_retry<int>(
      p,
      [&](std::uint32_t) -> Result<int> {
        ++calls;
        return tl::unexpected(retryable_connection());
      },
      time.options());
  ASSERT_FALSE(r);
  // Fails at 0 (sleep 10), at 10 (sleep 20), at 30: 30 + 40 > 50, stop.
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(time.sleeps, (std::vector<microseconds>{milliseconds(10), milliseconds(20)}));
  EXPECT_EQ(r.error().context.attempt, 3);
  EXPECT_EQ(r.error().context.cause, "no time left for a retry before the deadline");
}

TEST(WithRetry, TimeSpentInAttemptsCountsTowardsTheDeadline) {
  FakeTime time;
  RetryPolicy p = policy_of(BackoffStrategy::kLinear);
  p.max_attempts = 10;
  p.deadline = milliseconds(100);
  int calls = 0;
  auto r = with_retry<int>(
      p,
      [&](std::uint32_t) -> Result<int> {
        ++calls;
        time.clock.advance(milliseconds(25));  // each attempt takes 25 ms
        return tl::unexpected(retryable_connection());
      },
      time.options());
  ASSERT_FALSE(r);
  // Fails at 25 (sleep 10 -> 35), at 60: 60 + 20 = 80 <= 100 (sleep -> 80), at 105: stop.
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(time.sleeps, (std::vector<microseconds>{milliseconds(10), milliseconds(20)}));
}

TEST(WithRetry, ADelayEndingExactlyAtTheDeadlineIsAllowed) {
  FakeTime time;
  RetryPolicy p = policy_of(BackoffStrategy::kLinear);
  p.deadline = milliseconds(10);
  auto r = with_retry<int>(
      p,
      [&](std::uint32_t attempt) -> Result<int> {
        if (attempt == 1) return tl::unexpected(retryable_connection());
        return 2;
      },
      time.options());
  ASSERT_TRUE(r);
  EXPECT_EQ(time.sleeps, std::vector<microseconds>{milliseconds(10)});
}

TEST(WithRetry, EmitsOneEventPerRetryAndOneWhenGivingUp) {
  FakeTime time;
  EventLog log;
  RetryOptions o = time.options("pool:default");
  o.events = log.bus;
  RetryPolicy p = policy_of(BackoffStrategy::kFibonacci);
  p.max_attempts = 3;
  auto r = with_retry<int>(
      p, [&](std::uint32_t) -> Result<int> { return tl::unexpected(retryable_connection()); }, o);
  ASSERT_FALSE(r);
  ASSERT_EQ(log.events.size(), 3u);
  for (int i = 0; i < 2; ++i) {
    const Event& e = log.events[i];
    EXPECT_EQ(e.name, "retry.attempt");
    EXPECT_EQ(e.measurements.at("attempt"), i + 2);
    EXPECT_EQ(e.measurements.at("delay_us"), 10'000);  // fib(1) = fib(2) = 1
    EXPECT_EQ(e.metadata.at("name"), "pool:default");
    EXPECT_EQ(e.metadata.at("category"), "connection");
    EXPECT_EQ(e.metadata.at("strategy"), "backoff_retry");
    EXPECT_EQ(e.metadata.at("backoff"), "fibonacci");
  }
  // Emitted when the retry is about to run: after its 10 ms delay.
  EXPECT_EQ(log.events[0].measurements.at("elapsed_us"), 10'000);
  EXPECT_EQ(log.events[1].measurements.at("elapsed_us"), 20'000);
  const Event& last = log.events[2];
  EXPECT_EQ(last.name, "retry.gave_up");
  EXPECT_EQ(last.measurements.at("attempts"), 3);
  EXPECT_EQ(last.measurements.at("elapsed_us"), 20'000);
  EXPECT_EQ(last.metadata.at("reason"), "attempts_exhausted");
  EXPECT_EQ(last.time, time.clock.wall_now());
}

TEST(WithRetry, GaveUpEventSaysNotRetryable) {
  FakeTime time;
  EventLog log;
  RetryOptions o = time.options();
  o.events = log.bus;
  auto r = with_retry<int>(
      RetryPolicy{},
      [&](std::uint32_t attempt) -> Result<int> {
        if (attempt == 1) return tl::unexpected(retryable_connection());
        return tl::unexpected(Error(ErrorCategory::kInvalidRequest, "bad"));
      },
      o);
  ASSERT_FALSE(r);
  ASSERT_EQ(log.events.size(), 2u);
  EXPECT_EQ(log.events[0].name, "retry.attempt");
  EXPECT_EQ(log.events[1].name, "retry.gave_up");
  EXPECT_EQ(log.events[1].metadata.at("reason"), "not_retryable");
  EXPECT_EQ(log.events[1].metadata.at("category"), "invalid_request");
}

TEST(WithRetry, AFirstAttemptThatMayNotBeRetriedIsNotARetryStory) {
  FakeTime time;
  EventLog log;
  RetryOptions o = time.options();
  o.events = log.bus;
  auto r = with_retry<int>(
      RetryPolicy{},
      [&](std::uint32_t) -> Result<int> {
        return tl::unexpected(Error(ErrorCategory::kInvalidRequest, "bad"));
      },
      o);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().context.attempt, 1);
  EXPECT_TRUE(log.events.empty());
}

TEST(WithRetry, ASuccessAfterAFailureEmitsRecovered) {
  FakeTime time;
  EventLog log;
  RetryOptions o = time.options("op");
  o.events = log.bus;
  auto r = with_retry<int>(
      RetryPolicy{},
      [&](std::uint32_t attempt) -> Result<int> {
        if (attempt < 3) return tl::unexpected(retryable_connection());
        return 3;
      },
      o);
  ASSERT_TRUE(r);
  ASSERT_EQ(log.events.size(), 3u);
  EXPECT_EQ(log.events[2].name, "retry.recovered");
  EXPECT_EQ(log.events[2].measurements.at("attempts"), 3);
  EXPECT_EQ(log.events[2].metadata.at("name"), "op");
}

TEST(WithRetry, WorksForVoidAndMoveOnlyResults) {
  FakeTime time;
  auto v = with_retry<void>(
      RetryPolicy{},
      [&](std::uint32_t attempt) -> Result<void> {
        if (attempt == 1) return tl::unexpected(retryable_connection());
        return {};
      },
      time.options());
  EXPECT_TRUE(v);
  auto p = with_retry<std::unique_ptr<int>>(
      RetryPolicy{},
      [&](std::uint32_t attempt) -> Result<std::unique_ptr<int>> {
        if (attempt == 1) return tl::unexpected(retryable_connection());
        return std::make_unique<int>(7);
      },
      time.options());
  ASSERT_TRUE(p);
  EXPECT_EQ(**p, 7);
}

TEST(WithRetry, MaxAttemptsZeroStillRunsOnce) {
  FakeTime time;
  RetryPolicy p;
  p.max_attempts = 0;
  int calls = 0;
  auto r = with_retry<int>(
      p,
      [&](std::uint32_t) -> Result<int> {
        ++calls;
        return tl::unexpected(retryable_connection());
      },
      time.options());
  ASSERT_FALSE(r);
  EXPECT_EQ(calls, 1);
}

TEST(WithRetry, NoneNeverRetries) {
  FakeTime time;
  int calls = 0;
  auto r = with_retry<int>(
      RetryPolicy::none(),
      [&](std::uint32_t) -> Result<int> {
        ++calls;
        return tl::unexpected(retryable_connection());
      },
      time.options());
  ASSERT_FALSE(r);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(r.error().context.cause, "gave up after 1 attempts");
}

TEST(WithRetry, DefaultClockSleepAndRandomWorkWithZeroDelays) {
  RetryPolicy p = policy_of(BackoffStrategy::kDecorrelatedJitter, milliseconds(0), milliseconds(0));
  int calls = 0;
  auto r = with_retry<int>(p, [&](std::uint32_t attempt) -> Result<int> {
    ++calls;
    if (attempt < 3) return tl::unexpected(retryable_connection());
    return 3;
  });
  ASSERT_TRUE(r);
  EXPECT_EQ(calls, 3);
}

// ---- with_retry and the circuit breaker ----

CircuitBreakerConfig opens_after(std::uint32_t failures) {
  CircuitBreakerConfig c;
  c.window = BreakerWindow::kConsecutive;
  c.failure_threshold = failures;
  c.open_timeout = std::chrono::seconds(60);
  return c;
}

TEST(WithRetryBreaker, SuccessIsRecorded) {
  FakeTime time;
  CircuitBreaker breaker("target", opens_after(2), time.clock);
  RetryOptions o = time.options();
  o.breaker = &breaker;
  auto r = with_retry<int>(
      RetryPolicy{},
      [&](std::uint32_t attempt) -> Result<int> {
        if (attempt == 1) return tl::unexpected(retryable_connection());
        return 1;
      },
      o);
  ASSERT_TRUE(r);
  const BreakerCounters c = breaker.snapshot().counters;
  EXPECT_EQ(c.admitted, 2u);
  EXPECT_EQ(c.failures, 1u);
  EXPECT_EQ(c.successes, 1u);
  EXPECT_EQ(breaker.state(), CircuitState::kClosed);
}

TEST(WithRetryBreaker, StopsWithTheCircuitOpenErrorOnceTheBreakerOpens) {
  FakeTime time;
  CircuitBreaker breaker("target", opens_after(2), time.clock);
  RetryOptions o = time.options();
  o.breaker = &breaker;
  RetryPolicy p;
  p.max_attempts = 5;
  int calls = 0;
  auto r = with_retry<int>(
      p,
      [&](std::uint32_t) -> Result<int> {
        ++calls;
        return tl::unexpected(retryable_connection());
      },
      o);
  ASSERT_FALSE(r);
  EXPECT_EQ(calls, 2);  // the 2nd failure opened it; the 3rd attempt was refused
  EXPECT_EQ(r.error().category, ErrorCategory::kCircuitOpen);
  EXPECT_EQ(r.error().context.attempt, 3);
  EXPECT_NE(r.error().context.cause.find("after attempt 2 failed: connection: worker w1 exited"),
            std::string::npos)
      << r.error().context.cause;
  EXPECT_EQ(breaker.snapshot().counters.rejected, 1u);
}

TEST(WithRetryBreaker, AnOpenBreakerRefusesTheFirstAttemptWithoutCallingTheOperation) {
  FakeTime time;
  CircuitBreaker breaker("target", opens_after(2), time.clock);
  breaker.force_open();
  EventLog log;
  RetryOptions o = time.options();
  o.breaker = &breaker;
  o.events = log.bus;
  int calls = 0;
  auto r = with_retry<int>(
      RetryPolicy{},
      [&](std::uint32_t) -> Result<int> {
        ++calls;
        return 1;
      },
      o);
  ASSERT_FALSE(r);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(r.error().category, ErrorCategory::kCircuitOpen);
  EXPECT_EQ(r.error().context.attempt, 1);
  ASSERT_EQ(log.events.size(), 1u);
  EXPECT_EQ(log.events[0].metadata.at("reason"), "circuit_open");
}

TEST(WithRetryBreaker, UserCodeErrorsDoNotOpenTheBreaker) {
  FakeTime time;
  CircuitBreaker breaker("target", opens_after(2), time.clock);
  RetryOptions o = time.options();
  o.breaker = &breaker;
  for (int call = 0; call < 5; ++call) {
    auto r = with_retry<int>(
        RetryPolicy{},
        [&](std::uint32_t) -> Result<int> {
          return tl::unexpected(
              failure(ErrorCategory::kPython, RecoveryStrategy::kAbandon, "ValueError"));
        },
        o);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().category, ErrorCategory::kPython);
  }
  EXPECT_EQ(breaker.state(), CircuitState::kClosed);
  EXPECT_EQ(breaker.snapshot().counters.ignored, 5u);
}

// ---- with_retry and the retry budget ----

TEST(WithRetryBudget, ARetryRunsOnlyWhenTheBudgetGrantsIt) {
  FakeTime time;
  RetryBudget budget(0.0, 1);  // one retry in flight at most
  RetryBudget::RequestScope request(budget);
  RetryOptions o = time.options();
  o.budget = &budget;
  // Asked after an attempt's grant was returned and before the next retry asks for one: after
  // attempt 2, another request takes the only slot.
  o.should_retry = [&budget](const Error&, std::uint32_t attempt) {
    if (attempt == 2) {
      EXPECT_TRUE(budget.try_begin_retry());
    }
    return true;
  };
  std::vector<std::uint32_t> retries_in_flight_seen;
  RetryPolicy p;
  p.max_attempts = 4;
  auto r = with_retry<int>(
      p,
      [&](std::uint32_t) -> Result<int> {
        retries_in_flight_seen.push_back(budget.counters().retries_in_flight);
        return tl::unexpected(retryable_connection());
      },
      o);
  ASSERT_FALSE(r);
  // Attempt 1 holds no grant, attempt 2 holds one; then the slot is taken elsewhere.
  EXPECT_EQ(retries_in_flight_seen, (std::vector<std::uint32_t>{0, 1}));
  EXPECT_EQ(r.error().context.attempt, 2);
  EXPECT_EQ(r.error().context.cause, "retry budget exhausted (too many retries in flight)");
  const RetryBudget::Counters c = budget.counters();
  EXPECT_EQ(c.granted, 2u);  // ours for attempt 2, and the other request's
  EXPECT_EQ(c.denied, 1u);
  EXPECT_EQ(c.retries_in_flight, 1u);  // only the other request's; ours was returned
}

TEST(WithRetryBudget, GrantsAreReturnedWhetherTheRetrySucceedsOrIsRefused) {
  FakeTime time;
  RetryBudget budget;
  RetryBudget::RequestScope request(budget);
  CircuitBreaker breaker("target", opens_after(1), time.clock);
  RetryOptions o = time.options();
  o.budget = &budget;
  auto ok = with_retry<int>(
      RetryPolicy{},
      [&](std::uint32_t attempt) -> Result<int> {
        if (attempt == 1) return tl::unexpected(retryable_connection());
        return 1;
      },
      o);
  ASSERT_TRUE(ok);
  EXPECT_EQ(budget.counters().retries_in_flight, 0u);
  // The breaker opens on the first failure: the granted retry is refused, its grant returned.
  o.breaker = &breaker;
  auto refused = with_retry<int>(
      RetryPolicy{},
      [&](std::uint32_t) -> Result<int> { return tl::unexpected(retryable_connection()); }, o);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().category, ErrorCategory::kCircuitOpen);
  EXPECT_EQ(budget.counters().retries_in_flight, 0u);
  EXPECT_EQ(budget.counters().granted, 2u);
}

}  // namespace
}  // namespace bridgepool
