// RecoveryPolicy: the one decision every failure path of the pool consults (SPEC §4, §11 item 10).
//
// A failure path (exit watcher, health prober, checkin, a call that broke or timed out, a worker
// that never finished its handshake) describes what happened in a FailureReport; decide() says
// what to do with the worker, what to do with the request, and whether to start a replacement.
// The pool then carries it out. Keeping the rules in one pure function means they are written
// once, tested on a table, and cannot drift apart between the pool's threads. No I/O, no clock.
//
//   what happened        worker                        request
//   -------------------  ----------------------------  -------------------------------------------
//   process exited       remove (already gone)         retry elsewhere if it may (*), else error
//   health check failed  below limit: degrade + probe  error (never retried: the next probe is
//                        soon; at the limit: remove    the retry)
//   checkin error        below limit: degrade + probe  the worker's answer (the round trip worked;
//                        soon; at the limit: remove    the fault is the worker's)
//   protocol violation   kill (stream untrustworthy)   retry elsewhere if it may (*), else error
//   request timeout      kill (state unknown)          retry elsewhere if it may (*), else error
//   not delivered        remove (already gone)         retry elsewhere (it never ran: always safe)
//   python exception     keep (the round trip worked)  error; after a delay only if the worker
//                                                      marked it retryable
//   init failed          kill (no handshake: no way    retry elsewhere (it never got there); the
//                        to ask it to stop)            respawn backoff paces the replacement
//
//   (*) "may" = the request was not delivered, or the command is idempotent, or the worker marked
//       the error retryable. A delivered, non-idempotent request may already have run, so running
//       it again could do its side effect twice (SPEC §11 item 13).
//
// Every retry is also capped: once `attempts` reaches `max_attempts` the request returns its error.
// While the pool shuts down nothing is retried (new checkouts are refused anyway) and no
// replacement is started. Every kRemove/kKill otherwise starts a replacement (replace = true).
// "At the limit" means consecutive_failures >= the limit: with the default 3, failures 1 and 2
// degrade the worker, the 3rd removes it.
//
// Thread-safety: RecoveryPolicy is immutable after construction; decide() may be called from any
// thread concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "worker/worker_state_machine.h"

namespace bridgepool {

enum class FailureKind {
  kProcessExited,      // the process went away (exit, signal, EOF) after reading the request
  kHealthCheckFailed,  // a probe answered "unhealthy", failed or did not answer in time
  kCheckinError,       // the borrower reported a worker-level fault; the channel is trustworthy
  kProtocolViolation,  // bad frame, bad JSON, wrong reply id: the stream can no longer be trusted
  kRequestTimeout,     // no reply before the request deadline: the worker's state is unknown
  kNotDelivered,       // the worker was gone before it could read the request
  kPythonException,    // user code raised and the worker reported it in a normal reply
  kInitFailed,         // spawn failed, import error, or no handshake within init_timeout
};

enum class WorkerAction {
  kKeep,                 // back to ready; nothing is wrong with the worker
  kDegradeAndProbeSoon,  // mark degraded + unhealthy; probe after the short recheck interval
  kRemove,               // terminate gracefully (shutdown command, grace, SIGTERM, SIGKILL)
  kKill,                 // SIGKILL now: the worker's state or stream cannot be trusted
};

enum class RequestAction {
  kReturnResult,     // hand the caller what the worker answered
  kReturnError,      // fail the request with its error
  kRetryElsewhere,   // check out another worker and send the request again, now
  kRetryAfterDelay,  // send it again after retry_delay (any worker)
};

std::string_view failure_kind_name(FailureKind kind);        // "process_exited", ...
std::string_view worker_action_name(WorkerAction action);    // "keep", "degrade", "remove", "kill"
std::string_view request_action_name(RequestAction action);  // "return_result", ...

struct RecoveryLimits {
  std::uint32_t max_health_failures = 3;   // consecutive failed probes before removal
  std::uint32_t max_checkin_failures = 3;  // consecutive checkin errors before removal
  std::uint32_t max_attempts = 3;          // attempts per request, the first one included
  // kRetryAfterDelay waits retry_base_delay * 2^(attempts-1), capped at retry_max_delay:
  // 100 ms after the 1st attempt, 200 ms after the 2nd, 400 ms after the 3rd ... at most 2 s.
  std::chrono::milliseconds retry_base_delay{100};
  std::chrono::milliseconds retry_max_delay{2'000};
};

struct FailureReport {
  FailureKind kind = FailureKind::kProcessExited;
  // The worker's consecutive failures of this kind *including* this one (health or checkin).
  std::uint32_t consecutive_failures = 1;
  bool idempotent = false;        // the command was declared safe to run twice
  bool marked_retryable = false;  // the worker's error reply said "retryable": true
  bool delivered = true;          // the worker may have read the request (kNotDelivered: never)
  std::uint32_t attempts = 1;     // attempts made so far, the failed one included
  bool shutting_down = false;     // the pool is shutting down: no retries, no replacements

  // Whether running the request again is safe: idempotent, or the worker said so.
  bool retryable() const { return idempotent || marked_retryable; }
};

struct RecoveryDecision {
  WorkerAction worker = WorkerAction::kKeep;
  RequestAction request = RequestAction::kReturnError;
  bool replace = false;                                        // start a replacement worker
  std::chrono::milliseconds retry_delay{0};                    // > 0 only with kRetryAfterDelay
  TransitionReason transition = TransitionReason::kCheckinOk;  // to record on the worker
  // Short, for logs: "request_timeout: kill worker and replace, retry_elsewhere".
  std::string reason;

  bool removes_worker() const {
    return worker == WorkerAction::kRemove || worker == WorkerAction::kKill;
  }
};

class RecoveryPolicy {
 public:
  explicit RecoveryPolicy(RecoveryLimits limits = {}) : limits_(limits) {}

  // The decision for one failure, by the table above. Pure; any thread.
  RecoveryDecision decide(const FailureReport& report) const;

  const RecoveryLimits& limits() const { return limits_; }

 private:
  WorkerAction worker_action(const FailureReport& report) const;
  RequestAction request_action(const FailureReport& report) const;
  bool may_retry(const FailureReport& report) const;
  std::chrono::milliseconds retry_delay(std::uint32_t attempts) const;

  RecoveryLimits limits_;
};

}  // namespace bridgepool
