// docs/telemetry.md is generated from the two tables that declare every statistic
// (bridgepool/pool_stats.h) and every event (bridgepool/event_names.h). This test renders the
// document from the tables and fails when the file differs, so the reference cannot drift from
// the code. To regenerate it after changing a table:
//   BRIDGEPOOL_UPDATE_DOCS=1 build/tests/unit_tests --gtest_filter='TelemetryReference.*'
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "bridgepool/event_names.h"
#include "bridgepool/pool_stats.h"
#include "unit/golden_doc.h"

namespace bridgepool {
namespace {

std::string render() {
  std::ostringstream out;
  out << "# Telemetry reference\n\n"
      << "Generated from `include/bridgepool/pool_stats.h` and `include/bridgepool/event_names.h`"
         " by\n`tests/unit/telemetry_reference_test.cc` (a unit test fails when this file and "
         "the tables differ;\n`BRIDGEPOOL_UPDATE_DOCS=1 build/tests/unit_tests "
         "--gtest_filter='TelemetryReference.*'`\nrewrites it). Do not edit by hand.\n\n"
      << "## Statistics (`Pool::stats()`, `Bridge::stats()`)\n\n"
      << "Counters only grow (from the pool's start; rolling restarts do not reset them); gauges "
         "are a level\nnow. Besides these: `name`, `errors` (calls by error category), "
         "`breaker_state`, `last_init_error`.\n\n"
      << "| statistic | kind | unit | meaning |\n|---|---|---|---|\n";
  PoolStats().for_each([&](const StatInfo& info, std::uint64_t) {
    out << "| `" << info.name << "` | " << (info.kind == StatKind::kCounter ? "counter" : "gauge")
        << " | " << info.unit << " | " << info.help << " |\n";
  });
  out << "\n## Events (`EventBus`)\n\n"
      << "Handlers attach by name prefix. m: measurements, d: metadata; every pool event also "
         "carries `pool`.\n\n"
      << "| event | meaning |\n|---|---|\n";
  for (const EventInfo& e : kEvents) out << "| `" << e.name << "` | " << e.help << " |\n";
  return out.str();
}

TEST(TelemetryReference, DocsTelemetryMdIsGeneratedFromTheTables) {
  testing::expect_generated_doc("docs/telemetry.md", render());
}

TEST(TelemetryReference, EveryNameIsUnique) {
  std::set<std::string_view> names;
  for (const EventInfo& e : kEvents) EXPECT_TRUE(names.insert(e.name).second) << e.name;
  for (std::size_t i = 0; i < kEvents.size(); ++i) {
    EXPECT_EQ(static_cast<std::size_t>(kEvents[i].id), i);
  }
}

}  // namespace
}  // namespace bridgepool
