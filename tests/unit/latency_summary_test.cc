#include "telemetry/latency_summary.h"

#include <gtest/gtest.h>

namespace bridgepool {
namespace {

TEST(LatencySummary, NearestRankPercentiles) {
  std::vector<double> v;
  for (int i = 100; i >= 1; --i) v.push_back(i);
  auto s = LatencySummary::of(v);
  EXPECT_EQ(s.count, 100u);
  EXPECT_EQ(s.p50, 50);
  EXPECT_EQ(s.p90, 90);
  EXPECT_EQ(s.p99, 99);
  EXPECT_EQ(s.max, 100);
  EXPECT_DOUBLE_EQ(s.mean, 50.5);
}

TEST(LatencySummary, EmptyAndSingle) {
  std::vector<double> none;
  EXPECT_EQ(LatencySummary::of(none).count, 0u);
  std::vector<double> one{7};
  auto s = LatencySummary::of(one);
  EXPECT_EQ(s.p50, 7);
  EXPECT_EQ(s.p99, 7);
}

}  // namespace
}  // namespace bridgepool
