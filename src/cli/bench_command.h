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
//
// With --scenario NAME (fault_schedule.h lists them) the open loop runs a failure scenario
// instead of --command (scenario_runner.h): the human output adds the scenario's figures and the
// SLA verdict on its subject, and the JSON a "scenario" object (name, seed, fault_starts_s,
// fault_length_s, events, the scenario's figures, sla{subject, sent, p99_us, success_ratio,
// p99_ok, success_ok, pass}); --sla-strict then judges that verdict.
//
// Both carry "interrupted" (bool). SIGINT or SIGTERM (signal_watch.h) ends a run early: no new
// request is sent, requests in flight get 2 s (kInFlightGrace) to finish, then the pool is shut
// down (which ends each worker's process group) and the summary is printed, marked interrupted,
// with what completed; the JSON then also has "signal" ("SIGINT"/"SIGTERM"), "completed" and
// "cut_off" (requests the shutdown ended: still running past the grace, or still queued for a
// worker; counted apart from ok and errors, and left out of the latencies). A second signal
// exits at once, after SIGKILLing the workers' process groups, without a summary. A signal
// during the pool's start-up does the same after printing an interrupted summary with nothing
// completed (Pool::start cannot be cancelled). A first signal after the load has ended changes
// nothing: the run is complete, and its summary and exit status say so.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bridgepool::cli {

struct BenchOptions {
  std::size_t workers = 2;
  std::size_t concurrency = 0;  // 0: same as workers
  std::size_t requests = 10000;
  std::size_t sessions = 0;  // > 0: requests go round-robin through S sessions
  // > 0 (closed loop): each call is an execute_many of this many items; --requests, ok and
  // errors count items, the latency is each batch's, and every item is distinct ("i": index).
  std::size_t batch = 0;
  std::size_t batch_chunk = 0;  // items per chunk (ExecuteOptions::batch_chunk; 0: the pool's)
  std::string command = "echo";
  std::string args_json = "{}";
  std::string args_file;  // non-empty: read the arguments from this file instead of args_json
  std::vector<std::string> handlers;
  std::string python;
  std::string start_method = "fork-server";  // fork-server|spawn
  std::size_t spare_workers = 0;
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
  bool sla_strict = false;  // exit 3 when the SLA fails (with a scenario: its subject's)
  // Adds "slot": i to request i's arguments, so no two requests are the same request: with one
  // argument object for all, two crashes close together make the poison quarantine refuse every
  // request for its cooldown, which then measures the quarantine rather than the crash storm.
  bool distinct_args = false;
  // A failure scenario during the open loop (fault_schedule.h); "" for none.
  std::string scenario;
  std::uint64_t seed = 1;  // the scenario's choices (kill order, slow worker, hanging calls)
};

// Exit statuses of `bridgepool bench` (the --help text and the README's table say the same):
inline constexpr int kExitOk = 0;            // the run completed; at least one request succeeded
inline constexpr int kExitAllFailed = 1;     // every request failed (said on stderr)
inline constexpr int kExitUsage = 2;         // invalid command line, or the pool (or a scenario's
                                             // bridge) could not start
inline constexpr int kExitSlaFailed = 3;     // --sla-strict and the SLA verdict is FAIL
inline constexpr int kExitSignalBase = 128;  // + the signal: 130 for SIGINT, 143 for SIGTERM
// The exit-status part of `bridgepool bench --help`.
inline constexpr const char* kBenchExitHelp =
    "Exit status:\n"
    "  0        the run completed and at least one request succeeded\n"
    "  1        every request failed (said on stderr)\n"
    "  2        invalid command line, or the pool (or a scenario's bridge) could not start\n"
    "  3        --sla-strict and the open-loop SLA verdict is FAIL\n"
    "  130/143  interrupted by SIGINT/SIGTERM (the summary, marked interrupted, comes first;\n"
    "           a second signal exits at once without one)\n"
    "An interrupt takes precedence over 1, and 1 over 3.";

// Runs the bench. Returns the exit status (above). Call it from main() while the process has
// one thread: it blocks SIGINT and SIGTERM before starting any (signal_watch.h).
int run_bench(const BenchOptions& options);

}  // namespace bridgepool::cli
