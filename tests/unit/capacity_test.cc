// Capacity's spare arithmetic (pure: no pool, no clock): spares are counted apart from service,
// a promotion turns a counted start into a serving worker and counts the spare that replenishes
// it, spares are replaced after the shared start-failure backoff, nothing starts once closed.
#include "pool/capacity.h"

#include <ostream>

#include <gtest/gtest.h>

namespace bridgepool {
namespace {

using std::chrono::milliseconds;

Capacity make(std::size_t size, std::size_t max_overflow, std::size_t spares) {
  return Capacity(size, max_overflow, spares, RespawnBackoff{milliseconds(100), milliseconds(800)},
                  std::make_shared<const SpawnGeneration>());
}

// The four levels at once: in service, starting for service, spares ready, spares starting.
struct Levels {
  std::size_t in_service, starting, spares, spares_starting;
  bool operator==(const Levels&) const = default;
};
std::ostream& operator<<(std::ostream& os, const Levels& l) {
  return os << "{in_service " << l.in_service << ", starting " << l.starting << ", spares "
            << l.spares << ", spares_starting " << l.spares_starting << "}";
}
Levels levels(const Capacity& c) {
  const CapacitySnapshot s = c.snapshot();
  return Levels{s.in_service, s.starting, s.spares, s.spares_starting};
}

// A pool of `size` serving workers and `spares` ready spares.
void fill(Capacity& c, std::size_t size) {
  ASSERT_EQ(c.reserve_initial(size), size);
  const std::size_t spares = c.reserve_initial_spares();
  for (std::size_t i = 0; i < size; ++i) ASSERT_TRUE(c.on_started());
  for (std::size_t i = 0; i < spares; ++i) ASSERT_TRUE(c.on_started(StartRole::kSpare));
}

TEST(CapacitySpares, SparesAreCountedApartFromService) {
  Capacity c = make(2, 0, 3);
  ASSERT_EQ(c.reserve_initial(2), 2u);
  EXPECT_EQ(c.reserve_initial_spares(), 3u);
  EXPECT_EQ(levels(c), (Levels{0, 2, 0, 3}));
  ASSERT_TRUE(c.on_started(StartRole::kSpare));
  ASSERT_TRUE(c.on_started());
  EXPECT_EQ(levels(c), (Levels{1, 1, 1, 2}));
  EXPECT_EQ(c.snapshot().started, 2u);
}

TEST(CapacitySpares, APromotionFillsTheCountedSlotAndReplenishesTheSpare) {
  Capacity c = make(2, 0, 1);
  fill(c, 2);
  // A worker left: one replacement is counted (the caller then finds a spare for it).
  ASSERT_EQ(c.on_removed(), milliseconds(0));
  EXPECT_EQ(levels(c), (Levels{1, 1, 1, 0}));
  ASSERT_EQ(c.on_promoted(), milliseconds(0));  // the new spare starts at once
  EXPECT_EQ(levels(c), (Levels{2, 0, 0, 1}));
  EXPECT_EQ(c.snapshot().spare_promotions, 1u);
  // The new spare is ready; a spare that leaves is replaced the same way (not counted in
  // `replaced`, which is about service).
  ASSERT_TRUE(c.on_started(StartRole::kSpare));
  EXPECT_EQ(c.on_removed(StartRole::kSpare), milliseconds(0));
  EXPECT_EQ(levels(c), (Levels{2, 0, 0, 1}));
  EXPECT_EQ(c.snapshot().replaced, 1u);
}

TEST(CapacitySpares, AnOverflowWorkerLeavingOpensNoSlot) {
  Capacity c = make(1, 1, 1);
  fill(c, 1);
  ASSERT_TRUE(c.try_grow());
  ASSERT_TRUE(c.on_started());
  EXPECT_FALSE(c.on_removed().has_value());  // 2 in service > size 1: not replaced
  EXPECT_EQ(levels(c), (Levels{1, 0, 1, 0}));
}

TEST(CapacitySpares, FailedSpareStartsBackOffWithTheSharedStreak) {
  Capacity c = make(1, 0, 1);
  ASSERT_EQ(c.reserve_initial(1), 1u);
  ASSERT_EQ(c.reserve_initial_spares(), 1u);
  const Error e(ErrorCategory::kInitialization, "ImportError");
  EXPECT_EQ(c.on_start_failed(e, 1, StartRole::kSpare), milliseconds(100));
  EXPECT_EQ(c.on_start_failed(e, 1, StartRole::kSpare), milliseconds(200));
  // A worker start failing too continues the same streak.
  EXPECT_EQ(c.on_start_failed(e, 1), milliseconds(400));
  ASSERT_TRUE(c.on_started());  // a success resets it
  EXPECT_EQ(c.on_start_failed(e, 1, StartRole::kSpare), milliseconds(100));
  EXPECT_EQ(c.snapshot().init_failures, 4u);
  EXPECT_EQ(levels(c), (Levels{1, 0, 0, 1}));
}

TEST(CapacitySpares, NothingIsReplenishedOnceClosed) {
  Capacity c = make(1, 0, 2);
  fill(c, 1);
  ASSERT_EQ(c.on_removed(), milliseconds(0));
  c.close();  // between the counted start and the promotion
  EXPECT_FALSE(c.on_promoted().has_value());
  EXPECT_FALSE(c.on_removed(StartRole::kSpare).has_value());
  EXPECT_EQ(c.reserve_initial_spares(), 0u);
  EXPECT_EQ(levels(c), (Levels{1, 0, 0, 0}));
}

TEST(CapacitySpares, WithoutSparesNothingChanges) {
  Capacity c = make(2, 0, 0);
  fill(c, 2);
  EXPECT_EQ(c.reserve_initial_spares(), 0u);
  ASSERT_EQ(c.on_removed(), milliseconds(0));
  EXPECT_EQ(levels(c), (Levels{1, 1, 0, 0}));
}

}  // namespace
}  // namespace bridgepool
