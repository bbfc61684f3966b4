#include "server/status_document.h"

namespace bridgepool::server {

using Json = nlohmann::json;

std::size_t ready_workers(const PoolStats& stats) { return stats.idle + stats.busy; }

bool is_ready(const PoolStats& stats, std::size_t min_ready) {
  return ready_workers(stats) >= std::max<std::size_t>(min_ready, 1);
}

Json worker_json(const WorkerInfo& w) {
  return Json{{"id", w.id},
              {"pid", w.pid},
              {"state", to_string(w.state)},
              {"health", to_string(w.health)},
              {"requests", w.requests},
              {"python_errors", w.python_errors},
              {"uptime_s", w.uptime_s},
              {"generation", w.generation},
              {"current_session", w.current_session},
              {"rss_bytes", w.rss_bytes},
              {"spare", w.spare}};
}

namespace {

Json pool_json(const StatusInputs& in) {
  Json pool = {{"name", in.stats.name},
               {"kind", in.kind},
               {"ready", is_ready(in.stats, in.min_ready)},
               {"min_ready", in.min_ready}};
  in.stats.for_each(
      [&](const StatInfo& info, std::uint64_t value) { pool[std::string(info.name)] = value; });
  pool["errors"] = Json::object();
  for (const auto& [category, count] : in.stats.errors) pool["errors"][category] = count;
  pool["last_init_error"] = in.stats.last_init_error;
  return pool;
}

}  // namespace

Json status_document(const StatusInputs& in) {
  Json workers = Json::array();
  for (const auto& w : in.workers) workers.push_back(worker_json(w));
  std::string breaker = in.stats.breaker_state.empty() ? "disabled" : in.stats.breaker_state;
  return Json{
      {"server", {{"version", in.version}, {"uptime_s", in.uptime_s}, {"listen", in.listen}}},
      {"pool", pool_json(in)},
      {"workers", workers},
      {"breaker", {{"state", breaker}}},
      {"sessions", {{"live", in.stats.sessions}}},
      {"alerts", in.alerts.is_array() ? in.alerts : Json::array()},
      {"series", in.series}};
}

}  // namespace bridgepool::server
