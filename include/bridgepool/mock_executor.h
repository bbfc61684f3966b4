// MockExecutor: the last link of the fallback chain (pool → single bridge → mock, SPEC §6) — an
// Executor that answers the Python runtime's built-in commands and every command of
// examples/handlers.py deterministically, in C++, with no Python process. It exists so that a
// service keeps answering (with canned data) when no worker can run, and so that code above the
// Executor interface can be tested without Python.
//
// Replies have the same shape as the Python ones (same keys, same JSON types), and errors the
// same category, message ("ValueError: programs need a session") and PythonError type as the
// pool would return for the same request; only the values that describe a process differ:
// worker_id is config.worker_id ("mock"), pid is 0 (there is no process — never pass it to
// kill(2), where 0 means "my process group"), rss_mb is 0.0, uptime_s counts from construction.
// Nothing inside a result marks it as mock-served: callers learn that from the adapter that
// answered (kind() == "mock", CallReport::adapter, Error::context.adapter).
//
//   command          mock behaviour
//   ---------------  ------------------------------------------------------------------------
//   ping             "pong"
//   health_check     {"status": "healthy", "pid": 0, "worker_id", "uptime_s", "requests_served",
//                    "rss_mb": 0.0, "detail": []}
//   get_stats        {"pid", "worker_id", "uptime_s", "requests_served", "errors", "sessions",
//                    "rss_mb", "commands": {name: calls}, "handlers_version"}
//   list_commands    {"commands": [{"name", "idempotent", "builtin"}, ...]} sorted by name
//   close_session    {"closed", "session_id"}; drops the session's state
//   shutdown         {"shutting_down": true}; the mock has nothing to stop and keeps serving
//   echo             its arguments
//   sleep            {"slept_ms": ms} after sleeping min(ms, config.max_sleep) (0 by default:
//                    no sleep at all); a sleep longer than the request's timeout is the timeout
//                    error a real worker's would be, returned at once
//   fail             the python error the handler raises (type from args.type among Python's
//                    builtin exception classes, else RuntimeError; message; retryable)
//   crash            cannot crash anything. A connection error ("worker mock (pid 0) exited
//                    during request (exit code 1; simulated ...)"), because that is what the
//                    caller of a real crash gets: a caller cannot tell the shapes apart, and the
//                    classifier treats it exactly like a real crash (connection; crash is not
//                    idempotent and may have run, so it is not retried). Signals a worker
//                    survives (0, SIGINT, SIGPIPE, SIGCHLD, SIGCONT, SIGURG, SIGXFSZ, SIGWINCH)
//                    return {"survived_signal": n}; stop signals give the timeout error a stopped
//                    worker would; an invalid signal number the OSError os.kill raises
//   compute          {"n", "value"}: the handler's sum of i*i % 7 for i < n, in O(1)
//   whoami           {"pid": 0, "worker_id", "requests_served", "handlers_version"}
//   spam             {"printed": lines}; prints nothing (there is no worker output to capture)
//   stream           options.on_chunk({"i": i}) for i < count, then {"count"}
//   configure,       {"config": {...}}: one settings object per MockExecutor (a Python worker's
//   get_config       is process-global; the mock is one "process")
//   create_program,  the DSPy-like programs, kept per session id with the same validation,
//   execute_program, errors, "prog-N" numbering and mock_language_model ("mock-<field>-" + the
//   list_programs,   first 12 hex digits of the SHA-256 of the inputs as compact, key-sorted
//   delete_program   JSON), so equal inputs give the outputs a Python worker gives
//
// Requests are validated like the pool's (validate_request: args must be an object, names
// bounded); an unknown command is an invalid_request error whose message lists the available
// commands, as the Python runtime's UnknownCommand reply does. Python's conversions are mimicked
// where handlers apply them (int("12") == 12, int(2.7) == 2, the TypeError/ValueError texts);
// repr() of unusual non-ASCII characters in error messages is approximate.
//
// add_handler() registers a canned answer for another command (or replaces one above). Sessions:
// state is created per session id by the first non-built-in command in it (as the runtime does)
// and dropped by close_session.
//
// Thread-safety: every method may be called from any thread concurrently. Handlers registered
// with add_handler, and on_chunk callbacks, run on the calling thread with no lock held. Nothing
// throws (an exception from a registered handler becomes a `system` error).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bridgepool/clock.h"
#include "bridgepool/error.h"
#include "bridgepool/executor.h"

namespace bridgepool {

struct MockExecutorConfig {
  std::string worker_id = "mock";  // reported where a worker reports its id
  // handlers_version reported by whoami/get_stats: examples/handlers.py's __version__.
  std::optional<std::string> handlers_version = std::string("examples-1");
  milliseconds request_timeout{60'000};  // when ExecuteOptions::timeout is not set
  milliseconds max_sleep{0};             // `sleep` really sleeps at most this long
};

class MockExecutor final : public Executor {
 public:
  // A canned command: `session` is "" outside a session. Its errors are returned as they are,
  // with context (command, worker, session, adapter) filled in.
  using Handler = std::function<Result<Json>(const Json& args, std::string_view session)>;

  explicit MockExecutor(MockExecutorConfig config = {},
                        const Clock& clock = SteadyClock::instance());
  ~MockExecutor() override;
  MockExecutor(const MockExecutor&) = delete;
  MockExecutor& operator=(const MockExecutor&) = delete;

  // The answer of the command (table above) or its error. Fills options.report (adapter "mock",
  // worker_id, attempts 1) when set. Any thread.
  Result<Json> execute(std::string_view command, Json args = Json::object(),
                       const ExecuteOptions& options = {}) override;
  Result<Json> execute_in_session(std::string_view session_id, std::string_view command,
                                  Json args = Json::object(),
                                  const ExecuteOptions& options = {}) override;
  // Drops the session's state (programs). True if the session was known. Any thread.
  Result<bool> close_session(std::string_view session_id) override;
  std::string_view kind() const override { return "mock"; }

  // Registers `handler` for `command`, replacing the built-in answer if there is one;
  // `idempotent` is what list_commands reports. Any thread.
  void add_handler(std::string command, Handler handler, bool idempotent = false);

  // Every command answered, sorted by name. Any thread.
  std::vector<std::string> commands() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bridgepool
