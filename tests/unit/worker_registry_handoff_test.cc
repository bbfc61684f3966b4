// WorkerRegistry's hand-off: the thread that checks a worker in while callers wait runs the next
// waiter's handoff (its request's send) with the worker before waking it — on its own thread,
// in FIFO order, for targeted waiters too; the waiter does not return while it runs, even past
// its deadline; a worker admitted (new) or a waiter without a handoff gets no handoff run.
// Workers here are never spoken to: a process object with no pipes stands in.
#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "pool/worker_registry.h"
#include "process/inert_process.h"

namespace bridgepool {
namespace {

using namespace std::chrono_literals;

class RegistryHandoff : public ::testing::Test {
 protected:
  SteadyClock clock_;
  WorkerRegistry registry_{clock_, 16, {}};
  std::uint64_t next_ = 1;

  WorkerPtr admit() {
    auto w = std::make_shared<Worker>(next_++, std::make_unique<InertProcess>(), 1024, clock_);
    EXPECT_TRUE(registry_.admit(w, Tracking{HealthTracker(HealthConfig{}, clock_.now())}));
    return w;
  }
  std::optional<Leave> give_back(const WorkerPtr& w) {
    return registry_.check_in(w, [](Tracking&) { return std::optional<Leave>(); });
  }
  bool queued(std::size_t n) {
    for (int i = 0; i < 5000; ++i) {
      if (registry_.counts().queue_length == n) return true;
      std::this_thread::sleep_for(1ms);
    }
    return false;
  }
  TimePoint in(std::chrono::milliseconds d) { return clock_.now() + d; }
};

TEST_F(RegistryHandoff, TheGiverRunsTheWaitersHandoffBeforeWakingIt) {
  WorkerPtr w = admit();
  ASSERT_TRUE(registry_.checkout(in(1s)));
  std::thread::id ran_on;
  std::atomic<bool> ran{false};
  const WorkerRegistry::Handoff handoff = [&](const WorkerPtr& given) {
    EXPECT_EQ(given, w);
    ran_on = std::this_thread::get_id();
    ran = true;
  };
  Result<WorkerPtr> got = tl::unexpected(Error());
  bool ran_before_return = false;
  std::thread waiter([&] {
    got = registry_.checkout(in(5s), {}, &handoff);
    ran_before_return = ran.load();
  });
  ASSERT_TRUE(queued(1));
  give_back(w);
  EXPECT_TRUE(ran.load());  // check_in returned after running it
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  waiter.join();
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, w);
  EXPECT_TRUE(ran_before_return);
  EXPECT_EQ(registry_.counts().busy, 1u);
}

TEST_F(RegistryHandoff, WaitersAreHandedWorkersInFifoOrder) {
  WorkerPtr w = admit();
  ASSERT_TRUE(registry_.checkout(in(1s)));
  std::vector<int> order;
  std::mutex order_mu;
  std::vector<std::thread> threads;
  std::vector<WorkerRegistry::Handoff> handoffs;
  for (int i = 0; i < 4; ++i) {
    handoffs.emplace_back([&, i](const WorkerPtr&) {
      std::lock_guard lock(order_mu);
      order.push_back(i);
    });
  }
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      auto got = registry_.checkout(in(5s), {}, &handoffs[i]);
      ASSERT_TRUE(got);
      give_back(*got);  // the next waiter's handoff runs on this thread
    });
    ASSERT_TRUE(queued(std::size_t(i + 1)));
  }
  give_back(w);
  for (auto& t : threads) t.join();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(registry_.counts().idle, 1u);
}

TEST_F(RegistryHandoff, AWaiterWaitsForItsHandoffEvenPastItsDeadline) {
  WorkerPtr w = admit();
  ASSERT_TRUE(registry_.checkout(in(1s)));
  std::atomic<bool> finished{false};
  const WorkerRegistry::Handoff slow = [&](const WorkerPtr&) {
    std::this_thread::sleep_for(300ms);  // beyond the waiter's 100 ms deadline
    finished = true;
  };
  Result<WorkerPtr> got = tl::unexpected(Error());
  std::thread waiter([&] { got = registry_.checkout(in(100ms), {}, &slow); });
  ASSERT_TRUE(queued(1));
  give_back(w);
  waiter.join();
  ASSERT_TRUE(got) << got.error().to_string();  // handed a worker: not a timeout
  EXPECT_TRUE(finished.load());
}

TEST_F(RegistryHandoff, ATargetedWaiterGetsItsHandoffToo) {
  WorkerPtr w = admit();
  ASSERT_TRUE(registry_.checkout_worker(w, in(1s)));
  std::atomic<bool> ran{false};
  const WorkerRegistry::Handoff handoff = [&](const WorkerPtr&) { ran = true; };
  std::thread waiter([&] { EXPECT_TRUE(registry_.checkout_worker(w, in(5s), &handoff)); });
  // Targeted waiters are not in the FIFO queue: wait until the waiter is blocked.
  std::this_thread::sleep_for(50ms);
  give_back(w);
  waiter.join();
  EXPECT_TRUE(ran.load());
}

TEST_F(RegistryHandoff, ANewWorkerIsHandedOverWithoutRunningTheHandoff) {
  std::atomic<bool> ran{false};
  const WorkerRegistry::Handoff handoff = [&](const WorkerPtr&) { ran = true; };
  Result<WorkerPtr> got = tl::unexpected(Error());
  std::thread waiter([&] { got = registry_.checkout(in(5s), {}, &handoff); });
  ASSERT_TRUE(queued(1));
  WorkerPtr w = admit();  // the supervisor's thread: it does not send for callers
  waiter.join();
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, w);
  EXPECT_FALSE(ran.load());
}

TEST_F(RegistryHandoff, AWaiterWithoutAHandoffIsJustWoken) {
  WorkerPtr w = admit();
  ASSERT_TRUE(registry_.checkout(in(1s)));
  Result<WorkerPtr> got = tl::unexpected(Error());
  std::thread waiter([&] { got = registry_.checkout(in(5s)); });
  ASSERT_TRUE(queued(1));
  give_back(w);
  waiter.join();
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, w);
}

}  // namespace
}  // namespace bridgepool
