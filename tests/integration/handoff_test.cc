// The hand-off (issue #11): a caller that returns a worker while others wait sends the next
// waiter's request itself before waking it. With real Python workers: a queued call carries the
// time it has left when it is sent (not when it queued), queued calls reach the worker in their
// queue order, a large queued request is sent by its own caller, a bound session's queued call
// reaches its worker, a call handed a worker that died meanwhile is re-routed, and many callers
// on few workers each get their own reply.
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "bridgepool/pool.h"
#include "integration/test_support.h"

namespace bridgepool {
namespace {

using testing::data_path;
using testing::start_pool;
using testing::test_config;
using testing::wait_until;
using namespace std::chrono_literals;

PoolConfig one_worker() { return testing::edge_config(1); }

TEST(Handoff, AQueuedCallIsSentWithTheTimeLeftWhenItIsSent) {
  auto pool = start_pool(one_worker());
  ASSERT_TRUE(pool);
  std::thread busy([&] { EXPECT_TRUE(pool->execute("context", {{"sleep_ms", 400}})); });
  ASSERT_TRUE(wait_until([&] { return pool->stats().busy == 1; }));
  ExecuteOptions options;
  options.timeout = 5000ms;
  std::thread waiter_thread;
  Result<Json> queued = tl::unexpected(Error());
  waiter_thread = std::thread([&] { queued = pool->execute("context", {}, options); });
  busy.join();
  waiter_thread.join();
  ASSERT_TRUE(queued) << queued.error().to_string();
  // It waited ~400 ms behind the sleep: the deadline it was sent with says so.
  const auto left = (*queued)["deadline_ms"].get<std::int64_t>();
  EXPECT_LE(left, 5000 - 250) << queued->dump();
  EXPECT_GT(left, 3000) << queued->dump();
}

TEST(Handoff, QueuedCallsReachTheWorkerInTheirQueueOrder) {
  auto pool = start_pool(one_worker());
  ASSERT_TRUE(pool);
  std::thread busy([&] { EXPECT_TRUE(pool->execute("context", {{"sleep_ms", 300}})); });
  ASSERT_TRUE(wait_until([&] { return pool->stats().busy == 1; }));
  constexpr int kWaiters = 6;
  std::vector<std::thread> threads;
  std::vector<std::int64_t> request_ids(kWaiters, -1);
  for (int i = 0; i < kWaiters; ++i) {
    threads.emplace_back([&, i] {
      auto r = pool->execute("context");
      if (r) request_ids[i] = (*r)["request_id"].get<std::int64_t>();
    });
    // The next one queues only once this one is queued.
    ASSERT_TRUE(wait_until([&] { return pool->stats().queue_length == std::size_t(i + 1); }));
  }
  busy.join();
  for (auto& t : threads) t.join();
  for (int i = 1; i < kWaiters; ++i) {
    EXPECT_EQ(request_ids[i], request_ids[i - 1] + 1) << "waiter " << i;
  }
}

TEST(Handoff, ALargeQueuedRequestIsSentByItsOwnCaller) {
  auto pool = start_pool(one_worker());
  ASSERT_TRUE(pool);
  std::thread busy([&] { EXPECT_TRUE(pool->execute("context", {{"sleep_ms", 200}})); });
  ASSERT_TRUE(wait_until([&] { return pool->stats().busy == 1; }));
  // 200 KB of arguments: more than a pipe holds, so the giver must not write it (it would wait
  // for the worker to read, on its own caller's time); the waiter sends it when woken.
  const std::string big(200'000, 'x');
  auto queued = pool->execute("context", {{"payload", big}});
  busy.join();
  ASSERT_TRUE(queued) << queued.error().to_string();
  EXPECT_TRUE((*queued)["deadline_ms"].is_number());
}

TEST(Handoff, AQueuedCallOfABoundSessionIsSentToItsWorker) {
  auto pool = start_pool(testing::edge_config(2));
  ASSERT_TRUE(pool);
  ASSERT_TRUE(pool->execute_in_session("s1", "counter"));  // binds s1
  std::thread busy([&] {
    EXPECT_TRUE(pool->execute_in_session("s1", "context", {{"sleep_ms", 300}}));
  });
  ASSERT_TRUE(wait_until([&] { return pool->stats().busy == 1; }));
  // Waits for s1's worker (the other one is idle but holds no state of s1).
  auto second = pool->execute_in_session("s1", "counter");
  busy.join();
  ASSERT_TRUE(second) << second.error().to_string();
  EXPECT_EQ((*second)["n"], 2);
  EXPECT_EQ((*second)["session_id"], "s1");
}

TEST(Handoff, ACallHandedAWorkerThatDiedIsReroutedToAnother) {
  auto config = test_config(1);
  config.max_overflow = 0;
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  // The worker's request ends its process after the reply (close): the waiter behind it is
  // handed a worker being removed, or waits for its replacement — either way it is answered.
  ExecuteOptions close;
  close.close_worker = true;
  std::thread first([&] { EXPECT_TRUE(pool->execute("sleep", {{"ms", 200}}, close)); });
  ASSERT_TRUE(wait_until([&] { return pool->stats().busy == 1; }));
  auto second = pool->execute("echo", {{"n", 2}});
  first.join();
  ASSERT_TRUE(second) << second.error().to_string();
  EXPECT_EQ((*second)["n"], 2);
}

TEST(Handoff, EightCallersOnTwoWorkersEachGetTheirOwnReplies) {
  auto pool = start_pool(test_config(2));
  ASSERT_TRUE(pool);
  constexpr int kCallers = 8;
  constexpr int kCalls = 300;
  std::atomic<int> wrong{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kCallers; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        auto r = pool->execute("echo", {{"caller", t}, {"i", i}});
        if (!r) {
          failed.fetch_add(1);
        } else if ((*r)["caller"] != t || (*r)["i"] != i) {
          wrong.fetch_add(1);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(pool->stats().ok, std::uint64_t(kCallers * kCalls));
}

}  // namespace
}  // namespace bridgepool
