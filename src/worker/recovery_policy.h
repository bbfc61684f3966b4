// RecoveryPolicy: what a worker-level failure means for the *worker* — the one decision every
// failure path of the pool consults (SPEC §4, §11 item 10): the exit watcher, the health prober,
// a checkin error reported by a handler, a call that broke the protocol or missed its deadline,
// a worker found dead at checkout, a worker that never finished starting.
//
// A failure path describes what happened in a FailureReport; decide() says what to do with the
// worker and whether a replacement follows, and which transition reason to record. The pool then
// carries it out. What happens to the *request* is not decided here but by the one retry engine
// (src/resilience/retry_engine.h), from the error's classification: whether a request may run
// again depends on whether it was delivered, the command's idempotency and the worker's
// "retryable" mark, never on which path noticed the failure. No I/O, no clock.
//
//   what happened        worker
//   -------------------  -----------------------------------------------------------------------
//   process exited       remove (already gone: only reaping is left)
//   not delivered        remove (gone before it could read the request)
//   health check failed  below max_health_failures: degrade + probe soon; at the limit: remove
//   checkin error        below max_checkin_failures: degrade + probe soon; at the limit: remove
//                        (a handler said the worker is no longer trustworthy; its reply is good)
//   protocol violation   kill: a stream that broke once cannot be trusted again (a late reply
//                        would be read by the next borrower, SPEC §11 item 5)
//   request timeout      kill: its state is unknown; it must not run one more instruction of a
//                        request whose caller was already answered
//   init failed          kill: without a handshake there is no way to ask it to stop
//   python exception     keep: the round trip worked, the error belongs to the request
//
// "At the limit" means consecutive_failures >= the limit: with the default 3, failures 1 and 2
// degrade the worker, the 3rd removes it. Every removal starts a replacement unless the pool is
// shutting down.
//
// Thread-safety: immutable after construction; decide() may be called from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "bridgepool/worker_state.h"

namespace bridgepool {

enum class FailureKind {
  kProcessExited,      // the process went away (exit, signal, EOF) after reading the request
  kHealthCheckFailed,  // a probe answered "unhealthy", failed or did not answer in time
  kCheckinError,       // the handler marked its worker unhealthy; the channel is trustworthy
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

enum class WorkerFault;  // worker/worker.h: what a failed round trip says about the worker

// The failure kind of a round trip's fault (kNone, a Python error in a normal reply, reads as
// kPythonException).
FailureKind failure_kind_of(WorkerFault fault);

std::string_view failure_kind_name(FailureKind kind);      // "process_exited", ...
std::string_view worker_action_name(WorkerAction action);  // "keep", "degrade", "remove", "kill"

struct RecoveryLimits {
  std::uint32_t max_health_failures = 3;   // consecutive failed probes before removal
  std::uint32_t max_checkin_failures = 3;  // consecutive checkin errors before removal
};

struct FailureReport {
  FailureKind kind = FailureKind::kProcessExited;
  // The worker's consecutive failures of this kind *including* this one (health or checkin).
  std::uint32_t consecutive_failures = 1;
  bool shutting_down = false;  // the pool is shutting down: no replacement
};

struct RecoveryDecision {
  WorkerAction worker = WorkerAction::kKeep;
  bool replace = false;                                        // start a replacement worker
  TransitionReason transition = TransitionReason::kCheckinOk;  // to record on the worker
  std::string reason;  // short, for logs: "request_timeout: kill worker and replace"

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

  RecoveryLimits limits_;
};

}  // namespace bridgepool
