// ErrorClassifier: the one place that turns a failure into a severity and a recovery strategy
// (SPEC §6). Every Error that leaves the library passes through classify_error(); retries,
// breakers, failover and the retry engine act on the strategy it chose, never on
// message text. Pure functions of their inputs: no clock, no I/O, table-tested.
//
// Severity = base by category, raised one level once 3 attempts have failed, critical when
// every worker is affected (no worker in service):
//
//   category          base      |  strategy by severity:  warning/minor     major critical
//   ----------------  --------  |  ---------------------  ----------------  --------------
//   ------------- initialization    major     |                         backoff_retry     failover
//   circuit_break connection        minor     |                         immediate_retry
//   backoff_retry   failover communication     minor     |                         immediate_retry
//   backoff_retry   failover timeout           minor     |                         backoff_retry
//   backoff_retry   failover resource          major     |                         backoff_retry
//   failover        circuit_break health_check      minor     | immediate_retry   backoff_retry
//   failover system            major     |                         backoff_retry     backoff_retry
//   abandon circuit_open      major     |                         failover          failover
//   failover session           major     |                         abandon (the caller must rebuild
//   the session's state) python            minor     |                         abandon;
//   backoff_retry if the worker marked it retryable invalid_request   warning   | abandon (retrying
//   cannot fix a bad request)
//
// Then two overrides, in this order:
//   1. critical beyond 2 attempts -> abandon (a whole-pool failure that survived a retry and a
//      failover will not be fixed by a third try).
//   2. a retry strategy for a request that may already have run (delivered, not idempotent, not
//      marked retryable by the worker) -> abandon: running it twice could repeat its side effect
//      (SPEC §11 item 13). Failover is refused for the same reason.
//
// Example: the 4th attempt of a connection error (worker died mid-request) on an idempotent
// command: base minor, raised to major after 3 attempts -> backoff_retry.
#pragma once

#include <cstdint>

#include "bridgepool/error.h"

namespace bridgepool {

struct ClassifyInput {
  std::uint32_t attempt = 1;          // attempts made so far, the failed one included
  bool all_workers_affected = false;  // no worker of the pool was in service at the time
  // Whether the request may have run on a worker (it was written to one that then failed). A
  // request refused before any worker read it (checkout timeout, breaker, not delivered) has not.
  bool may_have_run = false;
  bool idempotent = false;  // the command was declared safe to run twice
};

ErrorSeverity base_severity(ErrorCategory category);
// Base severity raised per the rules above (pure).
ErrorSeverity classify_severity(ErrorCategory category, const ClassifyInput& input);
// The matrix cell, before the overrides (pure).
RecoveryStrategy strategy_for(ErrorCategory category, ErrorSeverity severity,
                              bool marked_retryable);
// Fills error.severity and error.strategy (and error.context.attempt). Pure; any thread.
void classify_error(Error& error, const ClassifyInput& input);

}  // namespace bridgepool
