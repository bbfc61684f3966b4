// PoolMetrics fed with synthetic events and snapshots (the three-getter constructor): what each
// event and statistic becomes in the scrape, label limits, dropped series, detaching.
#include "bridgepool/pool_metrics.h"

#include <thread>

#include <gtest/gtest.h>

#include "bridgepool/event_names.h"
#include "bridgepool/pool.h"
#include "metrics_text.h"

namespace bridgepool {
namespace {

using testing::sample;

class PoolMetricsTest : public ::testing::Test {
 protected:
  PoolMetricsTest() { stats_.name = "p"; }

  std::unique_ptr<PoolMetrics> attach(PoolMetricsOptions options = {}) {
    return std::make_unique<PoolMetrics>(
        bus_, [this] { return stats_; }, [this] { return workers_; }, registry_, options);
  }
  // What the pool hands its bus's observers when a call ends / a worker changes state.
  void request(const std::string& command, double duration_us, double wait_us,
               const std::string& result = "ok", const std::string& severity = "") {
    bus_.observe(CallObservation{"p", command, result, severity, duration_us, wait_us, 1});
  }
  void transition(WorkerState from, WorkerState to, TransitionReason reason, double ms) {
    bus_.observe(TransitionObservation{"p", "w1", from, to, reason, ms});
  }
  std::optional<double> value(const std::string& series) {
    return sample(registry_.render_prometheus(), series);
  }

  EventBus bus_;
  MetricsRegistry registry_;
  PoolStats stats_;
  std::vector<WorkerInfo> workers_;
};

TEST_F(PoolMetricsTest, RequestsByCommandAndOutcomeWithLatencyApart) {
  auto metrics = attach();
  EXPECT_EQ(metrics->pool_name(), "p");
  for (int i = 0; i < 7; ++i) request("echo", 1000, 200);
  for (int i = 0; i < 3; ++i) request("fail", 3000, 0, "python", "major");
  request("", 5, 0, "invalid_request", "minor");
  const std::string text = registry_.render_prometheus();
  EXPECT_EQ(sample(text, R"(bridgepool_requests_total{pool="p",command="echo",outcome="ok"})"), 7);
  EXPECT_EQ(sample(text, R"(bridgepool_requests_total{pool="p",command="fail",outcome="python"})"),
            3);
  EXPECT_EQ(
      sample(text, R"(bridgepool_requests_total{pool="p",command="",outcome="invalid_request"})"),
      1);
  EXPECT_EQ(sample(text, R"(bridgepool_errors_total{pool="p",category="python",severity="major"})"),
            3);
  EXPECT_EQ(
      sample(text,
             R"(bridgepool_errors_total{pool="p",category="invalid_request",severity="minor"})"),
      1);
  EXPECT_EQ(sample(text, R"(bridgepool_request_duration_seconds_count{pool="p",command="echo"})"),
            7);
  EXPECT_NEAR(*sample(text, R"(bridgepool_request_duration_seconds_sum{pool="p",command="echo"})"),
              0.007, 1e-12);
  EXPECT_EQ(
      sample(text,
             R"(bridgepool_request_duration_seconds_bucket{pool="p",command="echo",le="0.001"})"),
      7);  // exactly 1 ms is in le="0.001"
  EXPECT_EQ(sample(text, R"(bridgepool_request_queue_wait_seconds_count{pool="p"})"), 11);
  EXPECT_NEAR(*sample(text, R"(bridgepool_request_queue_wait_seconds_sum{pool="p"})"), 0.0014,
              1e-12);
  EXPECT_NEAR(*sample(text, R"(bridgepool_request_execution_seconds_sum{pool="p"})"),
              7 * 0.0008 + 3 * 0.003 + 0.000005, 1e-12);
}

TEST_F(PoolMetricsTest, CommandsPastTheLimitShareTheOtherSeries) {
  auto metrics = attach(PoolMetricsOptions{2});
  request("a", 10, 0);
  request("b", 10, 0);
  request("c", 10, 0);
  request("d", 10, 0, "timeout", "major");
  request("a", 10, 0);
  const std::string text = registry_.render_prometheus();
  EXPECT_EQ(sample(text, R"(bridgepool_requests_total{pool="p",command="a",outcome="ok"})"), 2);
  EXPECT_EQ(sample(text, R"(bridgepool_requests_total{pool="p",command="other",outcome="ok"})"), 1);
  EXPECT_EQ(
      sample(text, R"(bridgepool_requests_total{pool="p",command="other",outcome="timeout"})"), 1);
  EXPECT_EQ(sample(text, R"(bridgepool_request_duration_seconds_count{pool="p",command="other"})"),
            2);
  EXPECT_EQ(registry_.admitted_values("command"), 2u);
}

TEST_F(PoolMetricsTest, TransitionsByReasonAndTimePerState) {
  auto metrics = attach();
  using S = WorkerState;
  using R = TransitionReason;
  transition(S::kInitializing, S::kReady, R::kInitComplete, 250);
  transition(S::kReady, S::kBusy, R::kCheckout, 1000);
  transition(S::kBusy, S::kReady, R::kCheckinOk, 500);
  transition(S::kReady, S::kBusy, R::kCheckout, 1000);
  transition(S::kBusy, S::kTerminating, R::kRecycled, 10);
  const std::string text = registry_.render_prometheus();
  const std::string transitions = R"(bridgepool_worker_transitions_total{pool="p",)";
  EXPECT_EQ(sample(text, transitions + R"(from="ready",to="busy",reason="checkout"})"), 2);
  EXPECT_EQ(sample(text, transitions + R"(from="busy",to="terminating",reason="recycled"})"), 1);
  EXPECT_NEAR(*sample(text, R"(bridgepool_worker_state_seconds_total{pool="p",state="ready"})"),
              2.0, 1e-12);
  EXPECT_NEAR(*sample(text, R"(bridgepool_worker_state_seconds_total{pool="p",state="busy"})"),
              0.51, 1e-12);
  EXPECT_EQ(sample(text, R"(bridgepool_worker_state_seconds_total{pool="p",state="degraded"})"), 0);
}

TEST_F(PoolMetricsTest, WorkerStartsAndBreakerTransitions) {
  auto metrics = attach();
  bus_.emit(Event{std::string(event_name(EventId::kWorkerReady)), {{"startup_ms", 120}}, {}});
  bus_.emit(Event{std::string(event_name(EventId::kBreakerTransition)),
                  {},
                  {{"breaker", "pool:p"}, {"from", "closed"}, {"to", "open"}}});
  const std::string text = registry_.render_prometheus();
  EXPECT_EQ(sample(text, R"(bridgepool_worker_startup_seconds_bucket{pool="p",le="0.1"})"), 0);
  EXPECT_EQ(sample(text, R"(bridgepool_worker_startup_seconds_bucket{pool="p",le="0.25"})"), 1);
  EXPECT_EQ(sample(text, R"(bridgepool_breaker_transitions_total{pool="p",breaker="pool:p",)"
                         R"(from="closed",to="open"})"),
            1);
}

TEST_F(PoolMetricsTest, StatisticsComeFromThePoolStatsTable) {
  auto metrics = attach();
  stats_.retries_denied = 4;
  stats_.quarantine_refused = 2;
  stats_.session_hits = 9;
  stats_.session_losses = 1;
  stats_.sessions = 5;
  stats_.queue_length = 3;
  stats_.started = 6;
  stats_.requests = 100;  // not exported: bridgepool_requests_total is by command and outcome
  const std::string text = registry_.render_prometheus();
  EXPECT_EQ(sample(text, R"(bridgepool_retries_denied_total{pool="p"})"), 4);
  EXPECT_EQ(sample(text, R"(bridgepool_quarantine_refused_requests_total{pool="p"})"), 2);
  EXPECT_EQ(sample(text, R"(bridgepool_session_hits_total{pool="p"})"), 9);
  EXPECT_EQ(sample(text, R"(bridgepool_session_losses_total{pool="p"})"), 1);
  EXPECT_EQ(sample(text, R"(bridgepool_live_sessions{pool="p"})"), 5);
  EXPECT_EQ(sample(text, R"(bridgepool_queue_length{pool="p"})"), 3);
  EXPECT_EQ(sample(text, R"(bridgepool_worker_starts_total{pool="p"})"), 6);
  EXPECT_EQ(text.find("bridgepool_requests_total{pool=\"p\"}"), std::string::npos);
  stats_.retries_denied = 7;  // the next scrape copies the table again
  EXPECT_EQ(value(R"(bridgepool_retries_denied_total{pool="p"})"), 7);
}

TEST_F(PoolMetricsTest, BreakerStateIsOneGaugePerState) {
  auto metrics = attach();
  EXPECT_EQ(value(R"(bridgepool_breaker_state{pool="p",state="closed"})"), std::nullopt);
  stats_.breaker_state = "half_open";
  const std::string text = registry_.render_prometheus();
  EXPECT_EQ(sample(text, R"(bridgepool_breaker_state{pool="p",state="closed"})"), 0);
  EXPECT_EQ(sample(text, R"(bridgepool_breaker_state{pool="p",state="open"})"), 0);
  EXPECT_EQ(sample(text, R"(bridgepool_breaker_state{pool="p",state="half_open"})"), 1);
}

TEST_F(PoolMetricsTest, WorkersByStateAndMemoryOfWorkersStillThere) {
  auto metrics = attach();
  WorkerInfo w1, w2, w3;
  w1.id = "w1", w1.state = WorkerState::kReady, w1.rss_bytes = 1000;
  w2.id = "w2", w2.state = WorkerState::kBusy, w2.rss_bytes = 2000;
  w3.id = "w3", w3.state = WorkerState::kReady;
  workers_ = {w1, w2, w3};
  std::string text = registry_.render_prometheus();
  EXPECT_EQ(sample(text, R"(bridgepool_workers{pool="p",state="ready"})"), 2);
  EXPECT_EQ(sample(text, R"(bridgepool_workers{pool="p",state="busy"})"), 1);
  EXPECT_EQ(sample(text, R"(bridgepool_workers{pool="p",state="terminated"})"), 0);
  EXPECT_EQ(sample(text, R"(bridgepool_worker_resident_memory_bytes{pool="p",worker="w2"})"), 2000);
  workers_ = {w1};  // w2 and w3 left
  text = registry_.render_prometheus();
  EXPECT_EQ(sample(text, R"(bridgepool_worker_resident_memory_bytes{pool="p",worker="w1"})"), 1000);
  EXPECT_EQ(sample(text, R"(bridgepool_worker_resident_memory_bytes{pool="p",worker="w2"})"),
            std::nullopt);
  EXPECT_EQ(sample(text, R"(bridgepool_workers{pool="p",state="busy"})"), 0);
}

TEST_F(PoolMetricsTest, DetachingStopsCountingAndDropsThePoolsSeries) {
  auto metrics = attach();
  request("echo", 10, 0);
  EXPECT_EQ(bus_.handler_count(), 2u);  // worker ready, breaker transition
  EXPECT_TRUE(bus_.observing());        // calls and transitions
  metrics.reset();
  EXPECT_EQ(bus_.handler_count(), 0u);
  EXPECT_FALSE(bus_.observing());
  request("echo", 10, 0);
  const std::string text = registry_.render_prometheus();
  EXPECT_EQ(text.find("pool=\"p\""), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE bridgepool_requests_total counter"), std::string::npos);
}

TEST_F(PoolMetricsTest, TwoPoolsShareOneRegistry) {
  auto first = attach();
  EventBus other_bus;
  PoolStats other_stats;
  other_stats.name = "q";
  PoolMetrics second(
      other_bus, [&] { return other_stats; }, [] { return std::vector<WorkerInfo>{}; }, registry_);
  request("echo", 10, 0);
  for (int i = 0; i < 2; ++i) other_bus.observe(CallObservation{"q", "echo", "ok", "", 10, 0, 1});
  const std::string text = registry_.render_prometheus();
  EXPECT_EQ(sample(text, R"(bridgepool_requests_total{pool="p",command="echo",outcome="ok"})"), 1);
  EXPECT_EQ(sample(text, R"(bridgepool_requests_total{pool="q",command="echo",outcome="ok"})"), 2);
}

}  // namespace
}  // namespace bridgepool

namespace bridgepool {
namespace {

// Calls and transitions from several threads while another thread scrapes: the totals are exact
// (the handle caches and the registry are shared; TSan-clean by design).
TEST_F(PoolMetricsTest, ConcurrentCallsTransitionsAndScrapes) {
  auto metrics = attach();
  constexpr int kThreads = 4, kCalls = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t] {
      const std::string command = t % 2 ? "odd" : "even";
      for (int i = 0; i < kCalls; ++i) {
        transition(WorkerState::kReady, WorkerState::kBusy, TransitionReason::kCheckout, 1);
        request(command, 100, 10);
        transition(WorkerState::kBusy, WorkerState::kReady, TransitionReason::kCheckinOk, 1);
      }
    });
  }
  for (int i = 0; i < 20; ++i) registry_.render_prometheus();
  for (auto& t : threads) t.join();
  const std::string text = registry_.render_prometheus();
  EXPECT_EQ(sample(text, R"(bridgepool_requests_total{pool="p",command="odd",outcome="ok"})"),
            kThreads / 2 * kCalls);
  EXPECT_EQ(sample(text, R"(bridgepool_requests_total{pool="p",command="even",outcome="ok"})"),
            kThreads / 2 * kCalls);
  EXPECT_EQ(sample(text, R"(bridgepool_worker_transitions_total{pool="p",from="busy",to="ready",)"
                         R"(reason="checkin_ok"})"),
            kThreads * kCalls);
}

}  // namespace
}  // namespace bridgepool
