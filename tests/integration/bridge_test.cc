// Single-bridge mode and connect() against real Python workers (examples/handlers.py): round
// trips, Python exceptions, crashes and restarts, strict session loss, deadlines, import errors,
// output draining, the bridge thread (PR_SET_PDEATHSIG), shutdown, and the connect() choice
// between a registered pool, a bridge and a clear error.
#include "bridgepool/bridge.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "bridgepool/connect.h"
#include "integration/test_support.h"

namespace bridgepool {
namespace {

using testing::children_of;
using testing::data_path;
using testing::process_running;
using testing::test_config;
using testing::wait_until;
using namespace std::chrono_literals;

std::unique_ptr<Bridge> start_bridge(PoolConfig config) {
  auto bridge = Bridge::start(std::move(config));
  EXPECT_TRUE(bridge.has_value()) << (bridge ? "" : bridge.error().format_for_logging());
  return bridge ? std::move(*bridge) : nullptr;
}

bool is_child(pid_t pid) {
  auto kids = children_of(::getpid());
  return std::find(kids.begin(), kids.end(), pid) != kids.end();
}

// The bridge's worker in service (ready or busy), if any.
std::optional<WorkerInfo> serving(const Bridge& bridge) {
  for (const auto& w : bridge.workers()) {
    if (w.state == WorkerState::kReady || w.state == WorkerState::kBusy) return w;
  }
  return std::nullopt;
}

pid_t serving_pid(const Bridge& bridge) {
  auto w = serving(bridge);
  return w ? w->pid : 0;
}

// Workers started after the first one (replacements that completed their start).
std::uint64_t restarts(const Bridge& bridge) {
  auto started = bridge.stats().started;
  return started > 0 ? started - 1 : 0;
}

TEST(Bridge, EchoRoundTripAndInfo) {
  auto bridge = start_bridge(test_config(1));
  ASSERT_TRUE(bridge);
  EXPECT_EQ(bridge->kind(), "bridge");
  Json args = {{"text", "héllo"}, {"n", 42}, {"list", {1, 2, 3}}};
  auto reply = bridge->execute("echo", args);
  ASSERT_TRUE(reply) << reply.error().to_string();
  EXPECT_EQ(*reply, args);
  auto pong = bridge->execute("ping");
  ASSERT_TRUE(pong);
  EXPECT_EQ(*pong, "pong");
  PoolStats stats = bridge->stats();
  EXPECT_EQ(stats.name, "test");
  EXPECT_EQ(stats.size, 1u);
  auto worker = serving(*bridge);
  ASSERT_TRUE(worker);
  EXPECT_EQ(worker->id, "w1");
  EXPECT_GT(worker->pid, 0);
  EXPECT_TRUE(is_child(worker->pid));
  EXPECT_EQ(worker->state, WorkerState::kReady);
  EXPECT_EQ(worker->requests, 2u);
  EXPECT_EQ(stats.requests, 2u);
  EXPECT_EQ(stats.ok, 2u);
  EXPECT_EQ(restarts(*bridge), 0u);
  EXPECT_TRUE(stats.errors.empty());
  CallReport report;
  ExecuteOptions options;
  options.report = &report;
  ASSERT_TRUE(bridge->execute("ping", Json::object(), options));
  EXPECT_EQ(report.adapter, "bridge");
  EXPECT_EQ(report.worker_id, "w1");
}

TEST(Bridge, InvalidRequestIsRejectedWithoutTouchingTheWorker) {
  auto bridge = start_bridge(test_config(1));
  ASSERT_TRUE(bridge);
  auto empty = bridge->execute("", Json::object());
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().category, ErrorCategory::kInvalidRequest);
  EXPECT_EQ(empty.error().message, "command name is empty");
  auto not_object = bridge->execute("echo", Json::array({1, 2}));
  ASSERT_FALSE(not_object);
  EXPECT_EQ(not_object.error().category, ErrorCategory::kInvalidRequest);
  EXPECT_EQ(not_object.error().message, "args must be a JSON object, got array");
  auto unknown = bridge->execute("no_such_command");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().category, ErrorCategory::kInvalidRequest);
  EXPECT_EQ(serving(*bridge)->requests, 0u);  // refused against the handshake's command list
  EXPECT_EQ(restarts(*bridge), 0u);
}

TEST(Bridge, PythonExceptionIsClassifiedAndTheWorkerSurvives) {
  auto bridge = start_bridge(test_config(1));
  ASSERT_TRUE(bridge);
  pid_t pid = serving_pid(*bridge);
  auto reply = bridge->execute("fail", {{"type", "ValueError"}, {"message", "bad input 7"}});
  ASSERT_FALSE(reply);
  const Error& e = reply.error();
  EXPECT_EQ(e.category, ErrorCategory::kPython);
  EXPECT_EQ(e.message, "ValueError: bad input 7");
  ASSERT_TRUE(e.python.has_value());
  EXPECT_EQ(e.python->type, "ValueError");
  EXPECT_NE(e.python->traceback.find("Traceback"), std::string::npos);
  EXPECT_EQ(e.context.worker_id, "w1");
  EXPECT_EQ(e.context.command, "fail");
  EXPECT_EQ(e.context.pool_name, "test");
  auto after = bridge->execute("whoami");
  ASSERT_TRUE(after) << after.error().to_string();
  EXPECT_EQ((*after)["pid"], pid);
  EXPECT_EQ(restarts(*bridge), 0u);
  EXPECT_EQ(bridge->stats().errors.at("python"), 1u);
}

TEST(Bridge, CrashIsAConnectionErrorAndTheNextCallIsServedByARestartedWorker) {
  auto bridge = start_bridge(test_config(1));
  ASSERT_TRUE(bridge);
  pid_t old_pid = serving_pid(*bridge);
  auto crash = bridge->execute("crash", {{"code", 7}});
  ASSERT_FALSE(crash);
  EXPECT_EQ(crash.error().category, ErrorCategory::kConnection);
  EXPECT_NE(crash.error().message.find("exited during request"), std::string::npos)
      << crash.error().message;
  EXPECT_NE(crash.error().message.find("exit code 7"), std::string::npos) << crash.error().message;
  EXPECT_EQ(crash.error().context.worker_id, "w1");
  // The dead one is reaped at once (no zombie) and a replacement started in the background;
  // the next call waits for it.
  EXPECT_TRUE(wait_until([&] { return !is_child(old_pid); }));
  auto next = bridge->execute("whoami");
  ASSERT_TRUE(next) << next.error().to_string();
  EXPECT_EQ((*next)["worker_id"], "w2");
  EXPECT_NE((*next)["pid"], old_pid);
  PoolStats stats = bridge->stats();
  EXPECT_EQ(restarts(*bridge), 1u);
  EXPECT_EQ(stats.replaced, 1u);
  EXPECT_EQ(serving(*bridge)->id, "w2");
  EXPECT_EQ(stats.errors.at("connection"), 1u);
  EXPECT_EQ(stats.ok, 1u);
}

TEST(Bridge, SessionStateIsKeptAcrossCallsAndFreedByCloseSession) {
  auto bridge = start_bridge(test_config(1));
  ASSERT_TRUE(bridge);
  auto created =
      bridge->execute_in_session("s1", "create_program", {{"signature", "question -> answer"}});
  ASSERT_TRUE(created) << created.error().to_string();
  EXPECT_EQ((*created)["program_id"], "prog-1");
  auto run = bridge->execute_in_session(
      "s1", "execute_program", {{"program_id", "prog-1"}, {"inputs", {{"question", "2+2?"}}}});
  ASSERT_TRUE(run) << run.error().to_string();
  EXPECT_EQ((*run)["program_id"], "prog-1");
  EXPECT_EQ((*run)["outputs"]["answer"].get<std::string>().rfind("mock-answer-", 0), 0u);
  auto listed = bridge->execute_in_session("s1", "list_programs");
  ASSERT_TRUE(listed);
  EXPECT_EQ(*listed, (Json{{"programs", {"prog-1"}}}));
  auto other = bridge->execute_in_session("s2", "list_programs");
  ASSERT_TRUE(other);
  EXPECT_EQ(*other, (Json{{"programs", Json::array()}}));
  EXPECT_EQ(bridge->stats().sessions, 2u);

  auto closed = bridge->close_session("s1");
  ASSERT_TRUE(closed) << closed.error().to_string();
  EXPECT_TRUE(*closed);
  auto again = bridge->close_session("s1");
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
  // The worker dropped the state: the session starts afresh.
  auto fresh = bridge->execute_in_session("s1", "list_programs");
  ASSERT_TRUE(fresh);
  EXPECT_EQ(*fresh, (Json{{"programs", Json::array()}}));
  EXPECT_EQ(restarts(*bridge), 0u);
}

TEST(Bridge, StrictSessionFailsAfterItsWorkerWasRestarted) {
  auto bridge = start_bridge(test_config(1));
  ASSERT_TRUE(bridge);
  auto created =
      bridge->execute_in_session("s1", "create_program", {{"signature", "question -> answer"}});
  ASSERT_TRUE(created) << created.error().to_string();
  auto crash = bridge->execute("crash", {{"code", 1}});
  ASSERT_FALSE(crash);
  EXPECT_EQ(crash.error().category, ErrorCategory::kConnection);

  auto lost = bridge->execute_in_session(
      "s1", "execute_program", {{"program_id", "prog-1"}, {"inputs", {{"question", "q"}}}});
  ASSERT_FALSE(lost);
  EXPECT_EQ(lost.error().category, ErrorCategory::kSession);
  EXPECT_EQ(lost.error().message,
            "session_lost: session 's1' was bound to worker w1, which was removed; its state is "
            "gone (close the session to start it again)");
  EXPECT_EQ(lost.error().context.worker_id, "w1");
  EXPECT_EQ(lost.error().context.session_id, "s1");
  // The worker was replaced; the lost session still refuses to run on the replacement.
  ASSERT_TRUE(wait_until([&] {
    auto w = serving(*bridge);
    return w && w->id == "w2";
  }));
  auto still_lost = bridge->execute_in_session("s1", "list_programs");
  ASSERT_FALSE(still_lost);
  EXPECT_EQ(still_lost.error().category, ErrorCategory::kSession);
  // New sessions run on the new worker.
  auto s2 = bridge->execute_in_session("s2", "whoami");
  ASSERT_TRUE(s2) << s2.error().to_string();
  EXPECT_EQ((*s2)["worker_id"], "w2");
  // Closing acknowledges the loss; the session then starts afresh on w2.
  auto closed = bridge->close_session("s1");
  ASSERT_TRUE(closed);
  EXPECT_TRUE(*closed);
  auto fresh = bridge->execute_in_session("s1", "list_programs");
  ASSERT_TRUE(fresh) << fresh.error().to_string();
  EXPECT_EQ(*fresh, (Json{{"programs", Json::array()}}));
  EXPECT_EQ(bridge->stats().errors.at("session"), 2u);
}

TEST(Bridge, HintModeRebindsASessionToTheRestartedWorker) {
  auto config = test_config(1);
  config.session_mode = SessionMode::kHint;
  auto bridge = start_bridge(config);
  ASSERT_TRUE(bridge);
  auto created =
      bridge->execute_in_session("s1", "create_program", {{"signature", "question -> answer"}});
  ASSERT_TRUE(created) << created.error().to_string();
  ASSERT_FALSE(bridge->execute("crash"));
  auto rebound = bridge->execute_in_session("s1", "list_programs");
  ASSERT_TRUE(rebound) << rebound.error().to_string();
  EXPECT_EQ(*rebound, (Json{{"programs", Json::array()}}));  // a fresh state, as hint mode says
  EXPECT_EQ(bridge->stats().session_rebinds, 1u);
  EXPECT_EQ(serving(*bridge)->id, "w2");
}

TEST(Bridge, HangPastTheDeadlineIsATimeoutAndTheNextCallWorks) {
  auto bridge = start_bridge(test_config(1));
  ASSERT_TRUE(bridge);
  pid_t old_pid = serving_pid(*bridge);
  ExecuteOptions options;
  options.timeout = 300ms;
  auto t0 = std::chrono::steady_clock::now();
  auto reply = bridge->execute("sleep", {{"ms", 5000}}, options);
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().category, ErrorCategory::kTimeout);
  EXPECT_EQ(
      reply.error().message,
      fmt::format("worker w1 (pid {}) did not reply to 'sleep' before the deadline", old_pid));
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 1500ms);
  // The untrusted worker is killed at once and reaped.
  EXPECT_TRUE(wait_until([&] { return !is_child(old_pid); }));
  auto next = bridge->execute("echo", {{"after", "timeout"}});
  ASSERT_TRUE(next) << next.error().to_string();
  EXPECT_EQ(*next, (Json{{"after", "timeout"}}));
  EXPECT_EQ(restarts(*bridge), 1u);
  EXPECT_EQ(bridge->stats().errors.at("timeout"), 1u);
}

TEST(Bridge, ImportErrorIsAnInitializationErrorWithTheTraceback) {
  auto bridge = Bridge::start(test_config(1, {data_path("import_error.py")}));
  ASSERT_FALSE(bridge);
  const Error& e = bridge.error();
  EXPECT_EQ(e.category, ErrorCategory::kInitialization);
  EXPECT_EQ(e.message,
            fmt::format("bridge 'test' could not start its worker: worker w1 failed to load its "
                        "handlers: ImportError: cannot load handlers '{}': ImportError: simulated "
                        "import failure for tests",
                        data_path("import_error.py")));
  EXPECT_EQ(e.context.worker_id, "w1");
  EXPECT_EQ(e.context.operation, "handshake");
  EXPECT_EQ(e.context.adapter, "bridge");
  ASSERT_TRUE(e.python.has_value());
  EXPECT_EQ(e.python->type, "ImportError");
  EXPECT_NE(e.python->traceback.find("import_error.py"), std::string::npos);
  EXPECT_TRUE(children_of(::getpid()).empty());
}

TEST(Bridge, InitCommandsRunOnEveryNewWorker) {
  auto config = test_config(1);
  config.init_commands.push_back(InitCommand{"configure", {{"model", "mock-lm"}}});
  auto bridge = start_bridge(config);
  ASSERT_TRUE(bridge);
  auto first = bridge->execute("get_config");
  ASSERT_TRUE(first);
  EXPECT_EQ(*first, (Json{{"config", {{"model", "mock-lm"}}}}));
  ASSERT_FALSE(bridge->execute("crash"));
  auto second = bridge->execute("get_config");
  ASSERT_TRUE(second) << second.error().to_string();
  EXPECT_EQ(*second, (Json{{"config", {{"model", "mock-lm"}}}}));
  EXPECT_EQ(restarts(*bridge), 1u);
}

TEST(Bridge, FailedRestartBacksOffInsteadOfSpawningOnEveryCall) {
  // The handler module is importable at start, then broken: every restart fails to import.
  std::string dir = ::testing::TempDir() + "bridge_backoff_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  std::string module = dir + "/flaky_handlers.py";
  {
    std::ofstream(module) << "import os\nfrom bridgepool_worker import command\n"
                          << "@command('crash')\ndef crash(args, ctx):\n    os._exit(1)\n";
  }
  auto config = test_config(1, {module});
  config.respawn_backoff_initial = 10'000ms;  // one failed start blocks restarts for 10 s
  auto events = std::make_shared<EventBus>();
  std::atomic<int> spawns{0};
  events->attach("pool.worker.spawned", [&](const Event&) { ++spawns; });
  config.events = events;
  auto bridge = start_bridge(config);
  ASSERT_TRUE(bridge);
  { std::ofstream(module) << "raise ImportError('broken after start')\n"; }
  ASSERT_FALSE(bridge->execute("crash"));
  // The replacement (w2) is started at once and fails to import; the next one waits 10 s.
  ASSERT_TRUE(wait_until([&] { return bridge->stats().init_failures == 1; }));
  const std::string import_failure = fmt::format(
      "worker w2 failed to load its handlers: ImportError: cannot load handlers '{}': "
      "ImportError: broken after start",
      module);
  for (int i = 0; i < 3; ++i) {
    auto failed = bridge->execute("crash");
    ASSERT_FALSE(failed);
    EXPECT_EQ(failed.error().category, ErrorCategory::kInitialization);
    EXPECT_EQ(failed.error().message,
              "no worker available, workers fail to start: " + import_failure);
  }
  EXPECT_EQ(spawns.load(), 2);  // w1 and the one failed restart: no spawn storm
  EXPECT_EQ(bridge->stats().init_failures, 1u);
  EXPECT_EQ(bridge->stats().last_init_error, import_failure);
  std::filesystem::remove_all(dir);
}

TEST(Bridge, OutputIsDrainedAndLoggedSoAChattyHandlerNeverBlocks) {
  testing::LogCapture logs;
  auto config = test_config(1);
  config.logger = logs.logger();
  auto bridge = start_bridge(config);
  ASSERT_TRUE(bridge);
  // ~300 KB on each of stdout and stderr: far beyond a 64 KiB pipe nobody reads.
  auto reply = bridge->execute("spam", {{"lines", 3000}, {"width", 100}});
  ASSERT_TRUE(reply) << reply.error().to_string();
  EXPECT_EQ(*reply, (Json{{"printed", 3000}}));
  EXPECT_TRUE(wait_until([&] {
    return logs.count_if([](const LogRecord& r) {
      return r.component == "worker.stdout" && r.worker_id == "w1" &&
             r.message.rfind("stdout 0 ", 0) == 0;
    }) == 1 &&
           logs.count_if([](const LogRecord& r) {
             return r.component == "worker.stderr" && r.worker_id == "w1" &&
                    r.message.rfind("stderr 0 ", 0) == 0;
           }) == 1;
  }));
  auto next = bridge->execute("ping");
  ASSERT_TRUE(next);
}

TEST(Bridge, StartedOnAShortLivedThreadKeepsItsWorker) {
  // PR_SET_PDEATHSIG fires when the thread that spawned the worker exits. The bridge spawns on
  // its own monitor thread, so neither the starting thread nor a caller's thread matters.
  std::unique_ptr<Bridge> bridge;
  std::thread([&] { bridge = start_bridge(test_config(1)); }).join();
  ASSERT_TRUE(bridge);
  pid_t pid = serving_pid(*bridge);
  auto reply = bridge->execute("whoami");
  ASSERT_TRUE(reply) << reply.error().to_string();
  EXPECT_EQ((*reply)["pid"], pid);
  ASSERT_FALSE(bridge->execute("crash"));
  Json restarted;
  std::thread([&] {
    auto r = bridge->execute("whoami");  // waits for the replacement
    if (r) restarted = *r;
  }).join();
  ASSERT_FALSE(restarted.is_null());
  auto after = bridge->execute("whoami");
  ASSERT_TRUE(after) << after.error().to_string();
  EXPECT_EQ((*after)["pid"], restarted["pid"]);
  EXPECT_EQ(restarts(*bridge), 1u);
}

TEST(Bridge, SecondCallerWaitsForTheOneInFlightThenTimesOut) {
  auto bridge = start_bridge(test_config(1));
  ASSERT_TRUE(bridge);
  Result<Json> slow = make_error(ErrorCategory::kSystem, "not run");
  std::thread caller([&] { slow = bridge->execute("sleep", {{"ms", 800}}); });
  ASSERT_TRUE(wait_until([&] {
    auto w = serving(*bridge);
    return w && w->state == WorkerState::kBusy;
  }));
  ExecuteOptions options;
  options.checkout_timeout = 100ms;
  auto waited = bridge->execute("echo", Json::object(), options);
  caller.join();
  ASSERT_FALSE(waited);
  EXPECT_EQ(waited.error().category, ErrorCategory::kTimeout);
  EXPECT_NE(waited.error().message.find("no worker became free within"), std::string::npos)
      << waited.error().message;
  EXPECT_NE(waited.error().message.find("1 of 1 workers busy"), std::string::npos)
      << waited.error().message;
  EXPECT_EQ(waited.error().context.operation, "checkout");
  ASSERT_TRUE(slow) << slow.error().to_string();
  EXPECT_EQ(*slow, (Json{{"slept_ms", 800}}));
  EXPECT_EQ(restarts(*bridge), 0u);
}

TEST(Bridge, ShutdownLeavesNoChildProcesses) {
  auto bridge = start_bridge(test_config(1));
  ASSERT_TRUE(bridge);
  ASSERT_FALSE(bridge->execute("crash"));  // w1 gone
  ASSERT_TRUE(bridge->execute("whoami"));  // w2 running
  ASSERT_TRUE(bridge->execute_in_session("s", "whoami"));
  pid_t pid = serving_pid(*bridge);
  ASSERT_TRUE(process_running(pid));
  bridge->shutdown();
  EXPECT_TRUE(children_of(::getpid()).empty());
  EXPECT_TRUE(bridge->workers().empty());
  auto after = bridge->execute("ping");
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().category, ErrorCategory::kResource);
  EXPECT_EQ(after.error().message, "bridge 'test' is shutting down");
  bridge->shutdown();  // idempotent
}

TEST(Bridge, DestructorEndsAWorkerBusyWithACall) {
  auto config = test_config(1);
  config.shutdown_grace = 200ms;
  auto bridge = start_bridge(config);
  ASSERT_TRUE(bridge);
  Result<Json> busy = make_error(ErrorCategory::kSystem, "not run");
  std::thread caller([&] { busy = bridge->execute("sleep", {{"ms", 5000}}); });
  ASSERT_TRUE(wait_until([&] {
    auto w = serving(*bridge);
    return w && w->state == WorkerState::kBusy;
  }));
  auto t0 = std::chrono::steady_clock::now();
  bridge->shutdown();
  caller.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2000ms);
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().category, ErrorCategory::kConnection);
  bridge.reset();
  EXPECT_TRUE(children_of(::getpid()).empty());
}

// ---------------------------------------------------------------------------------------------
// connect()

TEST(Connect, ReturnsTheRegisteredRunningPool) {
  auto started = Pool::start(test_config(1));
  ASSERT_TRUE(started) << started.error().to_string();
  std::shared_ptr<Pool> pool = std::move(*started);
  register_pool("connect-test-registered", pool);
  ConnectOptions options;
  options.pool_name = "connect-test-registered";
  options.bridge_config = test_config(1);
  auto executor = connect(options);
  ASSERT_TRUE(executor) << executor.error().to_string();
  EXPECT_EQ((*executor)->kind(), "pool");
  EXPECT_EQ(executor->get(), pool.get());
  auto pong = (*executor)->execute("ping");
  ASSERT_TRUE(pong);
  EXPECT_EQ(*pong, "pong");
  EXPECT_TRUE(unregister_pool("connect-test-registered"));
  EXPECT_FALSE(unregister_pool("connect-test-registered"));
  EXPECT_EQ(find_pool("connect-test-registered"), nullptr);
}

TEST(Connect, StartsASingleBridgeWhenNoPoolRuns) {
  ConnectOptions options;
  options.pool_name = "connect-test-absent";
  options.bridge_config = test_config(1);
  auto executor = connect(options);
  ASSERT_TRUE(executor) << executor.error().to_string();
  EXPECT_EQ((*executor)->kind(), "bridge");
  auto reply = (*executor)->execute("echo", {{"via", "bridge"}});
  ASSERT_TRUE(reply) << reply.error().to_string();
  EXPECT_EQ(*reply, (Json{{"via", "bridge"}}));
  executor->reset();  // the caller owns the bridge: its worker ends with it
  EXPECT_TRUE(children_of(::getpid()).empty());
}

TEST(Connect, SaysClearlyWhenNeitherAPoolNorABridgeIsAvailable) {
  ConnectOptions options;
  options.pool_name = "connect-test-absent";
  options.bridge_config = test_config(1);
  options.bridge_config.python = "/nonexistent/python3";
  auto executor = connect(options);
  ASSERT_FALSE(executor);
  EXPECT_EQ(executor.error().category, ErrorCategory::kInitialization);
  EXPECT_EQ(executor.error().message,
            "no running pool named 'connect-test-absent' in this process, and a single bridge "
            "could not start: bridge 'test' could not start its worker: cannot execute "
            "'/nonexistent/python3': No such file or directory");
  EXPECT_EQ(executor.error().context.operation, "connect");
  EXPECT_EQ(executor.error().context.cause, "errno 2 (ENOENT)");
}

TEST(Connect, WithoutBridgeFallbackOnlyARegisteredPoolWillDo) {
  ConnectOptions options;
  options.pool_name = "connect-test-absent";
  options.allow_bridge = false;
  auto executor = connect(options);
  ASSERT_FALSE(executor);
  EXPECT_EQ(executor.error().category, ErrorCategory::kInitialization);
  EXPECT_EQ(executor.error().message,
            "no running pool named 'connect-test-absent' in this process, and starting a single "
            "bridge is not allowed (allow_bridge = false)");
}

TEST(Connect, APoolReleasedByItsOwnerIsNoLongerFound) {
  auto bridge = Bridge::start(test_config(1));  // any Executor: the registry is not pool-specific
  ASSERT_TRUE(bridge);
  std::shared_ptr<Executor> owner = std::move(*bridge);
  register_pool("connect-test-released", owner);
  EXPECT_EQ(find_pool("connect-test-released"), owner);
  owner.reset();  // the registry holds no reference: the executor is gone
  EXPECT_EQ(find_pool("connect-test-released"), nullptr);
  ConnectOptions options;
  options.pool_name = "connect-test-released";
  options.allow_bridge = false;
  EXPECT_FALSE(connect(options));
  EXPECT_FALSE(unregister_pool("connect-test-released"));
}

TEST(Connect, RegistryIsSafeUnderConcurrentUse) {
  auto bridge = Bridge::start(test_config(1));
  ASSERT_TRUE(bridge);
  std::shared_ptr<Executor> executor = std::move(*bridge);
  std::vector<std::thread> threads;
  std::atomic<int> found{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::string mine = "connect-test-concurrent-" + std::to_string(t);
      for (int i = 0; i < 500; ++i) {
        register_pool(mine, executor);
        if (find_pool("connect-test-concurrent-0")) ++found;
        EXPECT_EQ(find_pool(mine), executor);
        unregister_pool(mine);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_GT(found.load(), 0);
  for (int t = 0; t < 4; ++t) {
    EXPECT_EQ(find_pool("connect-test-concurrent-" + std::to_string(t)), nullptr);
  }
}

}  // namespace
}  // namespace bridgepool
