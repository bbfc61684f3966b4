// PoolMetrics on a real pool: known calls (7 echo, 3 fail, 1 session call), then the scrape is
// parsed by the real Prometheus text parser (Debian python3-prometheus-client, through
// tests/data/check_metrics.py) and its counters are checked against what the test sent.
#include "bridgepool/pool_metrics.h"

#include <atomic>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "bridgepool/bridge.h"
#include "integration/metrics_check.h"
#include "integration/test_support.h"

namespace bridgepool {
namespace {

using testing::check_metrics;
using testing::expect_sample;
using testing::start_pool;
using testing::test_config;

TEST(PoolMetricsIntegration, ScrapeParsesAndCountsWhatTheTestSent) {
  auto pool = start_pool(test_config(2));
  ASSERT_TRUE(pool);
  MetricsRegistry registry;
  PoolMetrics metrics(*pool, registry);
  // An Event handler too: the pool.request Events and the observations metrics count must agree.
  std::atomic<int> request_events{0};
  pool->events().attach("pool.request", [&](const Event&) { ++request_events; });
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(pool->execute("echo", {{"i", i}}));
  std::string severity;
  for (int i = 0; i < 3; ++i) {
    auto r = pool->execute("fail", {{"type", "ValueError"}});
    ASSERT_FALSE(r);
    ASSERT_EQ(r.error().category, ErrorCategory::kPython);
    severity = std::string(severity_name(r.error().severity));
  }
  ASSERT_TRUE(pool->execute_in_session("s1", "whoami"));
  const std::string worker = pool->workers().front().id;
  const std::string text = registry.render_prometheus();
  const Json pool_label = {{"pool", "test"}};
  const Json expectations = {
      expect_sample("bridgepool_requests_total",
                    {{"pool", "test"}, {"command", "echo"}, {"outcome", "ok"}}, 7),
      expect_sample("bridgepool_requests_total",
                    {{"pool", "test"}, {"command", "fail"}, {"outcome", "python"}}, 3),
      expect_sample("bridgepool_requests_total",
                    {{"pool", "test"}, {"command", "whoami"}, {"outcome", "ok"}}, 1),
      expect_sample("bridgepool_errors_total",
                    {{"pool", "test"}, {"category", "python"}, {"severity", severity}}, 3),
      expect_sample("bridgepool_request_duration_seconds_count",
                    {{"pool", "test"}, {"command", "echo"}}, 7),
      expect_sample("bridgepool_request_queue_wait_seconds_count", pool_label, 11),
      expect_sample("bridgepool_request_execution_seconds_count", pool_label, 11),
      expect_sample("bridgepool_session_misses_total", pool_label, 1),
      expect_sample("bridgepool_session_hits_total", pool_label, 0),
      expect_sample("bridgepool_live_sessions", pool_label, 1),
      expect_sample("bridgepool_worker_starts_total", pool_label, 2),
      expect_sample("bridgepool_workers", {{"pool", "test"}, {"state", "ready"}}, 2),
      expect_sample("bridgepool_worker_transitions_total",
                    {{"pool", "test"}, {"from", "ready"}, {"to", "busy"}, {"reason", "checkout"}},
                    11),
      expect_sample("bridgepool_worker_resident_memory_bytes",
                    {{"pool", "test"}, {"worker", worker}}, 0, "gt"),
  };
  EXPECT_EQ(check_metrics(text, expectations), 0) << text;
  EXPECT_EQ(request_events.load(), 11);
}

// The checker itself: a scrape the parser refuses fails the check (exit 2), and a wrong value
// fails it (exit 1), so the test above cannot pass on output nobody parsed.
TEST(PoolMetricsIntegration, CheckerRefusesMalformedScrapesAndWrongValues) {
  EXPECT_EQ(check_metrics("bridgepool_requests_total{pool=\"p\" 1\n", Json::array()), 2);
  EXPECT_EQ(check_metrics("# TYPE x_total counter\nx_total 2\n",
                          Json::array({expect_sample("x_total", Json::object(), 3)})),
            1);
  EXPECT_EQ(check_metrics("# TYPE x_total counter\nx_total 2\n",
                          Json::array({expect_sample("x_total", Json::object(), 2)})),
            0);
}

// A Bridge is a pool of one: the same metrics, labelled with its name.
TEST(PoolMetricsIntegration, BridgeMetrics) {
  auto bridge = Bridge::start(test_config(1));
  ASSERT_TRUE(bridge) << bridge.error().to_string();
  MetricsRegistry registry;
  PoolMetrics metrics(**bridge, registry);
  for (int i = 0; i < 2; ++i) ASSERT_TRUE((*bridge)->execute("echo"));
  const Json expectations = {
      expect_sample("bridgepool_requests_total",
                    {{"pool", "test"}, {"command", "echo"}, {"outcome", "ok"}}, 2),
      expect_sample("bridgepool_workers", {{"pool", "test"}, {"state", "ready"}}, 1),
      expect_sample("bridgepool_pool_size", {{"pool", "test"}}, 1)};
  EXPECT_EQ(check_metrics(registry.render_prometheus(), expectations), 0);
}

// Command names are whatever callers send: an invalid UTF-8 name is refused by the pool and still
// leaves a scrape the parser accepts.
TEST(PoolMetricsIntegration, InvalidUtf8CommandKeepsTheScrapeParseable) {
  auto pool = start_pool(test_config(1));
  ASSERT_TRUE(pool);
  MetricsRegistry registry;
  PoolMetrics metrics(*pool, registry);
  auto r = pool->execute("bad\xFF\"name");
  ASSERT_FALSE(r);
  const std::string category(category_name(r.error().category));
  const std::string text = registry.render_prometheus();
  const Json expectations = {
      expect_sample("bridgepool_errors_total",
                    {{"pool", "test"},
                     {"category", category},
                     {"severity", std::string(severity_name(r.error().severity))}},
                    1)};
  EXPECT_EQ(check_metrics(text, expectations), 0) << text;
}

}  // namespace
}  // namespace bridgepool
