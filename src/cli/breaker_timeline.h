// What a per-command circuit breaker did during the `breaker` scenario of `bridgepool bench`
// (fault_schedule.h), reconstructed from what the callers saw: each call of the guarded command
// notes when it was sent, whether the breaker refused it, and the breaker's state once the call
// was over. From those observations, with the fault window [fault_start, fault_end):
//   opened_after   first observation of an open breaker at or after fault_start, - fault_start
//   closed_after   first observation of a closed breaker after fault_end that follows a non-closed
//                  one, - fault_end
//   refused        calls refused from fault_start on (none are refused before the fault)
// The resolution is the interval between calls of that command (2 ms at 500 calls/s).
//
// Pure; not synchronised (built by one thread after the run).
#pragma once

#include <cstddef>
#include <optional>
#include <vector>

#include "bridgepool/clock.h"

namespace bridgepool::cli {

struct BreakerObservation {
  Duration at{0};        // when the call was sent (offset from the load's start)
  Duration after{0};     // when it returned; the state below was read then
  bool refused = false;  // the breaker refused it (no call was made)
  bool closed = true;    // the breaker's state after the call: closed or not
};

struct BreakerTimeline {
  std::optional<Duration> opened_after;  // nothing: it never opened
  std::optional<Duration> closed_after;  // nothing: it did not close again within the run
  std::size_t refused = 0;
  std::size_t refused_before_fault = 0;  // should be 0: the command did not fail yet
};

// Returns the timeline of `observations` (any order) for a fault in [fault_start, fault_end).
BreakerTimeline breaker_timeline(std::vector<BreakerObservation> observations, Duration fault_start,
                                 Duration fault_end);

}  // namespace bridgepool::cli
