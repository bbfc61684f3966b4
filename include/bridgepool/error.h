// Error and Result: the one way failures leave the library.
//
// Every public function that can fail returns Result<T> = tl::expected<T, Error>; nothing throws
// across the API. An Error carries a category (what kind of failure, and so what a caller may do
// next), a human message, and the context in which it happened (command, worker, timings, cause).
// The resilience layer's classifier (src/resilience/error_classifier.h) derives the severity and
// the recovery strategy from the category, the attempt number and how much of the pool is
// affected (SPEC §6); retries, breakers and failover act on the strategy, never on message text.
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

// How bad a failure is (SPEC §6): a base per category, raised one level after 3 attempts, and
// critical when every worker is affected.
enum class ErrorSeverity { kWarning, kMinor, kMajor, kCritical };

// What a caller (or the resilience layer) should do next. Retry budgets by strategy: immediate
// up to 3 attempts, backoff up to 5, failover once, circuit_break and abandon never.
enum class RecoveryStrategy {
  kImmediateRetry,  // try again now (on another worker): the failure was local and transient
  kBackoffRetry,    // try again after a growing delay: the cause needs time to clear
  kCircuitBreak,    // stop sending: the target is failing as a whole; let the breaker open
  kFailover,        // the target cannot serve; another adapter in the chain may
  kAbandon,         // give up: retrying cannot help (deterministic error, bad request)
};

std::string_view severity_name(ErrorSeverity severity);  // "warning", "minor", "major", "critical"
std::string_view strategy_name(RecoveryStrategy strategy);  // "immediate_retry", ..., "abandon"
std::optional<ErrorSeverity> severity_from_name(std::string_view name);
std::optional<RecoveryStrategy> strategy_from_name(std::string_view name);
// Attempts (the first included) a strategy allows: 3, 5, 2 (one failover), 1, 1.
std::uint32_t attempt_budget(RecoveryStrategy strategy);
// True for the two retry strategies.
inline bool allows_retry(RecoveryStrategy strategy) {
  return strategy == RecoveryStrategy::kImmediateRetry ||
         strategy == RecoveryStrategy::kBackoffRetry;
}

// Details of a Python exception reported by the worker in an `ok: false` reply.
struct PythonError {
  std::string type;               // e.g. "ValueError"
  std::string traceback;          // formatted traceback, may be empty
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
  std::string cause;    // underlying cause: errno text, nested error, exit status ...
  std::string adapter;  // which adapter of a fallback chain failed ("pool", "bridge", "mock")
};

struct Error {
  ErrorCategory category = ErrorCategory::kSystem;
  std::string message;
  ErrorContext context;
  std::optional<PythonError> python;  // set when category == kPython
  // Filled by the classifier (classify_error) before an Error leaves the library; an Error that
  // was never classified keeps these conservative defaults (no retry).
  ErrorSeverity severity = ErrorSeverity::kMajor;
  RecoveryStrategy strategy = RecoveryStrategy::kAbandon;

  bool retryable() const { return allows_retry(strategy); }
  // Adds a note to context.cause: "first; second".
  void append_cause(std::string_view note);

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
