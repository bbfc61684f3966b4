// The pure parts of the open-loop bench: schedule, accounting from the intended send time, and
// the SLA verdict. Times are made up; no threads, no clock. Also StopFlag, with which SIGINT and
// SIGTERM stop a bench's load (plain threads; nothing waits on a timer to pass).
#include "cli/open_loop.h"

#include <atomic>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "cli/stop_flag.h"

namespace bridgepool::cli {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(SendSchedule, OneSlotPerPeriodStrictlyBeforeTheEnd) {
  SendSchedule s(1000, seconds(10));
  EXPECT_EQ(s.size(), 10000u);
  EXPECT_EQ(s.intended(0), Duration::zero());
  EXPECT_EQ(s.intended(1), milliseconds(1));
  EXPECT_EQ(s.intended(9999), milliseconds(9999));  // no accumulated rounding
}

TEST(SendSchedule, FractionalPeriodsAndCounts) {
  SendSchedule thirds(3, seconds(1));  // 0, 333.33 ms, 666.67 ms
  EXPECT_EQ(thirds.size(), 3u);
  EXPECT_EQ(thirds.intended(1), Duration(333'333'333));
  EXPECT_EQ(thirds.intended(2), Duration(666'666'667));
  EXPECT_EQ(SendSchedule(0.5, seconds(3)).size(), 2u);       // 0 s and 2 s; 4 s is past the end
  EXPECT_EQ(SendSchedule(333.3, seconds(1)).size(), 334u);   // slot 333 is due at 0.9991 s
  EXPECT_EQ(SendSchedule(0.1 * 3, seconds(10)).size(), 3u);  // 0.30000000000000004 x 10
}

TEST(SendSchedule, NoRateOrNoDurationIsEmpty) {
  EXPECT_EQ(SendSchedule(0, seconds(10)).size(), 0u);
  EXPECT_EQ(SendSchedule(-5, seconds(10)).size(), 0u);
  EXPECT_EQ(SendSchedule(1000, Duration::zero()).size(), 0u);
}

TEST(OpenLoopTally, LatencyIsFromTheIntendedTimeNotFromTheSend) {
  OpenLoopTally t;
  // Due at 10 ms, sent at 15 ms (the sender was late), done at 16 ms: 6 ms, not 1 ms.
  t.record(milliseconds(10), milliseconds(15), milliseconds(16), "");
  OpenLoopReport r = t.report(1);
  EXPECT_DOUBLE_EQ(r.latency_us.max, 6000);
  EXPECT_DOUBLE_EQ(r.send_lag_max_us, 5000);
  EXPECT_DOUBLE_EQ(r.elapsed_s, 0.016);
}

// One server, 0.9 ms per request, at 1000 req/s for 1 s, with a 100 ms stall at request 500: a
// closed-loop measurement (service time only) sees one slow request; measured from the intended
// time, every request that queued behind the stall is slow too, and p90/p99 show it.
TEST(OpenLoopTally, AStallChargesEveryRequestThatShouldHaveGoneMeanwhile) {
  SendSchedule schedule(1000, seconds(1));
  OpenLoopTally open;
  std::vector<double> closed_us;
  Duration server_free = Duration::zero();
  for (std::size_t i = 0; i < schedule.size(); ++i) {
    Duration intended = schedule.intended(i);
    Duration sent = std::max(intended, server_free);
    Duration service = i == 500 ? milliseconds(100) : microseconds(900);
    server_free = sent + service;
    open.record(intended, sent, server_free, "");
    closed_us.push_back(std::chrono::duration<double, std::micro>(service).count());
  }
  OpenLoopReport r = open.report(schedule.size());
  LatencySummary closed = LatencySummary::of(closed_us);
  EXPECT_DOUBLE_EQ(closed.p99, 900);            // the closed-loop view hides the stall
  EXPECT_DOUBLE_EQ(r.latency_us.max, 100'000);  // request 500 itself
  // Request 500+k (k >= 1) was due at 500+k ms and completes at 600 + 0.9k ms: 100 - 0.1k ms.
  // The backlog would drain only at k = 991, so all of 500..999 are charged 100..50.1 ms.
  EXPECT_DOUBLE_EQ(r.latency_us.p50, 900);     // rank 500: the last undisturbed request
  EXPECT_DOUBLE_EQ(r.latency_us.p90, 90'000);  // rank 900: k = 100
  EXPECT_DOUBLE_EQ(r.latency_us.p99, 99'000);  // rank 990: k = 10
  EXPECT_EQ(r.sent, 1000u);
  EXPECT_EQ(r.missing(), 0u);
}

TEST(OpenLoopTally, CountsByCategoryAndMerges) {
  OpenLoopTally a, b;
  a.record(milliseconds(0), milliseconds(0), milliseconds(1), "");
  a.record(milliseconds(1), milliseconds(1), milliseconds(2), "python");
  b.record(milliseconds(2), milliseconds(2), milliseconds(3), "connection");
  b.record(milliseconds(3), milliseconds(3), milliseconds(4), "python");
  b.record(milliseconds(4), milliseconds(4), milliseconds(8), "");
  a.merge(b);
  OpenLoopReport r = a.report(6);
  EXPECT_EQ(r.sent, 5u);
  EXPECT_EQ(r.ok, 2u);
  EXPECT_EQ(r.failed, 3u);
  EXPECT_EQ(r.errors, (std::map<std::string, std::uint64_t>{{"connection", 1}, {"python", 2}}));
  EXPECT_EQ(r.missing(), 1u);
  EXPECT_DOUBLE_EQ(r.success_ratio, 0.4);
  EXPECT_DOUBLE_EQ(r.elapsed_s, 0.008);
  EXPECT_DOUBLE_EQ(r.achieved_rate, 5 / 0.008);
  EXPECT_DOUBLE_EQ(r.latency_us.max, 4000);
}

TEST(OpenLoopTally, PercentilesIncludeP999) {
  OpenLoopTally t;
  for (int i = 1; i <= 1000; ++i) t.record(Duration::zero(), Duration::zero(), microseconds(i), "");
  OpenLoopReport r = t.report(1000);
  EXPECT_DOUBLE_EQ(r.latency_us.p50, 500);
  EXPECT_DOUBLE_EQ(r.latency_us.p99, 990);
  EXPECT_DOUBLE_EQ(r.p999_us, 999);
  EXPECT_DOUBLE_EQ(r.latency_us.max, 1000);
}

TEST(OpenLoopTally, NothingRecorded) {
  OpenLoopReport r = OpenLoopTally().report(10);
  EXPECT_EQ(r.sent, 0u);
  EXPECT_EQ(r.missing(), 10u);
  EXPECT_EQ(r.success_ratio, 0);
  EXPECT_EQ(r.achieved_rate, 0);
  EXPECT_EQ(r.latency_us.p99, 0);
}

// A report of `n` requests, `ok` of them successful, with p99 = `p99_us`.
OpenLoopReport report_with(std::size_t n, std::size_t ok, double p99_us) {
  OpenLoopTally t;
  for (std::size_t i = 0; i < n; ++i) {
    auto latency = Duration(std::llround(p99_us * 1000));
    t.record(Duration::zero(), Duration::zero(), latency, i < ok ? "" : "python");
  }
  return t.report(n);
}

TEST(Sla, ExactlyAtTheThresholds) {
  SlaThresholds spec;  // p99 < 20 ms, success >= 99.99%
  // p99 of exactly 20 ms is not "< 20 ms".
  SlaVerdict at_p99 = judge_sla(report_with(10000, 10000, 20'000), spec);
  EXPECT_FALSE(at_p99.p99_ok);
  EXPECT_TRUE(at_p99.success_ok);
  EXPECT_FALSE(at_p99.pass());
  EXPECT_TRUE(judge_sla(report_with(10000, 10000, 19'999.9), spec).p99_ok);
  // 9999 of 10000 is exactly 99.99%: passes, also with the threshold given as a percentage
  // (99.99 / 100 is not exactly 0.9999 in binary).
  OpenLoopReport at_success = report_with(10000, 9999, 4'100);
  EXPECT_TRUE(judge_sla(at_success, spec).pass());
  EXPECT_TRUE(judge_sla(at_success, SlaThresholds{20, 99.99 / 100}).pass());
  SlaVerdict below = judge_sla(report_with(10000, 9998, 4'100), spec);
  EXPECT_TRUE(below.p99_ok);
  EXPECT_FALSE(below.success_ok);
}

TEST(Sla, ZeroRequestsFail) {
  OpenLoopReport none = OpenLoopTally().report(0);
  SlaVerdict v = judge_sla(none, SlaThresholds{});
  EXPECT_FALSE(v.p99_ok);
  EXPECT_FALSE(v.success_ok);
  EXPECT_FALSE(v.pass());
  EXPECT_EQ(sla_line(none, SlaThresholds{}, v), "SLA: FAIL  no request completed");
}

TEST(Sla, LineNamesTheFailingParts) {
  SlaThresholds spec;
  OpenLoopReport good = report_with(100000, 99998, 4'100);
  EXPECT_EQ(sla_line(good, spec, judge_sla(good, spec)),
            "SLA: PASS  p99 4.1 ms < 20 ms, success 99.998% >= 99.99%");
  OpenLoopReport flaky = report_with(1000, 950, 25'300);
  EXPECT_EQ(sla_line(flaky, spec, judge_sla(flaky, spec)),
            "SLA: FAIL  p99 25.3 ms >= 20 ms (fail), success 95.000% < 99.99% (fail)");
  OpenLoopReport slow = report_with(1000, 1000, 25'300);
  EXPECT_EQ(sla_line(slow, spec, judge_sla(slow, spec)),
            "SLA: FAIL  p99 25.3 ms >= 20 ms (fail), success 100.000% >= 99.99%");
}

TEST(OpenLoopTally, CutOffRequestsAreCountedApartFromOutcomesAndLatencies) {
  OpenLoopTally a, b;
  a.record(milliseconds(0), milliseconds(0), milliseconds(1), "");
  a.record_cut_off();
  b.record(milliseconds(1), milliseconds(1), milliseconds(3), "python");
  b.record_cut_off();
  b.record_cut_off();
  a.merge(b);
  OpenLoopReport r = a.report(10);
  EXPECT_EQ(r.sent, 2u);  // completed: a success and a failure
  EXPECT_EQ(r.cut_off, 3u);
  EXPECT_EQ(r.ok, 1u);
  EXPECT_EQ(r.failed, 1u);
  EXPECT_DOUBLE_EQ(r.success_ratio, 0.5);  // cut-off requests are neither
  EXPECT_DOUBLE_EQ(r.latency_us.max, 2000);
  EXPECT_EQ(r.missing(), 5u);  // 10 scheduled - 2 completed - 3 cut off: never sent
}

TEST(StopFlag, TheFirstRequestWins) {
  StopFlag stop;
  EXPECT_FALSE(stop.stop_requested());
  EXPECT_EQ(stop.signal_number(), 0);
  stop.request(2);
  stop.request(15);
  EXPECT_TRUE(stop.stop_requested());
  EXPECT_EQ(stop.signal_number(), 2);
}

TEST(StopFlag, SleepUntilReturnsTrueAtItsTimeAndFalseOnceStopped) {
  StopFlag stop;
  EXPECT_TRUE(stop.sleep_until(std::chrono::steady_clock::now()));  // due already: no wait
  stop.request(2);
  // Stopped: returns at once, however far away the time.
  EXPECT_FALSE(stop.sleep_until(std::chrono::steady_clock::now() + std::chrono::hours(1)));
}

TEST(StopFlag, ARequestWakesASleeperOnAnotherThread) {
  StopFlag stop;
  // An hour away: the sleeper can only come back through the request (or the test times out).
  auto sleeper = std::async(std::launch::async, [&] {
    return stop.sleep_until(std::chrono::steady_clock::now() + std::chrono::hours(1));
  });
  stop.request(15);
  EXPECT_FALSE(sleeper.get());
}

TEST(StopFlag, WaitReturnsOnDoneOrOnStop) {
  StopFlag finished_first;
  std::atomic<bool> done{false};
  auto waiter = std::async(std::launch::async,
                           [&] { return finished_first.wait([&] { return done.load(); }); });
  done = true;
  finished_first.notify();
  EXPECT_FALSE(waiter.get());  // returned because done() held, not because of a stop

  StopFlag stopped_first;
  auto stopped =
      std::async(std::launch::async, [&] { return stopped_first.wait([] { return false; }); });
  stopped_first.request(2);
  EXPECT_TRUE(stopped.get());
}

}  // namespace
}  // namespace bridgepool::cli
