// MockExecutor: the commands of the Python runtime and of examples/handlers.py, answered in C++.
// What each command returns is in include/bridgepool/mock_executor.h; here, each handler mirrors
// its Python original line by line (same argument defaults, same checks in the same order, same
// exception types and texts). Python's view of the JSON arguments (type names, repr()/str(),
// int(), json.dumps) is in python_values.h; the pure logic of the example handlers (signatures,
// the mock language model, exception classes, signals) in mock_handlers_support.h. This file
// holds the executor: the command table, the per-session state, the call path and the handlers.
#include "bridgepool/mock_executor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include "pool/request_validation.h"
#include "resilience/error_classifier.h"
#include "resilience/mock_handlers_support.h"
#include "resilience/python_values.h"

namespace bridgepool {
namespace {

using internal::arg;
using internal::check_hashable;
using internal::compute_value;
using internal::constructor_error;
using internal::exception_classes;
using internal::int_arg;
using internal::mock_language_model;
using internal::parse_signature;
using internal::py_int;
using internal::py_raise;
using internal::py_repr;
using internal::py_str;
using internal::py_truthy;
using internal::py_type;
using internal::PyResult;
using internal::python_error;
using internal::raise;
using internal::Raised;
using internal::stops_process;
using internal::survives_signal;

struct Program {
  std::string signature;
  std::vector<std::string> inputs, outputs;
};

struct SessionState {
  bool has_state = false;  // a non-built-in command ran in it (the runtime's session dict exists)
  std::map<std::string, Program> programs;  // sorted: list_programs returns sorted(programs)
  std::int64_t program_counter = 0;
};

}  // namespace

// ---------------------------------------------------------------------------------------------

struct MockExecutor::Impl {
  struct Call {
    const Json& args;
    std::optional<std::string_view> session;
    const ExecuteOptions& options;
    std::uint64_t served_before;  // requests answered before this one
  };
  struct Command {
    bool idempotent = false;
    bool builtin = false;
    std::function<Result<Json>(const Call&)> run;
  };

  Impl(MockExecutorConfig cfg, const Clock& c)
      : config(std::move(cfg)), clock(c), started_at(c.now()) {
    register_commands();
  }

  const MockExecutorConfig config;
  const Clock& clock;
  const TimePoint started_at;

  mutable std::mutex mu;  // guards everything below; never held while a handler runs
  std::map<std::string, Command> commands;
  std::map<std::string, std::uint64_t> calls;  // per command (get_stats)
  std::unordered_map<std::string, SessionState> sessions;
  Json settings = Json::object();  // configure / get_config
  std::uint64_t requests_served = 0;
  std::uint64_t errors = 0;

  void register_commands();
  void add(std::string name, bool idempotent, bool builtin,
           std::function<Result<Json>(const Call&)> run);
  Result<Json> run(std::optional<std::string_view> session, std::string_view command,
                   const Json& args, const ExecuteOptions& options);
  Result<Json> dispatch(const Command& command, std::string_view name, const Call& call);
  Result<Json> finish(Result<Json> result, std::string_view command,
                      std::optional<std::string_view> session, bool idempotent,
                      const ExecuteOptions& options, TimePoint started) const;
  std::string available_commands() const;  // mu held
  double uptime_s() const;
  Error process_gone(std::string_view how) const;
  Error no_reply(std::string_view command, std::string_view why) const;

  // The runtime's built-ins.
  Result<Json> health_check(const Call& call);
  Result<Json> get_stats(const Call& call);
  Result<Json> list_commands(const Call& call);
  Result<Json> close_session_command(const Call& call);
  // examples/handlers.py
  Result<Json> sleep(const Call& call);
  Result<Json> fail(const Call& call);
  Result<Json> crash(const Call& call);
  Result<Json> compute(const Call& call);
  Result<Json> whoami(const Call& call);
  Result<Json> spam(const Call& call);
  Result<Json> stream(const Call& call);
  Result<Json> configure(const Call& call);
  Result<Json> get_config(const Call& call);
  Result<Json> create_program(const Call& call);
  Result<Json> execute_program(const Call& call);
  Result<Json> list_programs(const Call& call);
  Result<Json> delete_program(const Call& call);

  // _programs(ctx): the session's programs, or ValueError outside a session. mu held.
  PyResult<SessionState*> session_programs(const Call& call);
};

void MockExecutor::Impl::add(std::string name, bool idempotent, bool builtin,
                             std::function<Result<Json>(const Call&)> run) {
  calls.try_emplace(name, 0);
  commands[std::move(name)] = Command{idempotent, builtin, std::move(run)};
}

void MockExecutor::Impl::register_commands() {
  using Member = Result<Json> (Impl::*)(const Call&);
  auto bind = [this](Member m) { return [this, m](const Call& c) { return (this->*m)(c); }; };
  auto constant = [](Json value) { return [value](const Call&) -> Result<Json> { return value; }; };
  // Built-ins (bridgepool_worker/builtin_commands.py); idempotency as registry.BUILTIN_COMMANDS.
  add("ping", true, true, constant("pong"));
  add("health_check", true, true, bind(&Impl::health_check));
  add("get_stats", true, true, bind(&Impl::get_stats));
  add("list_commands", true, true, bind(&Impl::list_commands));
  add("close_session", true, true, bind(&Impl::close_session_command));
  add("shutdown", false, true, constant(Json{{"shutting_down", true}}));
  // examples/handlers.py, with the idempotent flags of its @command decorators.
  add("echo", true, false, [](const Call& c) -> Result<Json> { return c.args; });
  add("sleep", true, false, bind(&Impl::sleep));
  add("fail", false, false, bind(&Impl::fail));
  add("crash", false, false, bind(&Impl::crash));
  add("compute", true, false, bind(&Impl::compute));
  add("whoami", true, false, bind(&Impl::whoami));
  add("spam", false, false, bind(&Impl::spam));
  add("stream", false, false, bind(&Impl::stream));
  add("configure", false, false, bind(&Impl::configure));
  add("get_config", true, false, bind(&Impl::get_config));
  add("create_program", false, false, bind(&Impl::create_program));
  add("execute_program", false, false, bind(&Impl::execute_program));
  add("list_programs", true, false, bind(&Impl::list_programs));
  add("delete_program", false, false, bind(&Impl::delete_program));
}

// ---- the call path ----

Result<Json> MockExecutor::Impl::run(std::optional<std::string_view> session,
                                     std::string_view command, const Json& args,
                                     const ExecuteOptions& options) {
  const TimePoint started = clock.now();
  if (auto valid = validate_request(session, command, args); !valid) {
    Error& e = valid.error();
    if (session) e.context.session_id = std::string(*session);
    e.context.adapter = "mock";
    classify_error(e, ClassifyInput{});
    if (options.report) *options.report = CallReport{"mock", "", 0, {}};
    return tl::unexpected(std::move(e));
  }
  Command cmd;
  std::uint64_t served_before = 0;
  {
    std::lock_guard lock(mu);
    served_before = requests_served;
    auto it = commands.find(std::string(command));
    if (it == commands.end()) {
      ++requests_served;
      ++errors;
      Raised unknown{"UnknownCommand",
                     fmt::format("unknown command {}; available commands: {}",
                                 py_repr(Json(std::string(command))), available_commands()),
                     false, true};
      return finish(tl::unexpected(python_error(unknown)), command, session, false, options,
                    started);
    }
    cmd = it->second;
    ++calls[it->first];
    if (session) {
      SessionState& state = sessions[std::string(*session)];
      if (!cmd.builtin) state.has_state = true;
    }
  }
  Result<Json> result = dispatch(cmd, command, Call{args, session, options, served_before});
  {
    std::lock_guard lock(mu);
    ++requests_served;
    if (!result) ++errors;
  }
  return finish(std::move(result), command, session, cmd.idempotent, options, started);
}

Result<Json> MockExecutor::Impl::dispatch(const Command& command, std::string_view name,
                                          const Call& call) {
  // Registered handlers are user code; the boundary turns their exceptions into an Error.
  try {
    return command.run(call);
  } catch (const std::exception& ex) {
    return make_error(ErrorCategory::kSystem,
                      fmt::format("mock handler for '{}' threw: {}", name, ex.what()));
  } catch (...) {
    return make_error(ErrorCategory::kSystem,
                      fmt::format("mock handler for '{}' threw a non-exception", name));
  }
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

std::string MockExecutor::Impl::available_commands() const {
  std::string names;
  for (const auto& [name, command] : commands) {
    if (!names.empty()) names += ", ";
    names += name;
  }
  return names;
}

double MockExecutor::Impl::uptime_s() const {
  const std::chrono::duration<double> up = clock.now() - started_at;
  return std::round(up.count() * 1e6) / 1e6;  // round(..., 6) like uptime_since()
}

// The connection error of a worker that exited during the request (Worker::exited_outcome).
Error MockExecutor::Impl::process_gone(std::string_view how) const {
  Error e(ErrorCategory::kConnection,
          fmt::format("worker {} (pid 0) exited during request ({}; simulated: the mock adapter "
                      "runs no process and cannot crash)",
                      config.worker_id, how));
  e.context.cause = fmt::format("simulated {}", how);
  return e;
}

// The timeout error of a worker that did not answer in time (Worker::call).
Error MockExecutor::Impl::no_reply(std::string_view command, std::string_view why) const {
  Error e(ErrorCategory::kTimeout,
          fmt::format("worker {} (pid 0) did not reply to '{}' before the deadline ({})",
                      config.worker_id, command, why));
  return e;
}

// ---- built-ins ----

Result<Json> MockExecutor::Impl::health_check(const Call& call) {
  return Json{{"status", "healthy"},
              {"pid", 0},
              {"worker_id", config.worker_id},
              {"uptime_s", uptime_s()},
              {"requests_served", call.served_before},
              {"rss_mb", 0.0},
              {"detail", Json::array()}};
}

Result<Json> MockExecutor::Impl::get_stats(const Call& call) {
  std::lock_guard lock(mu);
  const auto with_state = std::count_if(sessions.begin(), sessions.end(),
                                        [](const auto& s) { return s.second.has_state; });
  return Json{{"pid", 0},
              {"worker_id", config.worker_id},
              {"uptime_s", uptime_s()},
              {"requests_served", call.served_before},
              {"errors", errors},
              {"sessions", with_state},
              {"rss_mb", 0.0},
              {"commands", Json(calls)},
              {"handlers_version",
               config.handlers_version ? Json(*config.handlers_version) : Json(nullptr)}};
}

Result<Json> MockExecutor::Impl::list_commands(const Call&) {
  std::lock_guard lock(mu);
  Json list = Json::array();
  for (const auto& [name, command] : commands) {
    list.push_back(
        Json{{"name", name}, {"idempotent", command.idempotent}, {"builtin", command.builtin}});
  }
  return Json{{"commands", std::move(list)}};
}

Result<Json> MockExecutor::Impl::close_session_command(const Call& call) {
  Json session_id = nullptr;
  if (const Json* given = arg(call.args, "session_id"); given && !given->is_null()) {
    session_id = *given;
  } else if (call.session) {
    session_id = std::string(*call.session);
  }
  if (!session_id.is_null() && !session_id.is_string()) {
    return py_raise("InvalidArguments",
                    fmt::format("session_id must be a string, got {}", py_type(session_id)), false);
  }
  bool closed = false;
  if (session_id.is_string()) {
    std::lock_guard lock(mu);
    auto it = sessions.find(session_id.get<std::string>());
    // Only a session with state is closed, as in the runtime; one that only ran built-ins
    // stays known to close_session() on the executor.
    if (it != sessions.end() && it->second.has_state) {
      closed = true;
      sessions.erase(it);
    }
  }
  return Json{{"closed", closed}, {"session_id", session_id}};
}

// ---- examples/handlers.py ----

Result<Json> MockExecutor::Impl::sleep(const Call& call) {
  const Json* given = arg(call.args, "ms");
  const Json ms = given ? *given : Json(0);
  if (!ms.is_number() && !ms.is_boolean()) {  // ms / 1000.0
    return py_raise("TypeError", fmt::format("unsupported operand type(s) for /: '{}' and 'float'",
                                             py_type(ms)));
  }
  const double millis = ms.is_boolean() ? (ms.get<bool>() ? 1.0 : 0.0) : ms.get<double>();
  if (millis < 0) {
    return py_raise("ValueError", "sleep length must be non-negative");
  }
  const milliseconds timeout = call.options.timeout.value_or(config.request_timeout);
  if (millis >= static_cast<double>(timeout.count())) {
    return tl::unexpected(
        no_reply("sleep", fmt::format("simulated: a {} ms sleep outlasts the {} ms timeout",
                                      py_str(ms), timeout.count())));
  }
  const auto real = std::min<double>(millis, static_cast<double>(config.max_sleep.count()));
  if (real > 0) std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(real));
  return Json{{"slept_ms", ms}};
}

Result<Json> MockExecutor::Impl::fail(const Call& call) {
  const Json* type = arg(call.args, "type");
  const std::string wanted = type ? py_str(*type) : "RuntimeError";
  const auto& classes = exception_classes();
  auto it = classes.find(wanted);
  const std::string_view cls = it == classes.end() ? "RuntimeError" : it->second;
  if (auto refused = constructor_error(cls)) {
    return py_raise("TypeError", std::string(*refused));
  }
  const Json* message = arg(call.args, "message");
  const Json* retryable = arg(call.args, "retryable");
  std::optional<bool> marked;
  if (retryable && retryable->is_boolean() && retryable->get<bool>()) marked = true;
  return py_raise(std::string(cls), message ? py_str(*message) : std::string("requested failure"),
                  marked);
}

Result<Json> MockExecutor::Impl::crash(const Call& call) {
  if (const Json* sig = arg(call.args, "signal"); sig && !sig->is_null()) {
    auto n = py_int(*sig);
    if (!n) return py_raise(n.error());
    if (*n < 0 || *n > 64) {  // os.kill rejects it
      return py_raise("OSError", "[Errno 22] Invalid argument");
    }
    if (survives_signal(*n)) return Json{{"survived_signal", *n}};
    if (stops_process(*n)) {
      return tl::unexpected(
          no_reply("crash", fmt::format("simulated: signal {} would stop a real worker", *n)));
    }
    const char* name = sigabbrev_np(static_cast<int>(*n));
    return tl::unexpected(
        process_gone(fmt::format("killed by signal {} (SIG{})", *n, name ? name : "?")));
  }
  auto code = int_arg(call.args, "code", 1);
  if (!code) return py_raise(code.error());
  if (*code < std::numeric_limits<int>::min() || *code > std::numeric_limits<int>::max()) {
    return py_raise("OverflowError", "Python int too large to convert to C int");
  }
  return tl::unexpected(process_gone(fmt::format("exit code {}", *code & 0xff)));
}

Result<Json> MockExecutor::Impl::compute(const Call& call) {
  auto n = int_arg(call.args, "n", 100'000);
  if (!n) return py_raise(n.error());
  return Json{{"n", *n}, {"value", compute_value(*n)}};
}

Result<Json> MockExecutor::Impl::whoami(const Call& call) {
  return Json{{"pid", 0},
              {"worker_id", config.worker_id},
              {"requests_served", call.served_before},
              {"handlers_version",
               config.handlers_version ? Json(*config.handlers_version) : Json(nullptr)}};
}

Result<Json> MockExecutor::Impl::spam(const Call& call) {
  auto lines = int_arg(call.args, "lines", 100);
  if (!lines) return py_raise(lines.error());
  auto width = int_arg(call.args, "width", 80);  // evaluated (and checked) like the original
  if (!width) return py_raise(width.error());
  return Json{{"printed", *lines}};
}

Result<Json> MockExecutor::Impl::stream(const Call& call) {
  auto count = int_arg(call.args, "count", 3);
  if (!count) return py_raise(count.error());
  if (call.options.on_chunk) {
    for (std::int64_t i = 0; i < *count; ++i) call.options.on_chunk(Json{{"i", i}});
  }
  return Json{{"count", *count}};
}

Result<Json> MockExecutor::Impl::configure(const Call& call) {
  std::lock_guard lock(mu);
  for (const auto& [key, value] : call.args.items()) settings[key] = value;  // dict.update
  return Json{{"config", settings}};
}

Result<Json> MockExecutor::Impl::get_config(const Call&) {
  std::lock_guard lock(mu);
  return Json{{"config", settings}};
}

PyResult<SessionState*> MockExecutor::Impl::session_programs(const Call& call) {
  if (!call.session) return raise("ValueError", "programs need a session");
  return &sessions[std::string(*call.session)];
}

Result<Json> MockExecutor::Impl::create_program(const Call& call) {
  std::lock_guard lock(mu);
  auto state = session_programs(call);
  if (!state) return py_raise(state.error());
  const Json* given_signature = arg(call.args, "signature");
  const Json signature = given_signature ? *given_signature : Json(nullptr);
  auto parsed = parse_signature(signature);
  if (!parsed) return py_raise(parsed.error());
  auto& programs = (*state)->programs;
  std::string program_id;
  const Json* given_id = arg(call.args, "program_id");
  if (!given_id || given_id->is_null()) {
    std::int64_t counter = (*state)->program_counter;
    do {  // "prog-1", "prog-2", ... per session, skipping ids chosen by callers
      program_id = fmt::format("prog-{}", ++counter);
    } while (programs.count(program_id) != 0);
    (*state)->program_counter = counter;
  } else if (!given_id->is_string() || given_id->get_ref<const std::string&>().empty()) {
    return py_raise("ValueError", fmt::format("program_id must be a non-empty string, got {}",
                                              py_repr(*given_id)));
  } else {
    program_id = given_id->get<std::string>();
  }
  programs[program_id] = Program{signature.get<std::string>(), parsed->inputs, parsed->outputs};
  return Json{{"program_id", program_id}, {"inputs", parsed->inputs}, {"outputs", parsed->outputs}};
}

Result<Json> MockExecutor::Impl::execute_program(const Call& call) {
  Program program;
  const Json* given_id = arg(call.args, "program_id");
  const Json program_id = given_id ? *given_id : Json(nullptr);
  {
    std::lock_guard lock(mu);
    auto state = session_programs(call);
    if (!state) return py_raise(state.error());
    if (auto ok = check_hashable(program_id); !ok) return py_raise(ok.error());
    const auto& programs = (*state)->programs;
    auto it =
        program_id.is_string() ? programs.find(program_id.get<std::string>()) : programs.end();
    if (it == programs.end()) {
      return py_raise("KeyError", "program not found: " + py_str(program_id));
    }
    program = it->second;
  }
  const Json* given_inputs = arg(call.args, "inputs");
  const Json given = given_inputs && py_truthy(*given_inputs) ? *given_inputs : Json::object();
  if (!given.is_object()) {
    return py_raise("ValueError", "inputs must be an object");
  }
  std::vector<std::string> missing;
  Json inputs = Json::object();
  for (const auto& field : program.inputs) {
    auto it = given.find(field);
    if (it == given.end()) {
      missing.push_back(field);
    } else {
      inputs[field] = *it;  // extra fields are ignored
    }
  }
  if (!missing.empty()) {
    return py_raise("ValueError", fmt::format("missing input field(s) for {}: {}",
                                              py_str(program_id), fmt::join(missing, ", ")));
  }
  auto outputs = mock_language_model(inputs, program.outputs);
  if (!outputs) return py_raise(outputs.error());
  return Json{{"program_id", program_id}, {"outputs", std::move(*outputs)}};
}

Result<Json> MockExecutor::Impl::list_programs(const Call& call) {
  std::lock_guard lock(mu);
  auto state = session_programs(call);
  if (!state) return py_raise(state.error());
  Json ids = Json::array();
  for (const auto& [id, program] : (*state)->programs) ids.push_back(id);
  return Json{{"programs", std::move(ids)}};
}

Result<Json> MockExecutor::Impl::delete_program(const Call& call) {
  std::lock_guard lock(mu);
  auto state = session_programs(call);
  if (!state) return py_raise(state.error());
  const Json* given_id = arg(call.args, "program_id");
  if (given_id) {
    if (auto ok = check_hashable(*given_id); !ok) return py_raise(ok.error());
  }
  const bool deleted = given_id && given_id->is_string() &&
                       (*state)->programs.erase(given_id->get<std::string>()) > 0;
  return Json{{"deleted", deleted}};
}

// ---------------------------------------------------------------------------------------------
// Public API

MockExecutor::MockExecutor(MockExecutorConfig config, const Clock& clock)
    : impl_(std::make_unique<Impl>(std::move(config), clock)) {}

MockExecutor::~MockExecutor() = default;

Result<Json> MockExecutor::execute(std::string_view command, Json args,
                                   const ExecuteOptions& options) {
  return impl_->run(std::nullopt, command, args, options);
}

Result<Json> MockExecutor::execute_in_session(std::string_view session_id, std::string_view command,
                                              Json args, const ExecuteOptions& options) {
  return impl_->run(session_id, command, args, options);
}

Result<bool> MockExecutor::close_session(std::string_view session_id) {
  if (session_id.empty()) {
    Error e(ErrorCategory::kInvalidRequest, "session id is empty");
    e.context.operation = "close_session";
    e.context.adapter = "mock";
    classify_error(e, ClassifyInput{});
    return tl::unexpected(std::move(e));
  }
  std::lock_guard lock(impl_->mu);
  return impl_->sessions.erase(std::string(session_id)) > 0;
}

void MockExecutor::add_handler(std::string command, Handler handler, bool idempotent) {
  auto run = [handler = std::move(handler)](const Impl::Call& call) -> Result<Json> {
    return handler(call.args, call.session.value_or(std::string_view()));
  };
  std::lock_guard lock(impl_->mu);
  impl_->add(std::move(command), idempotent, false, std::move(run));
}

std::vector<std::string> MockExecutor::commands() const {
  std::lock_guard lock(impl_->mu);
  std::vector<std::string> names;
  for (const auto& [name, command] : impl_->commands) names.push_back(name);
  return names;
}

}  // namespace bridgepool
