#include "server/pool_stats_text.h"

#include <fmt/format.h>

namespace bridgepool::server {

namespace {

// Label values escape backslash, double quote and newline (Prometheus text format 0.0.4).
std::string escape_label(const std::string& value) {
  std::string out;
  for (char ch : value) {
    if (ch == '\\' || ch == '"') out += '\\';
    if (ch == '\n') {
      out += "\\n";
      continue;
    }
    out += ch;
  }
  return out;
}

}  // namespace

std::string pool_stats_text(const PoolStats& stats) {
  std::string out;
  std::string pool = escape_label(stats.name);
  stats.for_each([&](const StatInfo& info, std::uint64_t value) {
    bool counter = info.kind == StatKind::kCounter;
    std::string family = fmt::format("bridgepool_pool_{}{}", info.name, counter ? "_total" : "");
    out += fmt::format("# HELP {} {} ({})\n# TYPE {} {}\n{}{{pool=\"{}\"}} {}\n", family, info.help,
                       info.unit, family, counter ? "counter" : "gauge", family, pool, value);
  });
  out +=
      "# HELP bridgepool_pool_errors_total Calls that failed, by error category\n"
      "# TYPE bridgepool_pool_errors_total counter\n";
  for (const auto& [category, count] : stats.errors) {
    out += fmt::format("bridgepool_pool_errors_total{{pool=\"{}\",category=\"{}\"}} {}\n", pool,
                       escape_label(category), count);
  }
  return out;
}

}  // namespace bridgepool::server
