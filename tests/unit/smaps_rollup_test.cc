#include "telemetry/smaps_rollup.h"

#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

namespace bridgepool {
namespace {

// Captured from /proc/self/smaps_rollup on Linux 6.1 (Debian 12).
constexpr const char* kSample =
    "55c5678e9000-7ffc8ed09000 ---p 00000000 00:00 0                          [rollup]\n"
    "Rss:                1748 kB\n"
    "Pss:                 201 kB\n"
    "Pss_Dirty:           112 kB\n"
    "Pss_Anon:            112 kB\n"
    "Pss_File:             89 kB\n"
    "Pss_Shmem:             0 kB\n"
    "Shared_Clean:       1596 kB\n"
    "Shared_Dirty:          4 kB\n"
    "Private_Clean:        40 kB\n"
    "Private_Dirty:       108 kB\n"
    "Referenced:         1748 kB\n"
    "Anonymous:           112 kB\n"
    "Swap:                 16 kB\n"
    "SwapPss:               8 kB\n"
    "Locked:                0 kB\n";

TEST(SmapsRollup, ParsesTheKernelsFormat) {
  auto m = parse_smaps_rollup(kSample);
  ASSERT_TRUE(m) << m.error().to_string();
  EXPECT_EQ(m->rss_bytes, 1748u * 1024);
  EXPECT_EQ(m->pss_bytes, 201u * 1024);  // not Pss_Dirty, Pss_Anon, ...
  EXPECT_EQ(m->shared_bytes, (1596u + 4) * 1024);
  EXPECT_EQ(m->private_bytes, (40u + 108) * 1024);
  EXPECT_EQ(m->swap_pss_bytes, 8u * 1024);
}

TEST(SmapsRollup, OptionalFieldsDefaultToZero) {
  auto m = parse_smaps_rollup("header\nRss: 10 kB\nPss: 7 kB\n");
  ASSERT_TRUE(m) << m.error().to_string();
  EXPECT_EQ(m->rss_bytes, 10240u);
  EXPECT_EQ(m->pss_bytes, 7168u);
  EXPECT_EQ(m->shared_bytes, 0u);
  EXPECT_EQ(m->private_bytes, 0u);
  EXPECT_EQ(m->swap_pss_bytes, 0u);
}

TEST(SmapsRollup, MissingPssIsASystemError) {
  auto m = parse_smaps_rollup("header\nRss: 10 kB\n");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().category, ErrorCategory::kSystem);
  EXPECT_EQ(m.error().message, "smaps_rollup: no Pss line");
  auto empty = parse_smaps_rollup("");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().message, "smaps_rollup: no Rss line");
}

TEST(SmapsRollup, MalformedValueNamesTheLine) {
  for (const char* bad : {"Rss: 10 kB\nPss: lots kB\n", "Rss: 10 kB\nPss: 7 MB\n",
                          "Rss: 10 kB\nPss: 7\n", "Rss: 10 kB\nPss: -7 kB\n"}) {
    auto m = parse_smaps_rollup(bad);
    ASSERT_FALSE(m) << bad;
    EXPECT_EQ(m.error().category, ErrorCategory::kSystem);
    EXPECT_NE(m.error().message.find("in line 'Pss:"), std::string::npos) << m.error().message;
  }
}

TEST(SmapsRollup, ReadsThisProcessAndFailsForAMissingOne) {
  auto self = read_smaps_rollup(::getpid());
  ASSERT_TRUE(self) << self.error().to_string();
  EXPECT_GT(self->pss_bytes, 0u);
  EXPECT_LE(self->pss_bytes, self->rss_bytes);  // sharing only ever lowers PSS below RSS
  auto gone = read_smaps_rollup(0x3fffffff);    // above pid_max's ceiling: never a process
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().category, ErrorCategory::kSystem);
  EXPECT_NE(gone.error().message.find("cannot read /proc/1073741823/smaps_rollup"),
            std::string::npos)
      << gone.error().message;
}

}  // namespace
}  // namespace bridgepool
