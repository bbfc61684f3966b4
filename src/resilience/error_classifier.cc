// ErrorClassifier: the severity and strategy matrices of error_classifier.h, written as switches
// so the compiler checks every category is covered.
#include "resilience/error_classifier.h"

#include <algorithm>

namespace bridgepool {
namespace {

ErrorSeverity raise(ErrorSeverity severity) {
  switch (severity) {
    case ErrorSeverity::kWarning:
      return ErrorSeverity::kMinor;
    case ErrorSeverity::kMinor:
      return ErrorSeverity::kMajor;
    case ErrorSeverity::kMajor:
    case ErrorSeverity::kCritical:
      return ErrorSeverity::kCritical;
  }
  return ErrorSeverity::kCritical;
}

// One row of the matrix: the strategy for (warning or minor), major, critical.
RecoveryStrategy pick(ErrorSeverity severity, RecoveryStrategy low, RecoveryStrategy major,
                      RecoveryStrategy critical) {
  switch (severity) {
    case ErrorSeverity::kWarning:
    case ErrorSeverity::kMinor:
      return low;
    case ErrorSeverity::kMajor:
      return major;
    case ErrorSeverity::kCritical:
      return critical;
  }
  return critical;
}

}  // namespace

ErrorSeverity base_severity(ErrorCategory category) {
  switch (category) {
    case ErrorCategory::kConnection:
    case ErrorCategory::kCommunication:
    case ErrorCategory::kTimeout:
    case ErrorCategory::kHealthCheck:
    case ErrorCategory::kPython:
      return ErrorSeverity::kMinor;
    case ErrorCategory::kInitialization:
    case ErrorCategory::kResource:
    case ErrorCategory::kSystem:
    case ErrorCategory::kCircuitOpen:
    case ErrorCategory::kSession:
      return ErrorSeverity::kMajor;
    case ErrorCategory::kInvalidRequest:
      return ErrorSeverity::kWarning;
  }
  return ErrorSeverity::kMajor;
}

ErrorSeverity classify_severity(ErrorCategory category, const ClassifyInput& input) {
  if (input.all_workers_affected && category != ErrorCategory::kInvalidRequest) {
    return ErrorSeverity::kCritical;
  }
  ErrorSeverity severity = base_severity(category);
  return input.attempt >= 3 ? raise(severity) : severity;
}

RecoveryStrategy strategy_for(ErrorCategory category, ErrorSeverity severity,
                              bool marked_retryable) {
  using S = RecoveryStrategy;
  switch (category) {
    case ErrorCategory::kInitialization:
      return pick(severity, S::kBackoffRetry, S::kFailover, S::kCircuitBreak);
    case ErrorCategory::kConnection:
    case ErrorCategory::kCommunication:
      return pick(severity, S::kImmediateRetry, S::kBackoffRetry, S::kFailover);
    case ErrorCategory::kTimeout:
      return pick(severity, S::kBackoffRetry, S::kBackoffRetry, S::kFailover);
    case ErrorCategory::kResource:
      return pick(severity, S::kBackoffRetry, S::kFailover, S::kCircuitBreak);
    case ErrorCategory::kHealthCheck:
      return pick(severity, S::kImmediateRetry, S::kBackoffRetry, S::kFailover);
    case ErrorCategory::kSystem:
      return pick(severity, S::kBackoffRetry, S::kBackoffRetry, S::kAbandon);
    case ErrorCategory::kCircuitOpen:
      return S::kFailover;
    case ErrorCategory::kPython:
      return marked_retryable ? S::kBackoffRetry : S::kAbandon;
    case ErrorCategory::kSession:
    case ErrorCategory::kInvalidRequest:
      return S::kAbandon;
  }
  return S::kAbandon;
}

void classify_error(Error& error, const ClassifyInput& input) {
  const bool marked = error.python && error.python->retryable.value_or(false);
  error.severity = classify_severity(error.category, input);
  RecoveryStrategy strategy = strategy_for(error.category, error.severity, marked);
  if (error.severity == ErrorSeverity::kCritical && input.attempt > 2) {
    strategy = RecoveryStrategy::kAbandon;
  }
  const bool reruns = allows_retry(strategy) || strategy == RecoveryStrategy::kFailover;
  if (reruns && input.may_have_run && !input.idempotent && !marked) {
    strategy = RecoveryStrategy::kAbandon;
  }
  error.strategy = strategy;
  error.context.attempt = static_cast<int>(std::max<std::uint32_t>(1, input.attempt));
}

}  // namespace bridgepool
