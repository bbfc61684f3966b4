// The runner of `bridgepool bench --rate R --duration D --scenario NAME`: the open-loop load of
// open_loop.h with the faults of a ScenarioPlan (fault_schedule.h) applied while it runs, with
// real signals and handler hooks, and the scenario's own figures computed afterwards.
//
// Each scenario chooses what every request sends (the --command/--args of the bench are not
// used):
//   cascade   even slots `echo` (idempotent: retried), odd slots `submit` (not idempotent: a call
//             on a killed worker fails); the injector SIGKILLs every worker within 100 ms, twice
//   timeouts  hangs() slots `sleep` 10x the 100 ms deadline, without retries; the rest `echo`
//   breaker   even slots `flaky` (fail_rate 1 during the fault, 0 otherwise) behind a
//             per-command CircuitBreaker ("command:flaky", 5 consecutive failures open it);
//             odd slots `echo`, straight to the pool
//   slow      `sleep` slow_call_length() with slow_pid/slow_factor: the chosen worker's calls
//             take 20x longer
//   fallback  `echo` through FallbackChain(pool -> bridge -> mock); the injector forces the
//             pool's breaker (and, later, the bridge's) open and resets it
// The SLA verdict of a scenario is judged on its "subject": every request (cascade, slow,
// fallback), the other 98% (timeouts) or the other command (breaker).
//
// Thread-safety: run_scenario() blocks its caller; it starts the sender threads (open_loop.cc)
// and one injector thread, and joins them before returning.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bridgepool/error.h"
#include "bridgepool/pool.h"
#include "cli/fault_schedule.h"
#include "cli/open_loop.h"
#include "cli/scenario_report.h"
#include "cli/stop_flag.h"

namespace bridgepool::cli {

struct ScenarioOptions {
  ScenarioPlan plan;
  double rate = 0;
  std::size_t workers = 1;  // the pool's size (the slow scenario's call length)
  std::size_t senders = 8;
  std::uint64_t seed = 1;
};

// Runs the load and the faults of `options.plan` against `pool`. `stop` ends the load early (as
// in run_open_loop); a call failing once `shutdown_begun` is set counts as cut off. Fails (with
// the reason) only when the scenario cannot be set up: the fallback scenario's bridge does not
// start, or the pool has no breaker to force open.
Result<ScenarioOutcome> run_scenario(const ScenarioOptions& options, Pool& pool, StopFlag& stop,
                                     const std::atomic<bool>& shutdown_begun);

}  // namespace bridgepool::cli
