// WorkerStateMachine: the pure lifecycle of one worker (SPEC §4), no I/O and no locking.
//
// Worker owns one and calls transition() for every change; the machine validates it against the
// table below, records it (from, to, reason, time in the previous state, wall time, metadata) in
// a bounded history, and returns the record so the caller can log it and emit the telemetry
// event. An invalid transition returns an error naming both states and changes nothing.
//
//   initializing -> ready | terminated
//   ready        -> busy | degraded | terminating
//   busy         -> ready | degraded | terminating
//   degraded     -> ready | terminating
//   terminating  -> terminated
//   terminated   -> (none)
//
// Health (healthy | unhealthy | unknown) is kept beside the state, not in it.
// Thread-safety: none; the owner serialises access.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "bridgepool/clock.h"
#include "bridgepool/error.h"
#include "bridgepool/worker_state.h"

namespace bridgepool {

struct Transition {
  WorkerState from = WorkerState::kInitializing;
  WorkerState to = WorkerState::kInitializing;
  TransitionReason reason = TransitionReason::kInitComplete;
  Duration time_in_previous{0};
  std::chrono::system_clock::time_point wall_time;
  std::map<std::string, std::string> metadata;
};

class WorkerStateMachine {
 public:
  static constexpr std::size_t kDefaultHistoryLimit = 64;

  explicit WorkerStateMachine(const Clock& clock, std::size_t history_limit = kDefaultHistoryLimit);

  // Whether the table allows from -> to (self-transitions are never allowed).
  static bool allowed(WorkerState from, WorkerState to);

  // Applies the transition or returns an error (category kSystem) naming both states, e.g.
  // "invalid worker transition: terminated -> ready (reason: checkout)"; state is unchanged then.
  Result<Transition> transition(WorkerState to, TransitionReason reason,
                                std::map<std::string, std::string> metadata = {});

  WorkerState state() const { return state_; }
  WorkerHealth health() const { return health_; }
  void set_health(WorkerHealth health) { health_ = health; }

  // ready and healthy.
  bool can_accept_work() const;
  // terminating or terminated: the pool must drop this worker.
  bool must_remove() const;

  // Time spent in the current state so far.
  Duration time_in_state() const;

  // Oldest first; at most history_limit entries (oldest dropped).
  const std::deque<Transition>& history() const { return history_; }

 private:
  const Clock& clock_;
  std::size_t history_limit_;
  WorkerState state_ = WorkerState::kInitializing;
  WorkerHealth health_ = WorkerHealth::kUnknown;
  TimePoint entered_at_;
  std::deque<Transition> history_;
};

}  // namespace bridgepool
