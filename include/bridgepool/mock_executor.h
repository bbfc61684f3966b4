// MockExecutor: the last link of the fallback chain (pool → single bridge → mock, SPEC §6), and a
// stand-in for a Pool in tests of code written against the Executor interface — an Executor that
// runs no Python. It answers the Python runtime's built-in commands itself, and every other
// command with a C++ handler the user registered (add_handler); it knows nothing of any Python
// handler module, so what a non-built-in command returns is exactly what its handler says.
//
// Built-ins: the same result keys and JSON types as python/bridgepool_worker/builtin_commands.py
// (an integration test compares them with a real worker's). Values that describe a process do
// not: worker_id is config.worker_id ("mock"), pid is 0 (there is no process — never pass it to
// kill(2), where 0 means "my process group"), rss_mb is 0.0, uptime_s counts from construction.
//
//   command        result
//   -------------  ---------------------------------------------------------------------------
//   ping           "pong"
//   health_check   {"status": "healthy", "pid": 0, "worker_id", "uptime_s", "requests_served",
//                  "rss_mb": 0.0, "detail": []}
//   get_stats      {"pid": 0, "worker_id", "uptime_s", "requests_served", "errors", "sessions",
//                  "rss_mb": 0.0, "commands": {name: calls}, "handlers_version"}
//   list_commands  {"commands": [{"name", "idempotent", "builtin"}, ...]} sorted by name
//   close_session  {"closed", "session_id"}: drops the state of args.session_id (else of the
//                  call's session); InvalidArguments (invalid_request) if it is not a string
//   shutdown       {"shutting_down": true}; the mock has nothing to stop and keeps serving
//
// requests_served counts every answered request, errors included (health_check and get_stats
// report the count before themselves); sessions counts sessions in which a handler ran and that
// are not closed. Built-in names are reserved, as in the runtime: add_handler refuses them.
//
// Calls: a request is validated like the pool's (command 1..256 bytes, no NUL; args an object;
// session id 1..256 bytes) and, since the mock never re-encodes names the way the wire does,
// command names and session ids must also be valid UTF-8 — otherwise invalid_request, and no
// handler runs. An unknown command is the invalid_request error every executor gives ("unknown
// command 'x'; available commands: ..."). A handler's
// error is returned with its context filled in (command, session, worker, adapter "mock",
// elapsed) and classified as the bridge classifies a worker's reply (it may have run; retried
// only if the handler was registered idempotent). An exception thrown by a handler becomes a
// `system` error; a result that encodes to more than config.max_result_bytes becomes the
// SerializationError a worker sends for a result too large for a frame. Nothing inside a result
// marks it as mock-served: the caller's CallReport does (adapter "mock").
//
// Sessions: each session has a state object (Context::state(), the runtime's ctx.session),
// created by the first handler call in it and dropped by close_session — the built-in command or
// the Executor method. Handler calls in one session run one at a time (as on the one worker a
// session lives on); calls outside a session, or in different sessions, run concurrently.
//
// Thread-safety: every method may be called from any thread concurrently. Handlers (and the
// on_chunk callbacks they feed) run on the calling thread with no executor lock held, so a
// handler may call the executor again — any command, any session (a nested call in its own
// session runs at once, on the same state) — and add_handler; a handler replaced while it runs
// finishes its call. A handler may run on several threads at once: it must be thread-safe itself.
// Nothing throws.
#pragma once

#include <chrono>
#include <cstddef>
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
  // get_stats' handlers_version (a worker reports its handler module's __version__; null if none).
  std::optional<std::string> handlers_version;
  // A result whose JSON encoding is longer is a SerializationError, as a worker's reply would be
  // (the pool's default max_frame_bytes).
  std::size_t max_result_bytes = std::size_t{64} * 1024 * 1024;
};

class MockExecutor final : public Executor {
 public:
  // What a handler sees of its call besides the arguments. Lives for the duration of the call.
  // Public constructor so that a test may call a handler directly.
  class Context {
   public:
    // `on_chunk` may be null (nobody listens); it must outlive the Context.
    Context(std::string_view command, std::string_view session_id, Json& state,
            const std::function<void(const Json&)>* on_chunk = nullptr)
        : command_(command), session_id_(session_id), state_(state), on_chunk_(on_chunk) {}

    std::string_view command() const { return command_; }
    std::string_view session_id() const { return session_id_; }  // "" outside a session
    // The session's state: a JSON object kept until the session is closed. Outside a session, an
    // empty object that lives for this call only (as the runtime's ctx.session).
    Json& state() { return state_; }
    // Hands `chunk` to the caller's ExecuteOptions::on_chunk, if it set one (a streaming
    // command's progress); the caller gets every chunk before the result.
    void send_chunk(const Json& chunk) const {
      if (on_chunk_ && *on_chunk_) (*on_chunk_)(chunk);
    }

   private:
    std::string_view command_;
    std::string_view session_id_;
    Json& state_;
    const std::function<void(const Json&)>* on_chunk_;
  };

  // A command's implementation: the result, or an Error (its category is what the caller sees;
  // set Error::python to pass a Python exception type or a retryable mark). May throw: the
  // executor turns the exception into a `system` error.
  using Handler = std::function<Result<Json>(const Json& args, Context& context)>;

  explicit MockExecutor(MockExecutorConfig config = {},
                        const Clock& clock = SteadyClock::instance());
  ~MockExecutor() override;
  MockExecutor(const MockExecutor&) = delete;
  MockExecutor& operator=(const MockExecutor&) = delete;

  // The built-in's or the handler's answer, or the error (see above). Fills options.report
  // (adapter "mock", worker_id, attempts 1; attempts 0 and no worker_id for a request rejected
  // before any command ran) on success and failure. Any thread.
  Result<Json> execute(std::string_view command, Json args = Json::object(),
                       const ExecuteOptions& options = {}) override;
  Result<Json> execute_in_session(std::string_view session_id, std::string_view command,
                                  Json args = Json::object(),
                                  const ExecuteOptions& options = {}) override;
  // Drops the session's state. True if any call was made in the session since it was last
  // closed; invalid_request for an empty id. Any thread.
  Result<bool> close_session(std::string_view session_id) override;
  std::string_view kind() const override { return "mock"; }

  // Registers `handler` for `command`, or replaces the one registered before (calls already
  // running finish with the old one); `idempotent` is what list_commands reports and what the
  // classifier is told. invalid_request, and nothing registered, if the name would be refused
  // as a request's command, is a built-in's, or `handler` is empty. Any thread.
  [[nodiscard]] Result<void> add_handler(std::string command, Handler handler,
                                         bool idempotent = false);

  // Every command answered, built-ins included, sorted by name. Any thread.
  std::vector<std::string> commands() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bridgepool
