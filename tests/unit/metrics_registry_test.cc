// MetricsRegistry: exact text output, histogram bucket edges, label limits, collectors, removal,
// and concurrent updates during scrapes (run under the thread sanitizer preset too).
#include <cmath>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "bridgepool/metrics.h"
#include "metrics_text.h"

namespace bridgepool {
namespace {

using testing::sample;

TEST(MetricsRegistry, RendersCountersAndGaugesWithHelpAndType) {
  MetricsRegistry registry;
  auto& calls = registry.counter_family({"demo_calls_total", "Calls.\nSecond line", {"kind"}, {}});
  auto& level = registry.gauge_family({"demo_level", "A level", {}, {}});
  calls.counter({"b"}).inc(2);
  calls.counter({"a\"q"}).inc();
  level.gauge({}).set(-1.5);
  EXPECT_EQ(registry.render_prometheus(),
            "# HELP demo_calls_total Calls.\\nSecond line\n"
            "# TYPE demo_calls_total counter\n"
            "demo_calls_total{kind=\"a\\\"q\"} 1\n"
            "demo_calls_total{kind=\"b\"} 2\n"
            "# HELP demo_level A level\n"
            "# TYPE demo_level gauge\n"
            "demo_level -1.5\n");
}

TEST(MetricsRegistry, HistogramBucketsAreLessOrEqualAndCumulative) {
  MetricsRegistry registry;
  auto& family = registry.histogram_family({"demo_seconds", "h", {}, {0.125, 1}});
  Histogram h = family.histogram({});
  for (double v : {0.0625, 0.125, std::nextafter(0.125, 1.0), 1.0, 7.0}) h.observe(v);
  EXPECT_EQ(h.count(), 5u);
  EXPECT_EQ(registry.render_prometheus(),
            "# HELP demo_seconds h\n"
            "# TYPE demo_seconds histogram\n"
            "demo_seconds_bucket{le=\"0.125\"} 2\n"  // 0.0625 and exactly 0.125
            "demo_seconds_bucket{le=\"1\"} 4\n"
            "demo_seconds_bucket{le=\"+Inf\"} 5\n"
            "demo_seconds_sum 8.3125\n"
            "demo_seconds_count 5\n");
}

TEST(MetricsRegistry, InvalidUtf8LabelValuesRenderAsReplacementCharacters) {
  MetricsRegistry registry;
  registry.counter_family({"demo_total", "c", {"command"}, {}}).counter({"a\xFF\"b"}).inc();
  EXPECT_NE(registry.render_prometheus().find("demo_total{command=\"a\xEF\xBF\xBD\\\"b\"} 1\n"),
            std::string::npos);
}

TEST(MetricsRegistry, NanIsCountedInInfOnly) {
  MetricsRegistry registry;
  Histogram h = registry.histogram_family({"demo_seconds", "h", {}, {1}}).histogram({});
  h.observe(std::nan(""));
  const std::string text = registry.render_prometheus();
  EXPECT_EQ(sample(text, "demo_seconds_bucket{le=\"1\"}"), 0);
  EXPECT_EQ(sample(text, "demo_seconds_bucket{le=\"+Inf\"}"), 1);
  EXPECT_NE(text.find("demo_seconds_sum NaN\n"), std::string::npos);
}

TEST(MetricsRegistry, DefaultLatencyBucketsSpan50MicrosecondsTo60Seconds) {
  MetricsRegistry registry;
  auto& family = registry.histogram_family({"demo_latency_seconds", "h", {"pool"}, {}});
  const auto buckets = default_latency_buckets();
  EXPECT_EQ(family.spec().buckets, buckets);
  EXPECT_DOUBLE_EQ(buckets.front(), 0.00005);
  EXPECT_DOUBLE_EQ(buckets.back(), 60);
  family.histogram({"p"}).observe(0.00004);
  family.histogram({"p"}).observe(61);
  const std::string text = registry.render_prometheus();
  EXPECT_EQ(sample(text, "demo_latency_seconds_bucket{pool=\"p\",le=\"5e-05\"}"), 1);
  EXPECT_EQ(sample(text, "demo_latency_seconds_bucket{pool=\"p\",le=\"60\"}"), 1);
  EXPECT_EQ(sample(text, "demo_latency_seconds_bucket{pool=\"p\",le=\"+Inf\"}"), 2);
}

TEST(MetricsRegistry, CountersNeverGoDown) {
  MetricsRegistry registry;
  Counter c = registry.counter_family({"demo_total", "c", {}, {}}).counter({});
  c.inc(3);
  c.inc(-2);
  EXPECT_EQ(c.value(), 3);
  EXPECT_FALSE(Counter().bound());
  Counter().inc();  // a default handle ignores updates
}

// Callers choose command names (unknown ones are counted too): a name longer than 128 bytes is
// "other" and takes no slot, so a scrape stays small whatever names arrive.
TEST(MetricsRegistry, LongValuesOfALimitedLabelAreOtherAndTakeNoSlot) {
  MetricsRegistry registry;
  registry.limit_label("command", 2);
  auto& calls = registry.counter_family({"demo_total", "c", {"command"}, {}});
  for (int i = 0; i < 100; ++i) calls.counter({std::string(1 << 20, char('a' + i % 26))}).inc();
  calls.counter({std::string(128, 'x')}).inc();  // 128 bytes: a value like any other
  calls.counter({"short"}).inc();
  EXPECT_EQ(registry.admitted_values("command"), 2u);
  const std::string text = registry.render_prometheus();
  EXPECT_EQ(sample(text, "demo_total{command=\"other\"}"), 100);
  EXPECT_EQ(sample(text, "demo_total{command=\"short\"}"), 1);
  EXPECT_LT(text.size(), 2000u);
}

TEST(MetricsRegistry, LabelLimitKeepsTheFirstValuesAndFoldsLaterOnesIntoOther) {
  MetricsRegistry registry;
  registry.limit_label("command", 2);
  auto& calls = registry.counter_family({"demo_total", "c", {"pool", "command"}, {}});
  auto& time = registry.histogram_family({"demo_seconds", "h", {"command"}, {1}});
  calls.counter({"p", "a"}).inc();
  calls.counter({"p", "b"}).inc();
  calls.counter({"p", "c"}).inc();  // third distinct value: other
  calls.counter({"p", "d"}).inc();
  calls.counter({"p", "a"}).inc();  // admitted values stay admitted
  time.histogram({"c"}).observe(0.5);
  EXPECT_EQ(registry.admitted_values("command"), 2u);
  EXPECT_EQ(registry.admitted_values("pool"), 0u);  // unlimited
  const std::string text = registry.render_prometheus();
  EXPECT_EQ(sample(text, "demo_total{pool=\"p\",command=\"a\"}"), 2);
  EXPECT_EQ(sample(text, "demo_total{pool=\"p\",command=\"b\"}"), 1);
  EXPECT_EQ(sample(text, "demo_total{pool=\"p\",command=\"other\"}"), 2);
  EXPECT_EQ(sample(text, "demo_total{pool=\"p\",command=\"c\"}"), std::nullopt);
  EXPECT_EQ(sample(text, "demo_seconds_count{command=\"other\"}"), 1);  // same limit, every family
  EXPECT_EQ(calls.series_count(), 3u);
}

TEST(MetricsRegistry, CollectorsRunAtEachScrapeUntilRemoved) {
  MetricsRegistry registry;
  Gauge g = registry.gauge_family({"demo_queue", "q", {}, {}}).gauge({});
  int scrapes = 0;
  auto id = registry.add_collector([&] { g.set(++scrapes * 10); });
  EXPECT_EQ(sample(registry.render_prometheus(), "demo_queue"), 10);
  EXPECT_EQ(sample(registry.render_prometheus(), "demo_queue"), 20);
  EXPECT_TRUE(registry.remove_collector(id));
  EXPECT_FALSE(registry.remove_collector(id));
  EXPECT_EQ(sample(registry.render_prometheus(), "demo_queue"), 20);
  EXPECT_EQ(scrapes, 2);
}

TEST(MetricsRegistry, RemovedSeriesLeaveTheOutputButTheirHandlesStayUsable) {
  MetricsRegistry registry;
  auto& rss = registry.gauge_family({"demo_rss_bytes", "r", {"pool", "worker"}, {}});
  Gauge w1 = rss.gauge({"p", "w1"});
  rss.gauge({"p", "w2"}).set(2);
  rss.gauge({"q", "w1"}).set(3);
  EXPECT_TRUE(rss.remove({"p", "w1"}));
  EXPECT_FALSE(rss.remove({"p", "w1"}));
  w1.set(5);  // harmless
  std::string text = registry.render_prometheus();
  EXPECT_EQ(sample(text, "demo_rss_bytes{pool=\"p\",worker=\"w1\"}"), std::nullopt);
  EXPECT_EQ(sample(text, "demo_rss_bytes{pool=\"p\",worker=\"w2\"}"), 2);
  EXPECT_EQ(rss.remove_where("pool", "q"), 1u);
  EXPECT_EQ(rss.remove_where("no_such_label", "q"), 0u);
  EXPECT_EQ(rss.series_count(), 1u);
}

TEST(MetricsRegistry, RegisteringTheSameFamilyTwiceReturnsIt) {
  MetricsRegistry registry;
  auto& a = registry.counter_family({"demo_total", "c", {"pool"}, {}});
  auto& b = registry.counter_family({"demo_total", "c", {"pool"}, {}});
  EXPECT_EQ(&a, &b);
  EXPECT_EQ(registry.find("demo_total"), &a);
  EXPECT_EQ(registry.find("missing"), nullptr);
}

TEST(MetricsRegistryDeathTest, MisdeclaredMetricsAbort) {
  MetricsRegistry registry;
  registry.counter_family({"demo_total", "c", {"pool"}, {}});
  EXPECT_DEATH(registry.gauge_family({"demo_total", "c", {"pool"}, {}}), "registered twice");
  EXPECT_DEATH(registry.counter_family({"bad-name", "c", {}, {}}), "invalid metric name");
  EXPECT_DEATH(registry.counter_family({"x_total", "c", {"__x"}, {}}), "invalid label name");
  EXPECT_DEATH(registry.histogram_family({"h", "c", {"le"}, {}}), "label le reserved");
  EXPECT_DEATH(registry.histogram_family({"h", "c", {}, {1, 1}}), "buckets not increasing");
  EXPECT_DEATH(registry.find("demo_total")->counter({}), "wrong label count");
  EXPECT_DEATH(registry.find("demo_total")->gauge({"p"}), "another metric type");
}

// Several threads update one series each and shared ones while another renders: totals are
// exact afterwards and every scrape is well-formed (TSan-clean by design: atomics + mutexes).
TEST(MetricsRegistry, ConcurrentUpdatesAndScrapes) {
  MetricsRegistry registry;
  registry.limit_label("command", 3);
  auto& calls = registry.counter_family({"demo_total", "c", {"command"}, {}});
  auto& time = registry.histogram_family({"demo_seconds", "h", {}, {0.5}});
  Gauge g = registry.gauge_family({"demo_gauge", "g", {}, {}}).gauge({});
  registry.add_collector([&] { g.set(1); });
  constexpr int kThreads = 4, kIterations = 5000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Counter mine = calls.counter({"cmd" + std::to_string(t)});
      Histogram shared = time.histogram({});
      for (int i = 0; i < kIterations; ++i) {
        mine.inc();
        shared.observe(i % 2 ? 0.25 : 1.0);
        g.add(1);
      }
    });
  }
  std::size_t scrapes = 0;
  for (int i = 0; i < 20; ++i) scrapes += !registry.render_prometheus().empty();
  for (auto& t : threads) t.join();
  const std::string text = registry.render_prometheus();
  EXPECT_EQ(scrapes, 20u);
  double total = 0;
  for (int t = 0; t < kThreads; ++t)  // three admitted, one folded into other
    total += sample(text, "demo_total{command=\"cmd" + std::to_string(t) + "\"}").value_or(0);
  total += sample(text, "demo_total{command=\"other\"}").value_or(0);
  EXPECT_EQ(total, kThreads * kIterations);
  EXPECT_EQ(registry.admitted_values("command"), 3u);
  EXPECT_EQ(sample(text, "demo_seconds_count"), kThreads * kIterations);
  EXPECT_EQ(sample(text, "demo_seconds_bucket{le=\"0.5\"}"), kThreads * kIterations / 2);
  EXPECT_EQ(sample(text, "demo_seconds_sum"), kThreads * kIterations / 2 * 1.25);
}

}  // namespace
}  // namespace bridgepool
