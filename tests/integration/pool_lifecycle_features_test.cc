// Lifecycle features against real workers: session affinity (stickiness, spread, strict loss,
// hint rebind, expiry), health probes (degrade, restore, removal, busy workers untouched),
// recycling without failed requests, init commands reaching replacements, broadcast.
#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <set>
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

std::string worker_of(const Result<Json>& r) {
  return r ? (*r)["worker_id"].get<std::string>() : "";
}

TEST(Sessions, CallsOfASessionStayOnItsWorkerAndKeepState) {
  auto pool = start_pool(test_config(3));
  ASSERT_TRUE(pool);
  auto created =
      pool->execute_in_session("s1", "create_program", {{"signature", "question -> answer"}});
  ASSERT_TRUE(created) << created.error().to_string();
  std::string program = (*created)["program_id"];
  std::string first = worker_of(pool->execute_in_session("s1", "whoami"));
  ASSERT_FALSE(first.empty());
  for (int i = 0; i < 20; ++i) {
    auto r = pool->execute_in_session("s1", "execute_program",
                                      {{"program_id", program}, {"inputs", {{"question", i}}}});
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ(worker_of(pool->execute_in_session("s1", "whoami")), first);
  }
  auto st = pool->stats();
  EXPECT_EQ(st.session_misses, 1u);
  EXPECT_EQ(st.session_hits, 41u);
  EXPECT_EQ(st.sessions, 1u);
}

TEST(Sessions, AffinityOutcomesAreEmittedAndTheBusyWorkerShowsItsSession) {
  auto config = test_config(1);
  config.events = std::make_shared<EventBus>();
  std::mutex mu;
  std::map<std::string, int> outcomes;
  config.events->attach("pool.session.affinity", [&](const Event& e) {
    std::lock_guard lock(mu);
    outcomes[e.metadata.at("outcome")]++;
  });
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  ASSERT_TRUE(pool->execute_in_session("ev", "whoami"));
  // The handler's sleep keeps the worker busy in the session while the test looks at it.
  auto slow = std::async(std::launch::async, [&] {
    return pool->execute_in_session("ev", "sleep", {{"ms", 300}});
  });
  ASSERT_TRUE(wait_until([&] { return pool->workers().at(0).current_session == "ev"; }));
  EXPECT_TRUE(slow.get());
  EXPECT_EQ(pool->workers().at(0).current_session, "");
  std::lock_guard lock(mu);
  EXPECT_EQ(outcomes["miss"], 1);
  EXPECT_EQ(outcomes["hit"], 1);
}

TEST(Sessions, NewSessionsSpreadOverWorkers) {
  auto pool = start_pool(test_config(3));
  ASSERT_TRUE(pool);
  std::map<std::string, int> per_worker;
  for (int i = 0; i < 9; ++i) {
    per_worker[worker_of(pool->execute_in_session("spread-" + std::to_string(i), "whoami"))]++;
  }
  ASSERT_EQ(per_worker.size(), 3u);
  for (const auto& [w, n] : per_worker) EXPECT_EQ(n, 3) << w;
}

TEST(Sessions, BusyBoundWorkerIsWaitedForNotReplaced) {
  auto pool = start_pool(test_config(2));
  ASSERT_TRUE(pool);
  std::string bound = worker_of(pool->execute_in_session("sticky", "whoami"));
  // The handler's sleep keeps the bound worker busy: the behaviour under test is the wait for it.
  std::thread slow([&] { pool->execute_in_session("sticky", "sleep", {{"ms", 300}}); });
  ASSERT_TRUE(wait_until([&] { return pool->stats().busy == 1; }));
  auto r = pool->execute_in_session("sticky", "whoami");  // waits ~300 ms for its worker
  slow.join();
  EXPECT_EQ(worker_of(r), bound);
}

TEST(Sessions, StrictModeFailsWithSessionLostNamingTheDeadWorker) {
  auto pool = start_pool(test_config(2));
  ASSERT_TRUE(pool);
  std::string bound = worker_of(pool->execute_in_session("doomed", "whoami"));
  ASSERT_EQ(::kill(pid_of(*pool, bound), SIGKILL), 0);
  ASSERT_TRUE(wait_until([&] { return pool->stats().session_losses == 1; }));
  for (int i = 0; i < 2; ++i) {  // every later call too, until the client closes the session
    auto r = pool->execute_in_session("doomed", "whoami");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().category, ErrorCategory::kSession);
    EXPECT_NE(r.error().message.find("session_lost"), std::string::npos);
    EXPECT_NE(r.error().message.find("'doomed'"), std::string::npos);
    EXPECT_NE(r.error().message.find(bound), std::string::npos);
    EXPECT_EQ(r.error().context.session_id, "doomed");
  }
  EXPECT_EQ(pool->stats().session_lost_calls, 2u);
  ASSERT_TRUE(pool->close_session("doomed").value());
  auto fresh = pool->execute_in_session("doomed", "whoami");
  ASSERT_TRUE(fresh) << fresh.error().to_string();
  EXPECT_NE(worker_of(fresh), bound);
}

TEST(Sessions, HintModeRebindsToAnotherWorker) {
  auto config = test_config(2);
  config.session_mode = SessionMode::kHint;
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  std::string bound = worker_of(pool->execute_in_session("movable", "whoami"));
  ASSERT_EQ(::kill(pid_of(*pool, bound), SIGKILL), 0);
  ASSERT_TRUE(wait_until([&] { return pool->stats().session_losses == 1; }));
  auto r = pool->execute_in_session("movable", "whoami");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_NE(worker_of(r), bound);
  EXPECT_EQ(pool->stats().session_rebinds, 1u);
  EXPECT_EQ(worker_of(pool->execute_in_session("movable", "whoami")), worker_of(r));
}

TEST(Sessions, ReopenedSessionIsNotWipedByTheQueuedCloseOfItsPredecessor) {
  auto config = test_config(1);
  config.session_cleanup_interval = 50ms;  // maintenance rounds (which flush closes) every 25 ms
  // Health probes run in the same maintenance rounds; their count shows rounds going by.
  config.health_check_interval = 50ms;
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  ASSERT_TRUE(pool->execute_in_session("again", "create_program", {{"signature", "a -> b"}}));
  ASSERT_TRUE(pool->close_session("again").value());
  auto created = pool->execute_in_session("again", "create_program", {{"signature", "c -> d"}});
  ASSERT_TRUE(created);
  // Wait for a whole maintenance round (probes, then flush_pending_closes) that began after this
  // point: a close of the old session still queued would be flushed there and wipe the new
  // state. Rounds run one at a time and probe the one (idle) worker at most once each, so once
  // the probe count has grown by 3, the round of the 2nd new probe began after this point (after
  // the 1st one was counted) and has ended, because the round of the 3rd has begun.
  std::uint64_t probes = pool->stats().health_checks;
  ASSERT_TRUE(wait_until([&] { return pool->stats().health_checks >= probes + 3; }));
  auto listed = pool->execute_in_session("again", "list_programs");
  ASSERT_TRUE(listed);
  EXPECT_EQ((*listed)["programs"], Json::array({(*created)["program_id"]}));
}

TEST(Sessions, IdleSessionsExpireAndTheirStateIsDroppedInTheWorker) {
  auto config = test_config(1);
  config.session_ttl = 300ms;
  config.session_cleanup_interval = 50ms;
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  ASSERT_TRUE(pool->execute_in_session("short", "create_program", {{"signature", "a -> b"}}));
  auto before = pool->execute("get_stats");
  ASSERT_TRUE(before);
  EXPECT_EQ((*before)["sessions"], 1);
  ASSERT_TRUE(wait_until([&] { return pool->stats().session_expirations == 1; }, 3000ms));
  EXPECT_EQ(pool->stats().sessions, 0u);
  // The worker was told to drop the session's state (close_session) once idle.
  ASSERT_TRUE(wait_until(
      [&] {
        auto s = pool->execute("get_stats");
        return s && (*s)["sessions"] == 0;
      },
      3000ms));
  auto again = pool->execute_in_session("short", "list_programs");
  ASSERT_TRUE(again);
  EXPECT_EQ((*again)["programs"], Json::array());
}

TEST(Health, FailingHealthHookDegradesThenRemovesAndPassingRestores) {
  std::string marker = ::testing::TempDir() + "bp_unhealthy_" + std::to_string(::getpid());
  std::remove(marker.c_str());
  auto config = test_config(1, {data_path("healthy_toggle.py")});
  config.env["BRIDGEPOOL_TEST_UNHEALTHY_FILE"] = marker;
  config.health_check_interval = 100ms;
  config.health_recheck_interval = 100ms;
  config.max_health_failures = 3;
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  std::string first = pool->workers().at(0).id;
  ASSERT_TRUE(wait_until([&] { return pool->stats().health_checks >= 2; }));
  EXPECT_EQ(pool->stats().health_check_failures, 0u);
  // Degrade: one failed probe, then restore when the hook passes again.
  std::ofstream(marker) << "x";
  ASSERT_TRUE(wait_until([&] { return pool->workers().at(0).state == WorkerState::kDegraded; }));
  EXPECT_EQ(pool->workers().at(0).health, WorkerHealth::kUnhealthy);
  EXPECT_EQ(pool->stats().degraded, 1u);
  std::remove(marker.c_str());
  ASSERT_TRUE(wait_until([&] { return pool->workers().at(0).state == WorkerState::kReady; }));
  EXPECT_EQ(pool->stats().degraded, 0u);
  auto w = pool->workers().at(0);
  EXPECT_EQ(w.state, WorkerState::kReady);
  EXPECT_EQ(w.history.back().reason, TransitionReason::kHealthCheckPassed);
  EXPECT_EQ(pool->stats().replaced, 0u);
  // Remove: three failures in a row.
  std::ofstream(marker) << "x";
  ASSERT_TRUE(wait_until([&] { return pool->stats().replaced == 1; }, 5000ms));
  std::remove(marker.c_str());
  ASSERT_TRUE(wait_until([&] { return pool->stats().live == 1 && pool->stats().idle == 1; }));
  EXPECT_NE(pool->workers().back().id, first);
  EXPECT_EQ(pool->stats().errors.size(), 0u);  // probe failures are not request errors
  EXPECT_GE(pool->stats().health_check_failures, 4u);
}

TEST(Health, BusyWorkersAreNeverProbed) {
  auto config = test_config(1);
  config.health_check_interval = 20ms;
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  ASSERT_TRUE(wait_until([&] { return pool->stats().health_checks >= 1; }));
  // 400 ms busy in the handler: 20 probe intervals in which the worker must not be probed.
  auto r = pool->execute("sleep", {{"ms", 400}});
  ASSERT_TRUE(r);
  auto stats = pool->execute("get_stats");
  ASSERT_TRUE(stats);
  // Every health_check the worker answered came while it was idle: the pool's probe count
  // equals the worker's own count of health_check calls.
  EXPECT_EQ((*stats)["commands"]["health_check"].get<std::uint64_t>(), pool->stats().health_checks);
}

TEST(Health, IntervalIsRespected) {
  auto config = test_config(1);
  config.health_check_interval = 200ms;
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_until([&] { return pool->stats().health_checks >= 3; }, 3000ms));
  // Three probes need at least three intervals after start-up.
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 550ms);
}

TEST(Recycling, ByRequestCountWithoutAFailedRequest) {
  auto config = test_config(2);
  config.max_requests = 50;
  config.max_requests_jitter = 0;
  // Capacity never dips below size - 1. Every time a worker leaves service (`live` drops) the
  // pool then emits a pool.worker.transition event, and its replacement needs tens of ms to
  // spawn and import before `live` rises again; so a sampler woken by each worker event reads
  // every dip, where polling every millisecond could miss one between two polls.
  config.events = std::make_shared<EventBus>();
  std::mutex events_mu;
  std::condition_variable events_cv;
  std::uint64_t worker_events = 0;
  bool done = false;
  config.events->attach("pool.worker.", [&](const Event&) {
    {
      std::lock_guard lock(events_mu);
      ++worker_events;
    }
    events_cv.notify_one();
  });
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  std::atomic<int> failed{0};
  std::size_t min_live = pool->stats().live;
  std::thread sampler([&] {
    std::uint64_t seen = 0;
    std::unique_lock lock(events_mu);
    for (;;) {
      events_cv.wait(lock, [&] { return worker_events != seen || done; });
      if (done) return;
      seen = worker_events;
      lock.unlock();  // the pool may emit (and take events_mu) while stats() runs
      min_live = std::min(min_live, pool->stats().live);
      lock.lock();
    }
  });
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      // 2 ms in the handler: requests overlap the recycling instead of racing past it.
      for (int i = 0; i < 100; ++i) failed += pool->execute("sleep", {{"ms", 2}}) ? 0 : 1;
    });
  }
  for (auto& c : callers) c.join();
  {
    std::lock_guard lock(events_mu);
    done = true;
  }
  events_cv.notify_one();
  sampler.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GE(min_live, 1u);
  auto st = pool->stats();
  // 400 requests at 50 per worker; recycling goes one worker at a time, so under this load a
  // worker may serve a little past its limit while the previous replacement starts.
  EXPECT_GE(st.recycled, 3u);
  EXPECT_EQ(st.replaced, st.recycled);
  EXPECT_EQ(st.ok, 400u);
}

TEST(Recycling, ByRssWhenIdle) {
  auto config = test_config(1);
  config.max_rss_mb = 1;                    // any Python process is above 1 MiB
  config.session_cleanup_interval = 100ms;  // also sets the maintenance tick
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  ASSERT_TRUE(wait_until([&] { return pool->stats().recycled >= 1; }, 5000ms));
  auto r = pool->execute("ping");
  ASSERT_TRUE(r) << r.error().to_string();
}

TEST(InitCommands, ReachEveryWorkerIncludingReplacements) {
  auto config = test_config(2);
  config.init_commands = {{"configure", {{"model", "mock-lm"}, {"temperature", 0}}}};
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  auto all = pool->broadcast("get_config");
  ASSERT_EQ(all.succeeded, 2u);
  for (const auto& [id, r] : all.results) EXPECT_EQ((*r)["config"]["model"], "mock-lm") << id;
  std::string victim = pool->workers().at(0).id;
  ::kill(pid_of(*pool, victim), SIGKILL);
  ASSERT_TRUE(wait_until([&] { return pool->stats().replaced == 1 && pool->stats().idle == 2; }));
  auto after = pool->broadcast("get_config");
  ASSERT_EQ(after.succeeded, 2u);
  EXPECT_EQ(after.results.count(victim), 0u);
  for (const auto& [id, r] : after.results) EXPECT_EQ((*r)["config"]["model"], "mock-lm") << id;
}

TEST(InitCommands, FailingInitCommandIsAnInitializationError) {
  auto config = test_config(1);
  config.init_commands = {{"fail", {{"type", "ValueError"}, {"message", "bad model name"}}}};
  config.startup_timeout = 3000ms;
  auto pool = Pool::start(config);
  ASSERT_FALSE(pool);
  EXPECT_EQ(pool.error().category, ErrorCategory::kInitialization);
  EXPECT_NE(pool.error().message.find("init command 'fail' failed"), std::string::npos);
  EXPECT_NE(pool.error().message.find("bad model name"), std::string::npos);
}

TEST(Broadcast, ReachesEveryWorkerAndWaitsForBusyOnes) {
  auto pool = start_pool(test_config(3));
  ASSERT_TRUE(pool);
  auto busy = pool->execute_async("sleep", {{"ms", 300}});  // a busy worker to wait for
  ASSERT_TRUE(wait_until([&] { return pool->stats().busy == 1; }));
  auto r = pool->broadcast("configure", {{"flag", true}});
  EXPECT_EQ(r.succeeded, 3u);
  EXPECT_EQ(r.failed, 0u);
  std::set<std::string> ids;
  for (const auto& w : pool->workers()) ids.insert(w.id);
  for (const auto& [id, reply] : r.results) EXPECT_TRUE(ids.count(id));
  EXPECT_TRUE(busy.get());
  auto bad = pool->broadcast("no_such_command");
  EXPECT_EQ(bad.failed, 3u);
  EXPECT_EQ(bad.results.begin()->second.error().category, ErrorCategory::kInvalidRequest);
}

}  // namespace
}  // namespace bridgepool

namespace bridgepool {
namespace {

TEST(RollingRestart, ReplacesEveryWorkerUnderLoadWithoutAFailedRequest) {
  auto config = test_config(3);
  config.version_tag = "v1";
  auto dir = ::testing::TempDir() + "bp_rr_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  auto write_module = [&](const std::string& name, const std::string& version) {
    std::ofstream(dir + "/" + name)
        << "from bridgepool_worker import command\n__version__ = '" << version
        << "'\n@command('version', idempotent=True)\n"
        << "def version(args, ctx):\n    return {'version': __version__, "
        << "'worker_id': ctx.worker_id}\n";
  };
  write_module("handlers_v1.py", "v1");
  write_module("handlers_v2.py", "v2");
  config.handlers = {dir + "/handlers_v1.py"};
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> load;
  for (int t = 0; t < 4; ++t) {
    load.emplace_back([&] {
      while (!stop) {
        auto r = pool->execute("version", Json::object(), {});
        (r ? ok : failed)++;
      }
    });
  }
  // The restart begins under load ...
  bool loaded_before = wait_until([&] { return ok.load() >= 50; }, 10'000ms);
  auto before = pool->stats();
  PoolConfig next;
  next.handlers = {dir + "/handlers_v2.py"};
  auto restarted = pool->rolling_restart(next);
  // ... and the load goes on being served by the new generation after it.
  int at_end_of_restart = ok.load();
  bool loaded_after = wait_until([&] { return ok.load() >= at_end_of_restart + 50; }, 10'000ms);
  stop = true;
  for (auto& t : load) t.join();
  EXPECT_TRUE(loaded_before);
  EXPECT_TRUE(loaded_after);
  ASSERT_TRUE(restarted) << restarted.error().to_string();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GT(ok.load(), 100);
  auto after = pool->stats();
  EXPECT_GE(after.requests, before.requests);  // counters continue, never reset
  EXPECT_EQ(after.ok, after.requests);
  EXPECT_EQ(after.generation, 2u);
  auto workers = pool->workers();
  ASSERT_EQ(workers.size(), 3u);
  for (const auto& w : workers) {
    EXPECT_EQ(w.handlers_version, "v2") << w.id;
    EXPECT_EQ(w.generation, 2u);
  }
  for (int i = 0; i < 6; ++i) {
    auto v = pool->execute("version");
    ASSERT_TRUE(v) << v.error().to_string();
    EXPECT_EQ((*v)["version"], "v2");
  }
  std::filesystem::remove_all(dir);
}

TEST(RollingRestart, BrokenNewCodeStopsTheRestartAndKeepsServing) {
  auto pool = start_pool(test_config(2));
  ASSERT_TRUE(pool);
  PoolConfig next;
  next.handlers = {data_path("import_error.py")};
  auto r = pool->rolling_restart(next, 1, 10000ms);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().category, ErrorCategory::kInitialization);
  EXPECT_NE(r.error().message.find("rolling restart to generation 2 stopped"), std::string::npos);
  EXPECT_NE(r.error().message.find("simulated import failure"), std::string::npos);
  // The pool refills with the previous generation and keeps serving.
  ASSERT_TRUE(wait_until([&] { return pool->stats().live == 2; }, 5000ms));
  EXPECT_TRUE(pool->execute("ping"));
}

TEST(Overflow, ExtraWorkersStartUnderQueueingAndRetireWhenIdle) {
  auto config = test_config(1);
  config.max_overflow = 2;
  config.overflow_idle_timeout = 300ms;
  // Worker processes alive at once, over the whole test, from the pool's spawn and exit events
  // (both emitted on its monitor thread, in the order they happen).
  config.events = std::make_shared<EventBus>();
  std::mutex processes_mu;
  int processes = 0, most_processes = 0;
  config.events->attach("pool.worker.", [&](const Event& e) {
    std::lock_guard lock(processes_mu);
    if (e.name == "pool.worker.spawned") most_processes = std::max(most_processes, ++processes);
    if (e.name == "pool.worker.exited") --processes;
  });
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  std::vector<std::future<Result<Json>>> calls;
  // Six calls that hold a worker for 400 ms each: the queueing that starts overflow workers.
  for (int i = 0; i < 6; ++i) calls.push_back(pool->execute_async("sleep", {{"ms", 400}}));
  ASSERT_TRUE(wait_until([&] { return pool->stats().live == 3; }, 5000ms));
  for (auto& c : calls) EXPECT_TRUE(c.get());
  ASSERT_TRUE(wait_until([&] { return pool->stats().live == 1; }, 5000ms));
  EXPECT_EQ(pool->stats().overflow_retired, 2u);
  EXPECT_EQ(pool->stats().replaced, 0u);
  EXPECT_TRUE(pool->execute("ping"));
  std::lock_guard lock(processes_mu);
  EXPECT_EQ(most_processes, 3);  // never more than size + max_overflow processes
}

// WorkerInfo::rss_bytes is the process's resident memory now: a Python interpreter's few MiB, and
// more once its handlers hold more.
TEST(WorkerInfo, ReportsTheResidentMemoryOfEachWorkerProcess) {
  auto pool = testing::start_pool(testing::test_config(1));
  ASSERT_TRUE(pool);
  const std::uint64_t before = pool->workers().at(0).rss_bytes;
  EXPECT_GT(before, 1u << 20);
  // `configure` keeps its arguments in the worker's process-wide configuration.
  ASSERT_TRUE(pool->execute("configure", {{"blob", std::string(16u << 20, 'x')}}));
  const std::uint64_t after = pool->workers().at(0).rss_bytes;
  EXPECT_GE(after, before + (8u << 20)) << "before " << before << ", after " << after;
}

}  // namespace
}  // namespace bridgepool
