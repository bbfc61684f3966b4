// RecoveryPolicy: the SPEC §4 recovery table as code; see the header for the table itself.
#include "pool/recovery_policy.h"

#include <fmt/format.h>

#include <algorithm>

namespace bridgepool {

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

std::string_view request_action_name(RequestAction action) {
  switch (action) {
    case RequestAction::kReturnResult:
      return "return_result";
    case RequestAction::kReturnError:
      return "return_error";
    case RequestAction::kRetryElsewhere:
      return "retry_elsewhere";
    case RequestAction::kRetryAfterDelay:
      return "retry_after_delay";
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
  d.request = request_action(report);
  d.replace = d.removes_worker() && !report.shutting_down;
  if (d.request == RequestAction::kRetryAfterDelay) d.retry_delay = retry_delay(report.attempts);
  const std::uint32_t limit = limit_for(report.kind, limits_);
  d.transition = transition_for(report.kind, limit > 0 && report.consecutive_failures >= limit);
  std::string count =
      limit > 0 ? fmt::format(" ({}/{})", report.consecutive_failures, limit) : std::string();
  d.reason = fmt::format("{}{}: {} worker{}, {}", failure_kind_name(report.kind), count,
                         worker_action_name(d.worker), d.replace ? " and replace" : "",
                         request_action_name(d.request));
  return d;
}

WorkerAction RecoveryPolicy::worker_action(const FailureReport& report) const {
  const std::uint32_t limit = limit_for(report.kind, limits_);
  switch (report.kind) {
    case FailureKind::kProcessExited:
    case FailureKind::kNotDelivered:
      return WorkerAction::kRemove;  // already gone: only reaping is left
    case FailureKind::kHealthCheckFailed:
    case FailureKind::kCheckinError:
      return report.consecutive_failures >= limit ? WorkerAction::kRemove
                                                  : WorkerAction::kDegradeAndProbeSoon;
    case FailureKind::kProtocolViolation:
    case FailureKind::kRequestTimeout:
    case FailureKind::kInitFailed:
      // A late reply could be read by the next borrower (SPEC §11 item 5), and a worker without
      // a handshake cannot be asked to stop: nothing it might still write may be trusted.
      return WorkerAction::kKill;
    case FailureKind::kPythonException:
      return WorkerAction::kKeep;
  }
  return WorkerAction::kKill;
}

RequestAction RecoveryPolicy::request_action(const FailureReport& report) const {
  switch (report.kind) {
    case FailureKind::kHealthCheckFailed:
      return RequestAction::kReturnError;
    case FailureKind::kCheckinError:
      return RequestAction::kReturnResult;
    case FailureKind::kPythonException:
      // Deterministic until the worker says otherwise: an idempotent command that raised would
      // only raise again, so only the worker's own "retryable" mark allows another attempt.
      return report.marked_retryable && may_retry(report) ? RequestAction::kRetryAfterDelay
                                                          : RequestAction::kReturnError;
    case FailureKind::kNotDelivered:
    case FailureKind::kInitFailed:
      return may_retry(report) ? RequestAction::kRetryElsewhere : RequestAction::kReturnError;
    case FailureKind::kProcessExited:
    case FailureKind::kProtocolViolation:
    case FailureKind::kRequestTimeout:
      return (!report.delivered || report.retryable()) && may_retry(report)
                 ? RequestAction::kRetryElsewhere
                 : RequestAction::kReturnError;
  }
  return RequestAction::kReturnError;
}

// Budget and shutdown, common to every retry: with max_attempts 3, attempts 1 and 2 may be
// followed by another, the 3rd is final.
bool RecoveryPolicy::may_retry(const FailureReport& report) const {
  return !report.shutting_down && report.attempts < limits_.max_attempts;
}

std::chrono::milliseconds RecoveryPolicy::retry_delay(std::uint32_t attempts) const {
  // attempts >= 1 here; the shift is bounded so a large count cannot overflow (2^20 * base is
  // far beyond any sane cap anyway).
  const std::uint32_t doublings = std::min<std::uint32_t>(attempts > 0 ? attempts - 1 : 0, 20);
  return std::min(limits_.retry_base_delay * (std::int64_t{1} << doublings),
                  limits_.retry_max_delay);
}

}  // namespace bridgepool
