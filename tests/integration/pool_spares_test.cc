// Warm spares with real Python workers: a SIGKILLed worker (busy or idle), or one killed at its
// request deadline, is replaced by the spare at once — a caller waiting for a worker is served by
// the spare's process — a new spare starts, nothing is left as a zombie, and shutdown ends every
// process, spares included.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <future>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "integration/test_support.h"

namespace bridgepool {
namespace {

using testing::children_of;
using testing::process_running;
using testing::start_pool;
using testing::test_config;
using testing::wait_until;
using namespace std::chrono_literals;

// The spare workers' pids, once `n` spares are ready.
std::vector<pid_t> spare_pids(Pool& pool, std::size_t n) {
  std::vector<pid_t> out;
  wait_until([&] {
    out.clear();
    for (const auto& w : pool.workers()) {
      if (w.spare) out.push_back(w.pid);
    }
    return out.size() == n && pool.stats().spare_workers == n;
  });
  return out;
}

// No child of this process is a zombie (every exit was reaped).
bool no_zombies() {
  for (pid_t child : children_of(::getpid())) {
    if (!process_running(child)) return false;
  }
  return true;
}

class PoolSpares : public ::testing::Test {
 protected:
  // Starts a pool of `size` workers and `spares` spares; waits until the spares are ready.
  void start(std::size_t size, std::size_t spares) {
    PoolConfig c = test_config(size);
    c.spare_workers = spares;
    c.events = std::make_shared<EventBus>();
    c.events->attach("pool.worker.spare_promoted", [this](const Event& e) {
      std::lock_guard lock(mu_);
      promoted_.push_back(e.metadata.at("worker_id") + "<-" + e.metadata.at("replaces"));
    });
    pool_ = start_pool(std::move(c));
    ASSERT_TRUE(pool_);
    spares_ = spare_pids(*pool_, spares);
    ASSERT_EQ(spares_.size(), spares);
  }

  // pool.worker.spare_promoted so far: "w2<-w1" (spare w2 went into service in place of w1).
  std::vector<std::string> promoted() {
    std::lock_guard lock(mu_);
    return promoted_;
  }

  std::unique_ptr<Pool> pool_;
  std::vector<pid_t> spares_;  // pids of the spares at the start

 private:
  std::mutex mu_;
  std::vector<std::string> promoted_;
};

TEST_F(PoolSpares, ABusyWorkerKilledIsCoveredByTheSpareAndAWaitingCallerIsServedByIt) {
  ASSERT_NO_FATAL_FAILURE(start(1, 1));
  Pool& pool = *pool_;
  const pid_t busy_pid = testing::pid_of(pool, "w1");
  ExecuteOptions no_retry;
  no_retry.retry = RetryPolicy::none();  // sleep is idempotent: its retry would take the spare
  auto busy = std::async(std::launch::async, [&] {
    return pool.execute("sleep", {{"ms", 5000}}, no_retry);
  });
  ASSERT_TRUE(wait_until([&] { return pool.stats().busy == 1; }));
  auto waiting = std::async(std::launch::async, [&] { return pool.execute("whoami"); });
  ASSERT_TRUE(wait_until([&] { return pool.stats().queue_length == 1; }));
  ASSERT_EQ(::kill(busy_pid, SIGKILL), 0);
  auto served = waiting.get();
  ASSERT_TRUE(served) << served.error().to_string();
  EXPECT_EQ((*served)["pid"], spares_[0]);
  EXPECT_EQ(busy.get().error().category, ErrorCategory::kConnection);
  EXPECT_EQ(promoted(), std::vector<std::string>{"w2<-w1"});
  // A new spare, another process.
  const std::vector<pid_t> next = spare_pids(pool, 1);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_NE(next[0], spares_[0]);
  EXPECT_TRUE(wait_until([&] { return !process_running(busy_pid) && no_zombies(); }));
  PoolStats st = pool.stats();
  EXPECT_EQ(st.spare_promotions, 1u);
  EXPECT_EQ(st.live, 1u);
}

TEST_F(PoolSpares, AnIdleWorkerKilledIsReplacedByTheSpareWithoutAStart) {
  ASSERT_NO_FATAL_FAILURE(start(2, 1));
  Pool& pool = *pool_;
  const pid_t victim = testing::pid_of(pool, "w1");
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  ASSERT_TRUE(wait_until([&] { return !promoted().empty(); }));
  EXPECT_EQ(promoted(), std::vector<std::string>{"w3<-w1"});
  // At the event the pool is back at size: counted in service, nothing starting for service.
  PoolStats st = pool.stats();
  EXPECT_EQ(st.live, 2u);
  EXPECT_EQ(st.starting, 0u);
  EXPECT_EQ(st.spare_promotions, 1u);
  // Once w1 is reaped: w2 and the former spare w3 serve, a new spare w4 is kept aside — no
  // worker was started for w1's slot.
  const std::vector<pid_t> next = spare_pids(pool, 1);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_NE(next[0], spares_[0]);
  EXPECT_TRUE(wait_until([&] { return !process_running(victim) && no_zombies(); }));
  ASSERT_TRUE(wait_until([&] { return testing::pid_of(pool, "w1") == 0; }));
  std::set<std::string> serving, spare_ids;
  for (const auto& w : pool.workers()) (w.spare ? spare_ids : serving).insert(w.id);
  EXPECT_EQ(serving, (std::set<std::string>{"w2", "w3"}));
  EXPECT_EQ(spare_ids, std::set<std::string>{"w4"});
  EXPECT_EQ(testing::pid_of(pool, "w3"), spares_[0]);
}

TEST_F(PoolSpares, AWorkerKilledAtItsDeadlineIsReplacedByTheSpare) {
  ASSERT_NO_FATAL_FAILURE(start(1, 1));
  Pool& pool = *pool_;
  const pid_t late = testing::pid_of(pool, "w1");
  ExecuteOptions options;
  options.timeout = 200ms;
  options.retry = RetryPolicy::none();
  auto reply = pool.execute("sleep", {{"ms", 5000}}, options);
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().category, ErrorCategory::kTimeout);
  ASSERT_TRUE(wait_until([&] { return !promoted().empty(); }));
  EXPECT_EQ(promoted(), std::vector<std::string>{"w2<-w1"});
  auto next = pool.execute("whoami");
  ASSERT_TRUE(next) << next.error().to_string();
  EXPECT_EQ((*next)["pid"], spares_[0]);
  EXPECT_TRUE(wait_until([&] { return !process_running(late) && no_zombies(); }));
}

TEST_F(PoolSpares, ShutdownEndsWorkersAndSparesAndLeavesNoProcess) {
  ASSERT_NO_FATAL_FAILURE(start(2, 2));
  std::vector<pid_t> pids;
  for (const auto& w : pool_->workers()) pids.push_back(w.pid);
  ASSERT_EQ(pids.size(), 4u);
  pool_->shutdown(500ms);
  for (pid_t pid : pids) EXPECT_FALSE(process_running(pid)) << pid;
  const std::vector<pid_t> left = children_of(::getpid());
  for (pid_t pid : pids) {
    EXPECT_EQ(std::count(left.begin(), left.end(), pid), 0) << "not reaped: " << pid;
  }
  EXPECT_TRUE(promoted().empty());
}

}  // namespace
}  // namespace bridgepool
