// FallbackChain with scripted executors, a manual clock and injected randomness: which adapter
// serves (CallReport, the one way a caller learns it), which errors move on, breakers, the ramp
// back to the primary, sessions.
#include "bridgepool/fallback_chain.h"

#include <atomic>
#include <functional>
#include <thread>

#include <gtest/gtest.h>

#include "bridgepool/clock.h"

namespace bridgepool {
namespace {

using namespace std::chrono_literals;

// An Executor whose answers a test scripts; counts its calls.
class ScriptedExecutor final : public Executor {
 public:
  using Script = std::function<Result<Json>(std::string_view command, const Json& args)>;
  explicit ScriptedExecutor(std::string kind, Script script = {})
      : kind_(std::move(kind)), script_(std::move(script)) {}

  Result<Json> execute(std::string_view command, Json args,
                       const ExecuteOptions& options) override {
    calls++;
    if (options.report) {
      options.report->attempts = 1;
      options.report->worker_id = kind_ + "-w1";
    }
    if (script_) return script_(command, args);
    return Json{{"from", kind_}};
  }
  Result<Json> execute_in_session(std::string_view session, std::string_view command, Json args,
                                  const ExecuteOptions& options) override {
    session_calls++;
    return execute(command, std::move(args), options);
  }
  Result<bool> close_session(std::string_view) override {
    closes++;
    return true;
  }
  std::string_view kind() const override { return kind_; }
  void set(Script script) { script_ = std::move(script); }

  std::atomic<int> calls{0}, session_calls{0}, closes{0};

 private:
  std::string kind_;
  Script script_;
};

Error classified(ErrorCategory category, RecoveryStrategy strategy) {
  Error e(category, "scripted failure");
  e.strategy = strategy;
  return e;
}

ScriptedExecutor::Script failing(ErrorCategory category, RecoveryStrategy strategy) {
  return [=](std::string_view, const Json&) -> Result<Json> {
    return tl::unexpected(classified(category, strategy));
  };
}

// One call through the chain, with the report it filled.
struct Outcome {
  Result<Json> result;
  CallReport report;
};

Outcome call(FallbackChain& chain, std::string_view command, Json args,
             ExecuteOptions options = {}) {
  Outcome out{Json(), {}};
  options.report = &out.report;
  out.result = chain.execute(command, std::move(args), options);
  return out;
}

Outcome call_in_session(FallbackChain& chain, std::string_view session, std::string_view command,
                        Json args) {
  Outcome out{Json(), {}};
  ExecuteOptions options;
  options.report = &out.report;
  out.result = chain.execute_in_session(session, command, std::move(args), options);
  return out;
}

// The adapter that served a call that must succeed.
std::string served_by(FallbackChain& chain, std::string_view command, Json args) {
  Outcome out = call(chain, command, std::move(args));
  EXPECT_TRUE(out.result) << out.result.error().to_string();
  return out.result ? out.report.adapter : std::string("(failed)");
}

struct ChainFixture {
  ManualClock clock;
  double next_random = 0.0;
  std::shared_ptr<ScriptedExecutor> pool = std::make_shared<ScriptedExecutor>("pool");
  std::shared_ptr<ScriptedExecutor> bridge = std::make_shared<ScriptedExecutor>("bridge");
  std::shared_ptr<ScriptedExecutor> mock = std::make_shared<ScriptedExecutor>("mock");
  std::shared_ptr<EventBus> events = std::make_shared<EventBus>();

  std::unique_ptr<FallbackChain> chain(FallbackConfig config = {}) {
    std::vector<FallbackAdapter> adapters;
    adapters.push_back({"pool", pool, nullptr, false, false});
    adapters.push_back({"bridge", bridge, nullptr, false, false});
    adapters.push_back({"mock", mock, nullptr, false, true});
    return std::make_unique<FallbackChain>(std::move(adapters), config, clock, events,
                                           [this] { return next_random; });
  }
};

TEST(FallbackChainTest, ABadRequestIsRefusedOnceBeforeAnyAdapterAndNeverCopied) {
  ChainFixture f;
  auto chain = f.chain();
  // 100,000 levels: copying it for a second adapter would overflow the stack.
  Json deep = Json::object();
  Json* inner = &deep;
  for (int i = 0; i < 100'000; ++i) inner = &((*inner)["a"] = Json::object());
  auto r = call(*chain, "echo", std::move(deep));
  ASSERT_FALSE(r.result);
  EXPECT_EQ(r.result.error().category, ErrorCategory::kInvalidRequest);
  EXPECT_EQ(r.result.error().strategy, RecoveryStrategy::kAbandon);
  EXPECT_EQ(r.result.error().context.adapter, "chain");
  EXPECT_EQ(f.pool->calls, 0);
  EXPECT_EQ(f.bridge->calls, 0);
  ExecuteOptions zero;
  zero.timeout = std::chrono::milliseconds(0);
  EXPECT_EQ(call(*chain, "echo", Json::object(), zero).result.error().category,
            ErrorCategory::kInvalidRequest);
  EXPECT_EQ(f.pool->calls, 0);
}

TEST(FallbackChainTest, PrimaryServesWhenHealthyAndTheReportSaysSo) {
  ChainFixture f;
  auto chain = f.chain();
  CallReport report;
  ExecuteOptions options;
  options.report = &report;
  auto r = chain->execute("echo", {{"x", 1}}, options);
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)["from"], "pool");
  EXPECT_EQ(report.adapter, "pool");
  EXPECT_EQ(report.attempts, 1u);  // the adapter's own report, passed through
  EXPECT_EQ(report.worker_id, "pool-w1");
  EXPECT_EQ(report.adapters_tried, std::vector<std::string>{"pool"});
  EXPECT_EQ(f.bridge->calls, 0);
}

TEST(FallbackChainTest, FailoverClassErrorMovesToTheNextAdapterOnce) {
  ChainFixture f;
  f.pool->set(failing(ErrorCategory::kInitialization, RecoveryStrategy::kFailover));
  auto chain = f.chain();
  CallReport report;
  ExecuteOptions options;
  options.report = &report;
  auto r = chain->execute("echo", Json::object(), options);
  ASSERT_TRUE(r);
  EXPECT_EQ(report.adapter, "bridge");
  EXPECT_EQ((*r)["from"], "bridge");
  EXPECT_EQ(f.pool->calls, 1);
  EXPECT_EQ(f.bridge->calls, 1);  // answered once, by one adapter
  EXPECT_EQ(report.adapters_tried, (std::vector<std::string>{"pool", "bridge"}));
}

TEST(FallbackChainTest, ExhaustedRetryStrategiesMoveOnAbandonDoesNot) {
  for (auto strategy : {RecoveryStrategy::kImmediateRetry, RecoveryStrategy::kBackoffRetry,
                        RecoveryStrategy::kCircuitBreak, RecoveryStrategy::kFailover}) {
    ChainFixture f;
    f.pool->set(failing(ErrorCategory::kConnection, strategy));
    auto r = call(*f.chain(), "echo", Json::object());
    ASSERT_TRUE(r.result) << strategy_name(strategy);
    EXPECT_EQ(r.report.adapter, "bridge");
  }
  ChainFixture f;
  f.pool->set(failing(ErrorCategory::kPython, RecoveryStrategy::kAbandon));
  auto r = call(*f.chain(), "echo", Json::object());
  ASSERT_FALSE(r.result);
  EXPECT_EQ(r.result.error().category, ErrorCategory::kPython);
  EXPECT_EQ(r.result.error().context.adapter, "pool");
  // The report of a failed call names the adapter whose error it is.
  EXPECT_EQ(r.report.adapter, "pool");
  EXPECT_EQ(r.report.attempts, 1u);
  EXPECT_EQ(r.report.adapters_tried, std::vector<std::string>{"pool"});
  EXPECT_EQ(f.bridge->calls, 0);  // a deterministic error is not run twice
}

TEST(FallbackChainTest, MockServesOnlyWhenAllowed) {
  ChainFixture f;
  f.pool->set(failing(ErrorCategory::kConnection, RecoveryStrategy::kFailover));
  f.bridge->set(failing(ErrorCategory::kInitialization, RecoveryStrategy::kFailover));
  auto chain = f.chain();
  auto refused = call(*chain, "echo", Json::object());
  ASSERT_FALSE(refused.result);
  EXPECT_EQ(refused.result.error().context.adapter, "bridge");
  EXPECT_EQ(refused.report.adapter, "bridge");
  EXPECT_EQ(refused.report.adapters_tried, (std::vector<std::string>{"pool", "bridge"}));
  EXPECT_NE(refused.result.error().context.cause.find("pool: connection"), std::string::npos)
      << refused.result.error().context.cause;
  EXPECT_EQ(f.mock->calls, 0);
  ExecuteOptions allow;
  allow.allow_mock = true;
  auto served = call(*chain, "echo", Json::object(), allow);
  ASSERT_TRUE(served.result);
  EXPECT_EQ(served.report.adapter, "mock");
  FallbackConfig config;
  config.allow_mock = true;
  ChainFixture g;
  g.pool->set(failing(ErrorCategory::kConnection, RecoveryStrategy::kFailover));
  g.bridge->set(failing(ErrorCategory::kConnection, RecoveryStrategy::kFailover));
  EXPECT_EQ(served_by(*g.chain(config), "echo", Json::object()), "mock");
}

TEST(FallbackChainTest, PerCallAdapterListChoosesTheOrder) {
  ChainFixture f;
  auto chain = f.chain();
  ExecuteOptions options;
  options.adapters = {"mock", "pool"};  // naming the mock is the opt-in
  auto r = call(*chain, "echo", Json::object(), options);
  ASSERT_TRUE(r.result);
  EXPECT_EQ(r.report.adapter, "mock");
  EXPECT_EQ(f.pool->calls, 0);
}

TEST(FallbackChainTest, OpenBreakerSkipsTheAdapterThenProbeAndRampReturnTraffic) {
  ChainFixture f;
  FallbackConfig config;
  config.breaker.failure_threshold = 2;
  config.breaker.open_timeout = 5s;
  config.breaker.half_open_max_calls = 1;
  config.breaker.success_threshold = 1;
  config.ramp_duration = 10s;
  auto chain = f.chain(config);
  f.pool->set(failing(ErrorCategory::kConnection, RecoveryStrategy::kFailover));
  for (int i = 0; i < 2; ++i) ASSERT_EQ(served_by(*chain, "echo", Json::object()), "bridge");
  EXPECT_EQ(f.pool->calls, 2);
  // Open: the pool is skipped without being called.
  for (int i = 0; i < 5; ++i) ASSERT_EQ(served_by(*chain, "echo", Json::object()), "bridge");
  EXPECT_EQ(f.pool->calls, 2);
  EXPECT_EQ(chain->stats()[0].skipped_open, 5u);
  EXPECT_EQ(chain->stats()[0].breaker_state, "open");
  // The pool recovers; after open_timeout one probe goes to it and closes the breaker.
  f.pool->set({});
  f.clock.advance(5s);
  EXPECT_EQ(served_by(*chain, "echo", Json::object()), "pool");
  EXPECT_EQ(chain->stats()[0].breaker_state, "closed");
  // Ramp: 2 s into a 10 s ramp the pool goes first for random < 0.2.
  f.clock.advance(2s);
  f.next_random = 0.5;
  EXPECT_EQ(served_by(*chain, "echo", Json::object()), "bridge");
  f.next_random = 0.1;
  EXPECT_EQ(served_by(*chain, "echo", Json::object()), "pool");
  EXPECT_NEAR(chain->stats()[0].ramp, 0.2, 1e-9);
  // Fully back after the ramp.
  f.clock.advance(8s);
  f.next_random = 0.99;
  EXPECT_EQ(served_by(*chain, "echo", Json::object()), "pool");
  EXPECT_EQ(chain->stats()[0].ramp, 1.0);
  EXPECT_GE(chain->stats()[0].ramp_deferred, 1u);
}

TEST(FallbackChainTest, AdapterThatGuardsItselfIsNotWrappedInASecondBreaker) {
  ChainFixture f;
  std::vector<FallbackAdapter> adapters;
  adapters.push_back({"pool", f.pool, nullptr, true, false});
  adapters.push_back({"bridge", f.bridge, nullptr, false, false});
  FallbackChain chain(std::move(adapters), {}, f.clock);
  f.pool->set(failing(ErrorCategory::kCircuitOpen, RecoveryStrategy::kFailover));
  for (int i = 0; i < 20; ++i) ASSERT_EQ(served_by(chain, "echo", Json::object()), "bridge");
  EXPECT_EQ(f.pool->calls, 20);  // asked every time: its own breaker answers at once
  EXPECT_EQ(chain.stats()[0].breaker_state, "");
}

TEST(FallbackChainTest, SessionsStayOnTheAdapterThatServedThem) {
  ChainFixture f;
  auto chain = f.chain();
  f.pool->set(failing(ErrorCategory::kConnection, RecoveryStrategy::kFailover));
  auto first = call_in_session(*chain, "s1", "echo", Json::object());
  ASSERT_TRUE(first.result);
  EXPECT_EQ(first.report.adapter, "bridge");  // a new session may start anywhere
  f.pool->set({});
  auto second = call_in_session(*chain, "s1", "echo", Json::object());
  ASSERT_TRUE(second.result);
  EXPECT_EQ(second.report.adapter, "bridge");  // ... and then stays where its state is
  EXPECT_EQ(second.report.adapters_tried, std::vector<std::string>{"bridge"});
  f.bridge->set(failing(ErrorCategory::kConnection, RecoveryStrategy::kFailover));
  auto third = call_in_session(*chain, "s1", "echo", Json::object());
  ASSERT_FALSE(third.result);  // never silently moved to the pool
  EXPECT_EQ(third.result.error().context.adapter, "bridge");
  EXPECT_EQ(third.result.error().context.session_id, "s1");
  EXPECT_EQ(third.report.adapter, "bridge");
  EXPECT_EQ(chain->close_session("s1").value(), true);
  EXPECT_EQ(f.bridge->closes, 1);
  EXPECT_EQ(chain->close_session("s1").value(), false);
  auto fresh = call_in_session(*chain, "s1", "echo", Json::object());
  ASSERT_TRUE(fresh.result);
  EXPECT_EQ(fresh.report.adapter, "pool");
}

TEST(FallbackChainTest, EveryCallIsAnsweredExactlyOnceUnderConcurrentSwitching) {
  ChainFixture f;
  std::atomic<bool> pool_down{false};
  std::atomic<int> pool_ok{0}, bridge_ok{0};
  f.pool->set([&](std::string_view, const Json&) -> Result<Json> {
    if (pool_down)
      return tl::unexpected(classified(ErrorCategory::kConnection, RecoveryStrategy::kFailover));
    pool_ok++;
    return Json{{"from", "pool"}};
  });
  f.bridge->set([&](std::string_view, const Json&) -> Result<Json> {
    bridge_ok++;
    return Json{{"from", "bridge"}};
  });
  FallbackConfig config;
  config.breaker.open_timeout = 1ms;
  config.ramp_duration = 0ms;
  std::vector<FallbackAdapter> adapters;
  adapters.push_back({"pool", f.pool, nullptr, false, false});
  adapters.push_back({"bridge", f.bridge, nullptr, false, false});
  FallbackChain chain(std::move(adapters), config);  // real clock
  std::atomic<int> answered{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        auto r = chain.execute("echo", Json::object());
        (r ? answered : failed)++;
      }
    });
  }
  std::thread toggler([&] {
    for (int i = 0; i < 50; ++i) {
      pool_down = !pool_down;
      std::this_thread::sleep_for(1ms);
    }
    pool_down = false;
  });
  for (auto& t : threads) t.join();
  toggler.join();
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(answered, 8000);
  EXPECT_EQ(pool_ok + bridge_ok, 8000);  // each call produced exactly one answer
}

TEST(FallbackChainTest, ReportOfACallEveryBreakerRefusedNamesTheFirstAdapterSkipped) {
  ChainFixture f;
  FallbackConfig config;
  config.breaker.failure_threshold = 1;
  auto chain = f.chain(config);
  f.pool->set(failing(ErrorCategory::kConnection, RecoveryStrategy::kFailover));
  f.bridge->set(failing(ErrorCategory::kConnection, RecoveryStrategy::kFailover));
  ASSERT_FALSE(call(*chain, "echo", Json::object()).result);  // opens both breakers
  auto r = call(*chain, "echo", Json::object());
  ASSERT_FALSE(r.result);
  EXPECT_EQ(r.result.error().category, ErrorCategory::kCircuitOpen);
  EXPECT_EQ(r.result.error().context.adapter, "pool");
  EXPECT_EQ(r.report.adapter, "pool");
  EXPECT_EQ(r.report.worker_id, "");
  EXPECT_EQ(r.report.attempts, 0u);
  EXPECT_TRUE(r.report.adapters_tried.empty());
  EXPECT_EQ(f.pool->calls, 1);
  EXPECT_EQ(f.bridge->calls, 1);
}

TEST(FallbackChainTest, ReportIsResetWhenTheChainItselfRefusesTheCall) {
  ChainFixture f;
  auto chain = f.chain();
  CallReport report{"stale", "stale-w", 7, {"stale"}};
  ExecuteOptions options;
  options.report = &report;
  options.adapters = {"no-such-adapter"};
  auto r = chain->execute("echo", Json::object(), options);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().category, ErrorCategory::kInvalidRequest);
  EXPECT_EQ(report.adapter, "");
  EXPECT_EQ(report.worker_id, "");
  EXPECT_EQ(report.attempts, 0u);
  EXPECT_TRUE(report.adapters_tried.empty());

  FallbackConfig config;
  config.max_sessions = 1;
  auto small = f.chain(config);
  ASSERT_TRUE(small->execute_in_session("s1", "echo", Json::object()));
  report = CallReport{"stale", "stale-w", 7, {"stale"}};
  options.adapters.clear();
  auto refused = small->execute_in_session("s2", "echo", Json::object(), options);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().category, ErrorCategory::kResource);
  EXPECT_EQ(report.adapter, "");
  EXPECT_TRUE(report.adapters_tried.empty());
}

}  // namespace
}  // namespace bridgepool
