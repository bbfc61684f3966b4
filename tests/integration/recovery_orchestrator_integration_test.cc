// The recovery orchestrator over real executors (SPEC §6): a failed pool call is handed over with
// its error; the orchestrator retries it, fails it over to a single bridge, or gives up, on its
// own threads, within its time limit — and says which.
#include "bridgepool/recovery_orchestrator.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "bridgepool/bridge.h"
#include "bridgepool/pool.h"
#include "integration/test_support.h"

namespace bridgepool::testing {
namespace {

using namespace std::chrono_literals;

PoolConfig handlers_config(std::size_t size) {
  return test_config(size, {data_path("resilience_handlers.py")});
}

TEST(RecoveryOrchestratorIntegration, OpenPoolBreakerIsFailedOverToABridge) {
  std::shared_ptr<Pool> pool(start_pool(handlers_config(1)).release());
  auto bridge_config = handlers_config(1);
  bridge_config.name = "recovery-bridge";
  auto bridge = Bridge::start(bridge_config);
  ASSERT_TRUE(bridge) << bridge.error().to_string();
  pool->breaker()->force_open();
  auto first = pool->execute("echo", {{"n", 7}});
  ASSERT_FALSE(first);
  ASSERT_EQ(first.error().strategy, RecoveryStrategy::kFailover);

  RecoveryOrchestrator orchestrator;
  RecoveryRequest request;
  request.name = "pool:test echo";
  request.error = first.error();
  request.retry = [&](std::uint32_t) { return pool->execute("echo", {{"n", 7}}); };
  request.failover = [&] { return (*bridge)->execute("echo", {{"n", 7}}); };
  const auto caller = std::this_thread::get_id();
  std::thread::id ran_on;
  request.failover = [&, inner = request.failover] {
    ran_on = std::this_thread::get_id();
    return inner();
  };
  RecoveryOutcome outcome = orchestrator.recover(std::move(request)).get();
  EXPECT_EQ(outcome.kind, RecoveryResultKind::kFailedOver);
  ASSERT_TRUE(outcome.result) << outcome.result.error().to_string();
  EXPECT_EQ((*outcome.result)["args"]["n"], 7);
  EXPECT_NE(ran_on, caller);  // never on the caller's (or the pool's) thread
  auto c = orchestrator.counters();
  EXPECT_EQ(c.initiated, 1u);
  EXPECT_EQ(c.failed_over, 1u);
}

TEST(RecoveryOrchestratorIntegration, RetryableFailureIsRecoveredByRetryingOnThePool) {
  auto dir = std::filesystem::path(::testing::TempDir()) /
             ("bp_recovery_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::shared_ptr<Pool> pool(start_pool(handlers_config(2)).release());
  ExecuteOptions once;
  once.retry = RetryPolicy::none();  // the pool itself does not retry: the orchestrator will
  Json args = {{"counter", (dir / "c").string()}, {"failures", 2}};
  auto first = pool->execute("fail_retryable", args, once);
  ASSERT_FALSE(first);
  ASSERT_EQ(first.error().strategy, RecoveryStrategy::kBackoffRetry);

  RecoveryConfig config;
  config.backoff_base = std::chrono::milliseconds(1);
  RecoveryOrchestrator orchestrator(config);
  RecoveryRequest request;
  request.name = "pool:test fail_retryable";
  request.error = first.error();
  request.retry = [&](std::uint32_t) { return pool->execute("fail_retryable", args, once); };
  RecoveryOutcome outcome = orchestrator.recover(std::move(request)).get();
  EXPECT_EQ(outcome.kind, RecoveryResultKind::kRecovered);
  ASSERT_TRUE(outcome.result) << outcome.result.error().to_string();
  EXPECT_EQ((*outcome.result)["calls"], 3);
  EXPECT_EQ(outcome.attempts, 3u);
  EXPECT_EQ(orchestrator.counters().succeeded, 1u);
  std::filesystem::remove_all(dir);
}

TEST(RecoveryOrchestratorIntegration, HangingRetryIsCutOffAtTheTimeLimit) {
  std::shared_ptr<Pool> pool(start_pool(handlers_config(1)).release());
  Error e(ErrorCategory::kConnection, "worker w1 exited during request");
  e.strategy = RecoveryStrategy::kImmediateRetry;
  RecoveryOrchestrator orchestrator;
  RecoveryRequest request;
  request.name = "pool:test sleep";
  request.error = e;
  request.retry = [&](std::uint32_t) { return pool->execute("sleep", {{"seconds", 1.0}}); };
  request.time_limit = 200ms;
  auto t0 = std::chrono::steady_clock::now();
  RecoveryOutcome outcome = orchestrator.recover(std::move(request)).get();
  auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(outcome.kind, RecoveryResultKind::kFailed);
  ASSERT_FALSE(outcome.result);
  EXPECT_EQ(outcome.result.error().category, ErrorCategory::kTimeout);
  EXPECT_GE(waited, 190ms);
  EXPECT_LT(waited, 900ms);  // answered at the limit, not when the 1 s call ends
  EXPECT_EQ(orchestrator.counters().timed_out, 1u);
  orchestrator.shutdown();  // waits for the still-running call to return
}

}  // namespace
}  // namespace bridgepool::testing
