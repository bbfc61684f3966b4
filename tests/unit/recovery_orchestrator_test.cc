// RecoveryOrchestrator: the pure pieces (backoff delays, the step decision) as tables, then the
// orchestrator with scripted retry/failover functions: each strategy, delays seen through
// recorded timestamps (1 ms bases), time limits against a call that blocks on a gate, refusal,
// shutdown in the middle of a long backoff, counters, events, and exactly-once delivery when
// 1000 calls finish right around their time limit. Real waits stay in the tens of milliseconds.
#include "bridgepool/recovery_orchestrator.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bridgepool/clock.h"

namespace bridgepool {
namespace {

using namespace std::chrono_literals;
using internal::next_recovery_step;
using internal::RecoveryStepKind;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

constexpr auto kWait = 5s;  // upper bound for anything that should happen "soon"

Error classified(ErrorCategory category, RecoveryStrategy strategy, std::string message = "boom") {
  Error e(category, std::move(message));
  e.strategy = strategy;
  return e;
}

Result<Json> fail(ErrorCategory category, RecoveryStrategy strategy) {
  return tl::unexpected(classified(category, strategy));
}

RecoveryRequest request_for(RecoveryStrategy strategy, milliseconds limit = 5'000ms) {
  RecoveryRequest r;
  r.name = "pool:test echo";
  r.error = classified(ErrorCategory::kConnection, strategy, "worker w1 exited");
  r.error.context.command = "echo";
  r.time_limit = limit;
  return r;
}

RecoveryOutcome get(std::future<RecoveryOutcome>& future) {
  EXPECT_EQ(future.wait_for(kWait), std::future_status::ready);
  return future.get();
}

// A door a scripted call can wait behind; opened by the test (or by OpenOnExit, so a failed
// assertion never leaves a worker blocked while the orchestrator joins it).
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool is_open = false;
  int waiting = 0;
  void wait() {
    std::unique_lock lock(mu);
    ++waiting;
    cv.notify_all();
    cv.wait(lock, [&] { return is_open; });
  }
  void open() {
    std::lock_guard lock(mu);
    is_open = true;
    cv.notify_all();
  }
  bool wait_for_waiters(int n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, kWait, [&] { return waiting >= n; });
  }
};

struct OpenOnExit {
  std::shared_ptr<Gate> gate;
  ~OpenOnExit() { gate->open(); }
};

// Counts done callbacks and lets a test wait for n of them.
struct DoneLog {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<RecoveryOutcome> outcomes;
  std::vector<std::thread::id> threads;
  RecoveryOrchestrator::Done callback() {
    return [this](RecoveryOutcome outcome) {
      std::lock_guard lock(mu);
      outcomes.push_back(std::move(outcome));
      threads.push_back(std::this_thread::get_id());
      cv.notify_all();
    };
  }
  bool wait_for(std::size_t n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, kWait, [&] { return outcomes.size() >= n; });
  }
};

// --- pure pieces -------------------------------------------------------------------------------

TEST(RecoveryBackoffDelay, DoublesFromBaseAndStopsAtCap) {
  RecoveryConfig config;
  config.backoff_base = 1ms;
  config.backoff_cap = 5ms;
  EXPECT_EQ(recovery_backoff_delay(config, 0), 0us);
  EXPECT_EQ(recovery_backoff_delay(config, 1), 1ms);
  EXPECT_EQ(recovery_backoff_delay(config, 2), 2ms);
  EXPECT_EQ(recovery_backoff_delay(config, 3), 4ms);
  EXPECT_EQ(recovery_backoff_delay(config, 4), 5ms);
  EXPECT_EQ(recovery_backoff_delay(config, 1000), 5ms);
  EXPECT_EQ(recovery_backoff_delay(config, std::numeric_limits<std::uint32_t>::max()), 5ms);
}

TEST(RecoveryBackoffDelay, DefaultsAndOddConfigurations) {
  RecoveryConfig config;  // 50 ms base, 2 s cap
  EXPECT_EQ(recovery_backoff_delay(config, 1), 50ms);
  EXPECT_EQ(recovery_backoff_delay(config, 4), 400ms);
  EXPECT_EQ(recovery_backoff_delay(config, 7), 2'000ms);  // 3200 capped
  config.backoff_base = -5ms;
  EXPECT_EQ(recovery_backoff_delay(config, 3), 0us);
  config.backoff_base = 0ms;
  EXPECT_EQ(recovery_backoff_delay(config, std::numeric_limits<std::uint32_t>::max()), 0us);
  config.backoff_base = 10ms;
  config.backoff_cap = 3ms;  // base above cap: the cap
  EXPECT_EQ(recovery_backoff_delay(config, 1), 3ms);
  config.backoff_cap = -1ms;
  EXPECT_EQ(recovery_backoff_delay(config, 1), 0us);
  config.backoff_base = microseconds(std::numeric_limits<microseconds::rep>::max() / 2 + 1);
  config.backoff_cap = microseconds::max();
  EXPECT_EQ(recovery_backoff_delay(config, 3), microseconds::max());  // saturates, no overflow
}

TEST(NextRecoveryStep, RetriesWithinTheBudgetOfTheLatestStrategy) {
  RecoveryConfig config;
  config.immediate_delay = 3us;
  config.backoff_base = 1ms;
  auto step = next_recovery_step(config, RecoveryStrategy::kImmediateRetry, 1, true, false, false);
  EXPECT_EQ(step.kind, RecoveryStepKind::kRetry);
  EXPECT_EQ(step.delay, 3us);
  EXPECT_EQ(
      next_recovery_step(config, RecoveryStrategy::kImmediateRetry, 2, true, false, false).kind,
      RecoveryStepKind::kRetry);
  step = next_recovery_step(config, RecoveryStrategy::kImmediateRetry, 3, true, false, false);
  EXPECT_EQ(step.kind, RecoveryStepKind::kGiveUp);
  EXPECT_EQ(step.reason, "attempts_exhausted");
  step = next_recovery_step(config, RecoveryStrategy::kBackoffRetry, 3, true, false, false);
  EXPECT_EQ(step.kind, RecoveryStepKind::kRetry);
  EXPECT_EQ(step.delay, 4ms);  // retry 3: 1 ms · 2^2
  EXPECT_EQ(
      next_recovery_step(config, RecoveryStrategy::kBackoffRetry, 5, true, false, false).reason,
      "attempts_exhausted");
  EXPECT_EQ(
      next_recovery_step(config, RecoveryStrategy::kImmediateRetry, 1, false, true, false).reason,
      "no_retry");
  // Exhausted retries of a retry-class error never fail over.
  EXPECT_EQ(
      next_recovery_step(config, RecoveryStrategy::kImmediateRetry, 3, true, true, false).kind,
      RecoveryStepKind::kGiveUp);
}

TEST(NextRecoveryStep, FailsOverOnceAndNeverCallsForCircuitBreakOrAbandon) {
  RecoveryConfig config;
  using S = RecoveryStrategy;
  EXPECT_EQ(next_recovery_step(config, S::kFailover, 1, true, true, false).kind,
            RecoveryStepKind::kFailover);
  EXPECT_EQ(next_recovery_step(config, S::kFailover, 1, true, false, false).reason, "no_failover");
  EXPECT_EQ(next_recovery_step(config, S::kFailover, 2, true, true, true).reason,
            "failover_failed");
  EXPECT_EQ(next_recovery_step(config, S::kCircuitBreak, 1, true, true, false).reason,
            "circuit_break");
  EXPECT_EQ(next_recovery_step(config, S::kCircuitBreak, 2, true, true, false).kind,
            RecoveryStepKind::kFailover);  // a retry turned circuit_break-class
  EXPECT_EQ(next_recovery_step(config, S::kAbandon, 1, true, true, false).reason, "not_retryable");
  EXPECT_EQ(next_recovery_step(config, S::kAbandon, 2, true, true, false).reason, "not_retryable");
}

TEST(RecoveryResultName, StableNames) {
  EXPECT_EQ(recovery_result_name(RecoveryResultKind::kRecovered), "recovered");
  EXPECT_EQ(recovery_result_name(RecoveryResultKind::kFailedOver), "failed_over");
  EXPECT_EQ(recovery_result_name(RecoveryResultKind::kFailed), "failed");
}

// --- strategies --------------------------------------------------------------------------------

TEST(RecoveryOrchestrator, ImmediateRetryRecoversOnSecondAttempt) {
  RecoveryOrchestrator orchestrator;
  std::vector<std::uint32_t> seen;
  auto request = request_for(RecoveryStrategy::kImmediateRetry);
  request.retry = [&](std::uint32_t attempt) -> Result<Json> {
    seen.push_back(attempt);
    return Json{{"ok", attempt}};
  };
  auto future = orchestrator.recover(std::move(request));
  RecoveryOutcome outcome = get(future);
  EXPECT_EQ(outcome.kind, RecoveryResultKind::kRecovered);
  ASSERT_TRUE(outcome.result.has_value());
  EXPECT_EQ((*outcome.result)["ok"], 2);
  EXPECT_EQ(outcome.attempts, 2u);
  EXPECT_EQ(outcome.strategy, RecoveryStrategy::kImmediateRetry);
  EXPECT_EQ(seen, (std::vector<std::uint32_t>{2}));
}

TEST(RecoveryOrchestrator, ImmediateRetryExhaustsAfterThreeAttempts) {
  RecoveryOrchestrator orchestrator;
  std::vector<std::uint32_t> seen;
  auto request = request_for(RecoveryStrategy::kImmediateRetry);
  request.retry = [&](std::uint32_t attempt) {
    seen.push_back(attempt);
    return fail(ErrorCategory::kConnection, RecoveryStrategy::kImmediateRetry);
  };
  auto future = orchestrator.recover(std::move(request));
  RecoveryOutcome outcome = get(future);
  EXPECT_EQ(outcome.kind, RecoveryResultKind::kFailed);
  EXPECT_EQ(outcome.attempts, 3u);
  EXPECT_EQ(seen, (std::vector<std::uint32_t>{2, 3}));
  ASSERT_FALSE(outcome.result.has_value());
  EXPECT_EQ(outcome.result.error().category, ErrorCategory::kConnection);
  EXPECT_EQ(outcome.result.error().context.attempt, 3);
  EXPECT_NE(outcome.result.error().context.cause.find("attempt budget"), std::string::npos)
      << outcome.result.error().context.cause;
}

TEST(RecoveryOrchestrator, ImmediateRetryStopsWhenTheErrorBecomesAbandon) {
  RecoveryOrchestrator orchestrator;
  std::atomic<int> calls{0};
  auto request = request_for(RecoveryStrategy::kImmediateRetry);
  request.retry = [&](std::uint32_t) {
    ++calls;
    return fail(ErrorCategory::kPython, RecoveryStrategy::kAbandon);
  };
  request.failover = [] { return Result<Json>(Json("failover must not run")); };
  auto future = orchestrator.recover(std::move(request));
  RecoveryOutcome outcome = get(future);
  EXPECT_EQ(outcome.kind, RecoveryResultKind::kFailed);
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(outcome.attempts, 2u);
  EXPECT_EQ(outcome.result.error().category, ErrorCategory::kPython);
  EXPECT_EQ(outcome.result.error().context.attempt, 2);
}

TEST(RecoveryOrchestrator, BackoffRetryWaitsDoublingDelaysUpToTheCap) {
  RecoveryConfig config;
  config.backoff_base = 1ms;
  config.backoff_cap = 4ms;
  RecoveryOrchestrator orchestrator(config);
  std::vector<steady_clock::time_point> calls;
  auto request = request_for(RecoveryStrategy::kBackoffRetry);
  request.retry = [&](std::uint32_t attempt) -> Result<Json> {
    calls.push_back(steady_clock::now());
    if (attempt < 5) return fail(ErrorCategory::kResource, RecoveryStrategy::kBackoffRetry);
    return Json("fifth");
  };
  const auto start = steady_clock::now();
  auto future = orchestrator.recover(std::move(request));
  RecoveryOutcome outcome = get(future);
  EXPECT_EQ(outcome.kind, RecoveryResultKind::kRecovered);
  EXPECT_EQ(outcome.attempts, 5u);
  ASSERT_EQ(calls.size(), 4u);
  // Retries 1..4 wait 1, 2, 4, 4 ms (8 capped to 4) before they run.
  const std::vector<milliseconds> expected = {1ms, 2ms, 4ms, 4ms};
  auto previous = start;
  for (std::size_t i = 0; i < calls.size(); ++i) {
    EXPECT_GE(calls[i] - previous, expected[i]) << "retry " << i + 1;
    previous = calls[i];
  }
  EXPECT_LT(calls.back() - start, 2s);
}

TEST(RecoveryOrchestrator, BackoffRetryExhaustsAfterFiveAttempts) {
  RecoveryConfig config;
  config.backoff_base = 100us;
  config.backoff_cap = 200us;
  RecoveryOrchestrator orchestrator(config);
  std::atomic<int> calls{0};
  auto request = request_for(RecoveryStrategy::kBackoffRetry);
  request.retry = [&](std::uint32_t) {
    ++calls;
    return fail(ErrorCategory::kResource, RecoveryStrategy::kBackoffRetry);
  };
  auto future = orchestrator.recover(std::move(request));
  RecoveryOutcome outcome = get(future);
  EXPECT_EQ(outcome.kind, RecoveryResultKind::kFailed);
  EXPECT_EQ(calls.load(), 4);
  EXPECT_EQ(outcome.attempts, 5u);
  EXPECT_EQ(outcome.result.error().category, ErrorCategory::kResource);
  EXPECT_EQ(outcome.result.error().context.attempt, 5);
}

TEST(RecoveryOrchestrator, BackoffThatCannotFitTheTimeLimitGivesUpAtOnce) {
  RecoveryConfig config;
  config.backoff_base = 10s;
  config.backoff_cap = 10s;
  RecoveryOrchestrator orchestrator(config);
  auto request = request_for(RecoveryStrategy::kBackoffRetry, 1'000ms);
  request.retry = [](std::uint32_t) { return Result<Json>(Json("never")); };
  const auto start = steady_clock::now();
  auto future = orchestrator.recover(std::move(request));
  RecoveryOutcome outcome = get(future);
  EXPECT_LT(steady_clock::now() - start, 500ms);
  EXPECT_EQ(outcome.kind, RecoveryResultKind::kFailed);
  EXPECT_EQ(outcome.attempts, 1u);
  EXPECT_EQ(outcome.result.error().category, ErrorCategory::kConnection);  // the real error
  EXPECT_NE(outcome.result.error().context.cause.find("no time left"), std::string::npos);
  EXPECT_EQ(orchestrator.counters().timed_out, 0u);
}

TEST(RecoveryOrchestrator, FailoverStrategyCallsTheFailoverOnce) {
  RecoveryOrchestrator orchestrator;
  std::atomic<int> retries{0}, failovers{0};
  auto request = request_for(RecoveryStrategy::kFailover);
  request.retry = [&](std::uint32_t) {
    ++retries;
    return Result<Json>(Json("retry"));
  };
  request.failover = [&]() -> Result<Json> {
    ++failovers;
    return Json{{"adapter", "mock"}};
  };
  auto future = orchestrator.recover(std::move(request));
  RecoveryOutcome outcome = get(future);
  EXPECT_EQ(outcome.kind, RecoveryResultKind::kFailedOver);
  EXPECT_EQ((*outcome.result)["adapter"], "mock");
  EXPECT_EQ(outcome.attempts, 2u);
  EXPECT_EQ(outcome.strategy, RecoveryStrategy::kFailover);
  EXPECT_EQ(retries.load(), 0);
  EXPECT_EQ(failovers.load(), 1);
  EXPECT_EQ(orchestrator.counters().failed_over, 1u);
}

TEST(RecoveryOrchestrator, FailedFailoverEndsTheRecoveryWithItsError) {
  RecoveryOrchestrator orchestrator;
  std::atomic<int> failovers{0};
  auto request = request_for(RecoveryStrategy::kFailover);
  request.failover = [&] {
    ++failovers;
    return fail(ErrorCategory::kCommunication, RecoveryStrategy::kFailover);
  };
  auto future = orchestrator.recover(std::move(request));
  RecoveryOutcome outcome = get(future);
  EXPECT_EQ(outcome.kind, RecoveryResultKind::kFailed);
  EXPECT_EQ(failovers.load(), 1);
  EXPECT_EQ(outcome.attempts, 2u);
  EXPECT_EQ(outcome.result.error().category, ErrorCategory::kCommunication);
  EXPECT_NE(outcome.result.error().context.cause.find("failover failed"), std::string::npos);
}

TEST(RecoveryOrchestrator, FailoverStrategyWithoutAFailoverFailsWithoutACall) {
  RecoveryOrchestrator orchestrator;
  std::atomic<int> retries{0};
  auto request = request_for(RecoveryStrategy::kFailover);
  request.retry = [&](std::uint32_t) {
    ++retries;
    return Result<Json>(Json("retry"));
  };
  auto future = orchestrator.recover(std::move(request));
  RecoveryOutcome outcome = get(future);
  EXPECT_EQ(outcome.kind, RecoveryResultKind::kFailed);
  EXPECT_EQ(outcome.attempts, 1u);
  EXPECT_EQ(retries.load(), 0);
  EXPECT_EQ(outcome.result.error().category, ErrorCategory::kConnection);
}

TEST(RecoveryOrchestrator, RetriesThatTurnCircuitBreakClassFailOver) {
  RecoveryOrchestrator orchestrator;
  std::atomic<int> retries{0};
  auto request = request_for(RecoveryStrategy::kImmediateRetry);
  request.retry = [&](std::uint32_t) {
    ++retries;
    return fail(ErrorCategory::kConnection, RecoveryStrategy::kCircuitBreak);
  };
  request.failover = [] { return Result<Json>(Json("from failover")); };
  auto future = orchestrator.recover(std::move(request));
  RecoveryOutcome outcome = get(future);
  EXPECT_EQ(outcome.kind, RecoveryResultKind::kFailedOver);
  EXPECT_EQ(*outcome.result, "from failover");
  EXPECT_EQ(retries.load(), 1);
  EXPECT_EQ(outcome.attempts, 3u);
  EXPECT_EQ(outcome.strategy, RecoveryStrategy::kImmediateRetry);
}

TEST(RecoveryOrchestrator, ExhaustedRetriesOfARetryClassErrorDoNotFailOver) {
  RecoveryOrchestrator orchestrator;
  std::atomic<int> failovers{0};
  auto request = request_for(RecoveryStrategy::kImmediateRetry);
  request.retry = [](std::uint32_t) {
    return fail(ErrorCategory::kConnection, RecoveryStrategy::kImmediateRetry);
  };
  request.failover = [&] {
    ++failovers;
    return Result<Json>(Json("no"));
  };
  auto future = orchestrator.recover(std::move(request));
  EXPECT_EQ(get(future).kind, RecoveryResultKind::kFailed);
  EXPECT_EQ(failovers.load(), 0);
}

TEST(RecoveryOrchestrator, AbandonAndCircuitBreakMakeNoCall) {
  for (RecoveryStrategy strategy : {RecoveryStrategy::kAbandon, RecoveryStrategy::kCircuitBreak}) {
    SCOPED_TRACE(std::string(strategy_name(strategy)));
    RecoveryOrchestrator orchestrator;
    std::atomic<int> calls{0};
    auto request = request_for(strategy);
    request.retry = [&](std::uint32_t) {
      ++calls;
      return Result<Json>(Json("no"));
    };
    request.failover = [&] {
      ++calls;
      return Result<Json>(Json("no"));
    };
    auto future = orchestrator.recover(std::move(request));
    // Answered before recover() returned: nothing to run.
    ASSERT_EQ(future.wait_for(0s), std::future_status::ready);
    RecoveryOutcome outcome = future.get();
    EXPECT_EQ(outcome.kind, RecoveryResultKind::kFailed);
    EXPECT_EQ(outcome.attempts, 1u);
    EXPECT_EQ(outcome.strategy, strategy);
    EXPECT_EQ(outcome.result.error().category, ErrorCategory::kConnection);
    EXPECT_EQ(outcome.result.error().message, "worker w1 exited");
    EXPECT_EQ(outcome.result.error().context.command, "echo");
    orchestrator.shutdown();
    EXPECT_EQ(calls.load(), 0);
  }
}

TEST(RecoveryOrchestrator, ThrowingRetryBecomesASystemError) {
  RecoveryOrchestrator orchestrator;
  auto request = request_for(RecoveryStrategy::kImmediateRetry);
  request.retry = [](std::uint32_t) -> Result<Json> { throw std::runtime_error("kaboom"); };
  auto future = orchestrator.recover(std::move(request));
  RecoveryOutcome outcome = get(future);
  EXPECT_EQ(outcome.kind, RecoveryResultKind::kFailed);
  EXPECT_EQ(outcome.attempts, 2u);  // a thrown error is abandon-class: no third attempt
  EXPECT_EQ(outcome.result.error().category, ErrorCategory::kSystem);
  EXPECT_NE(outcome.result.error().message.find("kaboom"), std::string::npos);
}

TEST(RecoveryOrchestrator, ElapsedIsReadFromTheInjectedClock) {
  ManualClock clock;
  RecoveryOrchestrator orchestrator({}, clock);
  auto request = request_for(RecoveryStrategy::kImmediateRetry);
  request.retry = [&](std::uint32_t) {
    clock.advance(7ms);
    return Result<Json>(Json("ok"));
  };
  auto future = orchestrator.recover(std::move(request));
  EXPECT_EQ(get(future).elapsed, 7'000us);
}

// --- time limits, refusal, shutdown ----------------------------------------------------------

TEST(RecoveryOrchestrator, TimeLimitAnswersWhileARetryBlocksAndDropsItsLateResult) {
  auto gate = std::make_shared<Gate>();
  DoneLog log;
  std::atomic<bool> returned{false};
  RecoveryOrchestrator orchestrator;
  OpenOnExit release{gate};
  auto request = request_for(RecoveryStrategy::kImmediateRetry, 30ms);
  request.retry = [gate, &returned](std::uint32_t) -> Result<Json> {
    gate->wait();
    returned = true;
    return Json("too late");
  };
  const auto start = steady_clock::now();
  orchestrator.recover(std::move(request), log.callback());
  ASSERT_TRUE(log.wait_for(1));
  const auto took = steady_clock::now() - start;
  EXPECT_GE(took, 30ms);
  EXPECT_LT(took, 1s);
  {
    std::lock_guard lock(log.mu);
    const RecoveryOutcome& outcome = log.outcomes[0];
    EXPECT_EQ(outcome.kind, RecoveryResultKind::kFailed);
    EXPECT_EQ(outcome.attempts, 2u);  // the blocked call counts: it was started
    ASSERT_FALSE(outcome.result.has_value());
    const Error& error = outcome.result.error();
    EXPECT_EQ(error.category, ErrorCategory::kTimeout);
    EXPECT_NE(error.message.find("recovery of pool:test echo did not finish within 30 ms; last "
                                 "error: connection: worker w1 exited"),
              std::string::npos)
        << error.message;
    EXPECT_EQ(error.context.attempt, 2);
    EXPECT_EQ(error.context.command, "echo");
  }
  RecoveryCounters c = orchestrator.counters();
  EXPECT_EQ(c.timed_out, 1u);
  EXPECT_EQ(c.failed, 1u);
  EXPECT_EQ(c.pending, 0u);
  gate->open();
  orchestrator.shutdown();  // returns once the blocked call has returned
  EXPECT_TRUE(returned.load());
  std::lock_guard lock(log.mu);
  EXPECT_EQ(log.outcomes.size(), 1u);  // the late success was discarded
  c = orchestrator.counters();
  EXPECT_EQ(c.succeeded, 0u);
  EXPECT_EQ(c.failed, 1u);
}

TEST(RecoveryOrchestrator, TimeLimitAlsoAnswersRecoveriesQueuedBehindBlockedThreads) {
  auto gate = std::make_shared<Gate>();
  RecoveryConfig config;
  config.threads = 1;
  std::atomic<int> calls{0};
  RecoveryOrchestrator orchestrator(config);
  OpenOnExit release{gate};
  auto blocking = request_for(RecoveryStrategy::kImmediateRetry, 5'000ms);
  blocking.retry = [gate](std::uint32_t) -> Result<Json> {
    gate->wait();
    return Json("late");
  };
  auto first = orchestrator.recover(std::move(blocking));
  ASSERT_TRUE(gate->wait_for_waiters(1));
  auto queued = request_for(RecoveryStrategy::kImmediateRetry, 20ms);
  queued.retry = [&](std::uint32_t) {
    ++calls;
    return Result<Json>(Json("never runs in time"));
  };
  auto second = orchestrator.recover(std::move(queued));
  RecoveryOutcome outcome = get(second);
  EXPECT_EQ(outcome.result.error().category, ErrorCategory::kTimeout);
  EXPECT_EQ(outcome.attempts, 1u);
  EXPECT_NE(outcome.result.error().context.cause.find("no call was running"), std::string::npos);
  gate->open();
  EXPECT_EQ(get(first).kind, RecoveryResultKind::kRecovered);
  orchestrator.shutdown();
  EXPECT_EQ(calls.load(), 0);  // skipped: already answered when the thread came free
}

TEST(RecoveryOrchestrator, ZeroTimeLimitTimesOutWithoutACall) {
  RecoveryOrchestrator orchestrator;
  std::atomic<int> calls{0};
  auto request = request_for(RecoveryStrategy::kImmediateRetry, 0ms);
  request.retry = [&](std::uint32_t) {
    ++calls;
    return Result<Json>(Json("no"));
  };
  auto future = orchestrator.recover(std::move(request));
  ASSERT_EQ(future.wait_for(0s), std::future_status::ready);
  EXPECT_EQ(future.get().result.error().category, ErrorCategory::kTimeout);
  orchestrator.shutdown();
  EXPECT_EQ(calls.load(), 0);
  EXPECT_EQ(orchestrator.counters().timed_out, 1u);
}

TEST(RecoveryOrchestrator, BeyondMaxPendingRefusesAtOnceOnTheCallersThread) {
  auto gate = std::make_shared<Gate>();
  RecoveryConfig config;
  config.threads = 1;
  config.max_pending = 2;
  DoneLog log;
  RecoveryOrchestrator orchestrator(config);
  OpenOnExit release{gate};
  for (int i = 0; i < 2; ++i) {
    auto request = request_for(RecoveryStrategy::kImmediateRetry);
    request.retry = [gate](std::uint32_t) -> Result<Json> {
      gate->wait();
      return Json("ok");
    };
    orchestrator.recover(std::move(request), log.callback());
  }
  auto third = request_for(RecoveryStrategy::kImmediateRetry);
  third.retry = [](std::uint32_t) { return Result<Json>(Json("never")); };
  orchestrator.recover(std::move(third), log.callback());
  {
    std::lock_guard lock(log.mu);
    ASSERT_EQ(log.outcomes.size(), 1u);  // delivered inline, before recover() returned
    EXPECT_EQ(log.threads[0], std::this_thread::get_id());
    const Error& error = log.outcomes[0].result.error();
    EXPECT_EQ(error.category, ErrorCategory::kResource);
    EXPECT_NE(error.message.find("2 recoveries pending (max_pending 2)"), std::string::npos)
        << error.message;
  }
  RecoveryCounters c = orchestrator.counters();
  EXPECT_EQ(c.initiated, 3u);
  EXPECT_EQ(c.rejected, 1u);
  EXPECT_EQ(c.failed, 1u);
  EXPECT_EQ(c.pending, 2u);
  gate->open();
  ASSERT_TRUE(log.wait_for(3));
  c = orchestrator.counters();
  EXPECT_EQ(c.succeeded, 2u);
  EXPECT_EQ(c.pending, 0u);
}

TEST(RecoveryOrchestrator, ShutdownInterruptsALongBackoffPromptly) {
  RecoveryConfig config;
  config.backoff_base = 10s;
  config.backoff_cap = 10s;
  RecoveryOrchestrator orchestrator(config);
  std::atomic<int> calls{0};
  auto request = request_for(RecoveryStrategy::kBackoffRetry, 60'000ms);
  request.retry = [&](std::uint32_t) {
    ++calls;
    return Result<Json>(Json("no"));
  };
  auto future = orchestrator.recover(std::move(request));
  EXPECT_EQ(orchestrator.counters().pending, 1u);
  const auto start = steady_clock::now();
  orchestrator.shutdown();
  EXPECT_LT(steady_clock::now() - start, 1s);
  ASSERT_EQ(future.wait_for(0s), std::future_status::ready);
  RecoveryOutcome outcome = future.get();
  EXPECT_EQ(outcome.kind, RecoveryResultKind::kFailed);
  EXPECT_EQ(outcome.result.error().category, ErrorCategory::kResource);
  EXPECT_NE(outcome.result.error().message.find("shutting down"), std::string::npos);
  EXPECT_EQ(calls.load(), 0);
  orchestrator.shutdown();  // idempotent
  RecoveryCounters c = orchestrator.counters();
  EXPECT_EQ(c.failed, 1u);
  EXPECT_EQ(c.rejected, 0u);
  EXPECT_EQ(c.pending, 0u);
}

TEST(RecoveryOrchestrator, RecoverAfterShutdownIsRefused) {
  RecoveryOrchestrator orchestrator;
  orchestrator.shutdown();
  auto request = request_for(RecoveryStrategy::kImmediateRetry);
  request.retry = [](std::uint32_t) { return Result<Json>(Json("no")); };
  auto future = orchestrator.recover(std::move(request));
  ASSERT_EQ(future.wait_for(0s), std::future_status::ready);
  const Error error = future.get().result.error();
  EXPECT_EQ(error.category, ErrorCategory::kResource);
  EXPECT_NE(error.message.find("shutting down"), std::string::npos);
  EXPECT_EQ(orchestrator.counters().rejected, 1u);
}

// --- counters, threads, events, races ----------------------------------------------------------

TEST(RecoveryOrchestrator, CountersAddUp) {
  RecoveryConfig config;
  config.max_pending = 3;
  auto gate = std::make_shared<Gate>();
  DoneLog log;
  RecoveryOrchestrator orchestrator(config);
  OpenOnExit release{gate};

  auto blocked = request_for(RecoveryStrategy::kImmediateRetry);
  blocked.retry = [gate](std::uint32_t) -> Result<Json> {
    gate->wait();
    return Json("ok");
  };
  orchestrator.recover(std::move(blocked), log.callback());  // recovered, once released
  auto recovered = request_for(RecoveryStrategy::kImmediateRetry);
  recovered.retry = [](std::uint32_t) { return Result<Json>(Json("ok")); };
  orchestrator.recover(std::move(recovered), log.callback());
  auto failed_over = request_for(RecoveryStrategy::kFailover);
  failed_over.failover = [] { return Result<Json>(Json("mock")); };
  orchestrator.recover(std::move(failed_over), log.callback());
  // Failed with its own error: a recovery that makes no call is not refused by max_pending (3
  // may be pending here).
  orchestrator.recover(request_for(RecoveryStrategy::kAbandon), log.callback());
  ASSERT_TRUE(log.wait_for(3));
  {
    std::lock_guard lock(log.mu);
    int failed_with_own_error = 0;
    for (const auto& outcome : log.outcomes) {
      if (!outcome.result && outcome.result.error().category == ErrorCategory::kConnection) {
        ++failed_with_own_error;
      }
    }
    EXPECT_EQ(failed_with_own_error, 1);
  }
  RecoveryCounters c = orchestrator.counters();
  EXPECT_EQ(c.initiated, 4u);
  EXPECT_EQ(c.succeeded, 1u);
  EXPECT_EQ(c.failed_over, 1u);
  EXPECT_EQ(c.failed, 1u);
  EXPECT_EQ(c.pending, 1u);
  EXPECT_EQ(c.initiated, c.succeeded + c.failed_over + c.failed + c.pending);
  gate->open();
  ASSERT_TRUE(log.wait_for(4));
  c = orchestrator.counters();
  EXPECT_EQ(c.succeeded, 2u);
  EXPECT_EQ(c.pending, 0u);
  EXPECT_EQ(c.initiated, c.succeeded + c.failed_over + c.failed + c.pending);
  EXPECT_EQ(c.timed_out, 0u);
  EXPECT_EQ(c.rejected, 0u);
}

TEST(RecoveryOrchestrator, CallbacksAndCallsRunOffTheCallersThread) {
  DoneLog log;
  std::atomic<bool> retry_on_caller{false};
  RecoveryOrchestrator orchestrator;
  const auto caller = std::this_thread::get_id();
  auto quick = request_for(RecoveryStrategy::kImmediateRetry);
  quick.retry = [&](std::uint32_t) {
    retry_on_caller = std::this_thread::get_id() == caller;
    return Result<Json>(Json("ok"));
  };
  orchestrator.recover(std::move(quick), log.callback());
  auto gate = std::make_shared<Gate>();
  OpenOnExit release{gate};
  auto slow = request_for(RecoveryStrategy::kImmediateRetry, 10ms);
  slow.retry = [gate](std::uint32_t) -> Result<Json> {
    gate->wait();
    return Json("late");
  };
  orchestrator.recover(std::move(slow), log.callback());  // answered by the watchdog
  ASSERT_TRUE(log.wait_for(2));
  std::lock_guard lock(log.mu);
  EXPECT_FALSE(retry_on_caller.load());
  for (auto id : log.threads) EXPECT_NE(id, caller);
}

TEST(RecoveryOrchestrator, EmitsInitiatedThenOneOutcomeEvent) {
  auto bus = std::make_shared<EventBus>();
  std::mutex mu;
  std::vector<Event> events;
  bus->attach("recovery.", [&](const Event& e) {
    std::lock_guard lock(mu);
    events.push_back(e);
  });
  ManualClock clock;
  RecoveryOrchestrator orchestrator({}, clock, bus);

  auto recovered = request_for(RecoveryStrategy::kImmediateRetry);
  recovered.retry = [&](std::uint32_t) {
    clock.advance(3ms);
    return Result<Json>(Json("ok"));
  };
  auto f1 = orchestrator.recover(std::move(recovered));
  get(f1);
  auto failed_over = request_for(RecoveryStrategy::kFailover);
  failed_over.failover = [] { return Result<Json>(Json("mock")); };
  auto f2 = orchestrator.recover(std::move(failed_over));
  get(f2);
  auto f3 = orchestrator.recover(request_for(RecoveryStrategy::kAbandon));
  get(f3);
  orchestrator.shutdown();

  std::lock_guard lock(mu);
  ASSERT_EQ(events.size(), 6u);
  EXPECT_EQ(events[0].name, "recovery.initiated");
  EXPECT_EQ(events[0].metadata.at("name"), "pool:test echo");
  EXPECT_EQ(events[0].metadata.at("strategy"), "immediate_retry");
  EXPECT_EQ(events[0].metadata.at("category"), "connection");
  EXPECT_EQ(events[0].measurements.at("attempts"), 1.0);
  EXPECT_EQ(events[1].name, "recovery.succeeded");
  EXPECT_EQ(events[1].measurements.at("attempts"), 2.0);
  EXPECT_EQ(events[1].measurements.at("elapsed_us"), 3'000.0);
  EXPECT_EQ(events[2].name, "recovery.initiated");
  EXPECT_EQ(events[3].name, "recovery.failed_over");
  EXPECT_EQ(events[3].metadata.at("strategy"), "failover");
  EXPECT_EQ(events[4].name, "recovery.initiated");
  EXPECT_EQ(events[5].name, "recovery.failed");
  EXPECT_EQ(events[5].metadata.at("strategy"), "abandon");
  EXPECT_EQ(events[5].metadata.at("category"), "connection");
  EXPECT_EQ(events[5].metadata.at("reason"), "not_retryable");
}

TEST(RecoveryOrchestrator, TimedOutRecoveryEmitsFailedWithTimeoutCategory) {
  auto bus = std::make_shared<EventBus>();
  std::mutex mu;
  std::vector<Event> events;
  bus->attach("recovery.failed", [&](const Event& e) {
    std::lock_guard lock(mu);
    events.push_back(e);
  });
  auto gate = std::make_shared<Gate>();
  RecoveryOrchestrator orchestrator({}, SteadyClock::instance(), bus);
  OpenOnExit release{gate};
  auto request = request_for(RecoveryStrategy::kImmediateRetry, 5ms);
  request.retry = [gate](std::uint32_t) -> Result<Json> {
    gate->wait();
    return Json("late");
  };
  auto future = orchestrator.recover(std::move(request));
  get(future);
  std::lock_guard lock(mu);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].metadata.at("category"), "timeout");
  EXPECT_EQ(events[0].metadata.at("reason"), "timed_out");
  EXPECT_GE(events[0].measurements.at("elapsed_us"), 5'000.0);
}

TEST(RecoveryOrchestrator, ThrowingDoneCallbackDoesNotStopTheOrchestrator) {
  RecoveryOrchestrator orchestrator;
  auto first = request_for(RecoveryStrategy::kImmediateRetry);
  first.retry = [](std::uint32_t) { return Result<Json>(Json("ok")); };
  std::atomic<int> thrown{0};
  orchestrator.recover(std::move(first), [&](RecoveryOutcome) {
    ++thrown;
    throw std::runtime_error("callback bug");
  });
  auto second = request_for(RecoveryStrategy::kImmediateRetry);
  second.retry = [](std::uint32_t) { return Result<Json>(Json("still working")); };
  auto future = orchestrator.recover(std::move(second));
  EXPECT_EQ(get(future).kind, RecoveryResultKind::kRecovered);
  orchestrator.shutdown();
  EXPECT_EQ(thrown.load(), 1);
}

// Each call finishes within ±250 us of its 1 ms time limit, so the worker's result and the
// watchdog's timeout race; whichever claims first answers, and nobody answers twice.
TEST(RecoveryOrchestrator, ExactlyOneAnswerWhenCallsFinishAroundTheLimit) {
  constexpr int kRecoveries = 1000;
  RecoveryConfig config;
  config.threads = 8;
  config.max_pending = kRecoveries;
  std::vector<std::atomic<int>> answers(kRecoveries);
  std::mutex mu;
  std::condition_variable cv;
  int answered = 0;
  {
    RecoveryOrchestrator orchestrator(config);
    for (int i = 0; i < kRecoveries; ++i) {
      auto request = request_for(RecoveryStrategy::kImmediateRetry, 1ms);
      const auto finish_at = steady_clock::now() + 1ms + microseconds((i % 11) * 50 - 250);
      request.retry = [finish_at](std::uint32_t) -> Result<Json> {
        std::this_thread::sleep_until(finish_at);
        return Json("ok");
      };
      orchestrator.recover(std::move(request), [&, i](RecoveryOutcome outcome) {
        answers[i].fetch_add(1);
        std::lock_guard lock(mu);
        ++answered;
        cv.notify_all();
      });
      // Pace the arrivals so the threads stay near busy, not swamped.
      if (i % 8 == 7) std::this_thread::sleep_for(200us);
    }
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return answered == kRecoveries; }));
    lock.unlock();
    orchestrator.shutdown();  // every still-running call has returned after this
    RecoveryCounters c = orchestrator.counters();
    EXPECT_EQ(c.initiated, std::uint64_t(kRecoveries));
    EXPECT_EQ(c.succeeded + c.failed, std::uint64_t(kRecoveries));
    EXPECT_EQ(c.failed, c.timed_out);
    EXPECT_EQ(c.pending, 0u);
  }
  for (int i = 0; i < kRecoveries; ++i) EXPECT_EQ(answers[i].load(), 1) << "recovery " << i;
  std::lock_guard lock(mu);
  EXPECT_EQ(answered, kRecoveries);
}

}  // namespace
}  // namespace bridgepool
