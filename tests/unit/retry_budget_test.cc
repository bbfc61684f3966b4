// RetryBudget: the limit arithmetic (ratio and minimum), grants and denials as retries start and
// end, the RAII scopes, unpaired ends, and concurrent use from several threads (run it under
// -fsanitize=thread).
#include "bridgepool/retry_budget.h"

#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace bridgepool {
namespace {

void begin_requests(RetryBudget& budget, int n) {
  for (int i = 0; i < n; ++i) budget.begin_request();
}

// Retries granted in a row before the first denial (none ended).
int grants_until_denied(RetryBudget& budget) {
  int granted = 0;
  while (budget.try_begin_retry()) ++granted;
  return granted;
}

TEST(RetryBudget, LimitIsTheLargerOfTheMinimumAndTheRatio) {
  const RetryBudget budget(0.2, 3);
  EXPECT_EQ(budget.retry_limit(0), 3u);
  EXPECT_EQ(budget.retry_limit(5), 3u);   // floor(1.0) = 1 < 3
  EXPECT_EQ(budget.retry_limit(14), 3u);  // floor(2.8) = 2 < 3
  EXPECT_EQ(budget.retry_limit(15), 3u);  // 3 = 3
  EXPECT_EQ(budget.retry_limit(20), 4u);
  EXPECT_EQ(budget.retry_limit(24), 4u);  // floor(4.8)
  EXPECT_EQ(budget.retry_limit(40), 8u);
  EXPECT_EQ(budget.retry_limit(100), 20u);
  EXPECT_EQ(budget.retry_limit(std::numeric_limits<std::uint32_t>::max()), 858'993'459u);
}

TEST(RetryBudget, RatioIsExactInPartsPerMillion) {
  // 0.29 · 100 is 28.999999999999996 in doubles; the budget says 29.
  EXPECT_EQ(RetryBudget(0.29, 0).retry_limit(100), 29u);
  EXPECT_EQ(RetryBudget(0.7, 0).retry_limit(10), 7u);
  EXPECT_DOUBLE_EQ(RetryBudget(0.2, 3).ratio(), 0.2);
  EXPECT_EQ(RetryBudget(0.2, 3).min_concurrent(), 3u);
}

TEST(RetryBudget, RatioIsClampedToZeroToOne) {
  EXPECT_EQ(RetryBudget(-1.0, 0).retry_limit(100), 0u);
  EXPECT_EQ(RetryBudget(std::nan(""), 2).retry_limit(100), 2u);
  EXPECT_EQ(RetryBudget(5.0, 0).retry_limit(100), 100u);
  EXPECT_DOUBLE_EQ(RetryBudget(5.0, 0).ratio(), 1.0);
}

TEST(RetryBudget, FiveRequestsInFlightAllowTheMinimumOfThree) {
  RetryBudget budget(0.2, 3);
  begin_requests(budget, 5);
  EXPECT_EQ(grants_until_denied(budget), 3);
  const RetryBudget::Counters c = budget.counters();
  EXPECT_EQ(c.granted, 3u);
  EXPECT_EQ(c.denied, 1u);
  EXPECT_EQ(c.requests_in_flight, 5u);
  EXPECT_EQ(c.retries_in_flight, 3u);
}

TEST(RetryBudget, FortyRequestsInFlightAllowEight) {
  RetryBudget budget(0.2, 3);
  begin_requests(budget, 40);
  EXPECT_EQ(grants_until_denied(budget), 8);
  EXPECT_EQ(budget.counters().retries_in_flight, 8u);
}

TEST(RetryBudget, EndingARetryFreesItsSlot) {
  RetryBudget budget(0.2, 3);
  begin_requests(budget, 5);
  ASSERT_EQ(grants_until_denied(budget), 3);
  budget.end_retry();
  EXPECT_TRUE(budget.try_begin_retry());
  EXPECT_FALSE(budget.try_begin_retry());
  EXPECT_EQ(budget.counters().granted, 4u);
  EXPECT_EQ(budget.counters().denied, 2u);
}

TEST(RetryBudget, FewerRequestsLowerTheLimitForNewRetriesOnly) {
  RetryBudget budget(0.2, 3);
  begin_requests(budget, 40);
  ASSERT_EQ(grants_until_denied(budget), 8);
  for (int i = 0; i < 30; ++i) budget.end_request();   // 10 in flight: limit 3
  EXPECT_EQ(budget.counters().retries_in_flight, 8u);  // running retries are not revoked
  for (int i = 0; i < 5; ++i) budget.end_retry();
  EXPECT_FALSE(budget.try_begin_retry());  // 3 in flight, limit 3
  budget.end_retry();
  EXPECT_TRUE(budget.try_begin_retry());
}

TEST(RetryBudget, ZeroRatioAndZeroMinimumRefusesEveryRetry) {
  RetryBudget budget(0.0, 0);
  begin_requests(budget, 1'000);
  EXPECT_FALSE(budget.try_begin_retry());
  EXPECT_EQ(budget.counters().denied, 1u);
}

TEST(RetryBudget, UnpairedEndsDoNotWrapBelowZero) {
  RetryBudget budget(0.2, 3);
  budget.end_request();
  budget.end_retry();
  const RetryBudget::Counters c = budget.counters();
  EXPECT_EQ(c.requests_in_flight, 0u);
  EXPECT_EQ(c.retries_in_flight, 0u);
  EXPECT_EQ(grants_until_denied(budget), 3);
}

TEST(RetryBudget, RequestScopeCountsTheRequestWhileAlive) {
  RetryBudget budget;
  {
    RetryBudget::RequestScope a(budget);
    RetryBudget::RequestScope b(budget);
    EXPECT_EQ(budget.counters().requests_in_flight, 2u);
    RetryBudget::RequestScope moved(std::move(a));
    EXPECT_EQ(budget.counters().requests_in_flight, 2u);
  }
  EXPECT_EQ(budget.counters().requests_in_flight, 0u);
}

TEST(RetryBudget, RetryScopeEndsOnlyAGrantedRetry) {
  RetryBudget budget(0.0, 1);
  {
    RetryBudget::RetryScope first(budget);
    EXPECT_TRUE(first.granted());
    RetryBudget::RetryScope second(budget);
    EXPECT_FALSE(second);
    EXPECT_EQ(budget.counters().retries_in_flight, 1u);
    RetryBudget::RetryScope moved(std::move(first));
    EXPECT_TRUE(moved.granted());
    EXPECT_FALSE(first.granted());  // NOLINT(bugprone-use-after-move): moved-from is empty
  }
  const RetryBudget::Counters c = budget.counters();
  EXPECT_EQ(c.retries_in_flight, 0u);
  EXPECT_EQ(c.granted, 1u);
  EXPECT_EQ(c.denied, 1u);
}

// With a fixed number of requests in flight, threads racing for retries never hold more than the
// limit at once, and every grant and denial is counted.
TEST(RetryBudgetConcurrency, RacingThreadsNeverExceedTheLimit) {
  RetryBudget budget(0.2, 3);
  begin_requests(budget, 40);  // limit 8
  constexpr int kThreads = 6;
  constexpr int kTriesPerThread = 20'000;
  std::atomic<int> holding{0};
  std::atomic<int> most_held{0};
  std::atomic<std::uint64_t> granted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kTriesPerThread; ++i) {
        if (!budget.try_begin_retry()) continue;
        granted.fetch_add(1, std::memory_order_relaxed);
        const int now = holding.fetch_add(1) + 1;
        int seen = most_held.load();
        while (now > seen && !most_held.compare_exchange_weak(seen, now)) {
        }
        holding.fetch_sub(1);
        budget.end_retry();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(most_held.load(), 8);
  const RetryBudget::Counters c = budget.counters();
  EXPECT_EQ(c.granted + c.denied, std::uint64_t{kThreads} * kTriesPerThread);
  EXPECT_EQ(c.granted, granted.load());
  EXPECT_EQ(c.retries_in_flight, 0u);
  EXPECT_EQ(c.requests_in_flight, 40u);
}

// Requests and retries beginning and ending on several threads leave every count at zero.
TEST(RetryBudgetConcurrency, RequestsAndRetriesFromManyThreadsBalanceOut) {
  RetryBudget budget(0.2, 3);
  constexpr int kThreads = 4;
  constexpr int kRequestsPerThread = 10'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&budget, t] {
      for (int i = 0; i < kRequestsPerThread; ++i) {
        RetryBudget::RequestScope request(budget);
        if ((i + t) % 3 == 0) {
          RetryBudget::RetryScope retry(budget);
          if (retry) {
            // Never more retries in flight than the limit at the most requests possible.
            EXPECT_LE(budget.counters().retries_in_flight, budget.retry_limit(kThreads));
          }
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  const RetryBudget::Counters c = budget.counters();
  EXPECT_EQ(c.requests_in_flight, 0u);
  EXPECT_EQ(c.retries_in_flight, 0u);
  std::uint64_t asked = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kRequestsPerThread; ++i) asked += (i + t) % 3 == 0 ? 1 : 0;
  }
  EXPECT_EQ(c.granted + c.denied, asked);
}

}  // namespace
}  // namespace bridgepool
