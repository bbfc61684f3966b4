// MockExecutor: one table row per command (exact result, or exact shape where the value describes
// a process), the errors (category, PythonError type, message), validation, sessions, registered
// handlers, the call report, concurrency, and — when /usr/bin/python3 is there — a replay of the
// same request sequence through examples/handlers.py itself, compared value for value.
#include "bridgepool/mock_executor.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "resilience/error_classifier.h"

namespace bridgepool {
namespace {

using std::chrono::milliseconds;

// The JSON types of a value, recursively: {"a": 1, "b": [true]} -> {"a": "int", "b": ["bool"]}.
Json shape(const Json& v) {
  switch (v.type()) {
    case Json::value_t::object: {
      Json s = Json::object();
      for (const auto& [key, item] : v.items()) s[key] = shape(item);
      return s;
    }
    case Json::value_t::array: {
      Json s = Json::array();
      for (const auto& item : v) s.push_back(shape(item));
      return s;
    }
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "int";
    case Json::value_t::number_float:
      return "float";
    default:
      return v.type_name();
  }
}

struct Row {
  const char* command;
  Json args;
  Json expected;  // the exact result
};

class MockExecutorTest : public ::testing::Test {
 protected:
  ManualClock clock_;
  MockExecutor mock_{MockExecutorConfig{}, clock_};

  Json ok(std::string_view command, Json args = Json::object()) {
    auto r = mock_.execute(command, std::move(args));
    EXPECT_TRUE(r) << command << ": " << (r ? "" : r.error().to_string());
    return r ? *r : Json();
  }
  Json ok_in(std::string_view session, std::string_view command, Json args = Json::object()) {
    auto r = mock_.execute_in_session(session, command, std::move(args));
    EXPECT_TRUE(r) << command << ": " << (r ? "" : r.error().to_string());
    return r ? *r : Json();
  }
  Error error(std::string_view command, Json args = Json::object(),
              std::optional<std::string_view> session = std::nullopt) {
    auto r = session ? mock_.execute_in_session(*session, command, std::move(args))
                     : mock_.execute(command, std::move(args));
    EXPECT_FALSE(r) << command << " succeeded: " << (r ? r->dump() : "");
    return r ? Error() : r.error();
  }
};

TEST_F(MockExecutorTest, ExampleCommandsAnswerLikeHandlersPy) {
  const std::vector<Row> rows = {
      {"echo", Json{{"a", 1}, {"b", {1, 2.5, "x"}}}, Json{{"a", 1}, {"b", {1, 2.5, "x"}}}},
      {"echo", Json::object(), Json::object()},
      {"sleep", Json{{"ms", 5}}, Json{{"slept_ms", 5}}},
      {"sleep", Json{{"ms", 2.5}}, Json{{"slept_ms", 2.5}}},
      {"sleep", Json::object(), Json{{"slept_ms", 0}}},
      {"compute", Json::object(), Json{{"n", 100000}, {"value", 199999}}},
      {"compute", Json{{"n", 10}}, Json{{"n", 10}, {"value", 19}}},
      {"compute", Json{{"n", "12"}}, Json{{"n", 12}, {"value", 23}}},
      {"compute", Json{{"n", 2.9}}, Json{{"n", 2}, {"value", 1}}},
      {"compute", Json{{"n", -3}}, Json{{"n", -3}, {"value", 0}}},
      {"spam", Json::object(), Json{{"printed", 100}}},
      {"spam", Json{{"lines", 3}, {"width", 10}}, Json{{"printed", 3}}},
      {"stream", Json::object(), Json{{"count", 3}}},
      {"crash", Json{{"signal", 0}}, Json{{"survived_signal", 0}}},
      {"crash", Json{{"signal", "28"}}, Json{{"survived_signal", 28}}},
      {"get_config", Json::object(), Json{{"config", Json::object()}}},
      {"configure", Json{{"a", 1}}, Json{{"config", {{"a", 1}}}}},
      {"configure", Json{{"b", {{"c", 2}}}}, Json{{"config", {{"a", 1}, {"b", {{"c", 2}}}}}}},
      {"configure", Json{{"a", "z"}}, Json{{"config", {{"a", "z"}, {"b", {{"c", 2}}}}}}},
      {"get_config", Json::object(), Json{{"config", {{"a", "z"}, {"b", {{"c", 2}}}}}}},
  };
  for (const auto& row : rows) {
    EXPECT_EQ(ok(row.command, row.args), row.expected) << row.command << " " << row.args.dump();
  }
}

TEST_F(MockExecutorTest, BuiltinsAnswerLikeTheRuntime) {
  EXPECT_EQ(ok("ping"), Json("pong"));
  EXPECT_EQ(ok("shutdown"), Json({{"shutting_down", true}}));
  EXPECT_EQ(ok("ping"), Json("pong"));  // still serving

  clock_.advance(milliseconds(1500));
  const Json health = ok("health_check");
  EXPECT_EQ(shape(health), Json::parse(R"({"status": "string", "pid": "int",
      "worker_id": "string", "uptime_s": "float", "requests_served": "int", "rss_mb": "float",
      "detail": []})"));
  EXPECT_EQ(health["status"], "healthy");
  EXPECT_EQ(health["worker_id"], "mock");
  EXPECT_EQ(health["pid"], 0);
  EXPECT_EQ(health["uptime_s"], 1.5);
  EXPECT_EQ(health["requests_served"], 3);

  const Json stats = ok("get_stats");
  EXPECT_EQ(stats["requests_served"], 4);
  EXPECT_EQ(stats["errors"], 0);
  EXPECT_EQ(stats["sessions"], 0);
  EXPECT_EQ(stats["handlers_version"], "examples-1");
  EXPECT_EQ(stats["commands"]["ping"], 2);
  EXPECT_EQ(stats["commands"]["get_stats"], 1);
  EXPECT_EQ(stats["commands"]["echo"], 0);
  EXPECT_EQ(stats["commands"].size(), 20u);
  Json stats_shape = shape(stats);
  stats_shape.erase("commands");
  EXPECT_EQ(stats_shape, Json::parse(R"({"pid": "int", "worker_id": "string",
      "uptime_s": "float", "requests_served": "int", "errors": "int", "sessions": "int",
      "rss_mb": "float", "handlers_version": "string"})"));
}

TEST_F(MockExecutorTest, ListCommandsHasEveryCommandWithItsFlags) {
  const Json list = ok("list_commands");
  ASSERT_EQ(list["commands"].size(), 20u);
  std::vector<std::string> names;
  for (const auto& c : list["commands"]) {
    EXPECT_EQ(shape(c), Json::parse(R"({"name": "string", "idempotent": "boolean",
        "builtin": "boolean"})"));
    names.push_back(c["name"]);
  }
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_EQ(names, mock_.commands());
  EXPECT_EQ(list["commands"][0],
            Json({{"name", "close_session"}, {"idempotent", true}, {"builtin", true}}));
  auto find = [&](const std::string& name) {
    for (const auto& c : list["commands"]) {
      if (c["name"] == name) return c;
    }
    return Json();
  };
  EXPECT_EQ(find("shutdown")["idempotent"], false);
  EXPECT_EQ(find("echo")["builtin"], false);
  EXPECT_EQ(find("compute")["idempotent"], true);
  EXPECT_EQ(find("create_program")["idempotent"], false);
}

TEST_F(MockExecutorTest, WhoamiHasThePythonKeys) {
  ok("ping");
  const Json me = ok("whoami");
  EXPECT_EQ(me, Json({{"pid", 0},
                      {"worker_id", "mock"},
                      {"requests_served", 1},
                      {"handlers_version", "examples-1"}}));
  MockExecutorConfig config;
  config.worker_id = "fallback";
  config.handlers_version.reset();
  MockExecutor other(config, clock_);
  EXPECT_EQ(*other.execute("whoami"), Json({{"pid", 0},
                                            {"worker_id", "fallback"},
                                            {"requests_served", 0},
                                            {"handlers_version", nullptr}}));
}

TEST_F(MockExecutorTest, StreamSendsTheChunksThenTheResult) {
  std::vector<Json> chunks;
  ExecuteOptions options;
  options.on_chunk = [&](const Json& chunk) { chunks.push_back(chunk); };
  auto r = mock_.execute("stream", Json{{"count", 4}}, options);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, Json({{"count", 4}}));
  EXPECT_EQ(chunks, (std::vector<Json>{{{"i", 0}}, {{"i", 1}}, {{"i", 2}}, {{"i", 3}}}));
}

TEST_F(MockExecutorTest, SleepDoesNotReallySleepButKeepsTheTimeout) {
  const auto before = std::chrono::steady_clock::now();
  EXPECT_EQ(ok("sleep", Json({{"ms", 30'000}})), Json({{"slept_ms", 30'000}}));
  EXPECT_LT(std::chrono::steady_clock::now() - before, std::chrono::seconds(1));

  ExecuteOptions options;
  options.timeout = milliseconds(100);
  auto r = mock_.execute("sleep", Json{{"ms", 200}}, options);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().category, ErrorCategory::kTimeout);
  EXPECT_EQ(r.error().message,
            "worker mock (pid 0) did not reply to 'sleep' before the deadline (simulated: a 200 "
            "ms sleep outlasts the 100 ms timeout)");

  MockExecutorConfig config;
  config.max_sleep = milliseconds(20);
  MockExecutor sleepy(config);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(sleepy.execute("sleep", Json{{"ms", 10'000}}));
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(20));
}

struct ErrorRow {
  const char* command;
  Json args;
  ErrorCategory category;
  const char* type;     // PythonError type ("" when not a Python error)
  const char* message;  // the Error's message
  std::optional<bool> retryable;
};

TEST_F(MockExecutorTest, ErrorsMatchThePythonOnes) {
  const std::vector<ErrorRow> rows = {
      {"fail", Json::object(), ErrorCategory::kPython, "RuntimeError",
       "RuntimeError: requested failure", std::nullopt},
      {"fail", Json{{"type", "ValueError"}, {"message", "bad"}}, ErrorCategory::kPython,
       "ValueError", "ValueError: bad", std::nullopt},
      {"fail", Json{{"type", "KeyError"}, {"message", "k"}}, ErrorCategory::kPython, "KeyError",
       "KeyError: k", std::nullopt},
      {"fail", Json{{"type", "SystemExit"}}, ErrorCategory::kPython, "RuntimeError",
       "RuntimeError: requested failure", std::nullopt},
      {"fail", Json{{"type", "IOError"}, {"message", 5}}, ErrorCategory::kPython, "OSError",
       "OSError: 5", std::nullopt},
      {"fail", Json{{"retryable", true}}, ErrorCategory::kPython, "RuntimeError",
       "RuntimeError: requested failure", true},
      {"fail", Json{{"type", "UnicodeDecodeError"}}, ErrorCategory::kPython, "TypeError",
       "TypeError: function takes exactly 5 arguments (1 given)", std::nullopt},
      {"fail", Json{{"message", {1e16, 1e15, 1.5e-5, 0.0001, -0.0, 1.0, "it's", nullptr, true}}},
       ErrorCategory::kPython, "RuntimeError",
       "RuntimeError: [1e+16, 1000000000000000.0, 1.5e-05, 0.0001, -0.0, 1.0, \"it's\", None, "
       "True]",
       std::nullopt},
      {"sleep", Json{{"ms", -1}}, ErrorCategory::kPython, "ValueError",
       "ValueError: sleep length must be non-negative", std::nullopt},
      {"sleep", Json{{"ms", "x"}}, ErrorCategory::kPython, "TypeError",
       "TypeError: unsupported operand type(s) for /: 'str' and 'float'", std::nullopt},
      {"compute", Json{{"n", nullptr}}, ErrorCategory::kPython, "TypeError",
       "TypeError: int() argument must be a string, a bytes-like object or a real number, not "
       "'NoneType'",
       std::nullopt},
      {"compute", Json{{"n", "1 2"}}, ErrorCategory::kPython, "ValueError",
       "ValueError: invalid literal for int() with base 10: '1 2'", std::nullopt},
      {"crash", Json{{"signal", 99}}, ErrorCategory::kPython, "OSError",
       "OSError: [Errno 22] Invalid argument", std::nullopt},
      {"crash", Json::object(), ErrorCategory::kConnection, "",
       "worker mock (pid 0) exited during request (exit code 1; simulated: the mock adapter runs "
       "no process and cannot crash)",
       std::nullopt},
      {"crash", Json{{"signal", 9}}, ErrorCategory::kConnection, "",
       "worker mock (pid 0) exited during request (killed by signal 9 (SIGKILL); simulated: the "
       "mock adapter runs no process and cannot crash)",
       std::nullopt},
      {"crash", Json{{"code", -1}}, ErrorCategory::kConnection, "",
       "worker mock (pid 0) exited during request (exit code 255; simulated: the mock adapter "
       "runs no process and cannot crash)",
       std::nullopt},
      {"crash", Json{{"signal", 19}}, ErrorCategory::kTimeout, "",
       "worker mock (pid 0) did not reply to 'crash' before the deadline (simulated: signal 19 "
       "would stop a real worker)",
       std::nullopt},
      {"list_programs", Json::object(), ErrorCategory::kPython, "ValueError",
       "ValueError: programs need a session", std::nullopt},
      {"close_session", Json{{"session_id", 5}}, ErrorCategory::kInvalidRequest, "InvalidArguments",
       "InvalidArguments: session_id must be a string, got int", false},
  };
  for (const auto& row : rows) {
    SCOPED_TRACE(std::string(row.command) + " " + row.args.dump());
    const Error e = error(row.command, row.args);
    EXPECT_EQ(e.category, row.category);
    EXPECT_EQ(e.message, row.message);
    EXPECT_EQ(e.context.command, row.command);
    EXPECT_EQ(e.context.worker_id, "mock");
    EXPECT_EQ(e.context.adapter, "mock");
    if (*row.type == '\0') {
      EXPECT_FALSE(e.python);
      continue;
    }
    ASSERT_TRUE(e.python);
    EXPECT_EQ(e.python->type, row.type);
    EXPECT_EQ(e.python->retryable, row.retryable);
    EXPECT_EQ(e.python->traceback, std::string(e.message) + "\n");
  }
}

TEST_F(MockExecutorTest, ErrorsAreClassifiedLikeTheBridgeDoes) {
  // A crash is not idempotent and may have run: never retried (the real crash is not either).
  Error crash = error("crash");
  EXPECT_EQ(crash.strategy, RecoveryStrategy::kAbandon);
  // A Python error marked retryable may be retried after a delay.
  Error retryable = error("fail", Json{{"retryable", true}});
  EXPECT_EQ(retryable.strategy, RecoveryStrategy::kBackoffRetry);
  Error plain = error("fail");
  EXPECT_EQ(plain.strategy, RecoveryStrategy::kAbandon);
}

TEST_F(MockExecutorTest, UnknownCommandListsTheAvailableOnes) {
  const Error e = error("nope");
  EXPECT_EQ(e.category, ErrorCategory::kInvalidRequest);
  EXPECT_EQ(e.message,
            "UnknownCommand: unknown command 'nope'; available commands: close_session, compute, "
            "configure, crash, create_program, delete_program, echo, execute_program, fail, "
            "get_config, get_stats, health_check, list_commands, list_programs, ping, shutdown, "
            "sleep, spam, stream, whoami");
  ASSERT_TRUE(e.python);
  EXPECT_EQ(e.python->type, "UnknownCommand");
  EXPECT_EQ(e.python->retryable, false);
  EXPECT_EQ(e.python->traceback, "");
  EXPECT_EQ(e.strategy, RecoveryStrategy::kAbandon);
  EXPECT_EQ(ok("get_stats")["errors"], 1);  // the runtime counts it as an answered error
}

TEST_F(MockExecutorTest, MalformedRequestsAreRejectedLikeThePools) {
  Error e = error("echo", Json::array({1}));
  EXPECT_EQ(e.category, ErrorCategory::kInvalidRequest);
  EXPECT_EQ(e.message, "args must be a JSON object, got array");
  EXPECT_EQ(e.context.adapter, "mock");
  e = error("", Json::object());
  EXPECT_EQ(e.category, ErrorCategory::kInvalidRequest);
  EXPECT_EQ(e.message, "command name is empty");
  e = error("echo", Json::object(), "");
  EXPECT_EQ(e.message, "session id is empty");
  EXPECT_EQ(ok("get_stats")["requests_served"], 0);  // never reached the "worker"
  auto closed = mock_.close_session("");
  ASSERT_FALSE(closed);
  EXPECT_EQ(closed.error().category, ErrorCategory::kInvalidRequest);
}

TEST_F(MockExecutorTest, ProgramsLiveInTheirSession) {
  EXPECT_EQ(ok_in("s1", "create_program", Json{{"signature", "question, context -> answer"}}),
            Json({{"program_id", "prog-1"},
                  {"inputs", {"question", "context"}},
                  {"outputs", {"answer"}}}));
  EXPECT_EQ(ok_in("s1", "create_program", Json{{"signature", "x -> y"}, {"program_id", "prog-2"}}),
            Json({{"program_id", "prog-2"}, {"inputs", {"x"}}, {"outputs", {"y"}}}));
  EXPECT_EQ(ok_in("s1", "create_program", Json{{"signature", "x -> y"}})["program_id"], "prog-3");
  EXPECT_EQ(
      ok_in("s1", "execute_program",
            Json{{"program_id", "prog-1"},
                 {"inputs", {{"question", "What is 2+2?"}, {"context", "math"}, {"x", 1}}}}),
      Json({{"program_id", "prog-1"}, {"outputs", {{"answer", "mock-answer-4f9ad5c47644"}}}}));
  EXPECT_EQ(ok_in("s1", "list_programs"), Json({{"programs", {"prog-1", "prog-2", "prog-3"}}}));
  EXPECT_EQ(ok_in("s2", "list_programs"), Json({{"programs", Json::array()}}));
  EXPECT_EQ(ok_in("s1", "delete_program", Json{{"program_id", "prog-2"}}),
            Json({{"deleted", true}}));
  EXPECT_EQ(ok_in("s1", "delete_program", Json{{"program_id", "prog-2"}}),
            Json({{"deleted", false}}));
  EXPECT_EQ(ok("get_stats")["sessions"], 2);

  Error e = error("execute_program", Json{{"program_id", "prog-2"}}, "s1");
  EXPECT_EQ(e.category, ErrorCategory::kPython);
  EXPECT_EQ(e.message, "KeyError: program not found: prog-2");
  e = error("execute_program", Json{{"program_id", "prog-1"}, {"inputs", {{"question", "q"}}}},
            "s1");
  EXPECT_EQ(e.message, "ValueError: missing input field(s) for prog-1: context");
  e = error("create_program", Json{{"signature", "a, a -> b"}}, "s1");
  EXPECT_EQ(e.message, "ValueError: duplicate input field in signature 'a, a -> b'");
  e = error("create_program", Json::object(), "s1");
  EXPECT_EQ(e.message, "ValueError: signature must look like 'in1, in2 -> out1', got None");

  // close_session (the built-in command) drops the state; the Executor call forgets the session.
  EXPECT_EQ(ok_in("s1", "close_session"), Json({{"closed", true}, {"session_id", "s1"}}));
  EXPECT_EQ(ok_in("s1", "list_programs"), Json({{"programs", Json::array()}}));
  EXPECT_EQ(ok("close_session", Json{{"session_id", "s9"}}),
            Json({{"closed", false}, {"session_id", "s9"}}));
  EXPECT_EQ(ok("close_session"), Json({{"closed", false}, {"session_id", nullptr}}));
  EXPECT_EQ(mock_.close_session("s2"), true);
  EXPECT_EQ(mock_.close_session("s2"), false);
  EXPECT_EQ(ok_in("s3", "ping"), "pong");  // a built-in does not create session state ...
  EXPECT_EQ(ok("close_session", Json{{"session_id", "s3"}})["closed"], false);
  EXPECT_EQ(mock_.close_session("s3"), true);  // ... but the executor knows the session
}

TEST_F(MockExecutorTest, AddedHandlersAnswerAndMayReplaceBuiltIns) {
  std::vector<std::string> sessions_seen;
  mock_.add_handler(
      "translate",
      [&](const Json& args, std::string_view session) -> Result<Json> {
        sessions_seen.emplace_back(session);
        if (!args.contains("text")) {
          return make_error(ErrorCategory::kPython, "ValueError: text is required");
        }
        return Json{{"translation", "mock:" + args["text"].get<std::string>()}};
      },
      true);
  mock_.add_handler("echo",
                    [](const Json&, std::string_view) -> Result<Json> { return Json("canned"); });
  mock_.add_handler("boom", [](const Json&, std::string_view) -> Result<Json> {
    throw std::runtime_error("oops");
  });
  EXPECT_EQ(ok("translate", Json({{"text", "hi"}})), Json({{"translation", "mock:hi"}}));
  EXPECT_EQ(ok_in("s1", "translate", Json{{"text", "x"}})["translation"], "mock:x");
  EXPECT_EQ(sessions_seen, (std::vector<std::string>{"", "s1"}));
  Error e = error("translate", Json::object(), "s1");
  EXPECT_EQ(e.category, ErrorCategory::kPython);
  EXPECT_EQ(e.context.command, "translate");
  EXPECT_EQ(e.context.session_id, "s1");
  EXPECT_EQ(e.context.adapter, "mock");
  EXPECT_EQ(ok("echo", Json{{"a", 1}}), "canned");
  e = error("boom");
  EXPECT_EQ(e.category, ErrorCategory::kSystem);
  EXPECT_EQ(e.message, "mock handler for 'boom' threw: oops");
  const auto names = mock_.commands();
  EXPECT_NE(std::find(names.begin(), names.end(), "translate"), names.end());
  const Json list = ok("list_commands");
  for (const auto& c : list["commands"]) {
    if (c["name"] == "translate") {
      EXPECT_EQ(c["idempotent"], true);
    }
  }
}

TEST_F(MockExecutorTest, ReportSaysTheMockServed) {
  CallReport report;
  ExecuteOptions options;
  options.report = &report;
  ASSERT_TRUE(mock_.execute("ping", Json::object(), options));
  EXPECT_EQ(report.adapter, "mock");
  EXPECT_EQ(report.worker_id, "mock");
  EXPECT_EQ(report.attempts, 1u);
  report = {};
  ASSERT_FALSE(mock_.execute("fail", Json::object(), options));
  EXPECT_EQ(report.adapter, "mock");
  EXPECT_EQ(mock_.kind(), "mock");
}

TEST(MockExecutor, ConcurrentCallsKeepExactCounts) {
  MockExecutor mock;
  constexpr int kThreads = 4;
  constexpr int kCalls = 300;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string session = "s" + std::to_string(t);
      for (int i = 0; i < kCalls; ++i) {
        bool good = true;
        switch (i % 4) {
          case 0:
            good = mock.execute_in_session(session, "create_program", {{"signature", "a -> b"}})
                       .has_value();
            break;
          case 1:
            good = mock.execute("configure", {{"k" + std::to_string(t), i}}).has_value();
            break;
          case 2:
            good = mock.execute("get_stats").has_value();
            break;
          case 3:
            if (i % 40 == 3)
              mock.add_handler("extra",
                               [](const Json&, std::string_view) { return Result<Json>(Json(1)); });
            good = mock.execute_in_session(session, "list_programs").has_value();
            break;
        }
        if (!good) failures.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  const Json stats = *mock.execute("get_stats");
  EXPECT_EQ(stats["requests_served"], kThreads * kCalls);
  EXPECT_EQ(stats["commands"]["create_program"], kThreads * kCalls / 4);
  EXPECT_EQ(stats["sessions"], kThreads);
  for (int t = 0; t < kThreads; ++t) {
    auto list = mock.execute_in_session("s" + std::to_string(t), "list_programs");
    ASSERT_TRUE(list);
    EXPECT_EQ((*list)["programs"].size(), static_cast<std::size_t>(kCalls / 4));
  }
}

// ---------------------------------------------------------------------------------------------
// The same requests through examples/handlers.py itself (imported, called with a Context), when
// the interpreter and the source paths are known.

#if defined(BRIDGEPOOL_PYTHON_DIR) && defined(BRIDGEPOOL_EXAMPLES_DIR)

constexpr const char* kReplayScript = R"PY(
import contextlib, inspect, io, json, os, sys
from bridgepool_worker.context import Context
from bridgepool_worker.registry import default_registry
from bridgepool_worker.runtime import _message_of, _retryable_of, load_handler_module

load_handler_module(os.path.join(sys.argv[1], "handlers.py"))
commands = default_registry().commands
with open(sys.argv[2]) as f:
    cases = json.load(f)
sessions, out = {}, []
for i, case in enumerate(cases):
    sid = case.get("session")
    session = {} if sid is None else sessions.setdefault(sid, {})
    ctx = Context(sid, session, "py", i + 1, None)
    chunks = []
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            result = commands[case["command"]].func(case["args"], ctx)
            if inspect.isgenerator(result):
                while True:
                    try:
                        chunks.append(next(result))
                    except StopIteration as stop:
                        result = stop.value
                        break
        out.append({"ok": True, "result": result, "chunks": chunks})
    except Exception as exc:
        out.append({"ok": False, "type": type(exc).__name__, "message": _message_of(exc),
                    "retryable": _retryable_of(exc), "chunks": chunks})
with open(sys.argv[3], "w") as f:
    json.dump(out, f)
)PY";

struct Case {
  std::optional<std::string> session;
  std::string command;
  Json args;
};

std::vector<Case> replay_cases() {
  auto c = [](const char* command, Json args) { return Case{std::nullopt, command, args}; };
  auto s = [](const char* session, const char* command, Json args) {
    return Case{std::string(session), command, args};
  };
  const Json tricky = Json::parse(R"({"z": [1, 2.5, 1e20, 1e-7, 0.1, -0.0, 123456789012345678,
      {"b": true, "a": null}], "a": "é ü \"q\" \n \t \u0001 \\ /", "m": {"k": 1.0}})");
  return {
      c("echo", tricky),
      c("sleep", {{"ms", 1}}),
      c("sleep", Json::object()),
      c("sleep", {{"ms", 2.5}}),
      c("sleep", {{"ms", -1}}),
      c("sleep", {{"ms", "x"}}),
      c("sleep", {{"ms", nullptr}}),
      c("fail", Json::object()),
      c("fail", {{"type", "ValueError"}, {"message", "bad"}}),
      c("fail", {{"type", "KeyError"}, {"message", "k"}}),
      c("fail", {{"type", "NotAClass"}}),
      c("fail", {{"type", "SystemExit"}}),
      c("fail", {{"type", "int"}}),
      c("fail", {{"type", "IOError"}, {"message", 5}}),
      c("fail", {{"retryable", true}}),
      c("fail", {{"retryable", 1}}),
      c("fail", {{"type", "UnicodeDecodeError"}}),
      c("fail", {{"type", "UnicodeTranslateError"}}),
      c("fail", {{"type", "ExceptionGroup"}}),
      c("fail", {{"type", "KeyError"}, {"message", tricky}}),
      c("fail", {{"type", 5}, {"message", nullptr}}),
      c("fail", {{"message", {1e16, 1e15, 1.5e-5, 0.0001, 1e-5, 123.456, 1e300, 5e-324}}}),
      c("fail", {{"message", {"it's", "a\"b'c", "\x7f", "tab\there"}}}),
      c("compute", Json::object()),
      c("compute", {{"n", 0}}),
      c("compute", {{"n", 10}}),
      c("compute", {{"n", 12345}}),
      c("compute", {{"n", "77"}}),
      c("compute", {{"n", " -1_000 "}}),
      c("compute", {{"n", 2.9}}),
      c("compute", {{"n", -2.9}}),
      c("compute", {{"n", true}}),
      c("compute", {{"n", nullptr}}),
      c("compute", {{"n", "x"}}),
      c("compute", {{"n", "1__0"}}),
      c("compute", {{"n", {1}}}),
      c("compute", {{"n", -5}}),
      c("stream", Json::object()),
      c("stream", {{"count", 5}}),
      c("stream", {{"count", 0}}),
      c("stream", {{"count", "2"}}),
      c("spam", {{"lines", 3}, {"width", 10}}),
      c("spam", {{"lines", "x"}}),
      c("spam", {{"width", nullptr}}),
      c("crash", {{"signal", 0}}),
      c("crash", {{"signal", "x"}}),
      c("crash", {{"signal", 200}}),
      c("get_config", Json::object()),
      c("configure", {{"a", 1}}),
      c("configure", {{"b", {{"c", 2}}}}),
      c("configure", {{"a", "z"}}),
      c("get_config", Json::object()),
      c("create_program", {{"signature", "a -> b"}}),
      c("list_programs", Json::object()),
      s("s1", "create_program", {{"signature", "question, context -> answer"}}),
      s("s1", "create_program", {{"signature", "q -> a, b"}, {"program_id", "mine"}}),
      s("s1", "create_program", {{"signature", "x -> y"}, {"program_id", "prog-3"}}),
      s("s1", "create_program", {{"signature", " q ->a"}}),
      s("s1", "create_program", {{"signature", "x -> y"}, {"program_id", nullptr}}),
      s("s1", "create_program", {{"signature", "bad"}}),
      s("s1", "create_program", {{"signature", 5}}),
      s("s1", "create_program", Json::object()),
      s("s1", "create_program", {{"signature", "a, a -> b"}}),
      s("s1", "create_program", {{"signature", "a -> b, b"}}),
      s("s1", "create_program", {{"signature", "a -> 1b"}}),
      s("s1", "create_program", {{"signature", "a, -> b"}}),
      s("s1", "create_program", {{"signature", "a->b->c"}}),
      s("s1", "create_program", {{"signature", "it's -> x"}}),
      s("s1", "create_program", {{"signature", "x -> y"}, {"program_id", ""}}),
      s("s1", "create_program", {{"signature", "x -> y"}, {"program_id", 7}}),
      s("s1", "create_program", {{"signature", "x -> y"}, {"program_id", {1}}}),
      s("s1", "execute_program",
        {{"program_id", "prog-1"},
         {"inputs", {{"question", "What is 2+2?"}, {"context", "math"}, {"extra", 1}}}}),
      s("s1", "execute_program", {{"program_id", "mine"}, {"inputs", {{"q", tricky}}}}),
      s("s1", "execute_program", {{"program_id", "mine"}, {"inputs", {{"q", 1e-7}}}}),
      s("s1", "execute_program", {{"program_id", "mine"}, {"inputs", {{"q", -0.0}}}}),
      s("s1", "execute_program",
        {{"program_id", "mine"}, {"inputs", {{"q", 18446744073709551615ull}}}}),
      s("s1", "execute_program", {{"program_id", "mine"}, {"inputs", {{"q", "日本語 \x1f"}}}}),
      s("s1", "execute_program", {{"program_id", "nope"}}),
      s("s1", "execute_program", {{"program_id", {"x"}}}),
      s("s1", "execute_program", {{"program_id", 5}}),
      s("s1", "execute_program", Json::object()),
      s("s1", "execute_program", {{"program_id", "prog-1"}, {"inputs", {{"question", "x"}}}}),
      s("s1", "execute_program", {{"program_id", "prog-1"}, {"inputs", {1}}}),
      s("s1", "execute_program", {{"program_id", "prog-1"}, {"inputs", Json::array()}}),
      s("s1", "execute_program", {{"program_id", "prog-1"}, {"inputs", 0}}),
      s("s1", "execute_program", {{"program_id", "prog-1"}, {"inputs", "text"}}),
      s("s1", "list_programs", Json::object()),
      s("s1", "delete_program", {{"program_id", "mine"}}),
      s("s1", "delete_program", {{"program_id", "mine"}}),
      s("s1", "delete_program", {{"program_id", {1}}}),
      s("s1", "delete_program", Json::object()),
      s("s1", "list_programs", Json::object()),
      s("s2", "list_programs", Json::object()),
      s("s2", "echo", {{"x", 1}}),
  };
}

std::string temp_path(const char* suffix) {
  return testing::TempDir() + "mock_replay_" + std::to_string(::getpid()) + suffix;
}

TEST(MockExecutorVsPython, SameRequestsGiveTheSameAnswers) {
  const char* python = "/usr/bin/python3";
  if (::access(python, X_OK) != 0) GTEST_SKIP() << "no " << python;
  const std::vector<Case> cases = replay_cases();
  Json input = Json::array();
  for (const auto& c : cases) {
    input.push_back({{"session", c.session ? Json(*c.session) : Json(nullptr)},
                     {"command", c.command},
                     {"args", c.args}});
  }
  const std::string script = temp_path(".py"), in = temp_path(".in.json"),
                    out = temp_path(".out.json");
  std::ofstream(script) << kReplayScript;
  std::ofstream(in) << input.dump();
  const std::string command = std::string("PYTHONPATH='") + BRIDGEPOOL_PYTHON_DIR + "' " + python +
                              " '" + script + "' '" + BRIDGEPOOL_EXAMPLES_DIR + "' '" + in + "' '" +
                              out + "'";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  std::stringstream text;
  text << std::ifstream(out).rdbuf();
  const Json expected = Json::parse(text.str());
  std::remove(script.c_str());
  std::remove(in.c_str());
  std::remove(out.c_str());
  ASSERT_EQ(expected.size(), cases.size());

  MockExecutor mock;
  std::size_t raised = 0;
  for (const auto& py : expected) raised += py["ok"] ? 0 : 1;
  EXPECT_GT(raised, 40u);  // both paths are compared
  EXPECT_GT(cases.size() - raised, 40u);
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const Json& py = expected[i];
    SCOPED_TRACE(
        fmt::format("case {}: {} {} {}", i, c.session.value_or("-"), c.command, c.args.dump()));
    Json chunks = Json::array();
    ExecuteOptions options;
    options.on_chunk = [&](const Json& chunk) { chunks.push_back(chunk); };
    auto r = c.session ? mock.execute_in_session(*c.session, c.command, c.args, options)
                       : mock.execute(c.command, c.args, options);
    EXPECT_EQ(chunks, py["chunks"]);
    if (py["ok"]) {
      ASSERT_TRUE(r) << r.error().to_string();
      EXPECT_EQ(*r, py["result"]);
      continue;
    }
    ASSERT_FALSE(r) << "python raised " << py.dump() << ", mock answered " << r->dump();
    ASSERT_TRUE(r.error().python) << r.error().to_string();
    EXPECT_EQ(r.error().python->type, py["type"]);
    EXPECT_EQ(r.error().message,
              py["type"].get<std::string>() + ": " + py["message"].get<std::string>());
    const std::optional<bool> retryable =
        py["retryable"].is_null() ? std::nullopt : std::optional<bool>(py["retryable"]);
    EXPECT_EQ(r.error().python->retryable, retryable);
  }
}

#endif

}  // namespace
}  // namespace bridgepool
