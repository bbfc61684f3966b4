// The JSON of GET /v1/status (the contract shared with the dashboard and `bridgepool status`),
// built from plain snapshots so it is tested without a pool or a socket.
//
// Shape: {server{version, uptime_s, listen}, pool{name, kind, ready, min_ready, <every PoolStats
// statistic by its table name>, errors{category: n}, last_init_error}, workers[{id, pid, state,
// health, requests, python_errors, uptime_s, generation, current_session, rss_bytes}],
// breaker{state: closed|open|half_open|disabled}, sessions{live}, alerts[...], series{...}}.
// Pure; any thread.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bridgepool/pool.h"
#include "bridgepool/pool_stats.h"

namespace bridgepool::server {

struct StatusInputs {
  std::string version;
  double uptime_s = 0;
  std::string listen;  // "127.0.0.1:8765"
  std::string kind;    // "pool"
  PoolStats stats;
  std::size_t min_ready = 1;
  std::vector<WorkerInfo> workers;
  nlohmann::json alerts = nlohmann::json::array();
  nlohmann::json series = nlohmann::json::object();
};

// Workers in service that can take a request now or after their current one: idle + busy.
std::size_t ready_workers(const PoolStats& stats);
bool is_ready(const PoolStats& stats, std::size_t min_ready);

nlohmann::json worker_json(const WorkerInfo& worker);
nlohmann::json status_document(const StatusInputs& in);

}  // namespace bridgepool::server
