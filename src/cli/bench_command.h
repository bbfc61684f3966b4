// `bridgepool bench`: drives a pool with C concurrent callers for M requests and reports
// latency percentiles, throughput, errors by category and worker churn.
//
// With --json the last line of stdout is one JSON object (the schema the benchmark driver and
// the tests parse): command, concurrency, requests, ok, errors{category: n},
// latency_us{p50,p90,p99,max,mean}, throughput_per_s, duration_s,
// workers{configured, started, replaced}, and with --sessions S:
// sessions{count, hits, misses, lost, rebound, expired}.
#pragma once

#include <string>
#include <vector>

namespace bridgepool::cli {

struct BenchOptions {
  std::size_t workers = 2;
  std::size_t concurrency = 0;  // 0: same as workers
  std::size_t requests = 10000;
  std::size_t sessions = 0;  // > 0: requests go round-robin through S sessions
  std::string command = "echo";
  std::string args_json = "{}";
  std::vector<std::string> handlers;
  std::string python;
  std::string log_level = "warn";
  int timeout_ms = 60000;
  bool json = false;
  bool progress = true;  // only drawn when stderr is a terminal
};

// Returns the process exit status: 0 when the run completed (whatever the request errors),
// 2 when the pool could not start or the options are invalid.
int run_bench(const BenchOptions& options);

}  // namespace bridgepool::cli
