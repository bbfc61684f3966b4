// PoisonQuarantine: an always-crashing request is refused after its 3rd kill (exact message), the
// cooldown, the single probe, the doubled and capped cooldowns, release on a surviving probe, the
// survivor credit, 1,000,000 attempts of a 1.5%-crash command (seeded) without a quarantine,
// bounded memory with LRU eviction, and concurrent use (clean under -fsanitize=thread).
#include "resilience/poison_quarantine.h"

#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace bridgepool {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

Json args(int x) { return Json{{"x", x}}; }

class PoisonQuarantineTest : public ::testing::Test {
 protected:
  ManualClock clock_;
  PoisonQuarantine q_{QuarantineConfig{}, clock_};
  const std::uint64_t fp_ = PoisonQuarantine::fingerprint("crash", Json{{"code", 1}});

  // One attempt: admit, then the outcome. Returns whether it was admitted.
  bool attempt(std::uint64_t fp, bool kills, const std::string& worker = "w1") {
    if (!q_.admit(fp, "crash")) return false;
    if (kills) {
      q_.record_kill(fp, worker);
    } else {
      q_.record_survived(fp);
    }
    return true;
  }
  // An always-crashing request's three kills (kill_threshold 3): quarantined.
  void trip(std::uint64_t fp) {
    for (int w = 1; w <= 3; ++w) attempt(fp, true, "w" + std::to_string(w));
  }
};

TEST(PoisonQuarantineFingerprint, BinaryValuesAreHashedByTheirBytes) {
  auto with = [](std::vector<std::uint8_t> bytes, int n) {
    return Json{{"data", Json::binary(std::move(bytes))}, {"n", n}};
  };
  EXPECT_EQ(PoisonQuarantine::fingerprint("echo", with({1, 2, 3}, 1)),
            PoisonQuarantine::fingerprint("echo", with({1, 2, 3}, 1)));
  EXPECT_NE(PoisonQuarantine::fingerprint("echo", with({1, 2, 3}, 1)),
            PoisonQuarantine::fingerprint("echo", with({1, 2, 4}, 1)));
  EXPECT_NE(PoisonQuarantine::fingerprint("echo", with({1, 2, 3}, 1)),
            PoisonQuarantine::fingerprint("echo", with({1, 2, 3}, 2)));
  EXPECT_NE(PoisonQuarantine::fingerprint("echo", with({}, 1)),
            PoisonQuarantine::fingerprint("echo", Json{{"data", Json::array()}, {"n", 1}}));
}

TEST(PoisonQuarantineFingerprint, IgnoresKeyOrderButNotValuesOrCommand) {
  const Json a = Json::parse(R"({"a": 1, "b": [1, 2], "c": {"y": 2, "x": 1}})");
  const Json b = Json::parse(R"({"c": {"x": 1, "y": 2}, "b": [1, 2], "a": 1})");
  EXPECT_EQ(PoisonQuarantine::fingerprint("echo", a), PoisonQuarantine::fingerprint("echo", b));
  EXPECT_NE(PoisonQuarantine::fingerprint("echo", a), PoisonQuarantine::fingerprint("echo2", a));
  EXPECT_NE(PoisonQuarantine::fingerprint("echo", args(1)),
            PoisonQuarantine::fingerprint("echo", args(2)));
  EXPECT_NE(PoisonQuarantine::fingerprint("echo", Json{{"b", 1}}),
            PoisonQuarantine::fingerprint("echo", Json{{"b", "1"}}));
  // The command/arguments boundary is part of the hash.
  EXPECT_NE(PoisonQuarantine::fingerprint("ab", Json("c")),
            PoisonQuarantine::fingerprint("a", Json("bc")));
  // Invalid UTF-8 does not throw.
  EXPECT_NE(PoisonQuarantine::fingerprint("echo", Json{{"s", std::string("\xff\xfe")}}), 0u);
}

TEST_F(PoisonQuarantineTest, AlwaysCrashingRequestIsRefusedAfterItsThirdKill) {
  EXPECT_TRUE(attempt(fp_, true, "w1"));
  EXPECT_TRUE(attempt(fp_, true, "w2"));
  EXPECT_EQ(q_.counters().quarantined, 0u);
  EXPECT_TRUE(attempt(fp_, true, "w3"));
  EXPECT_EQ(q_.counters().quarantined, 1u);

  auto refused = q_.admit(fp_, "crash");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().category, ErrorCategory::kInvalidRequest);
  EXPECT_EQ(refused.error().message,
            "request quarantined: command 'crash' with these arguments killed 3 of its last 3 "
            "attempts (workers w1, w2, w3); refused for another 30 s");
  EXPECT_EQ(refused.error().context.operation, "quarantine");
  EXPECT_EQ(refused.error().context.command, "crash");
  EXPECT_NE(refused.error().context.cause.find("cooldown 30 s"), std::string::npos);

  clock_.advance(seconds(20) + milliseconds(500));
  refused = q_.admit(fp_, "crash");
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("refused for another 10 s"), std::string::npos);
  EXPECT_EQ(q_.counters().refused, 2u);
  EXPECT_EQ(q_.counters().tracked, 1u);
}

TEST_F(PoisonQuarantineTest, ThreeKillsOfTheLastFiveTripIt) {
  EXPECT_TRUE(attempt(fp_, true));
  EXPECT_TRUE(attempt(fp_, false));
  EXPECT_TRUE(attempt(fp_, true, "w2"));
  EXPECT_TRUE(attempt(fp_, false));
  EXPECT_EQ(q_.counters().quarantined, 0u);
  EXPECT_TRUE(attempt(fp_, true, "w3"));
  EXPECT_EQ(q_.counters().quarantined, 1u);
  auto refused = q_.admit(fp_, "crash");
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("killed 3 of its last 5 attempts (workers w1, w2, w3)"),
            std::string::npos);
}

TEST_F(PoisonQuarantineTest, KillsFartherApartThanMemoryDoNotAccumulate) {
  EXPECT_TRUE(attempt(fp_, true));
  EXPECT_TRUE(attempt(fp_, true));
  clock_.advance(seconds(61));
  EXPECT_TRUE(attempt(fp_, true));
  EXPECT_TRUE(q_.admit(fp_, "crash"));
  EXPECT_EQ(q_.counters().quarantined, 0u);
}

TEST_F(PoisonQuarantineTest, AfterTheCooldownExactlyOneProbeIsAdmitted) {
  trip(fp_);
  clock_.advance(seconds(30));
  EXPECT_TRUE(q_.admit(fp_, "crash"));  // the probe
  auto second = q_.admit(fp_, "crash");
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().category, ErrorCategory::kInvalidRequest);
  EXPECT_NE(second.error().message.find("a probe attempt is in flight: refused until it survives"),
            std::string::npos);
  // A probe whose outcome never comes is presumed lost after `memory`: another one goes.
  clock_.advance(seconds(60));
  EXPECT_TRUE(q_.admit(fp_, "crash"));
}

TEST_F(PoisonQuarantineTest, ProbeThatKillsDoublesTheCooldownUpToTheCap) {
  trip(fp_);
  const std::vector<int> expected_s = {60, 120, 240, 480, 600, 600};
  for (std::size_t i = 0; i < expected_s.size(); ++i) {
    const int previous = i == 0 ? 30 : expected_s[i - 1];
    clock_.advance(seconds(previous) - milliseconds(1));
    EXPECT_FALSE(q_.admit(fp_, "crash")) << "cooldown " << i;
    clock_.advance(milliseconds(1));
    ASSERT_TRUE(q_.admit(fp_, "crash")) << "probe " << i;
    q_.record_kill(fp_, "w" + std::to_string(i + 4));
    auto refused = q_.admit(fp_, "crash");
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message.find(fmt::format("refused for another {} s", expected_s[i])),
              std::string::npos)
        << refused.error().message;
    EXPECT_NE(refused.error().message.find(fmt::format(
                  "its probe after each of the last {} cooldowns killed a worker too", i + 1)),
              std::string::npos);
  }
  EXPECT_EQ(q_.counters().quarantined, 1u + expected_s.size());
}

TEST_F(PoisonQuarantineTest, SurvivingProbeReleasesAndClearsTheHistory) {
  trip(fp_);
  clock_.advance(seconds(30));
  ASSERT_TRUE(q_.admit(fp_, "crash"));
  q_.record_survived(fp_);
  EXPECT_EQ(q_.counters().released, 1u);
  EXPECT_EQ(q_.counters().tracked, 0u);
  EXPECT_TRUE(q_.admit(fp_, "crash"));
  // Cleared: the next quarantine starts again from the base cooldown (30 s, not 60 s). Having
  // just survived, the request now needs half of a full window (8 kills of its last 16).
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(attempt(fp_, true)) << i;
  EXPECT_EQ(q_.counters().quarantined, 1u);
  ASSERT_TRUE(attempt(fp_, true));
  auto refused = q_.admit(fp_, "crash");
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("killed 8 of its last 8 attempts"), std::string::npos);
  EXPECT_NE(refused.error().message.find("refused for another 30 s"), std::string::npos);
}

TEST_F(PoisonQuarantineTest, RequestThatUsedToSurviveNeedsEightKillsOfSixteen) {
  ASSERT_TRUE(attempt(fp_, false));  // survived once: credit 15
  for (int i = 1; i <= 7; ++i) {
    ASSERT_TRUE(attempt(fp_, true)) << "kill " << i;
  }
  EXPECT_EQ(q_.counters().quarantined, 0u);
  ASSERT_TRUE(attempt(fp_, true));
  EXPECT_EQ(q_.counters().quarantined, 1u);
}

TEST_F(PoisonQuarantineTest, SurvivorCreditLapsesAfterMemory) {
  ASSERT_TRUE(attempt(fp_, false));
  clock_.advance(seconds(62));  // the survival is older than memory: no credit
  ASSERT_TRUE(attempt(fp_, true));
  ASSERT_TRUE(attempt(fp_, true));
  ASSERT_TRUE(attempt(fp_, true));
  EXPECT_EQ(q_.counters().quarantined, 1u);
}

TEST_F(PoisonQuarantineTest, SurvivalWithNoRecentKillDropsTheEntry) {
  attempt(fp_, true);
  EXPECT_EQ(q_.counters().tracked, 1u);
  attempt(fp_, false);
  EXPECT_EQ(q_.counters().tracked, 1u);  // the kill is still within memory
  clock_.advance(seconds(61));
  attempt(fp_, false);
  EXPECT_EQ(q_.counters().tracked, 0u);
}

TEST_F(PoisonQuarantineTest, LateOutcomesDuringTheCooldownChangeNothing) {
  trip(fp_);
  q_.record_kill(fp_, "w9");  // admitted before the quarantine, finished after
  q_.record_survived(fp_);
  auto refused = q_.admit(fp_, "crash");
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("refused for another 30 s"), std::string::npos);
  EXPECT_EQ(q_.counters().quarantined, 1u);
  EXPECT_EQ(q_.counters().released, 0u);
}

TEST_F(PoisonQuarantineTest, OtherRequestsAreUnaffected) {
  trip(fp_);
  const auto other = PoisonQuarantine::fingerprint("crash", Json{{"code", 2}});
  EXPECT_TRUE(q_.admit(other, "crash"));
  EXPECT_FALSE(q_.admit(fp_, "crash"));
}

TEST(PoisonQuarantine, DisabledAdmitsEverythingAndTracksNothing) {
  ManualClock clock;
  QuarantineConfig config;
  config.enabled = false;
  PoisonQuarantine q(config, clock);
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(q.admit(7, "crash"));
    q.record_kill(7, "w1");
  }
  EXPECT_EQ(q.counters().quarantined, 0u);
  EXPECT_EQ(q.counters().tracked, 0u);
}

// 1000 req/s of one command with identical arguments, 1.5% of which kill their worker: ~15,000
// kills in 1,000,000 attempts, and not one quarantine (the header bounds the rate at ~1.5e-11 per
// attempt). Run twice: reporting every attempt, and reporting like a caller that fingerprints
// only when wants_fingerprint() says so (or after a kill).
class OccasionalCrashes : public ::testing::TestWithParam<bool> {};

TEST_P(OccasionalCrashes, OfAUsuallySucceedingCommandNeverTripIt) {
  const bool report_all = GetParam();
  ManualClock clock;
  PoisonQuarantine q(QuarantineConfig{}, clock);
  const auto fp = PoisonQuarantine::fingerprint("flaky", Json{{"n", 1}});
  std::mt19937_64 rng(20260101);
  std::bernoulli_distribution crash(0.015);
  std::uint64_t kills = 0, reported = 0;
  for (int i = 0; i < 1'000'000; ++i) {
    const bool fingerprinted = report_all || q.wants_fingerprint();
    if (fingerprinted) {
      ASSERT_TRUE(q.admit(fp, "flaky")) << "attempt " << i;
    }
    if (crash(rng)) {
      q.record_kill(fp, "w" + std::to_string(i % 8));
      ++kills;
    } else if (fingerprinted) {
      q.record_survived(fp);
      ++reported;
    }
    clock.advance(milliseconds(1));
  }
  EXPECT_GT(kills, 14'000u);
  EXPECT_LT(kills, 16'000u);
  EXPECT_EQ(q.counters().quarantined, 0u);
  EXPECT_EQ(q.counters().refused, 0u);
  if (!report_all) {
    EXPECT_LT(reported, 1'000'000u - kills);  // some were skipped before the first kill
  }
}

INSTANTIATE_TEST_SUITE_P(PoisonQuarantine, OccasionalCrashes, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "ReportAll" : "Sampled"; });

TEST(PoisonQuarantine, WantsFingerprintSamplesUntilSomethingIsTracked) {
  ManualClock clock;
  PoisonQuarantine q(QuarantineConfig{}, clock);
  EXPECT_FALSE(q.tracking_any());
  int wanted = 0;
  for (int i = 0; i < 1600; ++i) wanted += q.wants_fingerprint() ? 1 : 0;
  EXPECT_EQ(wanted, 100);
  q.record_kill(42, "w1");
  EXPECT_TRUE(q.tracking_any());
  for (int i = 0; i < 10; ++i) EXPECT_TRUE(q.wants_fingerprint());
  clock.advance(std::chrono::seconds(61));
  q.record_survived(42);  // no kill within memory: dropped
  EXPECT_FALSE(q.tracking_any());

  QuarantineConfig off;
  off.enabled = false;
  PoisonQuarantine disabled(off, clock);
  for (int i = 0; i < 32; ++i) EXPECT_FALSE(disabled.wants_fingerprint());
}

TEST(PoisonQuarantine, TrackedEntriesAreBoundedAndTheLeastRecentlySeenGoesFirst) {
  ManualClock clock;
  QuarantineConfig config;
  config.max_fingerprints = 3;  // one shard: exact LRU
  PoisonQuarantine q(config, clock);
  const std::uint64_t a = 101, b = 202, c = 303, d = 404;
  for (auto fp : {a, b, c}) {
    q.record_kill(fp, "w1");
    clock.advance(milliseconds(10));
  }
  ASSERT_TRUE(q.admit(a, "x"));  // seen: a is now more recent than b and c
  clock.advance(milliseconds(10));
  q.record_kill(d, "w1");  // full: evicts b, the least recently seen
  EXPECT_EQ(q.counters().tracked, 3u);
  clock.advance(milliseconds(10));
  q.record_kill(b, "w2");  // b starts over (1 of 1: no quarantine) and evicts c
  EXPECT_EQ(q.counters().quarantined, 0u);
  q.record_kill(a, "w2");  // a remembered its first kill: 2 of 2, one short of the threshold
  EXPECT_EQ(q.counters().quarantined, 0u);
  q.record_kill(a, "w3");
  EXPECT_EQ(q.counters().quarantined, 1u);
  EXPECT_FALSE(q.admit(a, "x"));
  q.record_kill(c, "w2");  // c starts over too
  EXPECT_EQ(q.counters().quarantined, 1u);
  EXPECT_EQ(q.counters().tracked, 3u);
}

TEST(PoisonQuarantine, QuarantinedEntriesAreEvictedLast) {
  ManualClock clock;
  QuarantineConfig config;
  config.max_fingerprints = 2;
  PoisonQuarantine q(config, clock);
  q.record_kill(1, "w1");
  q.record_kill(1, "w2");
  q.record_kill(1, "w3");  // quarantined, and the least recently seen
  clock.advance(milliseconds(10));
  q.record_kill(2, "w3");
  clock.advance(milliseconds(10));
  q.record_kill(3, "w4");  // evicts 2, not the quarantined 1
  EXPECT_FALSE(q.admit(1, "x"));
  EXPECT_EQ(q.counters().tracked, 2u);
}

TEST(PoisonQuarantine, ManyDistinctPoisonRequestsStayWithinMaxFingerprints) {
  ManualClock clock;
  PoisonQuarantine q(QuarantineConfig{}, clock);
  for (std::uint64_t i = 0; i < 20'000; ++i) {
    q.record_kill(PoisonQuarantine::fingerprint("crash", Json{{"i", i}}), "w1");
    clock.advance(std::chrono::microseconds(10));
  }
  EXPECT_LE(q.counters().tracked, 10'000u);
  EXPECT_GE(q.counters().tracked, 9'000u);
  EXPECT_EQ(q.counters().quarantined, 0u);
}

// Threads hammer one quarantine: each has its own always-crashing request and shares a few
// succeeding ones. Exactly one quarantine per crashing request, none for the others.
TEST(PoisonQuarantine, ConcurrentUseGivesExactCounts) {
  ManualClock clock;
  QuarantineConfig config;
  config.max_fingerprints = 1'000;
  PoisonQuarantine q(config, clock);
  constexpr int kThreads = 4;
  constexpr int kRounds = 2'000;
  std::vector<std::thread> threads;
  std::atomic<int> refused_crashing{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const auto poison = PoisonQuarantine::fingerprint("crash", Json{{"thread", t}});
      for (int i = 0; i < kRounds; ++i) {
        const auto fine = PoisonQuarantine::fingerprint("echo", Json{{"i", i % 16}});
        if (q.admit(fine, "echo")) q.record_survived(fine);
        if (q.admit(poison, "crash")) {
          q.record_kill(poison, "w" + std::to_string(t));
        } else {
          refused_crashing.fetch_add(1);
        }
        if (i % 100 == 0) (void)q.counters();
        clock.advance(std::chrono::microseconds(1));
      }
    });
  }
  for (auto& th : threads) th.join();
  const auto c = q.counters();
  EXPECT_EQ(c.quarantined, static_cast<std::uint64_t>(kThreads));
  EXPECT_EQ(c.refused, static_cast<std::uint64_t>(refused_crashing.load()));
  EXPECT_EQ(refused_crashing.load(), kThreads * (kRounds - 3));
  EXPECT_EQ(c.tracked, static_cast<std::size_t>(kThreads));
}

}  // namespace
}  // namespace bridgepool
