// SessionAffinity with a manual clock: routing, expiry to the millisecond, lost sessions in strict
// and hint mode, the first-binder-wins race and a multi-threaded stress run checked against its
// invariants.
#include "pool/session_affinity.h"

#include <algorithm>
#include <array>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

namespace bridgepool {
namespace {

using namespace std::chrono_literals;

// expire() groups by worker but leaves the order within a group open; tests compare sorted lists.
std::vector<ExpiredSession> expire_sorted(SessionAffinity& affinity) {
  std::vector<ExpiredSession> out = affinity.expire();
  std::sort(out.begin(), out.end(), [](const ExpiredSession& a, const ExpiredSession& b) {
    return std::tie(a.worker, a.session_id) < std::tie(b.worker, b.session_id);
  });
  return out;
}

AffinityConfig config_with(AffinityMode mode, Duration ttl = 300s) {
  AffinityConfig config;
  config.mode = mode;
  config.ttl = ttl;
  return config;
}

// A map with workers 1, 2 and 3 registered.
struct AffinityFixture {
  explicit AffinityFixture(AffinityMode mode = AffinityMode::kStrict, Duration ttl = 300s)
      : affinity(clock, config_with(mode, ttl)) {
    for (WorkerKey w : {1, 2, 3}) EXPECT_TRUE(affinity.add_worker(w));
  }
  ManualClock clock;
  SessionAffinity affinity;
};

TEST(SessionAffinity, UnknownSessionIsNew) {
  AffinityFixture f;
  LookupResult r = f.affinity.lookup("s1");
  EXPECT_EQ(r.outcome, LookupOutcome::kNew);
  EXPECT_EQ(r.worker, std::nullopt);
  EXPECT_EQ(f.affinity.counters().misses, 1u);
  EXPECT_EQ(f.affinity.size(), 0u);
}

TEST(SessionAffinity, HitAfterBind) {
  AffinityFixture f;
  BindResult b = f.affinity.bind("s1", 2);
  EXPECT_EQ(b.outcome, BindOutcome::kBound);
  EXPECT_EQ(b.worker, 2u);
  LookupResult r = f.affinity.lookup("s1");
  EXPECT_EQ(r.outcome, LookupOutcome::kHit);
  EXPECT_EQ(r.worker, 2u);
  EXPECT_EQ(f.affinity.counters().hits, 1u);
  EXPECT_EQ(f.affinity.counters().binds, 1u);
  EXPECT_EQ(f.affinity.size(), 1u);
  EXPECT_EQ(f.affinity.sessions_on(2), 1u);
  EXPECT_EQ(f.affinity.sessions_on(1), 0u);
}

TEST(SessionAffinity, SecondBindDoesNotMoveTheSession) {
  AffinityFixture f;
  ASSERT_EQ(f.affinity.bind("s1", 1).outcome, BindOutcome::kBound);
  BindResult second = f.affinity.bind("s1", 3);
  EXPECT_EQ(second.outcome, BindOutcome::kAlreadyBound);
  EXPECT_EQ(second.worker, 1u);
  EXPECT_EQ(f.affinity.lookup("s1").worker, 1u);
  EXPECT_EQ(f.affinity.sessions_on(3), 0u);
  EXPECT_EQ(f.affinity.counters().binds, 1u);
}

TEST(SessionAffinity, BindRefusesUnregisteredAndDroppedWorkers) {
  AffinityFixture f;
  EXPECT_EQ(f.affinity.bind("s1", 9).outcome, BindOutcome::kWorkerGone);
  f.affinity.drop_worker(3);
  BindResult r = f.affinity.bind("s1", 3);
  EXPECT_EQ(r.outcome, BindOutcome::kWorkerGone);
  EXPECT_EQ(r.worker, 3u);
  EXPECT_EQ(f.affinity.size(), 0u);
  EXPECT_FALSE(f.affinity.add_worker(1));  // already registered
}

TEST(SessionAffinity, ExpiresExactlyAtTtlNotBefore) {
  AffinityFixture f;
  f.affinity.bind("s1", 1);
  f.clock.advance(300s - 1ms);
  EXPECT_TRUE(f.affinity.expire().empty());
  EXPECT_EQ(f.affinity.size(), 1u);
  f.clock.advance(1ms);
  std::vector<ExpiredSession> expired = f.affinity.expire();
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0], (ExpiredSession{1, "s1"}));
  EXPECT_EQ(f.affinity.size(), 0u);
  EXPECT_EQ(f.affinity.sessions_on(1), 0u);
  EXPECT_EQ(f.affinity.counters().expirations, 1u);
  EXPECT_EQ(f.affinity.lookup("s1").outcome, LookupOutcome::kNew);
}

TEST(SessionAffinity, LookupRefreshExtendsLife) {
  AffinityFixture f;
  f.affinity.bind("s1", 1);
  f.clock.advance(200s);
  EXPECT_EQ(f.affinity.lookup("s1").outcome, LookupOutcome::kHit);
  f.clock.advance(200s);  // 400 s after bind, 200 s after the last use
  EXPECT_TRUE(f.affinity.expire().empty());
  f.clock.advance(100s - 1ms);
  EXPECT_TRUE(f.affinity.expire().empty());
  f.clock.advance(1ms);
  EXPECT_EQ(f.affinity.expire().size(), 1u);
}

TEST(SessionAffinity, ExpireReturnsPairsGroupedByWorkerAndCountsThem) {
  AffinityFixture f;
  f.affinity.bind("c", 2);
  f.affinity.bind("a", 3);
  f.affinity.bind("b", 2);
  f.affinity.bind("d", 1);
  f.clock.advance(100s);
  f.affinity.bind("fresh", 1);
  f.clock.advance(200s);
  std::vector<ExpiredSession> expected = {{1, "d"}, {2, "b"}, {2, "c"}, {3, "a"}};
  std::vector<ExpiredSession> expired = f.affinity.expire();
  for (std::size_t i = 1; i < expired.size(); ++i) {
    EXPECT_LE(expired[i - 1].worker, expired[i].worker);  // grouped by worker
  }
  std::sort(expired.begin() + 1, expired.begin() + 3,
            [](const auto& a, const auto& b) { return a.session_id < b.session_id; });
  EXPECT_EQ(expired, expected);
  EXPECT_EQ(f.affinity.counters().expirations, 4u);
  EXPECT_EQ(f.affinity.size(), 1u);
  EXPECT_EQ(f.affinity.lookup("fresh").worker, 1u);
  EXPECT_EQ(f.affinity.sessions_on(1), 1u);
  EXPECT_EQ(f.affinity.sessions_on(2), 0u);
}

TEST(SessionAffinity, StrictDropReportsLostOnEveryLaterCall) {
  AffinityFixture f;
  f.affinity.bind("s1", 2);
  f.affinity.bind("s2", 2);
  f.affinity.bind("s3", 1);
  EXPECT_EQ(f.affinity.drop_worker(2), 2u);
  for (int call = 0; call < 3; ++call) {
    LookupResult r = f.affinity.lookup("s1");
    EXPECT_EQ(r.outcome, LookupOutcome::kLost);
    EXPECT_EQ(r.worker, std::nullopt);
    EXPECT_EQ(r.lost_worker, 2u);
  }
  BindResult b = f.affinity.bind("s1", 1);  // the pool must not move it
  EXPECT_EQ(b.outcome, BindOutcome::kSessionLost);
  EXPECT_EQ(b.worker, 2u);
  EXPECT_EQ(f.affinity.lookup("s3").outcome, LookupOutcome::kHit);
  SessionAffinity::Counters c = f.affinity.counters();
  EXPECT_EQ(c.lost_calls, 3u);
  EXPECT_EQ(c.losses, 2u);
  EXPECT_EQ(c.rebinds, 0u);
  EXPECT_EQ(f.affinity.size(), 3u);  // tombstones stay
}

TEST(SessionAffinity, CloseClearsATombstone) {
  AffinityFixture f;
  f.affinity.bind("s1", 2);
  f.affinity.drop_worker(2);
  std::optional<ClosedBinding> closed = f.affinity.close("s1");
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->worker, 2u);
  EXPECT_TRUE(closed->lost);
  EXPECT_EQ(f.affinity.close("s1"), std::nullopt);
  EXPECT_EQ(f.affinity.lookup("s1").outcome, LookupOutcome::kNew);
  EXPECT_EQ(f.affinity.bind("s1", 1).outcome, BindOutcome::kBound);
  EXPECT_EQ(f.affinity.lookup("s1").worker, 1u);
  EXPECT_EQ(f.affinity.counters().closes, 1u);
}

TEST(SessionAffinity, CloseOfALiveBindingNamesItsWorker) {
  AffinityFixture f;
  f.affinity.bind("s1", 3);
  std::optional<ClosedBinding> closed = f.affinity.close("s1");
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->worker, 3u);
  EXPECT_FALSE(closed->lost);
  EXPECT_EQ(f.affinity.sessions_on(3), 0u);
  EXPECT_EQ(f.affinity.size(), 0u);
}

TEST(SessionAffinity, LostSessionStaysLostWhileUsedAndIdlesOutLikeAnyOther) {
  AffinityFixture f;
  f.affinity.bind("s1", 2);
  f.affinity.drop_worker(2);
  f.clock.advance(250s);
  EXPECT_EQ(f.affinity.lookup("s1").outcome, LookupOutcome::kLost);  // refreshes
  f.clock.advance(250s);
  EXPECT_TRUE(f.affinity.expire().empty());
  EXPECT_EQ(f.affinity.size(), 1u);
  f.clock.advance(50s);
  // Expired, but not reported: its worker is gone, there is nothing to close there.
  EXPECT_TRUE(f.affinity.expire().empty());
  EXPECT_EQ(f.affinity.size(), 0u);
  EXPECT_EQ(f.affinity.counters().expirations, 1u);
  EXPECT_EQ(f.affinity.lookup("s1").outcome, LookupOutcome::kNew);
}

TEST(SessionAffinity, HintModeRebindsThenHitsTheNewWorker) {
  AffinityFixture f(AffinityMode::kHint);
  f.affinity.bind("s1", 2);
  EXPECT_EQ(f.affinity.drop_worker(2), 1u);
  LookupResult r = f.affinity.lookup("s1");
  EXPECT_EQ(r.outcome, LookupOutcome::kRebind);
  EXPECT_EQ(r.lost_worker, 2u);
  EXPECT_EQ(f.affinity.bind("s1", 2).outcome, BindOutcome::kWorkerGone);
  BindResult b = f.affinity.bind("s1", 3);
  EXPECT_EQ(b.outcome, BindOutcome::kBound);
  EXPECT_EQ(b.worker, 3u);
  LookupResult hit = f.affinity.lookup("s1");
  EXPECT_EQ(hit.outcome, LookupOutcome::kHit);
  EXPECT_EQ(hit.worker, 3u);
  EXPECT_EQ(f.affinity.bind("s1", 1).outcome, BindOutcome::kAlreadyBound);
  SessionAffinity::Counters c = f.affinity.counters();
  EXPECT_EQ(c.rebinds, 1u);
  EXPECT_EQ(c.losses, 1u);
  EXPECT_EQ(c.lost_calls, 0u);
  EXPECT_EQ(c.binds, 1u);  // the rebind replaced the binding
  EXPECT_EQ(f.affinity.size(), 1u);
  EXPECT_EQ(f.affinity.sessions_on(3), 1u);
}

TEST(SessionAffinity, DropWorkerReturnsItsSessionsAndSessionsOnFollows) {
  AffinityFixture f;
  for (int i = 0; i < 5; ++i) f.affinity.bind("a" + std::to_string(i), 1);
  for (int i = 0; i < 3; ++i) f.affinity.bind("b" + std::to_string(i), 2);
  EXPECT_EQ(f.affinity.sessions_on(1), 5u);
  EXPECT_EQ(f.affinity.sessions_on(2), 3u);
  EXPECT_EQ(f.affinity.drop_worker(1), 5u);
  EXPECT_EQ(f.affinity.sessions_on(1), 0u);
  EXPECT_EQ(f.affinity.sessions_on(2), 3u);
  EXPECT_EQ(f.affinity.drop_worker(1), 0u);   // already dropped
  EXPECT_EQ(f.affinity.drop_worker(3), 0u);   // had none
  EXPECT_EQ(f.affinity.drop_worker(42), 0u);  // never registered
  EXPECT_EQ(f.affinity.counters().losses, 5u);
  EXPECT_EQ(f.affinity.size(), 8u);
}

TEST(SessionAffinity, DroppedWorkerIsForgottenOnceNoTombstoneNamesIt) {
  AffinityFixture f;
  f.affinity.bind("s1", 2);
  f.affinity.drop_worker(2);
  EXPECT_FALSE(f.affinity.add_worker(2));  // tombstones still name it
  f.affinity.close("s1");
  f.affinity.expire();
  EXPECT_EQ(f.affinity.bind("s1", 2).outcome, BindOutcome::kWorkerGone);
  EXPECT_EQ(f.affinity.size(), 0u);
}

TEST(SessionAffinity, LeastLoadedPicksTheFewestBindingsFirstListedOnTies) {
  AffinityFixture f;
  f.affinity.bind("x", 1);
  f.affinity.bind("y", 1);
  f.affinity.bind("z", 2);
  std::vector<WorkerKey> all = {1, 2, 3};
  EXPECT_EQ(f.affinity.least_loaded(all), 3u);
  f.affinity.bind("w", 3);
  EXPECT_EQ(f.affinity.least_loaded(all), 2u);  // 2 and 3 tie at one; 2 is listed first
  std::vector<WorkerKey> unknown = {7, 8};
  EXPECT_EQ(f.affinity.least_loaded(unknown), std::nullopt);
}

TEST(SessionAffinity, LongIdsAndTheInlineBoundary) {
  AffinityFixture f;
  std::string inline_max(23, 'i');
  std::string first_heap(24, 'h');
  std::string long_id(200, 'L');
  std::string empty;
  f.affinity.bind(inline_max, 1);
  f.affinity.bind(first_heap, 2);
  f.affinity.bind(long_id, 3);
  f.affinity.bind(empty, 1);
  EXPECT_EQ(f.affinity.lookup(inline_max).worker, 1u);
  EXPECT_EQ(f.affinity.lookup(first_heap).worker, 2u);
  EXPECT_EQ(f.affinity.lookup(long_id).worker, 3u);
  EXPECT_EQ(f.affinity.lookup(empty).worker, 1u);
  EXPECT_EQ(f.affinity.lookup(std::string(24, 'i')).outcome, LookupOutcome::kNew);
  f.clock.advance(300s);
  std::vector<ExpiredSession> expected = {
      {1, empty}, {1, inline_max}, {2, first_heap}, {3, long_id}};
  EXPECT_EQ(expire_sorted(f.affinity), expected);
}

// The last-use stamps are 32-bit milliseconds that wrap every 49.7 days; a session kept in use
// across the wrap must neither expire early nor live forever.
TEST(SessionAffinity, SurvivesTheMillisecondCounterWrapping) {
  AffinityFixture f(AffinityMode::kStrict, 48h);
  f.affinity.bind("s1", 1);
  for (int day = 0; day < 60; ++day) {
    f.clock.advance(24h);
    EXPECT_TRUE(f.affinity.expire().empty()) << "day " << day;
    ASSERT_EQ(f.affinity.lookup("s1").outcome, LookupOutcome::kHit) << "day " << day;
  }
  f.clock.advance(48h - 1ms);
  EXPECT_TRUE(f.affinity.expire().empty());
  f.clock.advance(1ms);
  EXPECT_EQ(f.affinity.expire().size(), 1u);
}

TEST(SessionAffinity, TtlIsClampedToTheSupportedRange) {
  ManualClock clock;
  SessionAffinity affinity(clock, config_with(AffinityMode::kStrict, 365 * 24h));
  affinity.add_worker(1);
  affinity.bind("s1", 1);
  clock.advance(SessionAffinity::kMaxTtl);
  EXPECT_EQ(affinity.expire().size(), 1u);
}

TEST(SessionAffinity, ConcurrentBindersOfOneSessionAllLandOnTheFirstWinner) {
  for (int round = 0; round < 20; ++round) {
    ManualClock clock;
    SessionAffinity affinity(clock, AffinityConfig{});
    for (WorkerKey w = 1; w <= 8; ++w) affinity.add_worker(w);
    std::array<BindResult, 8> results;
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        if (affinity.lookup("shared").outcome == LookupOutcome::kNew) {
          results[t] = affinity.bind("shared", static_cast<WorkerKey>(t + 1));
        } else {
          results[t] = {BindOutcome::kAlreadyBound, *affinity.lookup("shared").worker};
        }
      });
    }
    for (auto& t : threads) t.join();
    WorkerKey winner = *affinity.lookup("shared").worker;
    int bound = 0;
    for (const BindResult& r : results) {
      EXPECT_EQ(r.worker, winner);
      if (r.outcome == BindOutcome::kBound) ++bound;
    }
    EXPECT_EQ(bound, 1);
    EXPECT_EQ(affinity.sessions_on(winner), 1u);
    EXPECT_EQ(affinity.counters().binds, 1u);
  }
}

// What one stress thread did, to compare with the map's counters afterwards.
struct StressTally {
  std::uint64_t lookups = 0;
  std::uint64_t dropped = 0;  // sum of drop_worker() results
};

void stress_thread(SessionAffinity& affinity, ManualClock& clock, std::atomic<WorkerKey>& next,
                   unsigned seed, StressTally& tally) {
  std::mt19937 rng(seed);
  for (int i = 0; i < 20000; ++i) {
    std::string id = "session-" + std::to_string(rng() % 1000);
    unsigned op = rng() % 100;
    if (op < 80) {
      ++tally.lookups;
      LookupResult r = affinity.lookup(id);
      if (r.outcome == LookupOutcome::kNew || r.outcome == LookupOutcome::kRebind) {
        WorkerKey w = next.load() - 1 - rng() % 4;  // one of the 4 newest workers
        affinity.bind(id, w);
      }
    } else if (op < 92) {
      affinity.close(id);
    } else if (op < 97) {
      clock.advance(std::chrono::seconds(rng() % 20));
      affinity.expire();
    } else if (op < 98) {
      // Replace one of the 4 newest workers with a new one.
      WorkerKey fresh = next.fetch_add(1);
      affinity.add_worker(fresh);
      tally.dropped += affinity.drop_worker(fresh - 1 - rng() % 4);
    } else {
      std::vector<WorkerKey> candidates = {next.load() - 1, next.load() - 2};
      affinity.least_loaded(candidates);
    }
  }
}

void run_stress(AffinityMode mode) {
  ManualClock clock;
  SessionAffinity affinity(clock, config_with(mode, 60s));
  std::atomic<WorkerKey> next{1};
  for (int i = 0; i < 8; ++i) affinity.add_worker(next.fetch_add(1));
  std::array<StressTally, 8> tallies;
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] { stress_thread(affinity, clock, next, 1000 + t, tallies[t]); });
  }
  for (auto& t : threads) t.join();

  std::uint64_t lookups = 0, dropped = 0;
  for (const StressTally& s : tallies) lookups += s.lookups, dropped += s.dropped;
  SessionAffinity::Counters c = affinity.counters();
  EXPECT_EQ(c.hits + c.misses + c.rebinds + c.lost_calls, lookups);
  EXPECT_EQ(c.losses, dropped);
  EXPECT_EQ(c.binds - c.closes - c.expirations, affinity.size());
  EXPECT_GT(c.hits, 0u);
  EXPECT_GT(c.losses, 0u);
  EXPECT_GT(c.expirations, 0u);
  if (mode == AffinityMode::kStrict) {
    EXPECT_EQ(c.rebinds, 0u);
  } else {
    EXPECT_EQ(c.lost_calls, 0u);
  }

  // Every live binding is counted on its worker; every other binding is a tombstone.
  std::map<WorkerKey, std::size_t> live;
  std::size_t tombstones = 0;
  for (int i = 0; i < 1000; ++i) {
    LookupResult r = affinity.lookup("session-" + std::to_string(i));
    if (r.outcome == LookupOutcome::kHit) ++live[*r.worker];
    if (r.outcome == LookupOutcome::kLost || r.outcome == LookupOutcome::kRebind) ++tombstones;
  }
  std::size_t live_total = 0;
  for (WorkerKey w = 1; w < next.load(); ++w) {
    EXPECT_EQ(affinity.sessions_on(w), live[w]) << "worker " << w;
    live_total += affinity.sessions_on(w);
  }
  EXPECT_EQ(live_total + tombstones, affinity.size());
}

TEST(SessionAffinity, StressStrictModeKeepsItsInvariants) { run_stress(AffinityMode::kStrict); }
TEST(SessionAffinity, StressHintModeKeepsItsInvariants) { run_stress(AffinityMode::kHint); }

}  // namespace
}  // namespace bridgepool
