// SeriesSampler: per-second requests, errors and percentiles, driven by a ManualClock.
#include "server/series_sampler.h"

#include <gtest/gtest.h>

namespace bridgepool::server {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class SeriesSamplerTest : public ::testing::Test {
 protected:
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
  SeriesSampler sampler{clock};
};

TEST_F(SeriesSamplerTest, OpenSecondIsNotShown) {
  sampler.record(1000, true);
  auto s = sampler.snapshot();
  EXPECT_EQ(s["interval_s"], 1);
  EXPECT_TRUE(s["requests_per_s"].empty());
}

TEST_F(SeriesSamplerTest, CountsAndPercentilesPerSecond) {
  // ManualClock's wall time starts on a whole second; 100 calls of 1..100 ms in the first.
  for (int i = 1; i <= 100; ++i) sampler.record(i * 1000.0, i % 10 != 0);
  clock->advance(seconds(1));
  auto s = sampler.snapshot();
  ASSERT_EQ(s["requests_per_s"].size(), 1u);
  EXPECT_EQ(s["requests_per_s"][0], 100);
  EXPECT_EQ(s["errors_per_s"][0], 10);
  EXPECT_DOUBLE_EQ(s["p50_ms"][0].get<double>(), 50.0);
  EXPECT_DOUBLE_EQ(s["p99_ms"][0].get<double>(), 99.0);
  auto wall = std::chrono::duration_cast<milliseconds>(clock->wall_now().time_since_epoch());
  EXPECT_EQ(s["end_ms"].get<std::int64_t>(), wall.count());
}

TEST_F(SeriesSamplerTest, QuietSecondsAreZeroWithNullPercentiles) {
  sampler.record(2000, true);
  clock->advance(seconds(3));
  sampler.record(4000, false);
  clock->advance(seconds(1));
  auto s = sampler.snapshot();
  EXPECT_EQ(s["requests_per_s"], nlohmann::json({1, 0, 0, 1}));
  EXPECT_EQ(s["errors_per_s"], nlohmann::json({0, 0, 0, 1}));
  EXPECT_TRUE(s["p50_ms"][1].is_null());
  EXPECT_DOUBLE_EQ(s["p99_ms"][3].get<double>(), 4.0);
}

TEST_F(SeriesSamplerTest, KeepsTheLastSixHundredSeconds) {
  for (int i = 0; i < 700; ++i) {
    sampler.record(1000, true);
    clock->advance(seconds(1));
  }
  auto s = sampler.snapshot();
  EXPECT_EQ(s["requests_per_s"].size(), SeriesSampler::kPoints);
}

TEST_F(SeriesSamplerTest, LongSilenceLeavesAFullRingOfZeros) {
  sampler.record(1000, true);
  clock->advance(seconds(5000));
  auto s = sampler.snapshot();
  ASSERT_EQ(s["requests_per_s"].size(), SeriesSampler::kPoints);
  EXPECT_EQ(s["requests_per_s"].back(), 0);
}

TEST_F(SeriesSamplerTest, SamplesBeyondTheCapStillCount) {
  for (std::size_t i = 0; i < SeriesSampler::kMaxSamplesPerSecond + 10; ++i) {
    sampler.record(1000, true);
  }
  clock->advance(seconds(1));
  auto s = sampler.snapshot();
  EXPECT_EQ(s["requests_per_s"][0], SeriesSampler::kMaxSamplesPerSecond + 10);
  EXPECT_DOUBLE_EQ(s["p50_ms"][0].get<double>(), 1.0);
}

}  // namespace
}  // namespace bridgepool::server
