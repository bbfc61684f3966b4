// Chaos with real signals: 5 workers, 50 sessions, 8 client threads, a random worker SIGKILLed
// every 200 ms for 10 s. Every request must either succeed on its session's worker or fail with
// session_lost / a connection error naming the dead worker; no request is lost or answered
// twice (a per-session counter in the worker must advance by exactly one per success); no
// session is silently moved; the pool's counters equal what the clients observed.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "integration/test_support.h"
#include "telemetry/latency_summary.h"

namespace bridgepool {
namespace {

using testing::test_config;
using namespace std::chrono_literals;

struct ClientTally {
  std::uint64_t issued = 0, ok = 0, session_lost = 0, connection = 0, other = 0;
  std::uint64_t moved = 0, skipped_or_repeated = 0, wrong_dead_worker = 0;
  std::string first_problem;
};

TEST(Chaos, SessionsUnderRandomWorkerKills) {
  std::string module = ::testing::TempDir() + "bp_chaos_" + std::to_string(::getpid()) + ".py";
  std::ofstream(module) << "from bridgepool_worker import command\n"
                        << "@command('count')\ndef count(args, ctx):\n"
                        << "    ctx.session['n'] = ctx.session.get('n', 0) + 1\n"
                        << "    return {'n': ctx.session['n'], 'worker_id': ctx.worker_id}\n";
  auto config = test_config(5, {module});
  config.checkout_timeout = 5000ms;
  // Time from a worker's exit being noticed to its replacement being ready.
  config.events = std::make_shared<EventBus>();
  std::mutex events_mu;
  std::deque<std::chrono::steady_clock::time_point> exits;
  std::vector<double> replacement_ms;
  config.events->attach("pool.worker.", [&](const Event& e) {
    std::lock_guard lock(events_mu);
    auto now = std::chrono::steady_clock::now();
    if (e.name == "pool.worker.exited") {
      exits.push_back(now);
    } else if (e.name == "pool.worker.ready" && !exits.empty()) {
      replacement_ms.push_back(
          std::chrono::duration<double, std::milli>(now - exits.front()).count());
      exits.pop_front();
    }
  });
  auto started = Pool::start(config);
  ASSERT_TRUE(started) << started.error().to_string();
  auto& pool = **started;

  constexpr int kThreads = 8, kSessions = 50;
  const auto kDuration = 10s;
  std::atomic<bool> stop{false};
  std::vector<ClientTally> tallies(kThreads);
  std::vector<std::thread> clients;
  for (int t = 0; t < kThreads; ++t) {
    clients.emplace_back([&, t] {
      ClientTally& tally = tallies[t];
      // Sessions t, t+8, t+16, ... belong to this thread only: calls in a session are sequential.
      std::map<std::string, std::pair<std::string, int>> bound;  // session -> (worker, last n)
      auto problem = [&](std::string what) {
        if (tally.first_problem.empty()) tally.first_problem = std::move(what);
      };
      while (!stop) {
        for (int s = t; s < kSessions && !stop; s += kThreads) {
          std::string sid = "chaos-" + std::to_string(s);
          ++tally.issued;
          auto r = pool.execute_in_session(sid, "count");
          auto it = bound.find(sid);
          if (r) {
            ++tally.ok;
            std::string w = (*r)["worker_id"];
            int n = (*r)["n"];
            if (it == bound.end()) {
              if (n != 1) {
                ++tally.skipped_or_repeated;
                problem(sid + " started at n=" + std::to_string(n));
              }
              bound[sid] = {w, n};
            } else if (it->second.first != w) {
              ++tally.moved;
              problem(sid + " moved from " + it->second.first + " to " + w);
            } else {
              if (n != it->second.second + 1) {
                ++tally.skipped_or_repeated;
                problem(sid + " n=" + std::to_string(n) + " after " +
                        std::to_string(it->second.second));
              }
              it->second.second = n;
            }
            continue;
          }
          const Error& e = r.error();
          std::string dead = it == bound.end() ? "" : it->second.first;
          if (e.category == ErrorCategory::kSession) {
            ++tally.session_lost;
            if (e.context.worker_id != dead) {
              ++tally.wrong_dead_worker;
              problem("session_lost names " + e.context.worker_id + ", bound to " + dead);
            }
          } else if (e.category == ErrorCategory::kConnection) {
            ++tally.connection;
            if (!dead.empty() && e.context.worker_id != dead) {
              ++tally.wrong_dead_worker;
              problem("connection error names " + e.context.worker_id + ", bound to " + dead);
            }
          } else {
            ++tally.other;
            problem("unexpected error: " + e.to_string());
            std::cerr << "unexpected error: " << e.format_for_logging() << "\n";
          }
          // Either way the session's state is gone: close it and start it again.
          pool.close_session(sid);
          bound.erase(sid);
        }
      }
    });
  }
  std::mt19937 rng(12345);
  int kills = 0;
  std::set<pid_t> killed;
  std::size_t max_live = 0;  // workers in service + starting: never above the size  // a worker
                             // killed but not yet reaped is still listed: never count it twice
  auto end = std::chrono::steady_clock::now() + kDuration;
  while (std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(200ms);
    max_live = std::max(max_live, pool.stats().live + pool.stats().starting);
    auto ws = pool.workers();
    std::vector<pid_t> alive;
    for (const auto& w : ws) {
      bool candidate =
          (w.state == WorkerState::kReady || w.state == WorkerState::kBusy) && !killed.count(w.pid);
      if (candidate && testing::process_running(w.pid)) alive.push_back(w.pid);
    }
    if (alive.empty()) continue;
    pid_t victim = alive[rng() % alive.size()];
    if (::kill(victim, SIGKILL) == 0) {
      killed.insert(victim);
      ++kills;
    }
  }
  stop = true;
  for (auto& c : clients) c.join();

  ClientTally sum;
  for (const auto& t : tallies) {
    sum.issued += t.issued;
    sum.ok += t.ok;
    sum.session_lost += t.session_lost;
    sum.connection += t.connection;
    sum.other += t.other;
    sum.moved += t.moved;
    sum.skipped_or_repeated += t.skipped_or_repeated;
    sum.wrong_dead_worker += t.wrong_dead_worker;
    if (sum.first_problem.empty()) sum.first_problem = t.first_problem;
  }
  // The last kill may still be in flight: wait until every killed worker was noticed.
  testing::wait_until([&] { return pool.stats().replaced >= std::uint64_t(kills); }, 3000ms);
  auto st = pool.stats();
  std::cout << "chaos: requests " << sum.issued << ", ok " << sum.ok << ", session_lost "
            << sum.session_lost << ", connection " << sum.connection << ", other " << sum.other
            << ", kills " << kills << ", replaced " << st.replaced << "\n";
  {
    std::lock_guard lock(events_mu);
    auto lat = LatencySummary::of(replacement_ms);
    std::cout << "chaos: exit -> replacement ready (ms): n " << lat.count << ", p50 " << lat.p50
              << ", p99 " << lat.p99 << ", max " << lat.max << "\n";
    EXPECT_GE(lat.count, std::size_t(kills) - 5);
  }
  EXPECT_EQ(sum.moved, 0u) << sum.first_problem;
  EXPECT_EQ(sum.skipped_or_repeated, 0u) << sum.first_problem;
  EXPECT_EQ(sum.wrong_dead_worker, 0u) << sum.first_problem;
  EXPECT_EQ(sum.other, 0u) << sum.first_problem;
  EXPECT_EQ(sum.issued, sum.ok + sum.session_lost + sum.connection);  // none lost
  EXPECT_GT(kills, 30);
  EXPECT_LE(max_live, 5u);
  EXPECT_GT(sum.ok, 1000u);
  // The pool's counters equal what the clients saw.
  EXPECT_EQ(st.requests, sum.issued);
  EXPECT_EQ(st.ok, sum.ok);
  auto count = [&](const char* c) { return st.errors.count(c) ? st.errors.at(c) : 0; };
  EXPECT_EQ(count("session"), sum.session_lost);
  EXPECT_EQ(count("connection"), sum.connection);
  EXPECT_EQ(st.session_lost_calls, sum.session_lost);
  EXPECT_GE(st.replaced, std::uint64_t(kills));
  pool.shutdown();
  EXPECT_TRUE(testing::children_of(::getpid()).empty());
  std::remove(module.c_str());
}

}  // namespace
}  // namespace bridgepool
