#include "pool/respawn_backoff.h"

#include <gtest/gtest.h>

namespace bridgepool {
namespace {

using std::chrono::milliseconds;

TEST(RespawnBackoff, ImmediateFirstThenDoublingUpToTheCap) {
  RespawnBackoff b{milliseconds(100), milliseconds(1000)};
  EXPECT_EQ(b.delay(0), milliseconds(0));
  EXPECT_EQ(b.delay(1), milliseconds(100));
  EXPECT_EQ(b.delay(2), milliseconds(200));
  EXPECT_EQ(b.delay(3), milliseconds(400));
  EXPECT_EQ(b.delay(4), milliseconds(800));
  EXPECT_EQ(b.delay(5), milliseconds(1000));
  EXPECT_EQ(b.delay(1000000), milliseconds(1000));  // no overflow
}

}  // namespace
}  // namespace bridgepool
