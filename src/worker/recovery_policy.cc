// RecoveryPolicy: the SPEC §4 recovery table as code; see the header for the table itself.
#include "worker/recovery_policy.h"

#include <fmt/format.h>

#include "worker/worker.h"

namespace bridgepool {

FailureKind failure_kind_of(WorkerFault fault) {
  switch (fault) {
    case WorkerFault::kNotDelivered:
      return FailureKind::kNotDelivered;
    case WorkerFault::kExited:
      return FailureKind::kProcessExited;
    case WorkerFault::kProtocol:
      return FailureKind::kProtocolViolation;
    case WorkerFault::kTimeout:
      return FailureKind::kRequestTimeout;
    case WorkerFault::kNone:
      break;
  }
  return FailureKind::kPythonException;
}

std::string_view failure_kind_name(FailureKind kind) {
  switch (kind) {
    case FailureKind::kProcessExited:
      return "process_exited";
    case FailureKind::kHealthCheckFailed:
      return "health_check_failed";
    case FailureKind::kCheckinError:
      return "checkin_error";
    case FailureKind::kProtocolViolation:
      return "protocol_violation";
    case FailureKind::kRequestTimeout:
      return "request_timeout";
    case FailureKind::kNotDelivered:
      return "not_delivered";
    case FailureKind::kPythonException:
      return "python_exception";
    case FailureKind::kInitFailed:
      return "init_failed";
  }
  return "unknown";
}

std::string_view worker_action_name(WorkerAction action) {
  switch (action) {
    case WorkerAction::kKeep:
      return "keep";
    case WorkerAction::kDegradeAndProbeSoon:
      return "degrade";
    case WorkerAction::kRemove:
      return "remove";
    case WorkerAction::kKill:
      return "kill";
  }
  return "unknown";
}

namespace {

// The failure counter's limit for the kinds that have one; 0 for the others.
std::uint32_t limit_for(FailureKind kind, const RecoveryLimits& limits) {
  if (kind == FailureKind::kHealthCheckFailed) return limits.max_health_failures;
  if (kind == FailureKind::kCheckinError) return limits.max_checkin_failures;
  return 0;
}

TransitionReason transition_for(FailureKind kind, bool at_limit) {
  switch (kind) {
    case FailureKind::kProcessExited:
    case FailureKind::kNotDelivered:
      return TransitionReason::kExited;
    case FailureKind::kHealthCheckFailed:
      return at_limit ? TransitionReason::kMaxFailures : TransitionReason::kHealthCheckFailed;
    case FailureKind::kCheckinError:
      return at_limit ? TransitionReason::kMaxFailures : TransitionReason::kCheckinError;
    case FailureKind::kProtocolViolation:
      return TransitionReason::kProtocolError;
    case FailureKind::kRequestTimeout:
      return TransitionReason::kTimeout;
    case FailureKind::kPythonException:
      return TransitionReason::kCheckinOk;  // the round trip worked
    case FailureKind::kInitFailed:
      return TransitionReason::kInitFailed;
  }
  return TransitionReason::kExited;
}

}  // namespace

RecoveryDecision RecoveryPolicy::decide(const FailureReport& report) const {
  RecoveryDecision d;
  d.worker = worker_action(report);
  d.replace = d.removes_worker() && !report.shutting_down;
  const std::uint32_t limit = limit_for(report.kind, limits_);
  d.transition = transition_for(report.kind, limit > 0 && report.consecutive_failures >= limit);
  std::string count =
      limit > 0 ? fmt::format(" ({}/{})", report.consecutive_failures, limit) : std::string();
  d.reason = fmt::format("{}{}: {} worker{}", failure_kind_name(report.kind), count,
                         worker_action_name(d.worker), d.replace ? " and replace" : "");
  return d;
}

WorkerAction RecoveryPolicy::worker_action(const FailureReport& report) const {
  const std::uint32_t limit = limit_for(report.kind, limits_);
  switch (report.kind) {
    case FailureKind::kProcessExited:
    case FailureKind::kNotDelivered:
      return WorkerAction::kRemove;
    case FailureKind::kHealthCheckFailed:
    case FailureKind::kCheckinError:
      // A limit of 0 would mean "never degrade": treat it as 1 (remove at the first failure).
      return report.consecutive_failures >= std::max<std::uint32_t>(limit, 1)
                 ? WorkerAction::kRemove
                 : WorkerAction::kDegradeAndProbeSoon;
    case FailureKind::kProtocolViolation:
    case FailureKind::kRequestTimeout:
    case FailureKind::kInitFailed:
      return WorkerAction::kKill;
    case FailureKind::kPythonException:
      return WorkerAction::kKeep;
  }
  return WorkerAction::kKill;
}

}  // namespace bridgepool
