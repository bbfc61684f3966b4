// Warm spares (PoolConfig::spare_workers) with fake workers and a ManualClock (the PoolLogic
// fixture, pool_logic_fixture.h): spares never take traffic; a worker that dies or is recycled is
// replaced by a spare with no start on the way, and the spare is replenished; a spare that dies
// or fails a probe is replaced; a rolling restart retires old-generation spares and never
// promotes one; failed spare starts back off; shutdown ends spares; spare_workers = 0 behaves
// as before.
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "bridgepool/pool.h"
#include "fakes/fake_spawner.h"
#include "pool_logic_fixture.h"

namespace bridgepool {
namespace {

using namespace std::chrono_literals;
using fakes::FakeScript;

class PoolSpares : public PoolLogic {
 protected:
  void SetUp() override {
    PoolLogic::SetUp();
    events_->attach("pool.worker.spare_promoted", [this](const Event& e) {
      std::lock_guard lock(mu_);
      promoted_.push_back(e.metadata.at("worker_id") + "<-" + e.metadata.at("replaces"));
    });
  }

  PoolConfig spare_config(std::size_t size, std::size_t spares) {
    PoolConfig c = config(size);
    c.spare_workers = spares;
    return c;
  }

  // "w2<-w1": spare w2 went into service in place of w1.
  std::vector<std::string> promoted() {
    std::lock_guard lock(mu_);
    return promoted_;
  }

  bool spares_ready(Pool& pool, std::uint64_t n) {
    return spawner_->wait_for([&] { return pool.stats().spare_workers == n; });
  }

  static std::vector<std::string> spare_ids(Pool& pool) {
    std::vector<std::string> out;
    for (const auto& w : pool.workers()) {
      if (w.spare) out.push_back(w.id);
    }
    return out;
  }

  std::vector<std::string> promoted_;
};

std::string served_by(Pool& pool) {
  CallReport report;
  ExecuteOptions options;
  options.report = &report;
  auto r = pool.execute("echo", Json::object(), options);
  return r ? report.worker_id : "error: " + r.error().to_string();
}

TEST_F(PoolSpares, SparesStartOnceMinReadyWorkersServeAndNeverTakeTraffic) {
  auto pool = start(spare_config(1, 2));
  ASSERT_TRUE(pool);
  ASSERT_TRUE(spares_ready(*pool, 2));
  EXPECT_EQ(spare_ids(*pool), (std::vector<std::string>{"w2", "w3"}));
  PoolStats st = pool->stats();
  EXPECT_EQ(st.live, 1u);
  EXPECT_EQ(st.idle, 1u);
  EXPECT_EQ(st.spares_starting, 0u);
  // w1 busy: a second caller waits for it rather than taking a spare.
  auto held = std::async(std::launch::async, [&] { return pool->execute("hold"); });
  ASSERT_TRUE(spawner_->wait_for([&] { return spawner_->requests("hold") == 1; }));
  auto queued = std::async(std::launch::async, [&] { return served_by(*pool); });
  ASSERT_TRUE(spawner_->wait_for([&] { return pool->stats().queue_length == 1; }));
  EXPECT_EQ(spawner_->requests("echo"), 0);
  spawner_->release_holds();
  ASSERT_TRUE(held.get());
  EXPECT_EQ(queued.get(), "w1");
  // Sessions bind only to workers in service; broadcasts reach only them.
  CallReport report;
  ExecuteOptions options;
  options.report = &report;
  ASSERT_TRUE(pool->execute_in_session("s1", "echo", Json::object(), options));
  EXPECT_EQ(report.worker_id, "w1");
  auto all = pool->broadcast("echo");
  EXPECT_EQ(all.results.size(), 1u);
  EXPECT_TRUE(all.results.contains("w1"));
  EXPECT_EQ(pool->stats().spare_promotions, 0u);
  EXPECT_TRUE(promoted().empty());
}

TEST_F(PoolSpares, ADeadWorkerIsReplacedByASpareAtOnceAndTheSpareIsReplenished) {
  auto pool = start(spare_config(1, 1));
  ASSERT_TRUE(pool);
  ASSERT_TRUE(spares_ready(*pool, 1));
  // w1 busy and a caller waiting when it dies: the caller is served by the promoted spare.
  auto held = std::async(std::launch::async, [&] { return pool->execute("hold"); });
  ASSERT_TRUE(spawner_->wait_for([&] { return spawner_->requests("hold") == 1; }));
  auto queued = std::async(std::launch::async, [&] { return served_by(*pool); });
  ASSERT_TRUE(spawner_->wait_for([&] { return pool->stats().queue_length == 1; }));
  ASSERT_TRUE(spawner_->crash("w1", 9));
  EXPECT_EQ(queued.get(), "w2");
  EXPECT_FALSE(held.get());
  // The event follows the admission (the caller may be served first); the new spare's spawn
  // follows the event.
  ASSERT_TRUE(spawner_->wait_for([&] { return !promoted().empty(); }));
  EXPECT_EQ(promoted(), std::vector<std::string>{"w2<-w1"});
  // The spare's own replacement starts in the background (no clock move: no backoff).
  ASSERT_TRUE(spares_ready(*pool, 1));
  EXPECT_EQ(spare_ids(*pool), std::vector<std::string>{"w3"});
  EXPECT_EQ(spawner_->spawns(), 3u);  // w1, w2 (spare), w3 (new spare): no start for w1's slot
  PoolStats st = pool->stats();
  EXPECT_EQ(st.spare_promotions, 1u);
  EXPECT_EQ(st.replaced, 1u);
  EXPECT_EQ(st.live, 1u);
  EXPECT_EQ(st.starting, 0u);
  EXPECT_EQ(served_by(*pool), "w2");
}

TEST_F(PoolSpares, ARecycledWorkerIsReplacedByASpare) {
  auto c = spare_config(1, 1);
  c.max_requests = 2;
  c.max_requests_jitter = 0;
  auto pool = start(c);
  ASSERT_TRUE(pool);
  ASSERT_TRUE(spares_ready(*pool, 1));
  EXPECT_EQ(served_by(*pool), "w1");
  EXPECT_EQ(served_by(*pool), "w1");  // its limit: recycled as it comes back
  EXPECT_EQ(served_by(*pool), "w2");
  ASSERT_TRUE(spawner_->wait_for([&] { return !promoted().empty(); }));
  EXPECT_EQ(promoted(), std::vector<std::string>{"w2<-w1"});
  ASSERT_TRUE(spares_ready(*pool, 1));
  EXPECT_EQ(spare_ids(*pool), std::vector<std::string>{"w3"});
  PoolStats st = pool->stats();
  EXPECT_EQ(st.recycled, 1u);
  EXPECT_EQ(st.spare_promotions, 1u);
  // Recycled gracefully (the shutdown command), not killed.
  EXPECT_TRUE(spawner_->wait_for([&] { return spawner_->requests("shutdown") == 1; }));
}

TEST_F(PoolSpares, ASpareThatDiesIsReplacedAndServiceIsUntouched) {
  auto pool = start(spare_config(2, 1));
  ASSERT_TRUE(pool);
  ASSERT_TRUE(spares_ready(*pool, 1));
  EXPECT_EQ(spare_ids(*pool), std::vector<std::string>{"w3"});
  ASSERT_TRUE(spawner_->crash("w3"));
  ASSERT_TRUE(
      spawner_->wait_for([&] { return spare_ids(*pool) == std::vector<std::string>{"w4"}; }));
  PoolStats st = pool->stats();
  EXPECT_EQ(st.live, 2u);
  EXPECT_EQ(st.spare_workers, 1u);
  EXPECT_EQ(st.spare_promotions, 0u);
  EXPECT_EQ(st.replaced, 0u);  // counts replacements of workers in service only
  EXPECT_TRUE(promoted().empty());
}

TEST_F(PoolSpares, ASpareIsProbedAndOneThatFailsItsProbeIsReplaced) {
  auto c = spare_config(1, 1);
  c.health_check_interval = 30s;
  auto pool = start(c);
  ASSERT_TRUE(pool);
  ASSERT_TRUE(spares_ready(*pool, 1));
  advance(30s);
  // Both the worker and the spare are probed on the same schedule.
  ASSERT_TRUE(spawner_->wait_for([&] { return spawner_->requests("health_check") == 2; }));
  EXPECT_EQ(spare_ids(*pool), std::vector<std::string>{"w2"});
  spawner_->set_healthy(false);
  advance(30s);
  // The worker is degraded (it gets rechecked); the spare, serving nobody, is replaced at once.
  ASSERT_TRUE(
      spawner_->wait_for([&] { return spare_ids(*pool) == std::vector<std::string>{"w3"}; }));
  EXPECT_EQ(state_of(*pool, "w1"), WorkerState::kDegraded);
  EXPECT_EQ(pool->stats().spare_promotions, 0u);
}

TEST_F(PoolSpares, ARollingRestartRetiresOldSparesAndNeverPromotesOne) {
  auto pool = start(spare_config(2, 1));
  ASSERT_TRUE(pool);
  ASSERT_TRUE(spares_ready(*pool, 1));
  EXPECT_EQ(spare_ids(*pool), std::vector<std::string>{"w3"});
  PoolConfig next = config(2);
  next.version_tag = "v2";
  ASSERT_TRUE(pool->rolling_restart(next, 1, 10s));
  ASSERT_TRUE(spares_ready(*pool, 1));
  for (const auto& w : pool->workers()) {
    if (w.state == WorkerState::kTerminating || w.state == WorkerState::kTerminated) continue;
    EXPECT_EQ(w.generation, 2u) << w.id;
    EXPECT_NE(w.id, "w3");  // the old spare left, never served
  }
  for (const auto& p : promoted()) EXPECT_NE(p.substr(0, 3), "w3<") << p;
  EXPECT_EQ(pool->stats().generation, 2u);
  EXPECT_EQ(pool->stats().live, 2u);
}

TEST_F(PoolSpares, FailedSpareStartsBackOffLikeAnyStart) {
  auto c = spare_config(1, 1);
  c.respawn_backoff_initial = 200ms;
  FakeScript broken;
  broken.start = FakeScript::Start::kInitFailed;
  spawner_->script(2, broken);  // the first spare
  auto pool = start(c);
  ASSERT_TRUE(pool);
  ASSERT_TRUE(spawner_->wait_for([&] { return pool->stats().init_failures == 1; }));
  EXPECT_EQ(pool->stats().spares_starting, 1u);  // waiting out the backoff
  advance(100ms);
  EXPECT_EQ(spawner_->spawns(), 2u) << "no spare start before the 200 ms backoff";
  advance(100ms);
  ASSERT_TRUE(spares_ready(*pool, 1));
  EXPECT_EQ(spare_ids(*pool), std::vector<std::string>{"w3"});
  EXPECT_EQ(pool->stats().live, 1u);
}

TEST_F(PoolSpares, ACallerThatMakesALazyPoolGrowGetsASpareInsteadOfAStart) {
  auto c = spare_config(2, 1);
  c.eager = false;
  c.min_ready = 1;
  auto pool = start(c);
  ASSERT_TRUE(pool);
  ASSERT_TRUE(spares_ready(*pool, 1));  // after w1, the one min_ready worker
  EXPECT_EQ(spare_ids(*pool), std::vector<std::string>{"w2"});
  auto held = std::async(std::launch::async, [&] { return pool->execute("hold"); });
  ASSERT_TRUE(spawner_->wait_for([&] { return spawner_->requests("hold") == 1; }));
  // w1 busy: the pool grows towards size, and the slot is filled by the spare.
  EXPECT_EQ(served_by(*pool), "w2");
  ASSERT_TRUE(spawner_->wait_for([&] { return !promoted().empty(); }));
  EXPECT_EQ(promoted(), std::vector<std::string>{"w2<-"});
  ASSERT_TRUE(spares_ready(*pool, 1));
  EXPECT_EQ(spare_ids(*pool), std::vector<std::string>{"w3"});
  EXPECT_EQ(pool->stats().live, 2u);
  spawner_->release_holds();
  ASSERT_TRUE(held.get());
}

TEST_F(PoolSpares, ShutdownEndsTheSparesToo) {
  auto pool = start(spare_config(1, 2));
  ASSERT_TRUE(pool);
  ASSERT_TRUE(spares_ready(*pool, 2));
  EXPECT_EQ(spawner_->running(), 3u);
  pool->shutdown();
  EXPECT_EQ(spawner_->running(), 0u);
  EXPECT_TRUE(pool->workers().empty());
}

TEST_F(PoolSpares, WithoutSparesADeadWorkerIsReplacedByAStartAsBefore) {
  auto pool = start(config(1));
  ASSERT_TRUE(pool);
  ASSERT_TRUE(spawner_->crash("w1"));
  ASSERT_TRUE(spawner_->wait_for([&] { return pool->stats().live == 1u; }));
  EXPECT_EQ(served_by(*pool), "w2");
  PoolStats st = pool->stats();
  EXPECT_EQ(st.replaced, 1u);
  EXPECT_EQ(st.spare_promotions, 0u);
  EXPECT_EQ(st.spare_workers, 0u);
  EXPECT_EQ(spawner_->spawns(), 2u);
  EXPECT_TRUE(spare_ids(*pool).empty());
}

}  // namespace
}  // namespace bridgepool
