// docs/metrics.md is generated from the two declarations of pool metrics: BRIDGEPOOL_POOL_METRICS
// (bridgepool/pool_metrics.h) and the PoolStats table (bridgepool/pool_stats.h) with its export
// names (kStatExports). This test renders the document and fails when the file differs.
// To regenerate it after changing a table:
//   BRIDGEPOOL_UPDATE_DOCS=1 build/tests/unit_tests --gtest_filter='MetricsReference.*'
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "bridgepool/pool_metrics.h"
#include "telemetry/prometheus_text.h"
#include "unit/golden_doc.h"

namespace bridgepool {
namespace {

const char* type_name(MetricType type) {
  return type == MetricType::kCounter ? "counter"
         : type == MetricType::kGauge ? "gauge"
                                      : "histogram";
}

void render_intro(std::ostringstream& out) {
  out << "# Metrics reference\n\n"
      << "Generated from `BRIDGEPOOL_POOL_METRICS` and `kStatExports` in "
         "`include/bridgepool/pool_metrics.h` and\nthe PoolStats table in "
         "`include/bridgepool/pool_stats.h` by `tests/unit/metrics_reference_test.cc`\n(a unit "
         "test fails when this file and the tables differ; `BRIDGEPOOL_UPDATE_DOCS=1 "
         "build/tests/unit_tests\n--gtest_filter='MetricsReference.*'` rewrites it). Do not edit "
         "by hand.\n\n"
      << "`MetricsRegistry::render_prometheus()` renders Prometheus text format 0.0.4 "
         "(`text/plain; version=0.0.4`).\nA `PoolMetrics` binds one pool or bridge to a registry; "
         "every series carries `pool`. Label bounds:\n`command` keeps the first "
         "`PoolMetricsOptions::command_limit` (default "
      << MetricsRegistry::kDefaultCommandLimit
      << ") distinct commands and counts later ones as\n`other` (first N, never re-ranked: a "
         "series must never move between label values), and so are names longer than "
      << LabelLimits::kMaxValueBytes
      << " bytes\n(they take no slot); `worker` is bounded by the pool size "
         "plus overflow, and series of workers that left are dropped at the next scrape;\n"
         "`state`, `from`, `to`, `reason`, `category`, `severity` and `outcome` are enumerations. "
         "Histograms use\nthe default latency buckets, 50 µs to 60 s "
         "(`default_latency_buckets()`).\n\n";
}

std::string render() {
  std::ostringstream out;
  render_intro(out);
  out << "## From events and snapshots\n\n"
      << "Event-fed metrics count from the moment `PoolMetrics` attached; gauges are read at "
         "each scrape.\n`pool.request` and `pool.worker.transition`, which happen on every call, "
         "reach `PoolMetrics` as the\nbus's typed observations (`call_observer.h`: the same facts, "
         "no Event built per call).\n\n"
      << "| metric | type | labels | source | meaning |\n|---|---|---|---|---|\n";
  for (const PoolMetricInfo& m : kPoolMetrics) {
    out << "| `" << m.name << "` | " << type_name(m.type) << " | " << m.labels << " | `" << m.source
        << "` | " << m.help << " |\n";
  }
  out << "\n## From the PoolStats table\n\n"
      << "Copied from `stats()` at each scrape (counted by the pool since it started), labelled "
         "`pool`.\n\n"
      << "| metric | type | statistic | meaning |\n|---|---|---|---|\n";
  PoolStats().for_each([&](const StatInfo& info, std::uint64_t) {
    const std::string name = stat_metric_name(info);
    if (name.empty()) return;
    out << "| `" << name << "` | " << (info.kind == StatKind::kCounter ? "counter" : "gauge")
        << " | `" << info.name << "` | " << info.help << " (" << info.unit << ") |\n";
  });
  out << "\n## Statistics not exported\n\n| statistic | what to use instead |\n|---|---|\n";
  for (const StatExport& e : kStatExports) {
    if (e.metric.empty()) out << "| `" << e.field << "` | " << e.not_reason << " |\n";
  }
  return out.str();
}

TEST(MetricsReference, DocsMetricsMdIsGeneratedFromTheTables) {
  testing::expect_generated_doc("docs/metrics.md", render());
}

TEST(MetricsReference, EveryStatExportNamesAStatisticAndSaysWhyWhenNotExported) {
  std::set<std::string_view> fields;
  PoolStats().for_each([&](const StatInfo& info, std::uint64_t) { fields.insert(info.name); });
  for (const StatExport& e : kStatExports) {
    EXPECT_EQ(fields.count(e.field), 1u) << e.field;
    EXPECT_NE(e.metric.empty(), e.not_reason.empty()) << e.field;
  }
}

TEST(MetricsReference, NamesAreUniqueValidAndFollowPrometheusConventions) {
  std::set<std::string> names;
  auto check = [&](const std::string& name, MetricType type) {
    EXPECT_TRUE(names.insert(name).second) << "duplicate " << name;
    EXPECT_TRUE(prometheus_text::valid_metric_name(name)) << name;
    EXPECT_EQ(name.rfind("bridgepool_", 0), 0u) << name;
    const bool total = name.size() > 6 && name.substr(name.size() - 6) == "_total";
    EXPECT_EQ(total, type == MetricType::kCounter) << name;
  };
  for (const PoolMetricInfo& m : kPoolMetrics) check(std::string(m.name), m.type);
  PoolStats().for_each([&](const StatInfo& info, std::uint64_t) {
    const std::string name = stat_metric_name(info);
    if (!name.empty())
      check(name, info.kind == StatKind::kCounter ? MetricType::kCounter : MetricType::kGauge);
  });
}

}  // namespace
}  // namespace bridgepool
