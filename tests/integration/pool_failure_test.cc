// Failure handling with real processes: crashes, kills, hangs, protocol violations, output spam,
// import errors and spawn failures. Each test asserts the exact error category and what happened
// to the worker (removed, replaced, kept).
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "integration/test_support.h"

namespace bridgepool {
namespace {

using testing::data_path;
using testing::pid_of;
using testing::process_running;
using testing::start_pool;
using testing::test_config;
using testing::wait_until;
using namespace std::chrono_literals;

// Handlers: the misbehaving module (garbage, oversized, wrong_id, truncated, hang, echo).
PoolConfig misbehave_config(std::size_t size) {
  return test_config(size, {data_path("misbehave.py")});
}

TEST(PoolFailure, CrashDuringRequestIsAConnectionErrorAndTheWorkerIsReplaced) {
  auto pool = start_pool(test_config(1));
  ASSERT_TRUE(pool);
  auto first = pool->execute("whoami");
  ASSERT_TRUE(first);
  pid_t old_pid = (*first)["pid"];
  auto reply = pool->execute("crash", {{"code", 7}});
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().category, ErrorCategory::kConnection);
  EXPECT_NE(reply.error().message.find("exited during request"), std::string::npos);
  EXPECT_NE(reply.error().message.find("exit code 7"), std::string::npos);
  EXPECT_EQ(reply.error().context.worker_id, (*first)["worker_id"]);
  // The replacement serves the next call.
  auto next = pool->execute("whoami");
  ASSERT_TRUE(next) << next.error().to_string();
  EXPECT_NE((*next)["pid"], old_pid);
  EXPECT_NE((*next)["worker_id"], (*first)["worker_id"]);
  EXPECT_FALSE(process_running(old_pid));
  auto st = pool->stats();
  EXPECT_EQ(st.replaced, 1u);
  EXPECT_EQ(st.errors.at("connection"), 1u);
}

TEST(PoolFailure, KilledBySignalDuringRequestNamesTheSignal) {
  auto pool = start_pool(test_config(1));
  ASSERT_TRUE(pool);
  auto reply = pool->execute("crash", {{"signal", SIGKILL}});
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().category, ErrorCategory::kConnection);
  EXPECT_NE(reply.error().message.find("signal 9"), std::string::npos);
}

TEST(PoolFailure, IdleWorkerKilledIsNeverHandedOutAndIsReplacedWithinOneSecond) {
  auto pool = start_pool(test_config(2));
  ASSERT_TRUE(pool);
  auto workers = pool->workers();
  ASSERT_EQ(workers.size(), 2u);
  std::string victim = workers[0].id;
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(workers[0].pid, SIGKILL), 0);
  // Noticed through the pidfd and replaced: a new worker is ready within a second.
  ASSERT_TRUE(wait_until(
      [&] {
        auto st = pool->stats();
        return st.replaced == 1 && st.live == 2 && pid_of(*pool, victim) == 0;
      },
      1000ms));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1000ms);
  for (int i = 0; i < 50; ++i) {
    auto r = pool->execute("whoami");
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_NE((*r)["worker_id"], victim);
  }
}

TEST(PoolFailure, CheckThenUseRaceIsReroutedToAnotherWorker) {
  // Kill idle workers and call immediately, many times: whether the check at checkout sees the
  // death or the write/read does, the caller must be served by a live worker.
  auto pool = start_pool(test_config(3));
  ASSERT_TRUE(pool);
  int served = 0;
  for (int round = 0; round < 10; ++round) {
    ASSERT_TRUE(wait_until(
        [&] {
          auto st = pool->stats();
          return st.replaced == std::uint64_t(round) && st.idle == 3 && st.live == 3;
        },
        3000ms));
    auto ws = pool->workers();
    ::kill(ws.front().pid, SIGKILL);
    auto r = pool->execute("echo", {{"round", round}});
    ASSERT_TRUE(r) << "round " << round << ": " << r.error().to_string();
    EXPECT_EQ((*r)["round"], round);
    ++served;
  }
  EXPECT_EQ(served, 10);
  EXPECT_TRUE(wait_until([&] { return pool->stats().replaced == 10; }, 2000ms));
  auto st = pool->stats();
  EXPECT_EQ(st.replaced, 10u);
  EXPECT_EQ(st.errors.size(), 0u);
}

TEST(PoolFailure, HangPastTheDeadlineIsATimeoutAndTheWorkerIsKilled) {
  auto pool = start_pool(misbehave_config(1));
  ASSERT_TRUE(pool);
  pid_t pid = pool->workers().at(0).pid;
  ExecuteOptions options;
  options.timeout = 300ms;
  auto t0 = std::chrono::steady_clock::now();
  auto reply = pool->execute("hang", Json::object(), options);
  auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().category, ErrorCategory::kTimeout);
  EXPECT_NE(reply.error().message.find("did not reply to 'hang' before the deadline"),
            std::string::npos);
  EXPECT_GE(took, 290ms);
  EXPECT_LT(took, 2000ms);
  EXPECT_TRUE(wait_until([&] { return !process_running(pid); }, 1000ms));
  auto next = pool->execute("echo", {{"after", "hang"}});
  ASSERT_TRUE(next) << next.error().to_string();
  EXPECT_EQ(pool->stats().replaced, 1u);
}

TEST(PoolFailure, StoppedWorkerPastTheDeadlineIsKilled) {
  auto pool = start_pool(test_config(1));
  ASSERT_TRUE(pool);
  pid_t pid = pool->workers().at(0).pid;
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  ExecuteOptions options;
  options.timeout = 300ms;
  auto reply = pool->execute("ping", Json::object(), options);
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().category, ErrorCategory::kTimeout);
  EXPECT_TRUE(wait_until([&] { return !process_running(pid); }, 1000ms));
  EXPECT_TRUE(pool->execute("ping"));
}

struct ProtocolCase {
  const char* command;
  const char* message_fragment;
};

// Readable test names in ctest ("...WorkerIsRemovedAndRequestClassified/garbage # garbage").
void PrintTo(const ProtocolCase& c, std::ostream* os) { *os << c.command; }

class PoolProtocolViolation : public ::testing::TestWithParam<ProtocolCase> {};

TEST_P(PoolProtocolViolation, WorkerIsRemovedAndRequestClassified) {
  auto pool = start_pool(misbehave_config(1));
  ASSERT_TRUE(pool);
  pid_t pid = pool->workers().at(0).pid;
  auto reply = pool->execute(GetParam().command);
  ASSERT_FALSE(reply);
  EXPECT_TRUE(reply.error().category == ErrorCategory::kCommunication ||
              reply.error().category == ErrorCategory::kConnection)
      << reply.error().to_string();
  EXPECT_NE(reply.error().message.find(GetParam().message_fragment), std::string::npos)
      << reply.error().to_string();
  // Delivered to a worker and not idempotent: it may have run, so it is never re-run.
  EXPECT_EQ(reply.error().strategy, RecoveryStrategy::kAbandon)
      << reply.error().format_for_logging();
  EXPECT_EQ(reply.error().context.attempt, 1);
  EXPECT_TRUE(wait_until([&] { return !process_running(pid); }, 2000ms));
  auto next = pool->execute("echo", {{"x", 1}});
  ASSERT_TRUE(next) << next.error().to_string();
  EXPECT_EQ(pool->stats().replaced, 1u);
}

INSTANTIATE_TEST_SUITE_P(Frames, PoolProtocolViolation,
                         ::testing::Values(ProtocolCase{"garbage", "invalid reply"},
                                           ProtocolCase{"oversized", "invalid frame"},
                                           ProtocolCase{"wrong_id", "with a frame for id"},
                                           ProtocolCase{"truncated",
                                                        "in the middle of a reply frame"}),
                         [](const auto& info) { return std::string(info.param.command); });

TEST(PoolFailure, OversizedFrameIsACommunicationError) {
  auto pool = start_pool(misbehave_config(1));
  ASSERT_TRUE(pool);
  auto reply = pool->execute("oversized");
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().category, ErrorCategory::kCommunication);
}

TEST(PoolFailure, StdoutSpamIsCapturedAndNeverCorruptsTheProtocol) {
  testing::LogCapture capture;
  auto config = test_config(1);
  config.logger = capture.logger(LogLevel::kInfo);
  config.output_lines_per_second = 100000;  // this test checks capture, not rate limiting
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  std::string worker_id = pool->workers().at(0).id;
  for (int i = 0; i < 5; ++i) {
    auto reply = pool->execute("spam", {{"lines", 200}});
    ASSERT_TRUE(reply) << reply.error().to_string();
    EXPECT_EQ((*reply)["printed"], 200);
  }
  EXPECT_TRUE(pool->stats().errors.empty());
  EXPECT_EQ(pool->stats().replaced, 0u);
  ASSERT_TRUE(wait_until([&] {
    return capture.count_if([&](const LogRecord& r) {
      return r.component == "worker.stdout" && r.worker_id == worker_id;
    }) >= 1000 &&
           capture.count_if([&](const LogRecord& r) {
             return r.component == "worker.stderr" && r.worker_id == worker_id;
           }) >= 1000;
  }));
}

TEST(PoolFailure, OutputFloodIsRateLimited) {
  testing::LogCapture capture;
  auto config = test_config(1);
  config.logger = capture.logger(LogLevel::kInfo);
  config.output_lines_per_second = 50;  // burst 100
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  auto reply = pool->execute("spam", {{"lines", 5000}});
  ASSERT_TRUE(reply);
  pool->shutdown();
  auto stdout_lines =
      capture.count_if([](const LogRecord& r) { return r.component == "worker.stdout"; });
  EXPECT_LT(stdout_lines, 1000u);
  EXPECT_GE(capture.count_if([](const LogRecord& r) {
    return r.message.find("lines suppressed]") != std::string::npos;
  }),
            1u);
}

TEST(PoolFailure, ImportErrorIsAClearInitializationErrorWithoutASpawnStorm) {
  auto config = test_config(2, {data_path("import_error.py")});
  config.startup_timeout = 5000ms;
  config.respawn_backoff_initial = 200ms;
  auto events = std::make_shared<EventBus>();
  std::atomic<int> spawns{0};
  events->attach("pool.worker.spawned", [&](const Event&) { ++spawns; });
  config.events = events;
  auto t0 = std::chrono::steady_clock::now();
  auto pool = Pool::start(config);
  ASSERT_FALSE(pool);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3000ms);  // fails fast, not at the timeout
  const Error& e = pool.error();
  EXPECT_EQ(e.category, ErrorCategory::kInitialization);
  EXPECT_NE(e.message.find("ImportError"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("simulated import failure for tests"), std::string::npos) << e.message;
  ASSERT_TRUE(e.python.has_value());
  EXPECT_NE(e.python->traceback.find("import_error.py"), std::string::npos);
  EXPECT_LE(spawns.load(), 4);  // 2 slots, one backoff round at most
}

TEST(PoolFailure, BrokenHandlersAfterStartBackOffInsteadOfStorming) {
  // Workers start fine, then every restart fails: the respawn delay must grow.
  auto dir = ::testing::TempDir() + "bp_backoff_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  std::string module = dir + "/flaky_handlers.py";
  {
    std::ofstream f(module);
    f << "import os\nfrom bridgepool_worker import command\n"
      << "if os.path.exists(" << Json(dir + "/broken").dump() << "):\n"
      << "    raise RuntimeError('handlers are broken now')\n"
      << "@command('crash')\ndef crash(args, ctx):\n    os._exit(1)\n";
  }
  auto config = test_config(1, {module});
  // Spawn: the test breaks the handler module on disk after start; forked workers would
  // never re-import it (docs/lifecycle.md, start methods).
  config.start_method = StartMethod::kSpawn;
  config.respawn_backoff_initial = 100ms;
  auto events = std::make_shared<EventBus>();
  std::mutex mu;
  std::vector<std::pair<std::string, std::chrono::steady_clock::time_point>> timeline;
  events->attach("pool.worker.", [&](const Event& e) {
    if (e.name != "pool.worker.spawned" && e.name != "pool.worker.init_failed") return;
    std::lock_guard lock(mu);
    timeline.emplace_back(e.name, std::chrono::steady_clock::now());
  });
  config.events = events;
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  std::ofstream(dir + "/broken") << "x";
  auto crash = pool->execute("crash");
  ASSERT_FALSE(crash);
  EXPECT_EQ(crash.error().category, ErrorCategory::kConnection);
  auto failures = [&] {
    std::lock_guard lock(mu);
    return std::count_if(timeline.begin(), timeline.end(),
                         [](const auto& e) { return e.first == "pool.worker.init_failed"; });
  };
  ASSERT_TRUE(wait_until([&] { return failures() >= 4; }, 10000ms));
  // After the k-th consecutive start failure the next spawn waits at least 100 ms * 2^(k-1):
  // load on the machine can only lengthen these gaps, never shorten them.
  {
    std::lock_guard lock(mu);
    int k = 0;
    for (std::size_t i = 0; i + 1 < timeline.size() && k < 3; ++i) {
      if (timeline[i].first != "pool.worker.init_failed") continue;
      ASSERT_EQ(timeline[i + 1].first, "pool.worker.spawned");
      auto gap = timeline[i + 1].second - timeline[i].second;
      EXPECT_GE(gap, std::chrono::milliseconds(100 << k) - 5ms) << "after failure " << k + 1;
      ++k;
    }
    EXPECT_EQ(k, 3);
  }
  auto reply = pool->execute("crash");
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().category, ErrorCategory::kInitialization);
  EXPECT_NE(reply.error().message.find("handlers are broken now"), std::string::npos);
  std::filesystem::remove_all(dir);
}

// File descriptors run out while a replacement starts (EMFILE): the spawn fails with a classified
// initialization error naming the cause, the surviving worker keeps serving, and once fds are
// available again the respawn backoff brings the pool back to full size.
TEST(PoolFailure, FdExhaustionFailsTheReplacementCleanlyAndThePoolRecovers) {
  auto pool = start_pool(test_config(2));
  ASSERT_TRUE(pool);
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  auto open_fds = [] {
    return std::distance(std::filesystem::directory_iterator("/proc/self/fd"),
                         std::filesystem::directory_iterator{});
  };
  // No free descriptor at all: the dead worker's own fds (a handful) are all a spawn can get,
  // fewer than the four pipes and the pidfd it needs.
  rlimit tight = saved;
  tight.rlim_cur = static_cast<rlim_t>(open_fds());
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
  auto victim = pool->workers().front();
  ::kill(victim.pid, SIGKILL);
  bool failed = wait_until([&] { return pool->stats().init_failures >= 1; }, 5000ms);
  auto during = pool->stats();
  auto reply = pool->execute("echo", {{"still", "serving"}});
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_TRUE(failed);
  EXPECT_NE(during.last_init_error.find("open files"), std::string::npos) << during.last_init_error;
  EXPECT_TRUE(reply) << reply.error().to_string();
  EXPECT_TRUE(wait_until([&] { return pool->stats().live == 2; }, 10'000ms));
}

// Regression: a replacement spawned while the pool shut down (the worker crashed, the pool was
// destroyed at once) was registered only after shutdown had stopped the loop, and was never
// reaped: one python3 zombie in about one of 60 rounds. Shutdown now waits for spawns in flight.
TEST(PoolFailure, ShutdownRightAfterACrashLeavesNoZombie) {
  for (int round = 0; round < 25; ++round) {
    auto pool = start_pool(test_config(1));
    ASSERT_TRUE(pool);
    auto reply = pool->execute("crash", {{"signal", SIGKILL}});
    ASSERT_FALSE(reply);
    pool.reset();  // the replacement is being spawned right now, or about to be
    ASSERT_TRUE(testing::children_of(::getpid()).empty()) << "round " << round;
  }
}

TEST(PoolFailure, MissingInterpreterIsAnInitializationError) {
  auto config = test_config(1);
  config.python = "/nonexistent/python3";
  config.startup_timeout = 3000ms;
  auto pool = Pool::start(config);
  ASSERT_FALSE(pool);
  EXPECT_EQ(pool.error().category, ErrorCategory::kInitialization);
  EXPECT_NE(pool.error().message.find("/nonexistent/python3"), std::string::npos);
  EXPECT_EQ(pool.error().severity, ErrorSeverity::kCritical);
  EXPECT_EQ(pool.error().strategy, RecoveryStrategy::kCircuitBreak);
  EXPECT_FALSE(pool.error().context.operation.empty());
}

TEST(PoolFailure, HandshakeTimeoutKillsTheWorker) {
  auto dir = ::testing::TempDir();
  std::string module = dir + "/slow_import_" + std::to_string(::getpid()) + ".py";
  std::ofstream(module) << "import time\ntime.sleep(30)\n";
  auto config = test_config(1, {module});
  // A worker's own handshake timeout; a fork server's is ForkServer.AZygoteStuckInItsImports...
  config.start_method = StartMethod::kSpawn;
  config.init_timeout = 300ms;
  config.startup_timeout = 2000ms;
  auto pool = Pool::start(config);
  ASSERT_FALSE(pool);
  EXPECT_EQ(pool.error().category, ErrorCategory::kInitialization);
  EXPECT_NE(pool.error().message.find("did not complete its handshake within 300 ms"),
            std::string::npos);
  EXPECT_TRUE(wait_until([] { return testing::children_of(::getpid()).empty(); }, 2000ms)) << [] {
    std::string out = "children left:";
    for (pid_t c : testing::children_of(::getpid())) {
      std::ifstream stat("/proc/" + std::to_string(c) + "/stat");
      std::string line;
      std::getline(stat, line);
      out += " [" + line.substr(0, 60) + "]";
    }
    return out;
  }();
  std::remove(module.c_str());
}

}  // namespace
}  // namespace bridgepool
