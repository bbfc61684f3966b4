// SlidingWindow: bucket boundaries, expiry, time jumps and bounded memory (sliding_window.h).
#include "telemetry/sliding_window.h"

#include <gtest/gtest.h>

#include "telemetry/request_counts.h"

namespace bridgepool::internal {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TimePoint at(milliseconds t) { return TimePoint(t); }

TEST(SlidingWindow, TheHeaderExampleSixtySecondsAt125Point4) {
  SlidingWindow<std::uint64_t> w(seconds(1), seconds(60));
  w.add(at(milliseconds(65'900)), 1);   // bucket 65: expired at 125.4 s
  w.add(at(milliseconds(66'000)), 10);  // bucket 66: the oldest one still counted
  w.add(at(milliseconds(125'400)), 100);
  EXPECT_EQ(w.sum(at(milliseconds(125'400)), seconds(60)), 110u);
  EXPECT_EQ(w.sum(at(milliseconds(125'999)), seconds(60)), 110u);
  EXPECT_EQ(w.sum(at(milliseconds(126'000)), seconds(60)), 100u);  // bucket 66 expires
}

TEST(SlidingWindow, ShorterWindowsReadTheSameRing) {
  SlidingWindow<std::uint64_t> w(seconds(1), seconds(900));
  for (int s = 0; s < 900; ++s) w.add(at(seconds(1000 + s)), 1);  // one per second
  const TimePoint now = at(seconds(1899));
  EXPECT_EQ(w.sum(now, seconds(60)), 60u);
  EXPECT_EQ(w.sum(now, seconds(300)), 300u);
  EXPECT_EQ(w.sum(now, seconds(900)), 900u);
  EXPECT_EQ(w.sum(now, seconds(5000)), 900u);     // at most the span
  EXPECT_EQ(w.sum(now, milliseconds(1500)), 2u);  // rounded up to two buckets
}

TEST(SlidingWindow, LongIdleForgetsEverythingWithoutSweeping) {
  SlidingWindow<std::uint64_t> w(seconds(1), seconds(60));
  for (int s = 0; s < 60; ++s) w.add(at(seconds(s)), 5);
  EXPECT_EQ(w.sum(at(seconds(59)), seconds(60)), 300u);
  // Ten hours later: every slot holds a stale bucket, none is summed.
  EXPECT_EQ(w.sum(at(seconds(36'000)), seconds(60)), 0u);
  w.add(at(seconds(36'000)), 7);  // reuses slot 0 (36000 % 60), reset before adding
  EXPECT_EQ(w.sum(at(seconds(36'000)), seconds(60)), 7u);
}

TEST(SlidingWindow, AClockThatDoesNotMoveFillsOneBucket) {
  SlidingWindow<std::uint64_t> w(seconds(1), seconds(60));
  for (int i = 0; i < 1000; ++i) w.add(at(seconds(42)), 1);
  EXPECT_EQ(w.sum(at(seconds(42)), seconds(1)), 1000u);
  EXPECT_EQ(w.sum(at(seconds(43)), seconds(1)), 0u);
  EXPECT_EQ(w.sum(at(seconds(101)), seconds(60)), 1000u);
  EXPECT_EQ(w.sum(at(seconds(102)), seconds(60)), 0u);
}

TEST(SlidingWindow, AnAdditionOlderThanTheRingIsDropped) {
  SlidingWindow<std::uint64_t> w(seconds(1), seconds(10));
  w.add(at(seconds(100)), 1);
  w.add(at(seconds(90)), 50);  // same slot as 100, ten buckets older: gone
  w.add(at(seconds(95)), 2);   // inside the ring: counted
  EXPECT_EQ(w.sum(at(seconds(100)), seconds(10)), 3u);
}

TEST(SlidingWindow, TimesBeforeTheEpochUseFloorDivision) {
  EXPECT_EQ(bucket_index(at(milliseconds(-1)), seconds(1)), -1);
  EXPECT_EQ(bucket_index(at(milliseconds(-1000)), seconds(1)), -1);
  EXPECT_EQ(bucket_index(at(milliseconds(-1001)), seconds(1)), -2);
  EXPECT_EQ(bucket_index(at(milliseconds(999)), seconds(1)), 0);
  SlidingWindow<std::uint64_t> w(seconds(1), seconds(3));
  w.add(at(milliseconds(-1500)), 4);
  w.add(at(milliseconds(500)), 1);
  EXPECT_EQ(w.sum(at(milliseconds(500)), seconds(3)), 5u);  // buckets -2..0
  EXPECT_EQ(w.sum(at(milliseconds(1000)), seconds(3)), 1u);
}

TEST(SlidingWindow, MemoryIsFixedByTheSpanWhateverIsAdded) {
  SlidingWindow<RequestCounts> w(seconds(1), seconds(900));
  EXPECT_EQ(w.bucket_count(), 900u);
  for (int i = 0; i < 100'000; ++i) {
    w.add(at(milliseconds(i * 37)), RequestCounts::one(i % 3 ? "ok" : "python", "major"));
  }
  EXPECT_EQ(w.bucket_count(), 900u);
  SlidingWindow<std::uint64_t> odd(seconds(1), milliseconds(2500));
  EXPECT_EQ(odd.bucket_count(), 3u);  // span rounded up to whole buckets
}

TEST(RequestCounts, ErrorRateIsErrorsOverAllRequests) {
  RequestCounts c;
  for (int i = 0; i < 3; ++i) c += RequestCounts::one("ok", "");
  c += RequestCounts::one("python", "major");
  EXPECT_EQ(c.requests, 4u);
  EXPECT_EQ(c.errors, 1u);
  EXPECT_DOUBLE_EQ(c.error_rate(), 0.25);  // 1 / 4, not 1 / 1
  EXPECT_DOUBLE_EQ(RequestCounts{}.error_rate(), 0.0);
}

TEST(RequestCounts, KindsAreBrokenDownAndUnknownNamesCountOnlyAsErrors) {
  RequestCounts c = RequestCounts::one("timeout", "critical");
  c += RequestCounts::one("timeout", "critical");
  c += RequestCounts::one("no_such_category", "major");
  c += RequestCounts::one("connection", "");
  EXPECT_EQ(c.requests, 4u);
  EXPECT_EQ(c.errors, 4u);
  EXPECT_EQ(c.by_kind[static_cast<std::size_t>(ErrorCategory::kTimeout)]
                     [static_cast<std::size_t>(ErrorSeverity::kCritical)],
            2u);
  std::uint64_t broken_down = 0;
  for (const auto& row : c.by_kind)
    for (auto n : row) broken_down += n;
  EXPECT_EQ(broken_down, 2u);
}

}  // namespace
}  // namespace bridgepool::internal
