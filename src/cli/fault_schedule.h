// The failure scenarios of `bridgepool bench --scenario NAME` (issue #10): which faults happen
// when, as a pure plan computed from the run's duration, the pool size and a seed.
//
//   cascade   every worker SIGKILLed within 100 ms, twice (waves at D/4 and 5D/8)
//   timeouts  2% of calls hang past a 100 ms deadline (which calls: hangs(), from the seed)
//   breaker   one command fails 100% for 5 s from D/4, then recovers
//   slow      one worker (chosen by the seed) becomes 20x slower for 2 s from D/4
//   fallback  the pool is unavailable for 5 s from D/4 inside a FallbackChain; the bridge behind
//             it is also down for the second half of that window, so the mock serves then
//
// Timings scale with the run: a fault lasts min(the figure, D/4), so a 60 s run injects
// the 5 s and 2 s, and a 2 s smoke run 0.5 s. The breaker's open period is
// min(1 s, D/20) for the same reason (1 s at 60 s, 100 ms at 2 s).
//
// FaultSchedule hands the events out as time passes (take_due), so the runner (scenario_runner.h)
// only sleeps and applies them, and the plan is tested with made-up times. Everything here is
// pure; a FaultSchedule is not synchronised (one injector thread owns it), the rest may be used
// from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bridgepool/clock.h"

namespace bridgepool::cli {

enum class Scenario { kCascade, kTimeouts, kBreaker, kSlow, kFallback };

// The `--scenario` part of `bridgepool bench --help`.
inline constexpr const char* kScenarioHelp =
    "Scenarios (--scenario NAME, needs --rate; faults start at D/4 and last min(figure, D/4)):\n"
    "  cascade   every worker SIGKILLed within 100 ms, twice; echo (idempotent: retried) and\n"
    "            submit (not idempotent: fails if its worker dies) alternate; time back to\n"
    "            full throughput\n"
    "  timeouts  2% of calls hang past a 100 ms deadline; p99 of the other 98%, replacements\n"
    "  breaker   flaky fails 100% for 5 s then recovers, behind a per-command breaker: time to\n"
    "            open, calls refused meanwhile and how fast, time to close; echo unaffected\n"
    "  slow      one worker 20x slower for 2 s (sleep's slow_pid hook; calls of workers/(2R)):\n"
    "            its share of the calls meanwhile, latency of the others\n"
    "  fallback  pool unavailable for 5 s inside pool -> bridge -> mock (bridge down for the\n"
    "            second half): throughput and latency per adapter, return to the pool";

// Returns the scenario called `name`, or nothing.
std::optional<Scenario> parse_scenario(std::string_view name);
std::string_view scenario_name(Scenario scenario);
// "cascade, timeouts, breaker, slow, fallback": for error messages.
std::string scenario_names();

enum class FaultAction {
  kKillWorker,  // SIGKILL worker `target` of the wave's snapshot (target 0 takes the snapshot)
  kFailOn,      // the breaker scenario's command starts failing
  kFailOff,     // ... and recovers
  kSlowOn,      // worker `target` (index into the ready workers) becomes slow
  kSlowOff,     // ... and normal again
  kPoolDown,    // the pool refuses every call (its breaker forced open)
  kPoolUp,      // ... and serves again (breaker reset)
  kBridgeDown,  // fallback: the bridge refuses too
  kBridgeUp,
};
std::string_view fault_action_name(FaultAction action);

struct FaultEvent {
  Duration at{0};  // offset from the load's start
  FaultAction action = FaultAction::kKillWorker;
  std::size_t target = 0;  // worker index for kKillWorker / kSlowOn
  bool operator==(const FaultEvent&) const = default;
};

// Everything the runner needs to know about a scenario's faults.
struct ScenarioPlan {
  Scenario scenario = Scenario::kCascade;
  Duration duration{0};
  std::vector<FaultEvent> events;      // sorted by `at`
  std::vector<Duration> fault_starts;  // when each fault begins (cascade: each wave)
  Duration fault_length{0};            // how long one fault lasts (cascade: the 100 ms spread)
  double hang_share = 0;               // timeouts: share of calls that hang
  Duration hang_deadline{0};           // timeouts: their deadline
  double slow_factor = 1;              // slow: how much slower the worker gets
  Duration breaker_open_timeout{0};    // breaker / fallback: open -> half-open
};

inline constexpr Duration kCascadeSpread = std::chrono::milliseconds(100);
inline constexpr double kHangShare = 0.02;
inline constexpr Duration kHangDeadline = std::chrono::milliseconds(100);
inline constexpr double kSlowFactor = 20;

// Returns the plan of `scenario` for a load of `duration` on `workers` workers (>= 1); `seed`
// picks the kill order within a cascade wave and the slow worker.
ScenarioPlan plan_scenario(Scenario scenario, Duration duration, std::size_t workers,
                           std::uint64_t seed);

// How long one call of the slow scenario sleeps: half of what keeps every worker busy at `rate`
// (workers / (2 x rate)), within [1 ms, 10 ms]. 2 ms at 1000/s on 4 workers, 5 ms at 200/s on 2.
// Calls much shorter than that leave one worker serving everything while the others idle, and
// the slow worker would be routed around only because it is never needed.
Duration slow_call_length(double rate, std::size_t workers);

// Whether request `slot` of a timeouts run hangs: a hash of (seed, slot) below `share`, so about
// share x slots hang, spread evenly, the same ones for the same seed.
bool hangs(std::uint64_t seed, std::size_t slot, double share);

// Hands out a plan's events in order as time passes.
class FaultSchedule {
 public:
  explicit FaultSchedule(std::vector<FaultEvent> events) : events_(std::move(events)) {}
  // Returns the events due at `elapsed` (at <= elapsed) not handed out before, in order.
  std::vector<FaultEvent> take_due(Duration elapsed);
  // When the next event is due; nothing when all were handed out.
  std::optional<Duration> next_due() const;
  bool done() const { return next_ == events_.size(); }

 private:
  std::vector<FaultEvent> events_;
  std::size_t next_ = 0;
};

}  // namespace bridgepool::cli
