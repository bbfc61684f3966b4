// Shutdown and process hygiene: no zombies, no orphans, requests in flight finish, the host
// dying takes its workers with it.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "integration/test_support.h"

namespace bridgepool {
namespace {

using testing::all_gone_within;
using testing::children_of;
using testing::data_path;
using testing::Host;
using testing::process_running;
using testing::start_host;
using testing::test_config;
using testing::wait_until;
using namespace std::chrono_literals;

TEST(PoolLifecycle, ShutdownLeavesNoChildProcesses) {
  for (StartMethod method : {StartMethod::kSpawn, StartMethod::kForkServer}) {
    SCOPED_TRACE(std::string(start_method_name(method)));
    std::vector<pid_t> pids;
    auto config = test_config(4);
    config.start_method = method;
    {
      auto pool = Pool::start(config);
      ASSERT_TRUE(pool) << pool.error().to_string();
      for (const auto& w : (*pool)->workers()) pids.push_back(w.pid);
      // Spawned: 4 children. Forked: 1, the zygote, whose children the 4 workers are.
      auto children = children_of(::getpid());
      ASSERT_EQ(children.size(), method == StartMethod::kSpawn ? 4u : 1u);
      if (method == StartMethod::kForkServer) {
        ASSERT_EQ(children_of(children[0]).size(), 4u);
      }
      ASSERT_TRUE((*pool)->execute("echo", {{"x", 1}}));
      auto t0 = std::chrono::steady_clock::now();
      (*pool)->shutdown();
      // Idle workers exit on EOF at once; shutdown does not wait out a grace per worker.
      EXPECT_LT(std::chrono::steady_clock::now() - t0, 1500ms);
      auto after = (*pool)->execute("ping");
      ASSERT_FALSE(after);
      EXPECT_EQ(after.error().category, ErrorCategory::kResource);
    }
    EXPECT_TRUE(children_of(::getpid()).empty());  // zombies count as children: none left
    for (pid_t p : pids) EXPECT_FALSE(process_running(p));
  }
}

TEST(PoolLifecycle, DestructorShutsDownToo) {
  {
    auto pool = Pool::start(test_config(2));
    ASSERT_TRUE(pool);
  }
  EXPECT_TRUE(children_of(::getpid()).empty());
}

TEST(PoolLifecycle, ShutdownLetsRequestsInFlightFinish) {
  auto config = test_config(2);
  config.shutdown_grace = 3000ms;
  auto pool = Pool::start(config);
  ASSERT_TRUE(pool);
  auto a = (*pool)->execute_async("sleep", {{"ms", 400}});
  auto b = (*pool)->execute_async("sleep", {{"ms", 400}});
  ASSERT_TRUE(wait_until([&] { return (*pool)->stats().busy == 2; }));
  (*pool)->shutdown();
  auto ra = a.get(), rb = b.get();
  ASSERT_TRUE(ra) << ra.error().to_string();
  ASSERT_TRUE(rb) << rb.error().to_string();
  EXPECT_EQ((*ra)["slept_ms"], 400);
  EXPECT_TRUE(children_of(::getpid()).empty());
}

TEST(PoolLifecycle, ShutdownPastGraceKillsBusyWorkersAndFailsTheirRequests) {
  auto config = test_config(1);
  auto pool = Pool::start(config);
  ASSERT_TRUE(pool);
  auto slow = (*pool)->execute_async("sleep", {{"ms", 10000}});
  ASSERT_TRUE(wait_until([&] { return (*pool)->stats().busy == 1; }));
  auto t0 = std::chrono::steady_clock::now();
  (*pool)->shutdown(200ms);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3000ms);
  auto r = slow.get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().category, ErrorCategory::kConnection);
  EXPECT_TRUE(children_of(::getpid()).empty());
}

TEST(PoolLifecycle, HostKilledTakesItsWorkersWithIt) {
  Host host = start_host({"3"});
  ASSERT_GT(host.pid, 0);
  ASSERT_EQ(host.workers.size(), 3u);
  for (pid_t p : host.workers) ASSERT_TRUE(process_running(p));
  ASSERT_EQ(::kill(host.pid, SIGKILL), 0);
  ::waitpid(host.pid, nullptr, 0);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(all_gone_within(host.workers, 1000ms));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1000ms);
}

TEST(PoolLifecycle, HostKilledLeavesNoProcessThatAHandlerStarted) {
  // Processes a handler started (fork, subprocess, multiprocessing) outlive their worker unless
  // something ends them: the worker's group sentinel does, even when nobody is left to reap.
  Host host =
      start_host({"2", data_path("descendants.py"), "fork_sleeper", "popen_sleeper", "mp_sleeper"});
  ASSERT_GT(host.pid, 0);
  ASSERT_EQ(host.workers.size(), 2u);
  ASSERT_EQ(host.kids.size(), 3u);
  for (pid_t p : host.kids) ASSERT_TRUE(process_running(p));
  ASSERT_EQ(::kill(host.pid, SIGKILL), 0);
  ::waitpid(host.pid, nullptr, 0);
  std::vector<pid_t> everyone = host.workers;
  everyone.insert(everyone.end(), host.kids.begin(), host.kids.end());
  EXPECT_TRUE(all_gone_within(everyone, 1000ms));
}

TEST(PoolLifecycle, WorkerGrandchildrenAreEndedWithTheWorker) {
  // A handler that leaves a child process behind: it lives in the worker's process group and is
  // ended when the worker is reaped (no orphans).
  auto dir = ::testing::TempDir();
  std::string module = dir + "/spawner_" + std::to_string(::getpid()) + ".py";
  std::ofstream(module) << "import os, subprocess\nfrom bridgepool_worker import command\n"
                        << "@command('spawn_child')\ndef spawn_child(args, ctx):\n"
                        << "    p = subprocess.Popen(['sleep', '60'])\n    return {'pid': p.pid}\n"
                        << "@command('die')\ndef die(args, ctx):\n    os._exit(0)\n";
  auto pool = Pool::start(test_config(1, {module}));
  ASSERT_TRUE(pool) << pool.error().to_string();
  auto r = (*pool)->execute("spawn_child");
  ASSERT_TRUE(r) << r.error().to_string();
  pid_t grandchild = (*r)["pid"];
  ASSERT_TRUE(process_running(grandchild));
  EXPECT_FALSE((*pool)->execute("die"));
  EXPECT_TRUE(wait_until([&] { return !process_running(grandchild); }, 2000ms));
  std::remove(module.c_str());
}

}  // namespace
}  // namespace bridgepool
