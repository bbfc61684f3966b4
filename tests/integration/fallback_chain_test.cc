// The fallback chain pool -> bridge -> mock with real Python processes (SPEC §6): failover when
// the pool cannot serve, the mock only when allowed, and traffic back on the pool once it
// recovers — every answer's CallReport saying which adapter produced it, none lost or doubled.
// The mock runs no Python: it answers `echo` with a C++ handler registered here.
#include "bridgepool/fallback_chain.h"

#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "bridgepool/bridge.h"
#include "bridgepool/mock_executor.h"
#include "bridgepool/pool.h"
#include "integration/test_support.h"

namespace bridgepool::testing {
namespace {

using namespace std::chrono_literals;

struct RealChain {
  std::shared_ptr<Pool> pool;
  std::shared_ptr<Bridge> bridge;
  std::shared_ptr<MockExecutor> mock = std::make_shared<MockExecutor>();
  std::unique_ptr<FallbackChain> chain;

  explicit RealChain(PoolConfig pool_config, FallbackConfig config = {}) {
    EXPECT_TRUE(mock->add_handler(
        "echo", [](const Json& args, MockExecutor::Context&) -> Result<Json> { return args; },
        /*idempotent=*/true));
    pool = std::shared_ptr<Pool>(start_pool(pool_config).release());
    auto bridge_config = test_config(1);
    bridge_config.name = "fallback-bridge";
    auto b = Bridge::start(bridge_config);
    EXPECT_TRUE(b) << b.error().to_string();
    bridge = std::shared_ptr<Bridge>(b->release());
    std::vector<FallbackAdapter> adapters;
    adapters.push_back({"pool", pool, nullptr, true, false});
    adapters.push_back({"bridge", bridge, nullptr, true, false});  // a pool of one: own breaker
    adapters.push_back({"mock", mock, nullptr, false, true});
    chain = std::make_unique<FallbackChain>(std::move(adapters), config);
  }
};

TEST(FallbackChainIntegration, OpenPoolBreakerFailsOverToTheBridgeAndTrafficReturns) {
  FallbackConfig config;
  config.ramp_duration = 300ms;
  RealChain c(test_config(2), config);
  CallReport report;
  ExecuteOptions options;
  options.report = &report;
  auto first = c.chain->execute("echo", {{"n", 0}}, options);
  ASSERT_TRUE(first) << first.error().to_string();
  EXPECT_EQ(report.adapter, "pool");
  EXPECT_FALSE(report.worker_id.empty());

  c.pool->breaker()->force_open();
  for (int i = 1; i <= 20; ++i) {
    auto r = c.chain->execute("echo", {{"n", i}}, options);
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ((*r)["n"], i);  // the bridge's real Python worker answered this very call
    EXPECT_EQ(report.adapters_tried, (std::vector<std::string>{"pool", "bridge"}));
    EXPECT_EQ(report.adapter, "bridge");
    EXPECT_EQ(report.worker_id, c.bridge->workers().at(0).id);  // the bridge's worker answered
    EXPECT_EQ(report.attempts, 1u);
  }
  c.pool->breaker()->reset();
  // Probe succeeded (the pool answered): traffic ramps back over 300 ms, then stays there.
  ASSERT_TRUE(wait_until(
      [&] {
        auto r = c.chain->execute("echo", {{"n", -1}}, options);
        return r && report.adapter == "pool" && c.chain->stats()[0].ramp >= 1.0;
      },
      5000ms));
  int on_pool = 0;
  for (int i = 0; i < 20; ++i) {
    auto r = c.chain->execute("echo", {{"n", i}}, options);
    on_pool += r && report.adapter == "pool";
  }
  EXPECT_EQ(on_pool, 20);
}

TEST(FallbackChainIntegration, DeadPoolFailsOverToTheMockOnlyWhenAllowed) {
  auto dir =
      std::filesystem::path(::testing::TempDir()) / ("bp_fallback_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto pool_config = test_config(1, {data_path("resilience_handlers.py")});
  pool_config.env["RESILIENCE_IMPORT_MARKER"] = (dir / "broken").string();
  // Spawn: the test breaks the handler module on disk after start; forked workers would
  // never re-import it (docs/lifecycle.md, start methods).
  pool_config.start_method = StartMethod::kSpawn;
  pool_config.checkout_timeout = 300ms;
  RealChain c(pool_config);
  std::ofstream(dir / "broken") << "1";
  for (const auto& w : c.pool->workers()) ::kill(w.pid, SIGKILL);
  ASSERT_TRUE(wait_until([&] { return c.pool->stats().live == 0; }));
  // The bridge runs the (working) example handlers: it serves while the pool cannot.
  CallReport report;
  ExecuteOptions any;
  any.report = &report;
  auto via_bridge = c.chain->execute("echo", {{"x", 1}}, any);
  ASSERT_TRUE(via_bridge) << via_bridge.error().to_string();
  EXPECT_EQ(report.adapter, "bridge");

  // Without the bridge (per-call adapter list) and without the mock: the pool's error, classified.
  ExecuteOptions pool_only;
  pool_only.adapters = {"pool"};
  pool_only.report = &report;
  auto failed = c.chain->execute("echo", {{"x", 2}}, pool_only);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().context.adapter, "pool");
  EXPECT_EQ(report.adapter, "pool");
  EXPECT_NE(failed.error().strategy, RecoveryStrategy::kAbandon);

  ExecuteOptions pool_then_mock;
  pool_then_mock.adapters = {"pool", "mock"};
  pool_then_mock.report = &report;
  auto mocked = c.chain->execute("echo", {{"x", 3}}, pool_then_mock);
  ASSERT_TRUE(mocked) << mocked.error().to_string();
  EXPECT_EQ(report.adapter, "mock");
  EXPECT_EQ(report.worker_id, "mock");
  EXPECT_EQ(report.adapters_tried, (std::vector<std::string>{"pool", "mock"}));
  EXPECT_EQ(*mocked, Json({{"x", 3}}));  // the registered C++ handler's answer
  std::filesystem::remove_all(dir);
}

TEST(FallbackChainIntegration, NoRequestLostOrAnsweredTwiceWhileThePoolFlaps) {
  FallbackConfig config;
  config.ramp_duration = 50ms;
  RealChain c(test_config(2), config);
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0}, wrong{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 3; ++t) {
    clients.emplace_back([&, t] {
      for (int i = 0; !stop; ++i) {
        int tag = t * 1'000'000 + i;
        auto r = c.chain->execute("echo", {{"tag", tag}});
        if (!r) {
          failed++;
        } else if ((*r)["tag"] != tag) {
          wrong++;
        } else {
          ok++;
        }
      }
    });
  }
  for (int flap = 0; flap < 10; ++flap) {
    std::this_thread::sleep_for(50ms);
    c.pool->breaker()->force_open();
    std::this_thread::sleep_for(50ms);
    c.pool->breaker()->reset();
  }
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(wrong, 0);
  auto stats = c.chain->stats();
  EXPECT_GT(stats[0].served, 0u);
  EXPECT_GT(stats[1].served, 0u);
  EXPECT_EQ(stats[0].served + stats[1].served + stats[2].served, static_cast<std::uint64_t>(ok));
}

}  // namespace
}  // namespace bridgepool::testing
