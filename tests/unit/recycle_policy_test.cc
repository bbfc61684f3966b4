// RecyclePolicy: jittered per-worker limits drawn from a seeded engine (bounds, spread, mean),
// exact limits without jitter, the request and RSS limits, and the size - 1 capacity rule.
#include "pool/recycle_policy.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <set>
#include <vector>

#include <gtest/gtest.h>

namespace bridgepool {
namespace {

UniformRandom seeded(std::uint64_t seed) {
  auto engine = std::make_shared<std::mt19937_64>(seed);
  return [engine] { return std::uniform_real_distribution<double>(0.0, 1.0)(*engine); };
}

UniformRandom constant(double value) {
  return [value] { return value; };
}

RecycleConfig requests(std::uint64_t max, double jitter) {
  RecycleConfig c;
  c.max_requests = max;
  c.max_requests_jitter = jitter;
  return c;
}

TEST(RecyclePolicy, JitteredLimitsStayWithinBoundsAndCenterOnMax) {
  const RecyclePolicy policy(requests(1000, 0.1));
  UniformRandom random = seeded(42);
  std::uint64_t lo = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t hi = 0;
  double sum = 0;
  std::set<std::uint64_t> distinct;
  constexpr int kDraws = 10'000;
  for (int i = 0; i < kDraws; ++i) {
    const std::uint64_t limit = policy.limit_for_new_worker(random);
    lo = std::min(lo, limit);
    hi = std::max(hi, limit);
    sum += static_cast<double>(limit);
    distinct.insert(limit);
  }
  EXPECT_GE(lo, 900u);
  EXPECT_LE(hi, 1100u);
  // Uniform over 201 values: 10 000 draws reach within a few of both ends.
  EXPECT_LE(lo, 905u);
  EXPECT_GE(hi, 1095u);
  EXPECT_GT(distinct.size(), 190u);
  // The mean's standard error is 200/sqrt(12)/sqrt(10 000) ~ 0.58; allow ~5 of them.
  EXPECT_NEAR(sum / kDraws, 1000.0, 3.0);
}

TEST(RecyclePolicy, EndpointsOfTheRandomSourceMapToTheBounds) {
  const RecyclePolicy policy(requests(1000, 0.1));
  EXPECT_EQ(policy.limit_for_new_worker(constant(0.0)), 900u);
  EXPECT_EQ(policy.limit_for_new_worker(constant(0.5)), 1000u);
  EXPECT_EQ(policy.limit_for_new_worker(constant(0.999999)), 1100u);
  // A misbehaving source is clamped into [0, 1].
  EXPECT_EQ(policy.limit_for_new_worker(constant(-3.0)), 900u);
  EXPECT_EQ(policy.limit_for_new_worker(constant(7.0)), 1100u);
}

TEST(RecyclePolicy, ZeroJitterGivesExactLimitsWithoutDrawing) {
  int calls = 0;
  UniformRandom counting = [&calls] {
    ++calls;
    return 0.0;
  };
  EXPECT_EQ(RecyclePolicy(requests(1000, 0.0)).limit_for_new_worker(counting), 1000u);
  EXPECT_EQ(RecyclePolicy(requests(1, 0.0)).limit_for_new_worker(counting), 1u);
  const std::uint64_t huge = (std::uint64_t{1} << 60) + 1;  // not representable as a double
  EXPECT_EQ(RecyclePolicy(requests(huge, 0.0)).limit_for_new_worker(counting), huge);
  EXPECT_EQ(calls, 0);
}

TEST(RecyclePolicy, OffWhenMaxRequestsIsZero) {
  int calls = 0;
  UniformRandom counting = [&calls] {
    ++calls;
    return 0.5;
  };
  const RecyclePolicy policy(requests(0, 0.1));
  EXPECT_EQ(policy.limit_for_new_worker(counting), 0u);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(policy.check(1'000'000'000, 0, 0), std::nullopt);
}

TEST(RecyclePolicy, LimitIsAtLeastOneAndSaturates) {
  // Jitter 1.0 with u = 0 would give 0, which means "off": it is raised to 1.
  EXPECT_EQ(RecyclePolicy(requests(10, 1.0)).limit_for_new_worker(constant(0.0)), 1u);
  // Jitter above 1 is clamped to 1: [0, 2*max].
  EXPECT_EQ(RecyclePolicy(requests(10, 5.0)).limit_for_new_worker(constant(0.75)), 15u);
  // max*(1+j) beyond 2^64 saturates instead of overflowing.
  const std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  EXPECT_EQ(RecyclePolicy(requests(max, 0.5)).limit_for_new_worker(constant(0.99)), max);
}

TEST(RecyclePolicy, RequestLimitIsTheNumberAWorkerMayServe) {
  const RecyclePolicy policy(requests(1000, 0.1));
  EXPECT_EQ(policy.check(0, 0, 950), std::nullopt);
  EXPECT_EQ(policy.check(949, 0, 950), std::nullopt);
  EXPECT_EQ(policy.check(950, 0, 950), RecycleReason::kMaxRequests);
  EXPECT_EQ(policy.check(951, 0, 950), RecycleReason::kMaxRequests);
}

TEST(RecyclePolicy, RssLimitTriggersAboveTheMaximum) {
  RecycleConfig c;
  c.max_rss_mb = 512;
  const RecyclePolicy policy(c);
  EXPECT_EQ(policy.check(10, 511.9, 0), std::nullopt);
  EXPECT_EQ(policy.check(10, 512.0, 0), std::nullopt);  // at the maximum is still allowed
  EXPECT_EQ(policy.check(10, 512.1, 0), RecycleReason::kMaxRss);
  // Off when 0.
  EXPECT_EQ(RecyclePolicy(RecycleConfig{}).check(10, 1e9, 0), std::nullopt);
}

TEST(RecyclePolicy, RssIsReportedBeforeRequests) {
  RecycleConfig c = requests(100, 0);
  c.max_rss_mb = 256;
  const RecyclePolicy policy(c);
  EXPECT_EQ(policy.check(100, 300, 100), RecycleReason::kMaxRss);
  EXPECT_EQ(policy.check(100, 200, 100), RecycleReason::kMaxRequests);
  EXPECT_EQ(policy.check(99, 200, 100), std::nullopt);
}

TEST(RecyclePolicy, ReasonNames) {
  EXPECT_EQ(recycle_reason_name(RecycleReason::kMaxRequests), "max_requests");
  EXPECT_EQ(recycle_reason_name(RecycleReason::kMaxRss), "max_rss");
}

struct CapacityCase {
  std::size_t ready;
  std::size_t size;
  std::size_t in_progress;
  bool allowed;
};

TEST(RecyclePolicy, CapacityNeverDipsBelowSizeMinusOne) {
  // clang-format off
  const std::vector<CapacityCase> cases = {
    // ready size in_progress allowed   why
    {  4,   4,   0,          true  },  // 3 others remain = size - 1
    {  5,   4,   0,          true  },  // a replacement overlapped: 4 others remain
    {  3,   4,   0,          false },  // one degraded or starting: 2 others < 3
    {  0,   4,   0,          false },  // nothing to recycle
    {  4,   4,   1,          false },  // one recycle at a time
    {  3,   4,   1,          false },  // the in-progress one is already the dip
    {  5,   4,   1,          false },  // still one at a time, even with spare capacity
    {  1,   1,   0,          true  },  // size 1: size - 1 = 0; callers queue, none fails
    {  0,   1,   0,          false },
    {  1,   1,   1,          false },
    {  2,   2,   0,          true  },
    {  1,   2,   0,          false },  // 0 others < 1
    { 16,  16,   0,          true  },
    { 15,  16,   0,          false },
    {  0,   0,   0,          false },  // empty pool
  };
  // clang-format on
  for (const CapacityCase& c : cases) {
    EXPECT_EQ(RecyclePolicy::may_recycle_now(c.ready, c.size, c.in_progress), c.allowed)
        << "ready " << c.ready << " size " << c.size << " in progress " << c.in_progress;
  }
}

}  // namespace
}  // namespace bridgepool
