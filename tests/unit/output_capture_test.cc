#include "worker/output_capture.h"

#include <gtest/gtest.h>

namespace bridgepool {
namespace {

using namespace std::chrono_literals;
using Lines = std::vector<std::string>;

TEST(OutputCapture, SplitsLinesAcrossFeeds) {
  ManualClock clock;
  OutputCapture c(clock, {});
  EXPECT_EQ(c.feed("hel"), Lines{});
  EXPECT_EQ(c.feed("lo\nwor"), Lines{"hello"});
  EXPECT_EQ(c.feed("ld\n\nx"), (Lines{"world", ""}));
  EXPECT_EQ(c.finish(), Lines{"x"});
  EXPECT_EQ(c.finish(), Lines{});
}

TEST(OutputCapture, LongLinesAreCutNotBuffered) {
  ManualClock clock;
  OutputCapture c(clock, {.max_line_bytes = 8, .lines_per_second = 100, .burst = 100});
  EXPECT_EQ(c.feed(std::string(5, 'a')), Lines{});
  EXPECT_EQ(c.feed(std::string(1000, 'b')), Lines{});
  EXPECT_EQ(c.feed("c\nnext\n"), (Lines{"aaaaabbb [truncated]", "next"}));
}

TEST(OutputCapture, RateLimitSuppressesAndReportsTheCount) {
  ManualClock clock;
  OutputCapture c(clock, {.max_line_bytes = 100, .lines_per_second = 10, .burst = 3});
  EXPECT_EQ(c.feed("1\n2\n3\n4\n5\n"), (Lines{"1", "2", "3"}));
  EXPECT_EQ(c.suppressed_total(), 2u);
  clock.advance(100ms);  // one token back
  EXPECT_EQ(c.feed("6\n"), (Lines{"[2 lines suppressed]", "6"}));
  EXPECT_EQ(c.feed("7\n"), Lines{});
  EXPECT_EQ(c.finish(), Lines{"[1 lines suppressed]"});
}

}  // namespace
}  // namespace bridgepool
