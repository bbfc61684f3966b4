#include "cli/status_table.h"

#include <fmt/format.h>

namespace bridgepool::cli {

using Json = nlohmann::json;

namespace {

// A field as text: strings as they are, numbers as JSON prints them, missing as "-".
std::string field(const Json& object, const char* key) {
  if (!object.is_object() || !object.contains(key) || object[key].is_null()) return "-";
  const Json& v = object[key];
  if (v.is_string()) return v.get<std::string>().empty() ? "-" : v.get<std::string>();
  if (v.is_number_float()) return fmt::format("{:.1f}", v.get<double>());
  return v.dump();
}

std::string rss_mib(const Json& worker) {
  if (!worker.contains("rss_bytes") || !worker["rss_bytes"].is_number()) return "-";
  return fmt::format("{:.1f}", worker["rss_bytes"].get<double>() / (1024.0 * 1024.0));
}

// A warm spare's state is `ready`, but it takes no traffic: the table says `spare`.
std::string state(const Json& worker) {
  const bool spare =
      worker.contains("spare") && worker["spare"].is_boolean() && worker["spare"].get<bool>();
  return spare ? "spare" : field(worker, "state");
}

}  // namespace

std::string format_status(const Json& status) {
  const Json empty = Json::object();
  const Json& server = status.contains("server") ? status["server"] : empty;
  const Json& pool = status.contains("pool") ? status["pool"] : empty;
  const Json& breaker = status.contains("breaker") ? status["breaker"] : empty;
  std::string out = fmt::format(
      "server  {}  version {}  up {} s\npool    {}  ready {}  size {}  busy {}  queue {}  "
      "requests {}  ok {}  breaker {}\n\n",
      field(server, "listen"), field(server, "version"), field(server, "uptime_s"),
      field(pool, "name"), field(pool, "ready"), field(pool, "size"), field(pool, "busy"),
      field(pool, "queue_length"), field(pool, "requests"), field(pool, "ok"),
      field(breaker, "state"));
  constexpr const char* kRow = "{:<6} {:>8} {:<13} {:<10} {:>9} {:>7} {:>9} {:>4} {:>8}  {}\n";
  out += fmt::format(kRow, "ID", "PID", "STATE", "HEALTH", "REQUESTS", "PYERR", "UPTIME_S", "GEN",
                     "RSS_MIB", "SESSION");
  const Json workers = status.contains("workers") ? status["workers"] : Json::array();
  for (const auto& w : workers) {
    out += fmt::format(kRow, field(w, "id"), field(w, "pid"), state(w), field(w, "health"),
                       field(w, "requests"), field(w, "python_errors"), field(w, "uptime_s"),
                       field(w, "generation"), rss_mib(w), field(w, "current_session"));
  }
  if (workers.empty()) out += "(no workers)\n";
  return out;
}

}  // namespace bridgepool::cli
