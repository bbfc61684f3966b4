// Pool logic with fake workers (tests/fakes) and a ManualClock: the health timeline, respawn
// backoff, recycling jitter, session expiry, overflow retirement, checkin errors, breaker and
// quarantine decisions, and the request checks of issue #8's bug list — deterministic, with no
// Python and no sleeping: the test moves the clock, then waits for what must follow.
// The fixture, and how the tests synchronise with the pool: pool_logic_fixture.h.
#include <atomic>
#include <future>
#include <limits>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "bridgepool/circuit_breaker.h"
#include "bridgepool/clock.h"
#include "bridgepool/pool.h"
#include "fakes/fake_spawner.h"
#include "pool_logic_fixture.h"

namespace bridgepool {
namespace {

using namespace std::chrono_literals;
using fakes::FakeScript;
using fakes::FakeSpawner;

TEST_F(PoolLogic, HealthTimelineProbesOnTimeDegradesRechecksSoonAndRemovesAtTheLimit) {
  auto c = config(1);
  c.health_check_interval = 30s;
  c.health_recheck_interval = 200ms;
  c.max_health_failures = 3;
  auto pool = start(c);
  ASSERT_TRUE(pool);
  const TimePoint ready_at = clock_->now();
  advance(30s - kTick);
  EXPECT_EQ(spawner_->requests("health_check"), 0);  // not one tick early
  advance(kTick);
  ASSERT_TRUE(spawner_->wait_for([&] { return spawner_->requests("health_check") == 1; }));
  EXPECT_EQ(spawner_->request_times("health_check").at(0), ready_at + 30s);
  EXPECT_EQ(pool->stats().health_checks, 1u);

  // Unhealthy from now on: the next routine probe is one interval after the last one.
  spawner_->set_healthy(false);
  advance(30s);
  ASSERT_TRUE(spawner_->wait_for([&] { return state_of(*pool, "w1") == WorkerState::kDegraded; }));
  EXPECT_EQ(pool->stats().degraded, 1u);
  EXPECT_EQ(pool->stats().health_check_failures, 1u);
  // A degraded worker is probed again after the recheck interval, not after 30 s.
  advance(100ms);
  EXPECT_EQ(spawner_->requests("health_check"), 2);
  advance(100ms);
  ASSERT_TRUE(spawner_->wait_for([&] { return spawner_->requests("health_check") == 3; }));
  EXPECT_EQ(state_of(*pool, "w1"), WorkerState::kDegraded);
  // The third consecutive failure removes it; a replacement starts at once.
  advance(200ms);
  ASSERT_TRUE(spawner_->wait_for([&] { return spawner_->spawns() == 2; }));
  spawner_->set_healthy(true);
  ASSERT_TRUE(pool->wait_ready(10s));
  const auto times = spawner_->request_times("health_check");
  ASSERT_GE(times.size(), 4u);
  EXPECT_EQ(times[1], ready_at + 60s);
  EXPECT_EQ(times[2], ready_at + 60s + 200ms);
  EXPECT_EQ(times[3], ready_at + 60s + 400ms);
  PoolStats st = pool->stats();
  EXPECT_EQ(st.health_check_failures, 3u);
  EXPECT_EQ(st.replaced, 1u);
  EXPECT_EQ(st.live, 1u);
}

TEST_F(PoolLogic, RespawnBackoffDoublesWhileStartsFailAndResetsOnSuccess) {
  auto c = config(1);
  c.respawn_backoff_initial = 100ms;
  c.respawn_backoff_max = 10s;
  FakeScript broken;
  broken.start = FakeScript::Start::kInitFailed;
  for (std::uint64_t n : {2, 3, 4}) spawner_->script(n, broken);
  auto pool = start(c);
  ASSERT_TRUE(pool);
  ASSERT_TRUE(spawner_->crash("w1"));
  // The first replacement starts at once; it fails, and each next start waits twice as long.
  ASSERT_TRUE(spawner_->wait_for([&] { return pool->stats().init_failures == 1; }));
  EXPECT_EQ(spawner_->spawns(), 2u);
  std::uint64_t failures = 1;
  for (auto [wait, total] : {std::pair{100ms, 3u}, {200ms, 4u}, {400ms, 5u}}) {
    // The clock moves only once the pool has taken in the last failure (and timed the next
    // start from it).
    ASSERT_TRUE(spawner_->wait_for([&] { return pool->stats().init_failures == failures; }));
    if (wait > kTick) {
      advance(wait - kTick);
      EXPECT_EQ(spawner_->spawns(), total - 1) << "no start before " << wait.count() << " ms";
    }
    advance(kTick);
    ASSERT_TRUE(spawner_->wait_for([&, total = total] { return spawner_->spawns() == total; }));
    ++failures;
  }
  // Spawn 5 succeeds: the streak is over.
  ASSERT_TRUE(spawner_->wait_for([&] { return pool->stats().live == 1u; }));
  PoolStats st = pool->stats();
  EXPECT_EQ(st.init_failures, 3u);
  EXPECT_EQ(st.live, 1u);
  EXPECT_EQ(st.last_init_error,
            "worker w4 failed to load its handlers: ImportError: "
            "ImportError: scripted");
  // After a success, the next replacement starts at once again (no clock move needed).
  ASSERT_TRUE(spawner_->crash("w5"));
  ASSERT_TRUE(spawner_->wait_for([&] { return spawner_->spawns() == 6u; }));
}

TEST_F(PoolLogic, RecyclingLimitsAreJitteredPerWorkerAndNoRequestFails) {
  auto c = config(1);
  c.max_requests = 10;
  c.max_requests_jitter = 0.5;
  randoms_ = {0.0, 1.0};  // w1: 10 * (1 - 0.5) = 5 requests; w2: 10 * 1.5 = 15
  auto pool = start(c);
  ASSERT_TRUE(pool);
  CallReport report;
  ExecuteOptions options;
  options.report = &report;
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(pool->execute("echo", {{"i", i}}, options));
    EXPECT_EQ(report.worker_id, "w1");
  }
  // The 5th request reached w1's limit: it was recycled when it came back, and replaced.
  for (int i = 5; i < 20; ++i) {
    auto r = pool->execute("echo", {{"i", i}}, options);
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ(report.worker_id, "w2") << i;
  }
  ASSERT_TRUE(spawner_->wait_for([&] { return spawner_->spawns() == 3u; }));  // w2 at 15
  PoolStats st = pool->stats();
  EXPECT_EQ(st.recycled, 2u);
  EXPECT_EQ(st.ok, 20u);
  // Recycled gracefully (the shutdown command, read by the worker a moment later), not killed.
  EXPECT_TRUE(spawner_->wait_for([&] { return spawner_->requests("shutdown") == 2; }));
}

TEST_F(PoolLogic, SessionsExpireAfterTheirTtlAndTheWorkerIsToldToDropThem) {
  auto c = config(1);
  c.session_ttl = 300s;
  c.session_cleanup_interval = 60s;
  auto pool = start(c);
  ASSERT_TRUE(pool);
  ASSERT_TRUE(pool->execute_in_session("s1", "echo", {{"x", 1}}));
  ASSERT_TRUE(pool->execute_in_session("s2", "echo", {{"x", 2}}));
  advance(200s);
  ASSERT_TRUE(pool->execute_in_session("s2", "echo", {{"x", 3}}));  // s2 stays in use
  advance(100s - kTick);
  EXPECT_EQ(pool->stats().session_expirations, 0u);
  // The sweep runs every 60 s; by then s1 has been idle for its ttl.
  advance(61s);
  ASSERT_TRUE(spawner_->wait_for([&] { return spawner_->closed_sessions().size() == 1u; }));
  EXPECT_EQ(spawner_->closed_sessions(), std::vector<std::string>{"s1"});
  PoolStats st = pool->stats();
  EXPECT_EQ(st.session_expirations, 1u);
  EXPECT_EQ(st.sessions, 1u);
}

TEST_F(PoolLogic, OverflowWorkersAbsorbABurstAndRetireAfterTheirIdleTimeout) {
  auto c = config(1);
  c.max_overflow = 1;
  c.overflow_idle_timeout = 30s;
  c.health_check_interval = 0ms;       // no probes: they would take the idle workers first
  c.session_cleanup_interval = 100ms;  // keeps the maintenance tick at 100 ms
  auto pool = start(c);
  ASSERT_TRUE(pool);
  auto held = std::async(std::launch::async, [&] { return pool->execute("hold"); });
  ASSERT_TRUE(spawner_->wait_for([&] { return spawner_->requests("hold") == 1; }));
  // w1 is busy: the next caller makes the pool grow to size + max_overflow.
  CallReport report;
  ExecuteOptions options;
  options.report = &report;
  ASSERT_TRUE(pool->execute("echo", Json::object(), options));
  EXPECT_EQ(report.worker_id, "w2");
  spawner_->release_holds();
  ASSERT_TRUE(held.get());
  EXPECT_EQ(pool->stats().live, 2u);
  advance(30s - kTick);
  EXPECT_EQ(pool->stats().live, 2u);
  advance(kTick);
  ASSERT_TRUE(spawner_->wait_for([&] { return pool->stats().live == 1u; }));
  PoolStats st = pool->stats();
  EXPECT_EQ(st.overflow_retired, 1u);
  EXPECT_EQ(st.replaced, 0u);  // an overflow worker leaving is not replaced
}

TEST_F(PoolLogic, CheckinErrorsDegradeThenRecycleAtTheLimit) {
  auto c = config(1);
  c.max_checkin_failures = 2;
  c.health_recheck_interval = 200ms;
  auto pool = start(c);
  ASSERT_TRUE(pool);
  // The reply is delivered; the worker leaves rotation until a probe passes.
  auto marked = pool->execute("mark", {{"reason", "CUDA out of memory"}});
  ASSERT_TRUE(marked) << marked.error().to_string();
  EXPECT_EQ(state_of(*pool, "w1"), WorkerState::kDegraded);
  EXPECT_EQ(pool->workers().at(0).health, WorkerHealth::kUnhealthy);
  EXPECT_EQ(pool->workers().at(0).history.back().reason, TransitionReason::kCheckinError);
  advance(200ms);
  ASSERT_TRUE(spawner_->wait_for([&] { return state_of(*pool, "w1") == WorkerState::kReady; }));
  // A second error in a row (the probe does not reset the count; a clean reply would).
  ASSERT_TRUE(pool->execute("mark", {{"reason", "CUDA out of memory"}}));
  ASSERT_TRUE(spawner_->wait_for([&] { return spawner_->spawns() == 2u; }));
  ASSERT_TRUE(pool->wait_ready(10s));
  PoolStats st = pool->stats();
  EXPECT_EQ(st.checkin_errors, 2u);
  EXPECT_EQ(st.recycled, 1u);
  // Recycled gracefully (the shutdown command, read by the worker a moment later), not killed.
  EXPECT_TRUE(spawner_->wait_for([&] { return spawner_->requests("shutdown") == 1; }));
  // A clean reply between marks resets the count: mark, ok, mark keeps the worker.
  ASSERT_TRUE(pool->execute("mark"));
  advance(200ms);
  ASSERT_TRUE(spawner_->wait_for([&] { return state_of(*pool, "w2") == WorkerState::kReady; }));
  ASSERT_TRUE(pool->execute("echo"));
  ASSERT_TRUE(pool->execute("mark"));
  EXPECT_EQ(state_of(*pool, "w2"), WorkerState::kDegraded);
  EXPECT_EQ(spawner_->spawns(), 2u);
}

TEST_F(PoolLogic, ADegradedWorkerIsProbedBackEvenWithRoutineHealthChecksOff) {
  auto c = config(1);
  c.health_check_interval = 0ms;  // no routine probes
  c.health_recheck_interval = 200ms;
  auto pool = start(c);
  ASSERT_TRUE(pool);
  ASSERT_TRUE(pool->execute("mark"));
  EXPECT_EQ(state_of(*pool, "w1"), WorkerState::kDegraded);
  advance(200ms);
  ASSERT_TRUE(spawner_->wait_for([&] { return state_of(*pool, "w1") == WorkerState::kReady; }));
  EXPECT_EQ(spawner_->requests("health_check"), 1);
  EXPECT_TRUE(pool->execute("echo"));
}

TEST_F(PoolLogic, ACallerCanCheckAWorkerInWithClose) {
  auto pool = start(config(1));
  ASSERT_TRUE(pool);
  ExecuteOptions close;
  close.close_worker = true;
  CallReport report;
  close.report = &report;
  auto r = pool->execute("echo", {{"x", 1}}, close);
  ASSERT_TRUE(r) << r.error().to_string();  // the reply is returned as usual
  EXPECT_EQ(*r, (Json{{"x", 1}}));
  EXPECT_EQ(report.worker_id, "w1");
  ASSERT_TRUE(spawner_->wait_for([&] { return spawner_->spawns() == 2u; }));
  // Recycled gracefully (the shutdown command, read by the worker a moment later), not killed.
  EXPECT_TRUE(spawner_->wait_for([&] { return spawner_->requests("shutdown") == 1; }));
  ExecuteOptions next;
  next.report = &report;
  ASSERT_TRUE(pool->execute("echo", Json::object(), next));
  EXPECT_EQ(report.worker_id, "w2");
  EXPECT_EQ(pool->stats().replaced, 1u);
}

TEST_F(PoolLogic, ACommandAddedByARollingRestartIsAcceptedOnceTheNewWorkersServe) {
  auto pool = start(config(1));
  ASSERT_TRUE(pool);
  auto before = pool->execute("summarize");
  ASSERT_FALSE(before);
  EXPECT_EQ(before.error().category, ErrorCategory::kInvalidRequest);
  FakeScript v2;
  v2.extra_commands = {"summarize"};
  spawner_->script(2, v2);
  ASSERT_TRUE(pool->rolling_restart(config(1)));
  auto after = pool->execute("summarize");
  ASSERT_TRUE(after) << after.error().to_string();
  EXPECT_EQ(*after, (Json{{"command", "summarize"}}));
  EXPECT_EQ(pool->stats().generation, 2u);
}

TEST_F(PoolLogic, ABadHandshakeIsAStartFailureThatSaysWhatWasWrong) {
  const std::pair<FakeScript::Start, std::string> cases[] = {
      {FakeScript::Start::kGarbage, "worker w1 sent an invalid handshake: "},
      {FakeScript::Start::kWrongProtocol,
       "worker w1 speaks protocol 1 but this pool speaks protocol 2"},
      {FakeScript::Start::kSpeaksFirst, "worker w1 spoke before its handshake"},
  };
  for (const auto& [start, message] : cases) {
    SCOPED_TRACE(message);
    spawner_ = std::make_shared<FakeSpawner>(clock_);
    FakeScript script;
    script.start = start;
    spawner_->set_default_script(script);
    auto c = config(1);
    c.respawn_backoff_initial = 10s;  // one start only
    auto pool = Pool::start(c);
    ASSERT_FALSE(pool);
    EXPECT_EQ(pool.error().category, ErrorCategory::kInitialization);
    EXPECT_NE(pool.error().message.find(message), std::string::npos) << pool.error().message;
    EXPECT_EQ(pool.error().context.operation, "handshake");
    EXPECT_EQ(spawner_->running(), 0u);  // killed, not left behind
  }
}

TEST_F(PoolLogic, AWorkerThatStopsReadingTimesOutTheWriteAndIsKilled) {
  FakeScript stall;
  stall.start = FakeScript::Start::kStall;
  spawner_->script(1, stall);
  auto pool = start(config(1));
  ASSERT_TRUE(pool);
  ExecuteOptions options;
  options.timeout = 5s;
  options.retry = RetryPolicy::none();
  // 1 MiB does not fit in the 64 KiB pipe of a worker that does not read.
  auto call = std::async(std::launch::async, [&] {
    return pool->execute("echo", {{"data", std::string(1 << 20, 'x')}}, options);
  });
  while (call.wait_for(1ms) != std::future_status::ready) clock_->advance(100ms);
  auto r = call.get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().category, ErrorCategory::kTimeout);
  EXPECT_EQ(r.error().message, "worker w1 did not accept the request before the deadline");
  ASSERT_TRUE(spawner_->wait_for([&] { return spawner_->spawns() == 2u; }));  // killed, replaced
}

TEST_F(PoolLogic, ASessionCallWaitsForItsBusyWorkerThenTimesOut) {
  auto pool = start(config(2));
  ASSERT_TRUE(pool);
  ASSERT_TRUE(pool->execute_in_session("s1", "echo"));
  auto held =
      std::async(std::launch::async, [&] { return pool->execute_in_session("s1", "hold"); });
  ASSERT_TRUE(spawner_->wait_for([&] { return spawner_->requests("hold") == 1; }));
  ExecuteOptions options;
  options.checkout_timeout = 300ms;
  auto waiting = std::async(std::launch::async,
                            [&] { return pool->execute_in_session("s1", "echo", {}, options); });
  while (waiting.wait_for(1ms) != std::future_status::ready) clock_->advance(100ms);
  auto r = waiting.get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().category, ErrorCategory::kTimeout);
  EXPECT_NE(r.error().message.find("stayed busy for"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("bound to this call's session"), std::string::npos);
  spawner_->release_holds();
  ASSERT_TRUE(held.get());
}

// A refused command name or session id of any size is described, not copied, in the error, the
// log line of the call and the pool.request event (which metrics and the reporter read): a
// caller sending 1 MB names must not write 1 MB per request into every log and label.
TEST_F(PoolLogic, OversizedNamesAreDescribedNotCopiedIntoErrorsLogsAndEvents) {
  std::mutex mu;
  std::vector<std::string> lines;
  std::vector<std::string> commands;
  auto c = config(1);
  c.logger = std::make_shared<Logger>(LogLevel::kInfo, [&](const LogRecord& r) {
    std::lock_guard lock(mu);
    lines.push_back(Logger::format_json(r));
  });
  events_->attach("pool.request", [&](const Event& e) {
    std::lock_guard lock(mu);
    commands.push_back(e.metadata.at("command"));
  });
  auto pool = start(c);
  ASSERT_TRUE(pool);
  auto by_name = pool->execute(std::string(1 << 20, 'y'));
  ASSERT_FALSE(by_name);
  EXPECT_EQ(by_name.error().category, ErrorCategory::kInvalidRequest);
  EXPECT_EQ(by_name.error().context.command, "<command of 1048576 bytes>");
  auto by_session = pool->execute_in_session(std::string(1 << 20, 's'), "echo");
  ASSERT_FALSE(by_session);
  EXPECT_EQ(by_session.error().context.session_id, "<session id of 1048576 bytes>");
  std::lock_guard lock(mu);
  EXPECT_EQ(commands, (std::vector<std::string>{"<command of 1048576 bytes>", "echo"}));
  ASSERT_FALSE(lines.empty());
  for (const auto& line : lines) EXPECT_LT(line.size(), 2000u) << line.substr(0, 200);
}

TEST_F(PoolLogic, AWorkerThatDiedIsDescribedByItsExitStatusNotAsStillRunning) {
  // w1 dies while idle; its request pipe closes 50 ms before its exit is visible. The next call
  // passes the checkout check, gets EPIPE on the write, and is re-routed to the replacement; the
  // removal must name the exit status, not call a dead process "still running".
  std::mutex log_mu;
  std::vector<std::string> lines;
  auto c = config(1);
  c.logger = std::make_shared<Logger>(LogLevel::kWarn, [&](const LogRecord& r) {
    std::lock_guard lock(log_mu);
    lines.push_back(r.message);
  });
  FakeScript lagging;
  lagging.exit_lag = 50ms;
  spawner_->script(1, lagging);
  auto pool = start(c);
  ASSERT_TRUE(pool);
  ASSERT_TRUE(spawner_->crash("w1", 9));
  auto r = pool->execute("echo", {{"x", 1}});
  ASSERT_TRUE(r) << r.error().to_string();  // re-routed: it never ran on w1
  // Whoever retires w1 first — this call (EPIPE) or the exit watcher — says how it ended.
  std::lock_guard lock(log_mu);
  int named = 0;
  for (const auto& line : lines) {
    EXPECT_EQ(line.find("still running"), std::string::npos) << line;
    if (line.find("worker removed") != std::string::npos) {
      EXPECT_NE(line.find("exit code 9"), std::string::npos) << line;
      ++named;
    }
  }
  EXPECT_EQ(named, 1);
}

TEST_F(PoolLogic, ARequestThatKeepsKillingWorkersIsQuarantined) {
  auto pool = start(config(2));
  ASSERT_TRUE(pool);
  for (int i = 0; i < 3; ++i) {  // kill_threshold 3
    auto r = pool->execute("crash", {{"code", 9}});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().category, ErrorCategory::kConnection);
  }
  auto refused = pool->execute("crash", {{"code", 9}});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().category, ErrorCategory::kInvalidRequest);
  EXPECT_EQ(refused.error().message.rfind("request quarantined", 0), 0u) << refused.error().message;
  EXPECT_EQ(spawner_->requests("crash"), 3);  // the fourth never reached a worker
  EXPECT_EQ(pool->stats().quarantine_refused, 1u);
  // Other arguments are another request.
  EXPECT_FALSE(pool->execute("crash", {{"code", 8}}));
  EXPECT_EQ(spawner_->requests("crash"), 4);
}

TEST_F(PoolLogic, TheBreakerOpensOnServiceFailuresAndHalfOpensOnTheClock) {
  auto c = config(1);
  c.resilience.breaker = CircuitBreakerConfig{};
  c.resilience.breaker.failure_threshold = 3;
  c.resilience.breaker.open_timeout = 10s;
  c.resilience.breaker.success_threshold = 1;
  c.resilience.quarantine.enabled = false;
  auto pool = start(c);
  ASSERT_TRUE(pool);
  // User-code errors never count: the service works.
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(pool->execute("fail"));
  EXPECT_EQ(pool->stats().breaker_state, "closed");
  for (int code = 1; code <= 3; ++code) {
    auto r = pool->execute("crash", {{"code", code}});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().category, ErrorCategory::kConnection);
    ASSERT_TRUE(pool->wait_ready(10s));
  }
  EXPECT_EQ(pool->stats().breaker_state, "open");
  const int echoes = spawner_->requests("echo");
  auto refused = pool->execute("echo");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().category, ErrorCategory::kCircuitOpen);
  EXPECT_EQ(spawner_->requests("echo"), echoes);  // no worker touched
  clock_->advance(10s);
  auto probe = pool->execute("echo");
  ASSERT_TRUE(probe) << probe.error().to_string();
  EXPECT_EQ(pool->stats().breaker_state, "closed");
}

TEST_F(PoolLogic, RefusalsAfterShutdownNeverTouchTheBreaker) {
  auto c = config(1);
  c.resilience.breaker = CircuitBreakerConfig{};
  c.resilience.breaker.failure_threshold = 5;
  auto pool = start(c);
  ASSERT_TRUE(pool);
  auto pending = pool->execute_async("hold");
  ASSERT_TRUE(spawner_->wait_for([&] { return spawner_->requests("hold") == 1; }));
  pool->shutdown(0ms);
  auto cut = pending.get();
  ASSERT_FALSE(cut);
  for (int i = 0; i < 30; ++i) {
    auto r = i % 2 ? pool->execute("echo") : pool->execute_async("echo").get();
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().category, ErrorCategory::kResource) << i;
    EXPECT_EQ(r.error().message, "pool 'fake' is shutting down");
  }
  EXPECT_EQ(pool->breaker()->state(), CircuitState::kClosed);
  EXPECT_EQ(pool->stats().circuit_rejected, 0u);
}

TEST_F(PoolLogic, ZeroOrNegativeTimeoutsAreRefusedBeforeAnyWorkerIsTouched) {
  auto pool = start(config(1));
  ASSERT_TRUE(pool);
  for (auto timeout : {0ms, -5ms}) {
    ExecuteOptions options;
    options.timeout = timeout;
    auto r = pool->execute("echo", Json::object(), options);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().category, ErrorCategory::kInvalidRequest);
    EXPECT_EQ(r.error().strategy, RecoveryStrategy::kAbandon);
  }
  ExecuteOptions negative_wait;
  negative_wait.checkout_timeout = -1ms;
  EXPECT_EQ(pool->execute("echo", Json::object(), negative_wait).error().category,
            ErrorCategory::kInvalidRequest);
  ExecuteOptions huge;
  huge.timeout = std::chrono::milliseconds(std::numeric_limits<std::int64_t>::max());
  EXPECT_TRUE(pool->execute("echo", Json::object(), huge));  // saturated, not overflowed
  EXPECT_EQ(spawner_->requests("echo"), 1);
  EXPECT_EQ(pool->stats().live, 1u);
}

TEST_F(PoolLogic, InvalidUtf8NanAndDeepArgsAreRefusedNotChanged) {
  auto pool = start(config(1));
  ASSERT_TRUE(pool);
  // Two different invalid session ids must not become one "u\ufffd" session.
  for (const char* session : {"u\xff", "u\xfe"}) {
    auto r = pool->execute_in_session(session, "echo");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().category, ErrorCategory::kInvalidRequest);
    EXPECT_EQ(r.error().message, "session id is not valid UTF-8 (byte 1 of 2)");
    EXPECT_EQ(r.error().context.session_id, "u");  // only valid UTF-8 in the context
  }
  EXPECT_EQ(pool->execute("ech\xc3").error().category, ErrorCategory::kInvalidRequest);
  EXPECT_EQ(pool->execute("echo", {{"s", "\xc0\xaf"}}).error().message,
            "args contain a string that is not valid UTF-8");
  EXPECT_EQ(pool->execute("echo", {{std::string("k\xff"), 1}}).error().message,
            "args contain a key that is not valid UTF-8");
  for (double bad :
       {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
    auto r = pool->execute("echo", {{"x", Json::array({1, bad})}});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().category, ErrorCategory::kInvalidRequest);
  }
  // Deep nesting: 500 levels pass, 501 do not; 100,000 levels are refused without recursion.
  auto nested = [](int levels) {  // `levels` objects, one inside the other
    Json v = 1;
    for (int i = 0; i < levels; ++i) v = Json{{"a", std::move(v)}};
    return v;
  };
  EXPECT_TRUE(pool->execute("echo", nested(500)));
  auto deep = pool->execute("echo", nested(501));
  ASSERT_FALSE(deep);
  EXPECT_EQ(deep.error().message, "args are nested more than 500 levels deep");
  Json very_deep = Json::object();
  Json* inner = &very_deep;
  for (int i = 0; i < 100'000; ++i) inner = &((*inner)["a"] = Json::object());
  EXPECT_EQ(pool->execute("echo", std::move(very_deep)).error().category,
            ErrorCategory::kInvalidRequest);
  EXPECT_EQ(spawner_->requests("echo"), 1);  // only the 500-level one reached the worker
  PoolStats st = pool->stats();
  EXPECT_EQ(st.live, 1u);
  EXPECT_EQ(st.exits, 0u);
  EXPECT_EQ(pool->breaker()->state(), CircuitState::kClosed);
}

TEST_F(PoolLogic, AConfigurationThatCannotWorkIsRefusedBeforeAnyWorkerStarts) {
  struct Case {
    const char* what;
    std::function<void(PoolConfig&)> spoil;
  };
  const Case cases[] = {
      {"max_queue must be >= 1", [](PoolConfig& c) { c.max_queue = 0; }},
      {"request_timeout must be > 0", [](PoolConfig& c) { c.request_timeout = 0ms; }},
      {"checkout_timeout must be > 0", [](PoolConfig& c) { c.checkout_timeout = -1ms; }},
      {"max_checkin_failures must be >= 1", [](PoolConfig& c) { c.max_checkin_failures = 0; }},
      {"max_health_failures must be >= 1", [](PoolConfig& c) { c.max_health_failures = 0; }},
      {"health_recheck_interval", [](PoolConfig& c) { c.health_recheck_interval = 0ms; }},
      {"respawn_backoff_initial must be > 0",
       [](PoolConfig& c) { c.respawn_backoff_initial = 0ms; }},
      {"respawn_backoff_max >= ", [](PoolConfig& c) { c.respawn_backoff_max = 1ms; }},
      {"max_frame_bytes", [](PoolConfig& c) { c.max_frame_bytes = 10; }},
  };
  for (const auto& [what, spoil] : cases) {
    SCOPED_TRACE(what);
    auto c = config(1);
    spoil(c);
    auto pool = Pool::start(c);
    ASSERT_FALSE(pool);
    EXPECT_EQ(pool.error().category, ErrorCategory::kInvalidRequest);
    EXPECT_NE(pool.error().message.find(what), std::string::npos) << pool.error().message;
  }
  EXPECT_EQ(spawner_->spawns(), 0u);
}

TEST_F(PoolLogic, NullArgsAreNoArguments) {
  auto pool = start(config(1));
  ASSERT_TRUE(pool);
  auto r = pool->execute("echo", {});  // {} is a null Json: it reads as an empty object
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(*r, Json::object());
}

TEST_F(PoolLogic, EveryStatisticOfTheTableIsNamedOnce) {
  PoolStats st;
  std::set<std::string> names;
  int counters = 0, gauges = 0;
  st.for_each([&](const StatInfo& info, std::uint64_t) {
    EXPECT_TRUE(names.insert(std::string(info.name)).second) << info.name;
    EXPECT_FALSE(info.help.empty()) << info.name;
    EXPECT_FALSE(info.unit.empty()) << info.name;
    (info.kind == StatKind::kCounter ? counters : gauges)++;
  });
  EXPECT_EQ(gauges, 11);
  EXPECT_EQ(counters, 25);
}

}  // namespace
}  // namespace bridgepool
