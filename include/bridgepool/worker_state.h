// Worker states, health and transition reasons (SPEC §4), as seen in Pool::workers(), events and
// logs. The transition table itself lives in the library's WorkerStateMachine:
//
//   initializing -> ready | terminated
//   ready        -> busy | degraded | terminating
//   busy         -> ready | degraded | terminating
//   degraded     -> ready | terminating
//   terminating  -> terminated
//   terminated   -> (none)
//
// A worker accepts work only when ready and healthy. to_string() gives the stable lower_snake
// names used in logs, events, JSON and metric labels; *_from_string() reads them back.
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string_view>

namespace bridgepool {

enum class WorkerState { kInitializing, kReady, kBusy, kDegraded, kTerminating, kTerminated };
enum class WorkerHealth { kHealthy, kUnhealthy, kUnknown };

enum class TransitionReason {
  kInitComplete,
  kCheckout,
  kCheckinOk,
  kCheckinError,  // the handler said its worker is no longer trustworthy
  kHealthCheckPassed,
  kHealthCheckFailed,
  kMaxFailures,
  kTimeout,
  kExited,
  kShutdown,
  kRecycled,
  kReplaced,
  kProtocolError,  // the stream broke the protocol (bad frame, wrong id)
  kInitFailed,     // spawn failed, import error or no handshake in time
  kClosed,         // the borrower checked the worker in with `close`
};

std::string_view to_string(WorkerState state);        // "initializing", "ready", ...
std::string_view to_string(WorkerHealth health);      // "healthy", "unhealthy", "unknown"
std::string_view to_string(TransitionReason reason);  // "init_complete", "checkout", ...
std::optional<WorkerState> worker_state_from_string(std::string_view name);
std::optional<WorkerHealth> worker_health_from_string(std::string_view name);

}  // namespace bridgepool
