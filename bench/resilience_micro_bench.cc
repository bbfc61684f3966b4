// Micro-benchmarks of the resilience layer's per-call decisions, in ns per call (google-benchmark):
// backoff_delay for each strategy, the retry budget's admission of a retry, with_retry's overhead
// around an operation that succeeds at once, and (where their headers exist) the circuit
// breaker's acquire + record and error classification. These run on every pool call or every
// failure, so each should stay far below the ~20 µs of a pipe round trip to a worker (SPEC §9).
//
//   resilience_micro_bench --benchmark_min_time=0.05     (a quick look)
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <benchmark/benchmark.h>

#include "bridgepool/retry.h"
#include "bridgepool/retry_budget.h"

namespace bridgepool {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

// A cheap uniform source (xorshift64*), so the benchmark measures the delay arithmetic rather
// than std::mt19937_64 and std::uniform_real_distribution.
UniformRandom fast_uniform() {
  return [state = std::uint64_t{0x9E3779B97F4A7C15}]() mutable {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return static_cast<double>((state * 0x2545F4914F6CDD1DULL) >> 11) * 0x1.0p-53;
  };
}

// The pool's default shape (2 ms .. 200 ms), retries 1..8 in turn, each delay fed back as
// `previous` as a retry loop would.
void BM_BackoffDelay(benchmark::State& state) {
  RetryPolicy policy;
  policy.strategy = static_cast<BackoffStrategy>(state.range(0));
  policy.base_delay = milliseconds(2);
  policy.max_delay = milliseconds(200);
  policy.custom = [](std::uint32_t retry, microseconds previous) {
    return previous + microseconds(retry * 1'000);
  };
  state.SetLabel(std::string(backoff_strategy_name(policy.strategy)));
  const UniformRandom random = fast_uniform();
  microseconds previous{0};
  std::uint32_t retry = 0;
  for (auto _ : state) {
    retry = retry % 8 + 1;
    previous = backoff_delay(policy, retry, previous, random);
    benchmark::DoNotOptimize(previous);
  }
}
BENCHMARK(BM_BackoffDelay)
    ->Arg(static_cast<int>(BackoffStrategy::kLinear))
    ->Arg(static_cast<int>(BackoffStrategy::kExponential))
    ->Arg(static_cast<int>(BackoffStrategy::kFibonacci))
    ->Arg(static_cast<int>(BackoffStrategy::kDecorrelatedJitter))
    ->Arg(static_cast<int>(BackoffStrategy::kFullJitter))
    ->Arg(static_cast<int>(BackoffStrategy::kCustom));

// The default thread_local std::mt19937_64 source (an empty UniformRandom), for comparison.
void BM_BackoffDelayDefaultRandom(benchmark::State& state) {
  RetryPolicy policy;
  policy.strategy = BackoffStrategy::kDecorrelatedJitter;
  policy.base_delay = milliseconds(2);
  policy.max_delay = milliseconds(200);
  microseconds previous{0};
  for (auto _ : state) {
    previous = backoff_delay(policy, 2, previous, nullptr);
    benchmark::DoNotOptimize(previous);
  }
}
BENCHMARK(BM_BackoffDelayDefaultRandom);

// try_begin_retry + end_retry with 40 requests in flight (limit 8), on 1 and 2 threads sharing
// one budget (the contended case: both threads CAS the same counter).
void BM_RetryBudgetBeginEnd(benchmark::State& state) {
  static std::unique_ptr<RetryBudget> budget;  // one per run, shared by its threads
  if (state.thread_index() == 0) {
    budget = std::make_unique<RetryBudget>(0.2, 3);
    for (int i = 0; i < 40; ++i) budget->begin_request();
  }
  // google-benchmark starts the timed loops of all threads together, after thread 0's setup.
  for (auto _ : state) {
    if (budget->try_begin_retry()) budget->end_retry();
  }
  if (state.thread_index() == 0) {
    state.counters["denied"] = static_cast<double>(budget->counters().denied);
  }
}
BENCHMARK(BM_RetryBudgetBeginEnd)->Threads(1)->Threads(2);

// with_retry around an operation that succeeds at once: the cost of the wrapper itself (two
// std::function calls, an optional, a clock read).
void BM_WithRetryFirstSuccess(benchmark::State& state) {
  const RetryPolicy policy;
  const std::function<Result<int>(std::uint32_t)> op = [](std::uint32_t attempt) -> Result<int> {
    return static_cast<int>(attempt);
  };
  const RetryOptions options;
  for (auto _ : state) {
    auto r = with_retry<int>(policy, op, options);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_WithRetryFirstSuccess);

void BM_BreakerOutcomeOf(benchmark::State& state) {
  const Error error(ErrorCategory::kConnection, "worker w1 exited");
  for (auto _ : state) {
    benchmark::DoNotOptimize(breaker_outcome_of(error));
  }
}
BENCHMARK(BM_BreakerOutcomeOf);

}  // namespace
}  // namespace bridgepool

// ---------------------------------------------------------------------------------------------
// Circuit breaker decisions, error classification, the quarantine's common path, and everything
// the pool adds to a successful call (quarantine check + breaker acquire/record + budget scope).
// ---------------------------------------------------------------------------------------------
#include "bridgepool/circuit_breaker.h"
#include "resilience/error_classifier.h"
#include "resilience/poison_quarantine.h"

namespace bridgepool {
namespace {

// One breaker per window mode, built before any benchmark thread runs (threads share it).
CircuitBreaker& breaker_for(BreakerWindow window) {
  static CircuitBreaker consecutive("bench-consecutive", [] {
    CircuitBreakerConfig c;
    c.window = BreakerWindow::kConsecutive;
    return c;
  }());
  static CircuitBreaker count("bench-count", [] {
    CircuitBreakerConfig c;
    c.window = BreakerWindow::kCount;
    return c;
  }());
  static CircuitBreaker time("bench-time", [] {
    CircuitBreakerConfig c;
    c.window = BreakerWindow::kTime;
    return c;
  }());
  switch (window) {
    case BreakerWindow::kConsecutive:
      return consecutive;
    case BreakerWindow::kCount:
      return count;
    case BreakerWindow::kTime:
      return time;
  }
  return consecutive;
}

// acquire() + record(kSuccess) on a closed breaker: one short mutex section each.
void BM_BreakerAcquireRecord(benchmark::State& state) {
  auto window = static_cast<BreakerWindow>(state.range(0));
  CircuitBreaker& breaker = breaker_for(window);
  state.SetLabel(std::string(breaker_window_name(window)));
  for (auto _ : state) {
    auto permit = breaker.acquire();
    if (permit) breaker.record(*permit, BreakerOutcome::kSuccess);
    benchmark::DoNotOptimize(permit);
  }
}
BENCHMARK(BM_BreakerAcquireRecord)
    ->Arg(static_cast<int>(BreakerWindow::kConsecutive))
    ->Arg(static_cast<int>(BreakerWindow::kCount))
    ->Arg(static_cast<int>(BreakerWindow::kTime))
    ->Threads(1)
    ->Threads(2);

void BM_ClassifyError(benchmark::State& state) {
  Error error(ErrorCategory::kConnection, "worker w1 exited during request");
  const ClassifyInput input{2, false, true, true};
  for (auto _ : state) {
    classify_error(error, input);
    benchmark::DoNotOptimize(error.strategy);
  }
}
BENCHMARK(BM_ClassifyError);

// What run_resilient (src/pool/pool_resilience.cc) adds to a call that succeeds at once with
// nothing quarantined: wants_fingerprint(), the budget's request scope, breaker acquire + record,
// and (1 call in 16) the fingerprint + record_survived.
void BM_SuccessfulCallDecisions(benchmark::State& state) {
  static PoisonQuarantine quarantine;
  static RetryBudget budget;
  CircuitBreaker& breaker = breaker_for(BreakerWindow::kTime);
  const nlohmann::json args = {{"text", "hello"}, {"n", 42}};
  for (auto _ : state) {
    bool report = quarantine.wants_fingerprint();
    RetryBudget::RequestScope scope(budget);
    auto permit = breaker.acquire();
    if (permit) breaker.record(*permit, BreakerOutcome::kSuccess);
    if (report) quarantine.record_survived(PoisonQuarantine::fingerprint("echo", args));
    benchmark::DoNotOptimize(permit);
  }
}
BENCHMARK(BM_SuccessfulCallDecisions)->Threads(1)->Threads(2);

}  // namespace
}  // namespace bridgepool
BENCHMARK_MAIN();
