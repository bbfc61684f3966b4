// WorkerStateMachine: the SPEC §4 transition table, and a bounded record of the transitions.
#include "worker/worker_state_machine.h"

#include <utility>

#include <fmt/format.h>

namespace bridgepool {

std::string_view to_string(WorkerState state) {
  switch (state) {
    case WorkerState::kInitializing:
      return "initializing";
    case WorkerState::kReady:
      return "ready";
    case WorkerState::kBusy:
      return "busy";
    case WorkerState::kDegraded:
      return "degraded";
    case WorkerState::kTerminating:
      return "terminating";
    case WorkerState::kTerminated:
      return "terminated";
  }
  return "unknown";
}

std::string_view to_string(WorkerHealth health) {
  switch (health) {
    case WorkerHealth::kHealthy:
      return "healthy";
    case WorkerHealth::kUnhealthy:
      return "unhealthy";
    case WorkerHealth::kUnknown:
      return "unknown";
  }
  return "unknown";
}

std::string_view to_string(TransitionReason reason) {
  switch (reason) {
    case TransitionReason::kInitComplete:
      return "init_complete";
    case TransitionReason::kCheckout:
      return "checkout";
    case TransitionReason::kCheckinOk:
      return "checkin_ok";
    case TransitionReason::kCheckinError:
      return "checkin_error";
    case TransitionReason::kHealthCheckPassed:
      return "health_check_passed";
    case TransitionReason::kHealthCheckFailed:
      return "health_check_failed";
    case TransitionReason::kMaxFailures:
      return "max_failures";
    case TransitionReason::kTimeout:
      return "timeout";
    case TransitionReason::kExited:
      return "exited";
    case TransitionReason::kShutdown:
      return "shutdown";
    case TransitionReason::kRecycled:
      return "recycled";
    case TransitionReason::kReplaced:
      return "replaced";
    case TransitionReason::kProtocolError:
      return "protocol_error";
    case TransitionReason::kInitFailed:
      return "init_failed";
    case TransitionReason::kClosed:
      return "closed";
  }
  return "unknown";
}

std::optional<WorkerState> worker_state_from_string(std::string_view name) {
  for (auto s : {WorkerState::kInitializing, WorkerState::kReady, WorkerState::kBusy,
                 WorkerState::kDegraded, WorkerState::kTerminating, WorkerState::kTerminated}) {
    if (to_string(s) == name) return s;
  }
  return std::nullopt;
}

std::optional<WorkerHealth> worker_health_from_string(std::string_view name) {
  for (auto h : {WorkerHealth::kHealthy, WorkerHealth::kUnhealthy, WorkerHealth::kUnknown}) {
    if (to_string(h) == name) return h;
  }
  return std::nullopt;
}

WorkerStateMachine::WorkerStateMachine(const Clock& clock, std::size_t history_limit)
    : clock_(clock), history_limit_(history_limit), entered_at_(clock.now()) {}

bool WorkerStateMachine::allowed(WorkerState from, WorkerState to) {
  using S = WorkerState;
  switch (from) {
    // A worker that never became ready has nothing to drain: it goes straight to terminated.
    case S::kInitializing:
      return to == S::kReady || to == S::kTerminated;
    case S::kReady:
      return to == S::kBusy || to == S::kDegraded || to == S::kTerminating;
    case S::kBusy:
      return to == S::kReady || to == S::kDegraded || to == S::kTerminating;
    // A degraded worker is not handed out (no -> busy); it must first pass a probe (-> ready).
    case S::kDegraded:
      return to == S::kReady || to == S::kTerminating;
    case S::kTerminating:
      return to == S::kTerminated;
    case S::kTerminated:
      return false;
  }
  return false;
}

Result<Transition> WorkerStateMachine::transition(WorkerState to, TransitionReason reason,
                                                  std::map<std::string, std::string> metadata) {
  if (!allowed(state_, to)) {
    return make_error(ErrorCategory::kSystem,
                      fmt::format("invalid worker transition: {} -> {} (reason: {})",
                                  to_string(state_), to_string(to), to_string(reason)));
  }
  const TimePoint now = clock_.now();
  Transition record;
  record.from = state_;
  record.to = to;
  record.reason = reason;
  record.time_in_previous = now - entered_at_;
  record.wall_time = clock_.wall_now();
  record.metadata = std::move(metadata);

  state_ = to;
  entered_at_ = now;
  if (history_limit_ == 0) return record;
  history_.push_back(record);
  while (history_.size() > history_limit_) history_.pop_front();
  return record;
}

bool WorkerStateMachine::can_accept_work() const {
  return state_ == WorkerState::kReady && health_ == WorkerHealth::kHealthy;
}

bool WorkerStateMachine::must_remove() const {
  return state_ == WorkerState::kTerminating || state_ == WorkerState::kTerminated;
}

Duration WorkerStateMachine::time_in_state() const { return clock_.now() - entered_at_; }

}  // namespace bridgepool
