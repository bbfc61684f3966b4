// The figures of a `bridgepool bench --scenario NAME` run (scenario_runner.h), computed after the
// load from one record per request, so they are tested with made-up records and no pool:
//   cascade   per wave, the time back to full throughput (throughput_windows.h, against the mean
//             completions per 100 ms before the first wave); echo vs submit: failed, retried
//   timeouts  hung calls and how they ended; the other 98%: p50/p99; workers replaced
//   breaker   time until the breaker opened, calls refused and their own duration, time until
//             it closed (breaker_timeline.h); the other command before and during the fault
//   slow      calls the slow worker served during the window and their share; the others' p99
//   fallback  per phase (before, pool down, pool and bridge down, after): calls served by each
//             adapter, p50/p99, and the time until the pool served at its old rate again
// Pure; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bridgepool/pool_stats.h"
#include "cli/fault_schedule.h"
#include "cli/open_loop.h"

namespace bridgepool::cli {

// How one request of a scenario run went. Offsets are from the load's start.
struct SlotRecord {
  Duration sent{0};
  Duration completed{0};
  int group = 0;         // the scenario's kind of request (scenario_runner.h)
  bool done = false;     // completed (not cut off, not left unsent by a stop)
  bool cut_off = false;  // ended by an interrupt's shutdown
  bool ok = false;
  bool refused = false;        // breaker: refused by the per-command breaker
  bool breaker_closed = true;  // breaker: its state once the call was over
  std::uint32_t attempts = 0;  // as the executor reported them
  std::string category;        // error category when !ok
  std::string worker_id;       // who served it
  std::string adapter;         // fallback: "pool", "bridge" or "mock"
  std::string first_error;     // the error's text when !ok
};

struct ScenarioInputs {
  const ScenarioPlan& plan;
  const SendSchedule& schedule;
  const std::vector<SlotRecord>& records;  // one per slot of `schedule`
  PoolStats stats;                         // the pool's, after the load
  nlohmann::json applied;                  // the injector's log of what it did
  std::size_t workers = 1;                 // configured pool size
};

struct ScenarioOutcome {
  OpenLoopReport report;           // every request, as a plain open-loop run reports them
  std::string first_error;         // of any request
  OpenLoopReport subject;          // the requests the scenario's SLA is judged on
  std::string subject_name;        // e.g. "the other 98%"
  nlohmann::json figures;          // the scenario's own figures (the JSON's "scenario" object)
  std::vector<std::string> lines;  // the same for people, one figure per line
};

// Returns the scenario's figures, lines, subject and first error (report is the caller's).
ScenarioOutcome analyse_scenario(const ScenarioInputs& in);

}  // namespace bridgepool::cli
