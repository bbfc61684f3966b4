// The fork-server start method with real Python processes: workers forked from a zygote are
// served, watched, reaped and ended like spawned ones; the zygote's failures (import errors,
// threads at import, its own death) are handled; a dying host takes everything with it.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "test_support.h"

namespace bridgepool::testing {
namespace {

using namespace std::chrono_literals;

PoolConfig fork_config(std::size_t size, std::vector<std::string> handlers = {}) {
  auto config = test_config(size, std::move(handlers));
  config.start_method = StartMethod::kForkServer;
  return config;
}

pid_t parent_of(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return -1;
  auto close = line.rfind(')');
  std::istringstream rest(line.substr(close + 2));
  char state;
  pid_t ppid = -1;
  rest >> state >> ppid;
  return ppid;
}

std::string cmdline_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (char& c : text) c = c == '\0' ? ' ' : c;
  return text;
}

// This process's zygotes (children started with --zygote), living ones only.
std::vector<pid_t> zygotes() {
  std::vector<pid_t> out;
  for (pid_t p : children_of(::getpid())) {
    if (process_running(p) && cmdline_of(p).find("--zygote") != std::string::npos) {
      out.push_back(p);
    }
  }
  return out;
}

std::set<pid_t> worker_pids(Pool& pool) {
  std::set<pid_t> pids;
  for (const auto& w : pool.workers()) pids.insert(w.pid);
  return pids;
}

TEST(ForkServer, WorkersAreForkedFromOneZygoteAndServe) {
  auto pool = start_pool(fork_config(3, {data_path("fork_checks.py")}));
  ASSERT_TRUE(pool);
  auto zs = zygotes();
  ASSERT_EQ(zs.size(), 1u);
  for (const auto& w : pool->workers()) {
    EXPECT_EQ(parent_of(w.pid), zs[0]) << w.id;  // forked by the zygote, not spawned by us
    EXPECT_EQ(w.generation, 1u);
    auto family = pool->execute("family");
    ASSERT_TRUE(family) << family.error().to_string();
  }
  // Each worker leads its own process group (so its leftovers can be ended with it).
  for (int i = 0; i < 6; ++i) {
    auto f = pool->execute("family");
    ASSERT_TRUE(f);
    EXPECT_EQ((*f)["pid"], (*f)["pgid"]);
    EXPECT_EQ((*f)["ppid"].get<int>(), zs[0]);
  }
  // The handler module was imported once, in the zygote, before any worker existed.
  std::set<double> loaded;
  for (int i = 0; i < 6; ++i)
    loaded.insert((*pool->execute("loaded_at"))["loaded_at"].get<double>());
  EXPECT_EQ(loaded.size(), 1u);
  pool->shutdown();
  EXPECT_TRUE(zygotes().empty());
  EXPECT_TRUE(children_of(::getpid()).empty());  // no zombie: every worker and the zygote reaped
}

TEST(ForkServer, ForkedWorkersDrawDifferentRandomNumbers) {
  // Two workers forked from one parent: without re-seeding they would draw the same sequence.
  auto pool = start_pool(fork_config(2, {data_path("fork_checks.py")}));
  ASSERT_TRUE(pool);
  std::set<double> py, np;
  std::size_t numpy_draws = 0;
  for (int i = 0; i < 20; ++i) {
    auto d = pool->execute("draw");
    ASSERT_TRUE(d);
    py.insert((*d)["random"].get<double>());
    if ((*d)["numpy"].is_null()) continue;
    ++numpy_draws;
    np.insert((*d)["numpy"].get<double>());
  }
  EXPECT_EQ(py.size(), 20u);
  EXPECT_EQ(np.size(), numpy_draws);
}

TEST(ForkServer, NoHostDescriptorOrZygoteSocketReachesAWorker) {
  // A descriptor the host opened without O_CLOEXEC: posix_spawn's closefrom keeps it from the
  // zygote, and the zygote's own socket and pipes must not reach a worker either.
  int leaked = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(leaked, 0);
  auto pool = start_pool(fork_config(2, {data_path("fork_checks.py")}));
  ASSERT_TRUE(pool);
  for (int i = 0; i < 4; ++i) {
    auto r = pool->execute("fds");
    ASSERT_TRUE(r) << r.error().to_string();
    std::set<std::string> names;
    for (const auto& [fd, what] : (*r)["fds"].items()) {
      names.insert(fd);
      EXPECT_EQ(what.get<std::string>().find("socket:"), std::string::npos) << fd << " " << what;
    }
    // 0-2 stdio, 3/4 protocol, 5 the host pidfd; the listing's own descriptor may show as 6.
    for (const char* fd : {"0", "1", "2", "3", "4", "5"}) EXPECT_TRUE(names.count(fd)) << fd;
    EXPECT_LE(names.size(), 7u);
    EXPECT_EQ((*r)["fds"]["5"], "anon_inode:[pidfd]");
    EXPECT_EQ((*r)["fds"]["0"], "/dev/null");
  }
  ::close(leaked);
}

TEST(ForkServer, OutputIsCapturedAndInitCommandsRunOnEveryForkedWorker) {
  LogCapture logs;
  auto config = fork_config(2, {data_path("fork_checks.py")});
  config.logger = logs.logger(LogLevel::kInfo);
  config.init_commands = {InitCommand{"remember", Json{{"v", "from-init"}}}};
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  for (int i = 0; i < 4; ++i) {
    auto s = pool->execute("setting");
    ASSERT_TRUE(s);
    EXPECT_EQ((*s)["value"], "from-init");
  }
  ASSERT_TRUE(pool->execute("say", Json{{"text", "hello-forked"}}));
  EXPECT_TRUE(wait_until([&] {
    return logs.count_if([](const LogRecord& r) {
      return r.message.find("out: hello-forked") != std::string::npos;
    }) == 1 &&
           logs.count_if([](const LogRecord& r) {
             return r.message.find("err: hello-forked") != std::string::npos;
           }) == 1;
  }));
}

TEST(ForkServer, KilledWorkerIsReportedWithItsStatusAndReplacedByAFork) {
  auto config = fork_config(2);
  config.events = std::make_shared<EventBus>();
  std::mutex mu;
  std::vector<std::string> statuses;
  config.events->attach("pool.worker.exited", [&](const Event& e) {
    std::lock_guard lock(mu);
    statuses.push_back(e.metadata.at("status"));
  });
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  const pid_t zygote = zygotes().at(0);
  const pid_t victim = pool->workers().at(0).pid;
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  ASSERT_TRUE(wait_until([&] {
    auto pids = worker_pids(*pool);
    return pool->stats().live == 2 && !pids.count(victim);
  }));
  for (pid_t p : worker_pids(*pool)) EXPECT_EQ(parent_of(p), zygote);
  // A crash with an exit code: the zygote reaped it and reported the code.
  auto crash = pool->execute("crash", Json{{"code", 7}});
  ASSERT_FALSE(crash);
  ASSERT_TRUE(wait_until([&] {
    std::lock_guard lock(mu);
    return statuses.size() >= 2;
  }));
  std::lock_guard lock(mu);
  EXPECT_EQ(statuses[0], "killed by signal 9 (SIGKILL)");
  EXPECT_EQ(statuses[1], "exit code 7");
}

TEST(ForkServer, WhatAKilledWorkerStartedDiesWithIt) {
  auto pool = start_pool(fork_config(1, {data_path("descendants.py")}));
  ASSERT_TRUE(pool);
  auto kid = pool->execute("fork_sleeper");
  ASSERT_TRUE(kid) << kid.error().to_string();
  const pid_t grandchild = (*kid)["pid"].get<pid_t>();
  ASSERT_TRUE(process_running(grandchild));
  ASSERT_EQ(::kill(pool->workers().at(0).pid, SIGKILL), 0);
  // The zygote kills the dead worker's group before it reaps the worker.
  EXPECT_TRUE(wait_until([&] { return !process_running(grandchild); }, 2000ms));
  EXPECT_TRUE(pool->wait_ready(5000ms));
}

TEST(ForkServer, TimeoutOnAForkedWorkerFailsTheCallAndReplacesTheWorker) {
  auto pool = start_pool(fork_config(1));
  ASSERT_TRUE(pool);
  const pid_t before = pool->workers().at(0).pid;
  ExecuteOptions options;
  options.timeout = 300ms;
  auto t0 = std::chrono::steady_clock::now();
  auto r = pool->execute("sleep", Json{{"ms", 10000}}, options);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().category, ErrorCategory::kTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3000ms);
  ASSERT_TRUE(wait_until([&] {
    auto pids = worker_pids(*pool);
    return pool->stats().live == 1 && !pids.count(before);
  }));
  EXPECT_TRUE(wait_until([&] { return !process_running(before); }));
  EXPECT_TRUE(pool->execute("ping"));
}

// Two workers of fork_checks.py, logging into `logs`, with a short restart backoff: for the
// tests that kill or stop the zygote.
PoolConfig zygote_restart_config(LogCapture& logs) {
  auto config = fork_config(2, {data_path("fork_checks.py")});
  config.logger = logs.logger(LogLevel::kInfo);
  config.respawn_backoff_initial = 50ms;
  return config;
}

TEST(ForkServer, DeadZygoteIsReplacedWhileItsWorkersKeepServing) {
  LogCapture logs;
  auto pool = start_pool(zygote_restart_config(logs));
  ASSERT_TRUE(pool);
  const pid_t first = zygotes().at(0);
  const auto old_workers = worker_pids(*pool);
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  // A new zygote comes up (after the backoff); the old workers never stopped serving.
  ASSERT_TRUE(wait_until([&] {
    return logs.count_if([](const LogRecord& r) {
      return r.message.find("fork server ready") != std::string::npos;
    }) == 2;
  }));
  ASSERT_EQ(logs.count_if([](const LogRecord& r) {
    return r.message.find(
               "exited (killed by signal 9 (SIGKILL)); the workers it "
               "forked keep serving") != std::string::npos;
  }),
            1u);
  const pid_t second = zygotes().at(0);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(pool->execute("family"));
  EXPECT_EQ(worker_pids(*pool), old_workers);
  // A replacement now comes from the new zygote.
  const pid_t victim = *old_workers.begin();
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  ASSERT_TRUE(wait_until([&] {
    auto pids = worker_pids(*pool);
    return pool->stats().live == 2 && !pids.count(victim);
  }));
  std::set<pid_t> parents;
  for (pid_t p : worker_pids(*pool)) parents.insert(parent_of(p));
  EXPECT_TRUE(parents.count(second));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(pool->execute("family"));
}

TEST(ForkServer, AHungZygoteIsKilledAndReplacedWhileReplacementsAreSpawned) {
  LogCapture logs;
  auto pool = start_pool(zygote_restart_config(logs));
  ASSERT_TRUE(pool);
  const pid_t stopped = zygotes().at(0);
  ASSERT_EQ(::kill(stopped, SIGSTOP), 0);  // alive, but answers nothing
  const pid_t victim = pool->workers().at(0).pid;
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  // Its exit report never comes: after 500 ms the zygote is abandoned (SIGKILL), the worker's
  // status is unknown, and the replacement is spawned while a new zygote starts.
  ASSERT_TRUE(wait_until([&] {
    auto pids = worker_pids(*pool);
    return pool->stats().live == 2 && !pids.count(victim);
  }));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3000ms);
  EXPECT_TRUE(wait_until([&] { return !process_running(stopped); }));
  EXPECT_EQ(logs.count_if([](const LogRecord& r) {
    return r.message.find("did not report a worker's exit within 500 ms: killing it") !=
           std::string::npos;
  }),
            1u);
  EXPECT_TRUE(wait_until([&] {
    return logs.count_if([](const LogRecord& r) {
      return r.message.find("fork server ready") != std::string::npos;
    }) == 2;
  }));
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(pool->execute("family"));
}

TEST(ForkServer, ThreadsAtImportFallBackToSpawnWithAWarning) {
  LogCapture logs;
  auto config = fork_config(2, {data_path("thread_at_import.py")});
  config.logger = logs.logger(LogLevel::kWarn);
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  for (const auto& w : pool->workers()) EXPECT_EQ(parent_of(w.pid), ::getpid()) << w.id;
  auto r = pool->execute("family");
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)["ppid"].get<pid_t>(), ::getpid());
  EXPECT_EQ(logs.count_if([](const LogRecord& r) {
    return r.message.find("refused to fork") != std::string::npos &&
           r.message.find("heartbeat") != std::string::npos;
  }),
            1u);
  EXPECT_TRUE(zygotes().empty());
}

TEST(ForkServer, ImportErrorIsTheInitializationErrorFromTheZygote) {
  auto config = fork_config(3, {data_path("import_error.py")});
  config.startup_timeout = 5000ms;
  config.respawn_backoff_initial = 2000ms;
  auto pool = Pool::start(config);
  ASSERT_FALSE(pool);
  EXPECT_EQ(pool.error().category, ErrorCategory::kInitialization);
  EXPECT_NE(pool.error().message.find("simulated import failure"), std::string::npos)
      << pool.error().to_string();
  ASSERT_TRUE(pool.error().python);
  EXPECT_NE(pool.error().python->traceback.find("import_error.py"), std::string::npos);
  EXPECT_TRUE(wait_until([] { return children_of(::getpid()).empty(); }));
}

TEST(ForkServer, AZygoteStuckInItsImportsIsGivenUpAtTheInitTimeout) {
  auto config = fork_config(2, {data_path("slow_import.py")});
  config.init_timeout = 700ms;
  config.startup_timeout = 3000ms;
  config.respawn_backoff_initial = 5000ms;
  auto t0 = std::chrono::steady_clock::now();
  auto pool = Pool::start(config);
  ASSERT_FALSE(pool);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2900ms);
  EXPECT_EQ(pool.error().category, ErrorCategory::kInitialization);
  EXPECT_NE(pool.error().message.find("did not load the handler modules within 700 ms"),
            std::string::npos)
      << pool.error().to_string();
  EXPECT_TRUE(wait_until([] { return children_of(::getpid()).empty(); }));
}

TEST(ForkServer, RollingRestartBuildsANewZygoteWithTheNewCode) {
  TempDir dir;
  auto write_module =
      [&](const std::string& name, const std::string& version) {
        std::ofstream(dir.file(name))
            << "from bridgepool_worker import command\n__version__ = '" << version
            << "'\n@command('version', idempotent=True)\n"
            << "def version(args, ctx):\n    return {'version': __version__}\n";
      };
  write_module("v1.py", "v1");
  write_module("v2.py", "v2");
  auto pool = start_pool(fork_config(2, {dir.file("v1.py")}));
  ASSERT_TRUE(pool);
  const pid_t old_zygote = zygotes().at(0);
  std::atomic<bool> stop{false};
  std::atomic<int> failed{0}, ok{0};
  std::thread load([&] {
    while (!stop) (pool->execute("version") ? ok : failed)++;
  });
  PoolConfig next;
  next.handlers = {dir.file("v2.py")};
  auto restarted = pool->rolling_restart(next, 1, 20'000ms);
  stop = true;
  load.join();
  ASSERT_TRUE(restarted) << restarted.error().to_string();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GT(ok.load(), 0);
  // The old zygote retires once its last worker is reaped; the new one forked the new workers.
  ASSERT_TRUE(wait_until([&] { return !process_running(old_zygote); }));
  auto zs = zygotes();
  ASSERT_EQ(zs.size(), 1u);
  for (const auto& w : pool->workers()) {
    EXPECT_EQ(w.handlers_version, "v2");
    EXPECT_EQ(parent_of(w.pid), zs[0]);
  }
}

TEST(ForkServer, KilledHostTakesTheZygoteItsWorkersAndTheirChildrenWithIt) {
  Host host = start_host(
      {"--fork-server", "3", data_path("descendants.py"), "fork_sleeper", "popen_sleeper"});
  ASSERT_GT(host.pid, 0);
  ASSERT_EQ(host.workers.size(), 3u);
  ASSERT_EQ(host.kids.size(), 2u);
  const pid_t zygote = parent_of(host.workers[0]);
  ASSERT_NE(zygote, host.pid);
  ASSERT_EQ(parent_of(zygote), host.pid);
  std::vector<pid_t> everyone = host.workers;
  everyone.insert(everyone.end(), host.kids.begin(), host.kids.end());
  everyone.push_back(zygote);
  for (pid_t p : everyone) ASSERT_TRUE(process_running(p)) << p;
  ASSERT_EQ(::kill(host.pid, SIGKILL), 0);
  ::waitpid(host.pid, nullptr, 0);
  // The zygote by PR_SET_PDEATHSIG; each worker by its watch on the host's pidfd, which kills
  // its whole process group (the handlers' children included).
  EXPECT_TRUE(all_gone_within(everyone, 1000ms));
  for (pid_t p : everyone) EXPECT_FALSE(process_running(p)) << p << " " << cmdline_of(p);
}

}  // namespace
}  // namespace bridgepool::testing
