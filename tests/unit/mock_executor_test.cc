// MockExecutor: the built-ins (exact results, or exact shapes where a value describes a process),
// registered C++ handlers (arguments, context, chunks, session state, errors and their
// classification), validation, the call report, concurrency, and hostile inputs — handlers that
// throw, return huge values, re-enter the executor or are replaced while they run; bad names.
// That the built-ins have the real runtime's shapes is checked against a real worker in
// tests/integration/mock_executor_test.cc.
#include "bridgepool/mock_executor.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace bridgepool {
namespace {

using std::chrono::milliseconds;
using Context = MockExecutor::Context;

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

Result<Json> echo(const Json& args, Context&) { return args; }

// A Python exception as a worker's reply would carry it.
Error python_exception(std::string type, std::string message, std::optional<bool> retryable = {}) {
  Error e(ErrorCategory::kPython, type + ": " + message);
  e.python = PythonError{type, type + ": " + message + "\n", retryable};
  return e;
}

class MockExecutorTest : public ::testing::Test {
 protected:
  ManualClock clock_;
  MockExecutor mock_{MockExecutorConfig{}, clock_};

  void handle(std::string command, MockExecutor::Handler handler, bool idempotent = false) {
    auto added = mock_.add_handler(std::move(command), std::move(handler), idempotent);
    ASSERT_TRUE(added) << added.error().to_string();
  }
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

// ---- built-ins ----

TEST_F(MockExecutorTest, BuiltinsAnswerLikeTheRuntime) {
  handle("echo", echo, true);
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
  EXPECT_EQ(stats["handlers_version"], nullptr);  // a handler module without __version__
  EXPECT_EQ(stats["commands"]["ping"], 2);
  EXPECT_EQ(stats["commands"]["get_stats"], 1);
  EXPECT_EQ(stats["commands"]["echo"], 0);
  EXPECT_EQ(stats["commands"].size(), 7u);  // six built-ins and echo
  Json stats_shape = shape(stats);
  stats_shape.erase("commands");
  EXPECT_EQ(stats_shape, Json::parse(R"({"pid": "int", "worker_id": "string",
      "uptime_s": "float", "requests_served": "int", "errors": "int", "sessions": "int",
      "rss_mb": "float", "handlers_version": "null", "unhealthy_marks": "int",
      "last_unhealthy": "null", "sentinel_pid": "int"})"));
}

TEST_F(MockExecutorTest, ConfiguredIdentityIsWhatTheBuiltinsErrorsAndReportsSay) {
  MockExecutorConfig config;
  config.worker_id = "fallback";
  config.handlers_version = "examples-1";
  MockExecutor other(config, clock_);
  ASSERT_TRUE(other.add_handler("fail", [](const Json&, Context&) -> Result<Json> {
    return tl::unexpected(python_exception("ValueError", "no"));
  }));
  EXPECT_EQ((*other.execute("health_check"))["worker_id"], "fallback");
  const Json stats = *other.execute("get_stats");
  EXPECT_EQ(stats["worker_id"], "fallback");
  EXPECT_EQ(stats["handlers_version"], "examples-1");
  CallReport report;
  ExecuteOptions options;
  options.report = &report;
  auto failed = other.execute("fail", Json::object(), options);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().context.worker_id, "fallback");
  EXPECT_EQ(report.worker_id, "fallback");
}

TEST_F(MockExecutorTest, ListCommandsHasEveryCommandWithItsFlags) {
  handle("echo", echo, true);
  handle("create_program", echo);
  const Json list = ok("list_commands");
  ASSERT_EQ(list["commands"].size(), 8u);
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
  EXPECT_EQ(find("echo")["idempotent"], true);
  EXPECT_EQ(find("create_program")["idempotent"], false);
}

TEST_F(MockExecutorTest, UnknownCommandListsTheAvailableOnes) {
  handle("echo", echo);
  const Error e = error("nope");
  EXPECT_EQ(e.category, ErrorCategory::kInvalidRequest);
  EXPECT_EQ(e.message,
            "unknown command 'nope'; available commands: close_session, echo, get_stats, "
            "health_check, list_commands, ping, shutdown");
  EXPECT_FALSE(e.python);  // no Python ran: the same words as a pool's refusal
  EXPECT_EQ(e.strategy, RecoveryStrategy::kAbandon);
  EXPECT_EQ(e.context.adapter, "mock");
  EXPECT_EQ(ok("get_stats")["errors"], 1);  // the runtime counts it as an answered error
}

TEST_F(MockExecutorTest, CloseSessionRejectsANonStringIdLikeTheRuntime) {
  const Error e = error("close_session", Json{{"session_id", 5}});
  EXPECT_EQ(e.category, ErrorCategory::kInvalidRequest);
  EXPECT_EQ(e.message, "InvalidArguments: session_id must be a string, got int");
  EXPECT_EQ(e.context.command, "close_session");
  EXPECT_EQ(e.context.worker_id, "mock");
  EXPECT_EQ(e.context.adapter, "mock");
  ASSERT_TRUE(e.python);
  EXPECT_EQ(e.python->type, "InvalidArguments");
  EXPECT_EQ(e.python->retryable, false);
  EXPECT_EQ(error("close_session", Json{{"session_id", {1}}}).message,
            "InvalidArguments: session_id must be a string, got list");
}

// ---- registered handlers ----

TEST_F(MockExecutorTest, RegisteredHandlersAnswerWithTheirResults) {
  handle("echo", echo, true);
  handle("compute", [](const Json& args, Context&) -> Result<Json> {
    const std::int64_t n = args.value("n", 100'000);
    return Json{{"n", n}, {"value", n * 2}};
  });
  EXPECT_EQ(ok("echo", Json{{"a", 1}, {"b", {1, 2.5, "x"}}}),
            Json({{"a", 1}, {"b", {1, 2.5, "x"}}}));
  EXPECT_EQ(ok("echo", Json::object()), Json::object());
  EXPECT_EQ(ok("compute"), Json({{"n", 100000}, {"value", 200000}}));
  EXPECT_EQ(ok("compute", Json{{"n", 10}}), Json({{"n", 10}, {"value", 20}}));
  EXPECT_EQ(ok("get_stats")["commands"]["echo"], 2);
}

TEST_F(MockExecutorTest, HandlerSeesItsCommandAndSessionAndStreamsChunksBeforeTheResult) {
  std::vector<std::string> seen;
  std::vector<Json> chunks;
  std::vector<std::size_t> chunks_before_return;
  handle("stream", [&](const Json& args, Context& ctx) -> Result<Json> {
    seen.push_back(std::string(ctx.command()) + "@" + std::string(ctx.session_id()));
    const int count = args.value("count", 3);
    for (int i = 0; i < count; ++i) ctx.send_chunk(Json{{"i", i}});
    chunks_before_return.push_back(chunks.size());
    return Json{{"count", count}};
  });
  ExecuteOptions options;
  options.on_chunk = [&](const Json& chunk) { chunks.push_back(chunk); };
  auto r = mock_.execute("stream", Json{{"count", 4}}, options);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, Json({{"count", 4}}));
  EXPECT_EQ(chunks, (std::vector<Json>{{{"i", 0}}, {{"i", 1}}, {{"i", 2}}, {{"i", 3}}}));
  chunks.clear();
  EXPECT_EQ(ok_in("s1", "stream", Json{{"count", 0}}), Json({{"count", 0}}));  // nobody listens
  EXPECT_EQ(ok("stream", Json{{"count", 2}}), Json({{"count", 2}}));           // dropped chunks
  EXPECT_EQ(seen, (std::vector<std::string>{"stream@", "stream@s1", "stream@"}));
  // Each chunk reached the caller when it was sent, before the handler returned.
  EXPECT_EQ(chunks_before_return, (std::vector<std::size_t>{4, 0, 0}));
}

TEST_F(MockExecutorTest, HandlerErrorsGetTheCallsContext) {
  handle("fail", [](const Json& args, Context&) -> Result<Json> {
    return tl::unexpected(python_exception(args.value("type", "RuntimeError"),
                                           args.value("message", "requested failure")));
  });
  Error e = error("fail", Json{{"type", "ValueError"}, {"message", "bad"}}, "s1");
  EXPECT_EQ(e.category, ErrorCategory::kPython);
  EXPECT_EQ(e.message, "ValueError: bad");
  EXPECT_EQ(e.context.operation, "execute");
  EXPECT_EQ(e.context.command, "fail");
  EXPECT_EQ(e.context.session_id, "s1");
  EXPECT_EQ(e.context.worker_id, "mock");
  EXPECT_EQ(e.context.adapter, "mock");
  ASSERT_TRUE(e.python);
  EXPECT_EQ(e.python->type, "ValueError");
  EXPECT_EQ(e.python->traceback, "ValueError: bad\n");  // as the handler gave it
  EXPECT_EQ(ok("get_stats")["errors"], 1);
}

TEST_F(MockExecutorTest, ErrorsAreClassifiedLikeTheBridgeDoes) {
  handle("crash", [](const Json&, Context&) -> Result<Json> {
    return make_error(ErrorCategory::kConnection, "worker mock (pid 0) exited during request");
  });
  handle("fail", [](const Json& args, Context&) -> Result<Json> {
    std::optional<bool> retryable;
    if (args.value("retryable", false)) retryable = true;
    return tl::unexpected(python_exception("RuntimeError", "requested failure", retryable));
  });
  // A crash is not idempotent and may have run: never retried (the real crash is not either).
  Error crash = error("crash");
  EXPECT_EQ(crash.category, ErrorCategory::kConnection);
  EXPECT_EQ(crash.strategy, RecoveryStrategy::kAbandon);
  // A Python error marked retryable may be retried after a delay.
  Error retryable = error("fail", Json{{"retryable", true}});
  EXPECT_EQ(retryable.strategy, RecoveryStrategy::kBackoffRetry);
  Error plain = error("fail");
  EXPECT_EQ(plain.strategy, RecoveryStrategy::kAbandon);
}

TEST_F(MockExecutorTest, AddedHandlersAnswerAndMayBeReplacedButBuiltInsMayNot) {
  std::vector<std::string> sessions_seen;
  handle(
      "translate",
      [&](const Json& args, Context& ctx) -> Result<Json> {
        sessions_seen.emplace_back(ctx.session_id());
        if (!args.contains("text")) {
          return make_error(ErrorCategory::kPython, "ValueError: text is required");
        }
        return Json{{"translation", "mock:" + args["text"].get<std::string>()}};
      },
      true);
  handle("echo", echo);
  EXPECT_EQ(ok("translate", Json({{"text", "hi"}})), Json({{"translation", "mock:hi"}}));
  EXPECT_EQ(ok_in("s1", "translate", Json{{"text", "x"}})["translation"], "mock:x");
  EXPECT_EQ(sessions_seen, (std::vector<std::string>{"", "s1"}));
  Error e = error("translate", Json::object(), "s1");
  EXPECT_EQ(e.category, ErrorCategory::kPython);
  EXPECT_EQ(e.context.command, "translate");
  EXPECT_EQ(e.context.session_id, "s1");
  EXPECT_EQ(e.context.adapter, "mock");
  EXPECT_EQ(ok("echo", Json{{"a", 1}}), Json({{"a", 1}}));
  handle(
      "echo", [](const Json&, Context&) -> Result<Json> { return Json("canned"); }, true);
  EXPECT_EQ(ok("echo", Json{{"a", 1}}), "canned");
  EXPECT_EQ(ok("get_stats")["commands"]["echo"], 2);  // the count survives the replacement

  auto refused = mock_.add_handler("ping", echo);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().category, ErrorCategory::kInvalidRequest);
  EXPECT_EQ(refused.error().message,
            "'ping' is a built-in command of the Python runtime; it cannot be replaced");
  EXPECT_EQ(refused.error().context.operation, "add_handler");
  EXPECT_EQ(ok("ping"), "pong");
  refused = mock_.add_handler("nothing", MockExecutor::Handler{});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message, "handler for 'nothing' is empty");
  const auto names = mock_.commands();
  EXPECT_EQ(std::find(names.begin(), names.end(), "nothing"), names.end());
  const Json list = ok("list_commands");
  for (const auto& c : list["commands"]) {
    if (c["name"] == "translate") {
      EXPECT_EQ(c["idempotent"], true);
    }
  }
}

// ---- sessions ----

TEST_F(MockExecutorTest, SessionStateLivesInItsSessionUntilClosed) {
  // A little "programs" module: per-session programs, numbered per session.
  handle("create_program", [](const Json& args, Context& ctx) -> Result<Json> {
    if (ctx.session_id().empty()) {
      return tl::unexpected(python_exception("ValueError", "programs need a session"));
    }
    Json& state = ctx.state();
    const int number = state.value("counter", 0) + 1;
    state["counter"] = number;
    const std::string id = args.value("program_id", "prog-" + std::to_string(number));
    state["programs"][id] = args.value("signature", "");
    return Json{{"program_id", id}};
  });
  handle("list_programs", [](const Json&, Context& ctx) -> Result<Json> {
    const Json programs = ctx.state().value("programs", Json::object());
    Json ids = Json::array();
    for (const auto& [id, signature] : programs.items()) ids.push_back(id);
    return Json{{"programs", ids}};
  });
  EXPECT_EQ(ok_in("s1", "create_program", Json{{"signature", "q -> a"}}),
            Json({{"program_id", "prog-1"}}));
  EXPECT_EQ(ok_in("s1", "create_program", Json{{"program_id", "mine"}}),
            Json({{"program_id", "mine"}}));
  EXPECT_EQ(ok_in("s1", "create_program", Json::object())["program_id"], "prog-3");
  EXPECT_EQ(ok_in("s1", "list_programs"), Json({{"programs", {"mine", "prog-1", "prog-3"}}}));
  EXPECT_EQ(ok_in("s2", "list_programs"), Json({{"programs", Json::array()}}));
  EXPECT_EQ(ok("list_programs"), Json({{"programs", Json::array()}}));  // no session, no state
  EXPECT_EQ(error("create_program").message, "ValueError: programs need a session");
  EXPECT_EQ(ok("get_stats")["sessions"], 2);

  // close_session (the built-in command) drops the state; the Executor call forgets the session.
  EXPECT_EQ(ok_in("s1", "close_session"), Json({{"closed", true}, {"session_id", "s1"}}));
  EXPECT_EQ(ok_in("s1", "list_programs"), Json({{"programs", Json::array()}}));
  EXPECT_EQ(ok_in("s1", "create_program", Json::object())["program_id"], "prog-1");
  EXPECT_EQ(ok("close_session", Json{{"session_id", "s9"}}),
            Json({{"closed", false}, {"session_id", "s9"}}));
  EXPECT_EQ(ok("close_session"), Json({{"closed", false}, {"session_id", nullptr}}));
  EXPECT_EQ(mock_.close_session("s2"), true);
  EXPECT_EQ(mock_.close_session("s2"), false);
  EXPECT_EQ(ok_in("s3", "ping"), "pong");  // a built-in does not create session state ...
  EXPECT_EQ(ok("close_session", Json{{"session_id", "s3"}})["closed"], false);
  EXPECT_EQ(mock_.close_session("s3"), true);  // ... but the executor knows the session
  EXPECT_EQ(ok("get_stats")["sessions"], 1);   // s1 again
}

TEST_F(MockExecutorTest, MalformedRequestsAreRejectedLikeThePools) {
  handle("echo", echo);
  Error e = error("echo", Json::array({1}));
  EXPECT_EQ(e.category, ErrorCategory::kInvalidRequest);
  EXPECT_EQ(e.message, "args must be a JSON object, got array");
  EXPECT_EQ(e.context.adapter, "mock");
  EXPECT_EQ(ok("echo", Json(nullptr)), Json::object());  // null reads as no arguments
  EXPECT_EQ(error("echo", Json("text")).message, "args must be a JSON object, got string");
  e = error("", Json::object());
  EXPECT_EQ(e.category, ErrorCategory::kInvalidRequest);
  EXPECT_EQ(e.message, "command name is empty");
  e = error("echo", Json::object(), "");
  EXPECT_EQ(e.message, "session id is empty");
  EXPECT_EQ(error(std::string(257, 'x')).message, "command name is 257 bytes long (max 256)");
  EXPECT_EQ(error(std::string_view("ec\0ho", 5)).message, "command name contains NUL");
  EXPECT_EQ(ok("get_stats")["requests_served"], 1);  // only the null-args echo reached it
  auto closed = mock_.close_session("");
  ASSERT_FALSE(closed);
  EXPECT_EQ(closed.error().category, ErrorCategory::kInvalidRequest);
}

TEST_F(MockExecutorTest, ReportSaysTheMockServed) {
  handle("fail", [](const Json&, Context&) -> Result<Json> {
    return tl::unexpected(python_exception("RuntimeError", "requested failure"));
  });
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
  EXPECT_EQ(report.attempts, 1u);
  report = {"stale", "stale", 9, {"stale"}};
  ASSERT_FALSE(mock_.execute("", Json::object(), options));  // rejected before any command ran
  EXPECT_EQ(report.adapter, "mock");
  EXPECT_EQ(report.worker_id, "");
  EXPECT_EQ(report.attempts, 0u);
  EXPECT_TRUE(report.adapters_tried.empty());
  EXPECT_EQ(mock_.kind(), "mock");
}

TEST(MockExecutor, ConcurrentCallsKeepExactCounts) {
  MockExecutor mock;
  auto add_program = [](const Json&, Context& ctx) -> Result<Json> {
    ctx.state()["programs"].push_back(ctx.state()["programs"].size());
    return Json{{"ok", true}};
  };
  auto list_programs = [](const Json&, Context& ctx) -> Result<Json> {
    return Json{{"programs", ctx.state().value("programs", Json::array())}};
  };
  ASSERT_TRUE(mock.add_handler("create_program", add_program));
  ASSERT_TRUE(mock.add_handler("list_programs", list_programs, true));
  constexpr int kThreads = 4;
  constexpr int kCalls = 300;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Two threads share each session: calls in one session run one at a time.
      const std::string session = "s" + std::to_string(t % 2);
      for (int i = 0; i < kCalls; ++i) {
        bool good = true;
        switch (i % 4) {
          case 0:
            good = mock.execute_in_session(session, "create_program").has_value();
            break;
          case 1:
            good = mock.execute("health_check").has_value();
            break;
          case 2:
            good = mock.execute("get_stats").has_value();
            break;
          case 3:
            if (i % 40 == 3) {
              good = mock.add_handler("extra",
                                      [](const Json&, Context&) { return Result<Json>(Json(1)); })
                         .has_value();
            }
            good = good && mock.execute_in_session(session, "list_programs").has_value();
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
  EXPECT_EQ(stats["sessions"], 2);
  for (int s = 0; s < 2; ++s) {
    auto list = mock.execute_in_session("s" + std::to_string(s), "list_programs");
    ASSERT_TRUE(list);
    const Json& programs = (*list)["programs"];
    ASSERT_EQ(programs.size(), static_cast<std::size_t>(2 * kCalls / 4));
    for (std::size_t i = 0; i < programs.size(); ++i) EXPECT_EQ(programs[i], i);  // no lost update
  }
}

// ---- hostile inputs ----

TEST_F(MockExecutorTest, ThrowingHandlersBecomeSystemErrorsAndTheMockKeepsServing) {
  handle("boom", [](const Json&, Context&) -> Result<Json> { throw std::runtime_error("oops"); });
  handle("boom_int", [](const Json&, Context&) -> Result<Json> { throw 42; });
  handle("stream", [](const Json&, Context& ctx) -> Result<Json> {
    ctx.send_chunk(Json(1));
    return Json("done");
  });
  Error e = error("boom");
  EXPECT_EQ(e.category, ErrorCategory::kSystem);
  EXPECT_EQ(e.message, "mock handler for 'boom' threw: oops");
  EXPECT_EQ(e.context.adapter, "mock");
  EXPECT_EQ(error("boom_int").message, "mock handler for 'boom_int' threw a non-exception");
  // The caller's own chunk callback throwing is caught at the same boundary.
  ExecuteOptions options;
  options.on_chunk = [](const Json&) { throw std::logic_error("listener broke"); };
  auto r = mock_.execute("stream", Json::object(), options);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().category, ErrorCategory::kSystem);
  EXPECT_EQ(r.error().message, "mock handler for 'stream' threw: listener broke");
  // In a session: the session's lock is released, so the next call in it runs.
  EXPECT_EQ(error("boom", Json::object(), "s1").category, ErrorCategory::kSystem);
  EXPECT_EQ(ok_in("s1", "stream"), "done");
  EXPECT_EQ(ok("get_stats")["errors"], 4);
}

TEST(MockExecutor, ResultTooLargeForAFrameIsTheRuntimesSerializationError) {
  MockExecutorConfig config;
  config.max_result_bytes = 1000;
  MockExecutor mock(config);
  ASSERT_TRUE(mock.add_handler("big", [](const Json& args, Context&) -> Result<Json> {
    return Json{{"data", std::string(args.value("bytes", std::size_t{0}), 'x')}};
  }));
  // {"data":"..."} is 11 bytes of JSON around the string.
  EXPECT_TRUE(mock.execute("big", Json{{"bytes", 989}}));
  auto r = mock.execute("big", Json{{"bytes", 990}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().category, ErrorCategory::kPython);
  EXPECT_EQ(r.error().message,
            "SerializationError: result of command 'big' encodes to 1001 bytes, more than the "
            "1000-byte frame limit");
  ASSERT_TRUE(r.error().python);
  EXPECT_EQ(r.error().python->type, "SerializationError");
  EXPECT_EQ(r.error().python->retryable, false);
  EXPECT_EQ(r.error().strategy, RecoveryStrategy::kAbandon);

  // The default limit is the pool's frame size, 64 MiB: a 65 MiB result is refused, not copied.
  MockExecutor defaults;
  ASSERT_TRUE(defaults.add_handler("huge", [](const Json&, Context&) -> Result<Json> {
    return Json(std::string(65u << 20, 'x'));
  }));
  auto huge = defaults.execute("huge");
  ASSERT_FALSE(huge);
  EXPECT_EQ(huge.error().python->type, "SerializationError");
  EXPECT_TRUE(defaults.execute("ping"));
}

TEST_F(MockExecutorTest, HandlersMayReenterTheExecutor) {
  handle("echo", echo, true);
  handle("remember", [](const Json& args, Context& ctx) -> Result<Json> {
    ctx.state()["value"] = args["value"];
    return ctx.state();
  });
  // Calls other commands, in and out of its own session, and registers a handler.
  handle("compose", [this](const Json& args, Context& ctx) -> Result<Json> {
    auto inner = mock_.execute("echo", args);
    if (!inner) return tl::unexpected(inner.error());
    ctx.state()["outer"] = true;
    auto nested = mock_.execute_in_session(ctx.session_id(), "remember", Json{{"value", 7}});
    if (!nested) return tl::unexpected(nested.error());
    auto other = mock_.execute_in_session("elsewhere", "remember", Json{{"value", 8}});
    if (!other) return tl::unexpected(other.error());
    auto added = mock_.add_handler("late", echo);
    if (!added) return tl::unexpected(added.error());
    return Json{{"inner", *inner}, {"nested", *nested}, {"state", ctx.state()}};
  });
  EXPECT_EQ(ok_in("s1", "compose", Json{{"x", 1}}),
            Json({{"inner", {{"x", 1}}},
                  {"nested", {{"outer", true}, {"value", 7}}},  // the same session state
                  {"state", {{"outer", true}, {"value", 7}}}}));
  EXPECT_EQ(ok_in("elsewhere", "remember", Json{{"value", 9}}), Json({{"value", 9}}));
  EXPECT_EQ(ok("late", Json{{"y", 2}}), Json({{"y", 2}}));
  // A handler closing its own session: its state lives on until it returns; the next call in
  // the session starts afresh.
  handle("close_me", [this](const Json&, Context& ctx) -> Result<Json> {
    ctx.state()["before"] = 1;
    auto closed = mock_.close_session(ctx.session_id());
    ctx.state()["after"] = closed.value_or(false);
    return ctx.state();
  });
  EXPECT_EQ(ok_in("s2", "close_me"), Json({{"before", 1}, {"after", true}}));
  EXPECT_EQ(ok_in("s2", "remember", Json{{"value", 1}}), Json({{"value", 1}}));
}

TEST_F(MockExecutorTest, HandlerReplacedWhileItRunsFinishesItsCall) {
  handle("swap", [this](const Json&, Context&) -> Result<Json> {
    // Destroys the std::function that is running this lambda, were it not kept alive.
    auto added = mock_.add_handler(
        "swap", [](const Json&, Context&) -> Result<Json> { return Json("new"); });
    if (!added) return tl::unexpected(added.error());
    return Json("old");
  });
  EXPECT_EQ(ok("swap"), "old");
  EXPECT_EQ(ok("swap"), "new");
}

TEST(MockExecutor, HandlersReplacedConcurrentlyWithCallsAnswerOneVersionOrTheOther) {
  MockExecutor mock;
  ASSERT_TRUE(
      mock.add_handler("version", [](const Json&, Context&) -> Result<Json> { return Json(0); }));
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0}, calls{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 3; ++t) {
    callers.emplace_back([&] {
      int last = 0;
      while (!stop) {
        auto r = mock.execute("version");
        calls.fetch_add(1);
        // Versions only go up: a call never sees a handler older than one seen before.
        if (!r || !r->is_number_integer() || r->get<int>() < last) {
          bad.fetch_add(1);
        } else {
          last = r->get<int>();
        }
      }
    });
  }
  for (int v = 1; v <= 500; ++v) {
    // Each version captures a string, so a torn or freed handler would show.
    std::string payload(64, static_cast<char>('a' + v % 26));
    ASSERT_TRUE(mock.add_handler("version", [v, payload](const Json&, Context&) -> Result<Json> {
      if (payload.size() != 64) return make_error(ErrorCategory::kSystem, "torn");
      return Json(v);
    }));
  }
  stop = true;
  for (auto& th : callers) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ((*mock.execute("version")).get<int>(), 500);
  EXPECT_EQ((*mock.execute("get_stats"))["commands"]["version"], calls.load() + 1);
}

TEST_F(MockExecutorTest, NamesThatAreNotValidUtf8AreRejected) {
  handle("echo", echo);
  const std::string bad_names[] = {
      "\xff",              // never valid
      "ech\xc3",           // truncated sequence
      "\xc0\xaf",          // overlong '/'
      "\xed\xa0\x80",      // a UTF-16 surrogate
      "\xf4\x90\x80\x80",  // above U+10FFFF
      "e\x80",             // stray continuation byte
  };
  for (const std::string& name : bad_names) {
    SCOPED_TRACE(Json(name).dump(-1, ' ', false, Json::error_handler_t::replace));
    Error e = error(name);
    EXPECT_EQ(e.category, ErrorCategory::kInvalidRequest);
    EXPECT_EQ(e.message.rfind("command name is not valid UTF-8 (byte ", 0), 0u) << e.message;
    EXPECT_EQ(e.strategy, RecoveryStrategy::kAbandon);
    // The context keeps only the valid prefix, so the error can be logged or sent as JSON.
    EXPECT_NO_THROW((void)Json(e.context.command).dump());
    auto added = mock_.add_handler(name, echo);
    ASSERT_FALSE(added);
    EXPECT_EQ(added.error().category, ErrorCategory::kInvalidRequest);
    EXPECT_EQ(added.error().context.operation, "add_handler");
  }
  EXPECT_EQ(error("ech\xc3").message, "command name is not valid UTF-8 (byte 3 of 4)");
  EXPECT_EQ(error("ech\xc3").context.command, "ech");
  Error e = error("echo", Json::object(), "s\xff");
  EXPECT_EQ(e.message.rfind("session id is not valid UTF-8 (byte ", 0), 0u) << e.message;
  EXPECT_EQ(e.context.session_id, "s");
  // Valid multi-byte names are fine.
  handle("überprüfen", echo);
  handle("日本語", echo);
  handle("\xf0\x9f\x98\x80", echo);  // U+1F600, four bytes
  EXPECT_EQ(ok("日本語", Json{{"k", 1}}), Json({{"k", 1}}));
  EXPECT_EQ(ok_in("セッション", "\xf0\x9f\x98\x80"), Json::object());
  // Nothing of the refused names was registered, and no refused call reached a command.
  EXPECT_EQ(mock_.commands().size(), 10u);
  EXPECT_EQ(ok("get_stats")["requests_served"], 2);
  // A valid name too long for a request is refused too, and cut at a character boundary.
  std::string long_name(255, 'x');
  long_name += "é";  // bytes 255 and 256 (257 in all): the 256-byte cut splits it
  auto added = mock_.add_handler(long_name, echo);
  ASSERT_FALSE(added);
  EXPECT_EQ(added.error().message, "command name is 257 bytes long (max 256)");
  EXPECT_EQ(added.error().context.command, std::string(255, 'x'));
}

TEST(MockExecutor, ContextCanBeBuiltToCallAHandlerDirectly) {
  Json state = Json::object();
  std::vector<Json> chunks;
  std::function<void(const Json&)> on_chunk = [&](const Json& c) { chunks.push_back(c); };
  MockExecutor::Context ctx("count", "s1", state, &on_chunk);
  MockExecutor::Handler handler = [](const Json&, Context& c) -> Result<Json> {
    c.state()["n"] = c.state().value("n", 0) + 1;
    c.send_chunk(c.state()["n"]);
    return Json(std::string(c.session_id()));
  };
  EXPECT_EQ(*handler(Json::object(), ctx), "s1");
  EXPECT_EQ(*handler(Json::object(), ctx), "s1");
  EXPECT_EQ(state, Json({{"n", 2}}));
  EXPECT_EQ(chunks, (std::vector<Json>{1, 2}));
  MockExecutor::Context quiet("count", "", state);  // no listener: chunks are dropped
  EXPECT_TRUE(handler(Json::object(), quiet));
}

}  // namespace
}  // namespace bridgepool
