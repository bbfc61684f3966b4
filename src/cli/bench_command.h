// `bridgepool bench`: drives a pool with C concurrent callers for M requests and reports
// latency percentiles, throughput, errors by category and worker churn.
//
// With --json the last line of stdout is one JSON object (the schema the benchmark driver and
// the tests parse): command, concurrency, requests, ok, errors{category: n},
// latency_us{p50,p90,p99,max,mean}, throughput_per_s, duration_s,
// workers{configured, started, replaced}, and with --sessions S:
// sessions{count, hits, misses, lost, rebound, expired}.
//
// With --rate R the load is open loop instead (open_loop.h): R requests/s for --duration D
// seconds, latency measured from each request's intended send time, and an SLA verdict line.
// Its JSON adds mode "open_loop", rate, duration_s (configured), elapsed_s, senders, sent,
// failed, latency_us.p999, send_lag_us{p99,max}, achieved_rate, success_ratio,
// pool{retries, retries_denied, circuit_rejected, quarantine_refused} and
// sla{p99_ms_max, success_min, p99_ok, success_ok, pass}.
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
  // Open loop (rate > 0); see open_loop.h.
  double rate = 0;  // requests per second; 0: closed loop (--requests, --concurrency)
  double duration_s = 10;
  std::size_t senders = 0;  // sender threads; 0: max(8, 2 x workers, rate x 50 ms)
  double sla_p99_ms = 20;   // SPEC §9
  double sla_success_pct = 99.99;
  bool sla_strict = false;  // exit 3 when the SLA fails
};

// Returns the process exit status: 0 when the run completed (whatever the request errors),
// 2 when the pool could not start or the options are invalid, 3 when --sla-strict is given and
// the open-loop SLA verdict is FAIL.
int run_bench(const BenchOptions& options);

}  // namespace bridgepool::cli
