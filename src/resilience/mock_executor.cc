// MockExecutor: see include/bridgepool/mock_executor.h for what it answers. This file holds the
// command table (built-ins and registered handlers), the per-session state, the call path
// (validate → look up → run with no lock held → check → classify) and the six built-ins.
//
// Locks: `mu` guards the table, the counters and the session map, and is never held while a
// built-in or a handler runs, nor while waiting for a session's lock; a session's own mutex is
// held while a handler runs in that session. So the only order is "session, then mu", and a
// handler may call back into the executor.
#include "bridgepool/mock_executor.h"

#include <cmath>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "pool/request_validation.h"
#include "resilience/error_classifier.h"

namespace bridgepool {
namespace {

// One session's handler state (Context::state()). Shared with the handlers running in it, so a
// close_session while one runs drops the session without pulling the state from under it.
struct SessionState {
  // Handler calls in one session run one at a time. Recursive: a handler's nested call in its
  // own session, on the same thread, runs at once instead of deadlocking.
  std::recursive_mutex mu;
  Json state = Json::object();
};

// Counts the bytes a serializer writes, keeping none of them.
class ByteCounter final : public nlohmann::detail::output_adapter_protocol<char> {
 public:
  void write_character(char) override { ++count; }
  void write_characters(const char*, std::size_t length) override { count += length; }
  std::size_t count = 0;
};

// Length of `value` as compact JSON (what a worker would put in its reply frame), without
// building the string: a handler's huge result is measured, not copied.
std::size_t encoded_size(const Json& value) {
  auto counter = std::make_shared<ByteCounter>();
  nlohmann::detail::serializer<Json> serializer(counter, ' ', Json::error_handler_t::replace);
  serializer.dump(value, /*pretty_print=*/false, /*ensure_ascii=*/false, /*indent_step=*/0);
  return counter->count;
}

// type(value).__name__ of the JSON value as Python decodes it, for close_session's message.
std::string_view python_type_name(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null:
      return "NoneType";
    case Json::value_t::boolean:
      return "bool";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "int";
    case Json::value_t::number_float:
      return "float";
    case Json::value_t::string:
      return "str";
    case Json::value_t::array:
      return "list";
    case Json::value_t::object:
      return "dict";
    default:
      return value.type_name();
  }
}

// The Error the pool makes of an error reply the runtime itself sends (Worker::python_error):
// `category` with a PythonError of `type`, never marked retryable, no traceback (no user frame).
Error runtime_error(ErrorCategory category, std::string_view type, std::string_view message) {
  Error e(category, fmt::format("{}: {}", type, message));
  e.python = PythonError{std::string(type), "", false};
  return e;
}

Error invalid(std::string_view operation, std::string message) {
  Error e(ErrorCategory::kInvalidRequest, std::move(message));
  e.context.operation = operation;
  return e;
}

}  // namespace

struct MockExecutor::Impl {
  // What a built-in sees of its call.
  struct BuiltinCall {
    const Json& args;
    std::optional<std::string_view> session;
    std::uint64_t served_before;  // requests answered before this one
  };
  using Builtin = Result<Json> (Impl::*)(const BuiltinCall&);

  struct Command {
    bool idempotent = false;
    Builtin builtin = nullptr;               // a built-in, or else
    std::shared_ptr<const Handler> handler;  // a registered handler (shared: replaceable mid-call)
    std::uint64_t calls = 0;                 // get_stats' "commands"
  };

  // What one call runs, copied out of the table under mu.
  struct Dispatch {
    bool idempotent = false;
    Builtin builtin = nullptr;
    std::shared_ptr<const Handler> handler;
    std::shared_ptr<SessionState> session_state;  // null outside a session and for built-ins
    std::uint64_t served_before = 0;
  };

  Impl(MockExecutorConfig cfg, const Clock& c)
      : config(std::move(cfg)), clock(c), started_at(c.now()) {
    // python/bridgepool_worker/registry.py BUILTIN_COMMANDS, with their idempotent flags.
    commands["ping"] = Command{true, &Impl::ping, nullptr, 0};
    commands["health_check"] = Command{true, &Impl::health_check, nullptr, 0};
    commands["get_stats"] = Command{true, &Impl::get_stats, nullptr, 0};
    commands["list_commands"] = Command{true, &Impl::list_commands, nullptr, 0};
    commands["close_session"] = Command{true, &Impl::close_session_command, nullptr, 0};
    commands["shutdown"] = Command{false, &Impl::shutdown, nullptr, 0};
  }

  const MockExecutorConfig config;
  const Clock& clock;
  const TimePoint started_at;

  mutable std::mutex mu;  // guards everything below; see the file comment for the lock order
  std::map<std::string, Command, std::less<>> commands;
  // Every session a call was made in since it was last closed; the state is null while only
  // built-ins ran in it (the runtime creates a session's dict for handler calls only).
  std::unordered_map<std::string, std::shared_ptr<SessionState>> sessions;
  std::uint64_t requests_served = 0;
  std::uint64_t errors = 0;

  Result<Json> run(std::optional<std::string_view> session, std::string_view command,
                   const Json& args, const ExecuteOptions& options);
  Result<void> validate(std::optional<std::string_view> session, std::string_view command,
                        const Json& args) const;
  Result<Json> call_handler(const Dispatch& dispatch, std::string_view command,
                            std::optional<std::string_view> session, const Json& args,
                            const ExecuteOptions& options) const;
  Result<Json> check_size(Result<Json> result, std::string_view command) const;
  Result<Json> finish(Result<Json> result, std::string_view command,
                      std::optional<std::string_view> session, bool idempotent,
                      const ExecuteOptions& options, TimePoint started) const;
  Result<Json> unknown_command(std::string_view command) const;  // mu held
  double uptime_s() const;

  // The built-ins (python/bridgepool_worker/builtin_commands.py).
  Result<Json> ping(const BuiltinCall&) { return Json("pong"); }
  Result<Json> health_check(const BuiltinCall& call);
  Result<Json> get_stats(const BuiltinCall& call);
  Result<Json> list_commands(const BuiltinCall& call);
  Result<Json> close_session_command(const BuiltinCall& call);
  Result<Json> shutdown(const BuiltinCall&) { return Json{{"shutting_down", true}}; }
};

// ---- the call path ----

Result<Json> MockExecutor::Impl::run(std::optional<std::string_view> session,
                                     std::string_view command, const Json& args,
                                     const ExecuteOptions& options) {
  const TimePoint started = clock.now();
  if (auto valid = validate(session, command, args); !valid) {
    if (options.report) *options.report = CallReport{"mock", "", 0, {}};
    return tl::unexpected(std::move(valid.error()));
  }
  Dispatch dispatch;
  {
    std::lock_guard lock(mu);
    dispatch.served_before = requests_served;
    auto it = commands.find(command);
    if (it == commands.end()) {
      ++requests_served;
      ++errors;
      return finish(unknown_command(command), command, session, false, options, started);
    }
    Command& found = it->second;
    ++found.calls;
    dispatch.idempotent = found.idempotent;
    dispatch.builtin = found.builtin;
    dispatch.handler = found.handler;
    if (session) {
      std::shared_ptr<SessionState>& state = sessions[std::string(*session)];
      if (!found.builtin && !state) state = std::make_shared<SessionState>();
      if (!found.builtin) dispatch.session_state = state;
    }
  }
  Result<Json> result =
      dispatch.builtin
          ? (this->*dispatch.builtin)(BuiltinCall{args, session, dispatch.served_before})
          : call_handler(dispatch, command, session, args, options);
  result = check_size(std::move(result), command);
  {
    std::lock_guard lock(mu);
    ++requests_served;
    if (!result) ++errors;
  }
  return finish(std::move(result), command, session, dispatch.idempotent, options, started);
}

// validate_request: the checks every executor makes (UTF-8 included; its context holds only
// valid UTF-8, so it may be logged or sent as JSON). The error is classified here.
Result<void> MockExecutor::Impl::validate(std::optional<std::string_view> session,
                                          std::string_view command, const Json& args) const {
  Result<void> valid = validate_request(session, command, args);
  if (valid) return valid;
  Error& e = valid.error();
  e.context.adapter = "mock";
  classify_error(e, ClassifyInput{});
  return valid;
}

// Runs a registered handler: with the session's lock held in a session, and with the boundary
// that turns its exceptions (user code) into an Error.
Result<Json> MockExecutor::Impl::call_handler(const Dispatch& dispatch, std::string_view command,
                                              std::optional<std::string_view> session,
                                              const Json& args,
                                              const ExecuteOptions& options) const {
  try {
    if (!dispatch.session_state) {
      Json scratch = Json::object();
      Context context(command, "", scratch, &options.on_chunk);
      return (*dispatch.handler)(args, context);
    }
    std::lock_guard lock(dispatch.session_state->mu);
    Context context(command, *session, dispatch.session_state->state, &options.on_chunk);
    return (*dispatch.handler)(args, context);
  } catch (const std::exception& ex) {
    return make_error(ErrorCategory::kSystem,
                      fmt::format("mock handler for '{}' threw: {}", command, ex.what()));
  } catch (...) {
    return make_error(ErrorCategory::kSystem,
                      fmt::format("mock handler for '{}' threw a non-exception", command));
  }
}

// A result no worker could send: the runtime's reply for a result over the frame limit.
Result<Json> MockExecutor::Impl::check_size(Result<Json> result, std::string_view command) const {
  if (!result) return result;
  const std::size_t size = encoded_size(*result);
  if (size <= config.max_result_bytes) return result;
  return tl::unexpected(runtime_error(
      ErrorCategory::kPython, "SerializationError",
      fmt::format("result of command '{}' encodes to {} bytes, more than the {}-byte frame limit",
                  command, size, config.max_result_bytes)));
}

Result<Json> MockExecutor::Impl::finish(Result<Json> result, std::string_view command,
                                        std::optional<std::string_view> session, bool idempotent,
                                        const ExecuteOptions& options, TimePoint started) const {
  if (options.report) *options.report = CallReport{"mock", config.worker_id, 1, {}};
  if (result) return result;
  Error& e = result.error();
  e.context.command = std::string(command);
  if (e.context.operation.empty()) e.context.operation = "execute";
  if (e.context.worker_id.empty()) e.context.worker_id = config.worker_id;
  if (session) e.context.session_id = std::string(*session);
  e.context.adapter = "mock";
  e.context.elapsed = std::chrono::duration_cast<std::chrono::microseconds>(clock.now() - started);
  // As the bridge classifies its replies: a request that reached a "worker" may have run.
  const bool may_have_run =
      e.category == ErrorCategory::kConnection || e.category == ErrorCategory::kCommunication ||
      e.category == ErrorCategory::kPython || e.category == ErrorCategory::kTimeout;
  classify_error(e, ClassifyInput{1, false, may_have_run, idempotent});
  return result;
}

Result<Json> MockExecutor::Impl::unknown_command(std::string_view command) const {
  std::vector<std::string> available;
  for (const auto& [name, unused] : commands) available.push_back(name);
  return tl::unexpected(unknown_command_error(command, available));
}

double MockExecutor::Impl::uptime_s() const {
  const std::chrono::duration<double> up = clock.now() - started_at;
  return std::round(up.count() * 1e6) / 1e6;  // round(..., 6) like the runtime's uptime_since()
}

// ---- built-ins ----

Result<Json> MockExecutor::Impl::health_check(const BuiltinCall& call) {
  return Json{{"status", "healthy"},
              {"pid", 0},
              {"worker_id", config.worker_id},
              {"uptime_s", uptime_s()},
              {"requests_served", call.served_before},
              {"rss_mb", 0.0},
              {"detail", Json::array()}};
}

Result<Json> MockExecutor::Impl::get_stats(const BuiltinCall& call) {
  Json calls = Json::object();
  std::uint64_t with_state = 0, errors_so_far = 0;
  {
    std::lock_guard lock(mu);
    for (const auto& [name, command] : commands) calls[name] = command.calls;
    for (const auto& [id, state] : sessions) with_state += state ? 1 : 0;
    errors_so_far = errors;
  }
  return Json{{"pid", 0},
              {"worker_id", config.worker_id},
              {"uptime_s", uptime_s()},
              {"requests_served", call.served_before},
              {"errors", errors_so_far},
              {"sessions", with_state},
              {"rss_mb", 0.0},
              {"commands", std::move(calls)},
              {"unhealthy_marks", 0},
              {"last_unhealthy", nullptr},
              {"sentinel_pid", 0},
              {"handlers_version",
               config.handlers_version ? Json(*config.handlers_version) : Json(nullptr)}};
}

Result<Json> MockExecutor::Impl::list_commands(const BuiltinCall&) {
  Json list = Json::array();
  std::lock_guard lock(mu);
  for (const auto& [name, command] : commands) {
    list.push_back(Json{{"name", name},
                        {"idempotent", command.idempotent},
                        {"builtin", command.builtin != nullptr}});
  }
  return Json{{"commands", std::move(list)}};
}

Result<Json> MockExecutor::Impl::close_session_command(const BuiltinCall& call) {
  Json session_id = nullptr;
  if (auto given = call.args.find("session_id"); given != call.args.end() && !given->is_null()) {
    session_id = *given;
  } else if (call.session) {
    session_id = std::string(*call.session);
  }
  if (!session_id.is_null() && !session_id.is_string()) {
    return tl::unexpected(runtime_error(
        ErrorCategory::kInvalidRequest, "InvalidArguments",
        fmt::format("session_id must be a string, got {}", python_type_name(session_id))));
  }
  bool closed = false;
  if (session_id.is_string()) {
    std::lock_guard lock(mu);
    auto it = sessions.find(session_id.get_ref<const std::string&>());
    // Only a session with state is closed, as in the runtime; one that only ran built-ins
    // stays known to close_session() on the executor.
    if (it != sessions.end() && it->second) {
      closed = true;
      sessions.erase(it);
    }
  }
  return Json{{"closed", closed}, {"session_id", std::move(session_id)}};
}

// ---------------------------------------------------------------------------------------------
// Public API

MockExecutor::MockExecutor(MockExecutorConfig config, const Clock& clock)
    : impl_(std::make_unique<Impl>(std::move(config), clock)) {}

MockExecutor::~MockExecutor() = default;

Result<Json> MockExecutor::execute(std::string_view command, Json args,
                                   const ExecuteOptions& options) {
  if (args.is_null()) args = Json::object();  // `execute("ping", {})`: no arguments
  return impl_->run(std::nullopt, command, args, options);
}

Result<Json> MockExecutor::execute_in_session(std::string_view session_id, std::string_view command,
                                              Json args, const ExecuteOptions& options) {
  if (args.is_null()) args = Json::object();
  return impl_->run(session_id, command, args, options);
}

Result<bool> MockExecutor::close_session(std::string_view session_id) {
  if (session_id.empty()) {
    Error e = invalid("close_session", "session id is empty");
    e.context.adapter = "mock";
    classify_error(e, ClassifyInput{});
    return tl::unexpected(std::move(e));
  }
  std::lock_guard lock(impl_->mu);
  return impl_->sessions.erase(std::string(session_id)) > 0;
}

Result<void> MockExecutor::add_handler(std::string command, Handler handler, bool idempotent) {
  auto refuse = [&](std::string message) -> Result<void> {
    Error e = invalid("add_handler", std::move(message));
    e.context.command = command;
    e.context.adapter = "mock";
    classify_error(e, ClassifyInput{});
    return tl::unexpected(std::move(e));
  };
  if (auto valid = impl_->validate(std::nullopt, command, Json::object()); !valid) {
    valid.error().context.operation = "add_handler";
    return valid;
  }
  if (!handler) return refuse(fmt::format("handler for '{}' is empty", command));
  auto shared = std::make_shared<const Handler>(std::move(handler));
  std::lock_guard lock(impl_->mu);
  Impl::Command& slot = impl_->commands[command];
  if (slot.builtin) {
    return refuse(fmt::format(
        "'{}' is a built-in command of the Python runtime; it cannot be replaced", command));
  }
  slot.idempotent = idempotent;
  slot.handler = std::move(shared);
  return {};
}

std::vector<std::string> MockExecutor::commands() const {
  std::lock_guard lock(impl_->mu);
  std::vector<std::string> names;
  names.reserve(impl_->commands.size());
  for (const auto& [name, command] : impl_->commands) names.push_back(name);
  return names;
}

}  // namespace bridgepool
