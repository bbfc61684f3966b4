// CheckoutQueue with a manual clock: FIFO order, bound, deadlines.
#include "pool/checkout_queue.h"

#include <gtest/gtest.h>

namespace bridgepool {
namespace {

using namespace std::chrono_literals;

TEST(CheckoutQueue, ServesWaitersInArrivalOrder) {
  ManualClock clock;
  CheckoutQueue q(10);
  auto a = q.push(clock.now() + 5s), b = q.push(clock.now() + 5s), c = q.push(clock.now() + 5s);
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(q.pop_next(clock.now()), a);
  EXPECT_EQ(q.pop_next(clock.now()), b);
  EXPECT_EQ(q.pop_next(clock.now()), c);
  EXPECT_EQ(q.pop_next(clock.now()), std::nullopt);
}

TEST(CheckoutQueue, RefusesBeyondTheBound) {
  ManualClock clock;
  CheckoutQueue q(2);
  EXPECT_TRUE(q.push(clock.now() + 1s));
  EXPECT_TRUE(q.push(clock.now() + 1s));
  EXPECT_FALSE(q.push(clock.now() + 1s));
  EXPECT_EQ(q.size(), 2u);
  q.pop_next(clock.now());
  EXPECT_TRUE(q.push(clock.now() + 1s));
}

TEST(CheckoutQueue, ExpiredWaitersAreSkippedAndReported) {
  ManualClock clock;
  CheckoutQueue q(10);
  auto short1 = q.push(clock.now() + 100ms);
  auto long1 = q.push(clock.now() + 10s);
  auto short2 = q.push(clock.now() + 200ms);
  clock.advance(150ms);
  std::vector<CheckoutQueue::Ticket> expired;
  EXPECT_EQ(q.pop_next(clock.now(), &expired), long1);
  EXPECT_EQ(expired, std::vector<CheckoutQueue::Ticket>{*short1});
  clock.advance(100ms);
  expired.clear();
  EXPECT_EQ(q.pop_next(clock.now(), &expired), std::nullopt);
  EXPECT_EQ(expired, std::vector<CheckoutQueue::Ticket>{*short2});
}

TEST(CheckoutQueue, DeadlineExactlyNowCountsAsExpired) {
  ManualClock clock;
  CheckoutQueue q(10);
  auto t = q.push(clock.now() + 100ms);
  clock.advance(100ms);
  EXPECT_EQ(q.expire(clock.now()), std::vector<CheckoutQueue::Ticket>{*t});
  EXPECT_TRUE(q.empty());
}

TEST(CheckoutQueue, ExpireKeepsLiveWaitersInOrder) {
  ManualClock clock;
  CheckoutQueue q(10);
  auto a = q.push(clock.now() + 1s);
  auto b = q.push(clock.now() + 10ms);
  auto c = q.push(clock.now() + 2s);
  clock.advance(20ms);
  EXPECT_EQ(q.expire(clock.now()), std::vector<CheckoutQueue::Ticket>{*b});
  EXPECT_EQ(q.pop_next(clock.now()), a);
  EXPECT_EQ(q.pop_next(clock.now()), c);
}

TEST(CheckoutQueue, RemoveAndDrain) {
  ManualClock clock;
  CheckoutQueue q(10);
  auto a = q.push(clock.now() + 1s);
  auto b = q.push(clock.now() + 1s);
  EXPECT_TRUE(q.remove(*a));
  EXPECT_FALSE(q.remove(*a));
  auto c = q.push(clock.now() + 1s);
  EXPECT_EQ(q.drain(), (std::vector<CheckoutQueue::Ticket>{*b, *c}));
  EXPECT_TRUE(q.empty());
}

}  // namespace
}  // namespace bridgepool
