// Error and Result: the one way failures leave the library.
//
// Every public function that can fail returns Result<T> = tl::expected<T, Error>; nothing throws
// across the API. An Error carries a category (what kind of failure, and so what a caller may do
// next), a human message, and the context in which it happened (command, worker, timings, cause).
// The resilience layer (later) derives severity and recovery strategy from the category; the pool
// already uses the category to decide whether a request may be re-routed to another worker.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

namespace bridgepool {

// Categories of SPEC §6, plus kInvalidRequest for input rejected before any worker is touched.
enum class ErrorCategory {
  kInitialization,  // a worker could not be started (spawn failed, import error, no handshake)
  kConnection,      // the worker process went away (exit, EPIPE, EOF) around a request
  kCommunication,   // the stream broke its contract: bad frame, bad JSON, wrong reply id
  kTimeout,         // a deadline passed: checkout wait, request, handshake
  kResource,        // a bound was hit: queue full, pool shut down, fds or processes exhausted
  kHealthCheck,     // a health probe failed
  kSession,         // session affinity could not be honoured (session_lost)
  kPython,          // user code raised; the round trip itself worked
  kCircuitOpen,     // a circuit breaker refused the call without touching a worker
  kSystem,          // an unexpected OS error
  kInvalidRequest,  // the request itself is malformed (bad command name, args not an object)
};

// Stable lower_snake name ("connection", "python", ...) used in logs, JSON and metrics labels.
std::string_view category_name(ErrorCategory category);
std::optional<ErrorCategory> category_from_name(std::string_view name);

// Details of a Python exception reported by the worker in an `ok: false` reply.
struct PythonError {
  std::string type;        // e.g. "ValueError"
  std::string traceback;   // formatted traceback, may be empty
  std::optional<bool> retryable;  // as marked by the worker, if it said
};

// Where and when a failure happened. Fields are filled by whichever layer knows them.
struct ErrorContext {
  std::string operation;   // "execute", "checkout", "spawn", "handshake", ...
  std::string command;     // the Python command, if any
  std::string session_id;  // if the call was in a session
  std::string worker_id;   // the worker involved, if any
  int attempt = 1;
  std::chrono::microseconds elapsed{0};     // time since the call began
  std::chrono::microseconds queue_wait{0};  // time spent waiting for a worker
  std::string pool_name;
  std::string cause;       // underlying cause: errno text, nested error, exit status ...
};

struct Error {
  ErrorCategory category = ErrorCategory::kSystem;
  std::string message;
  ErrorContext context;
  std::optional<PythonError> python;  // set when category == kPython

  Error() = default;
  Error(ErrorCategory c, std::string msg) : category(c), message(std::move(msg)) {}

  // "connection: worker w3 exited during request (signal 9) [command=echo worker=w3 ...]"
  // The bracket lists only fields that are set (attempt from 2 on, times when non-zero), in the
  // order command, worker, session, attempt, elapsed_us, queue_wait_us, cause.
  std::string to_string() const;
  // Multi-line block with every context field; for logs.
  std::string format_for_logging() const;
};

template <typename T>
using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> make_error(ErrorCategory category, std::string message) {
  return tl::unexpected<Error>(Error(category, std::move(message)));
}

}  // namespace bridgepool
