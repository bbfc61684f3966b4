// MockExecutor against a real worker: the mock's built-in commands answer with the same result
// shapes (keys and JSON types) as python/bridgepool_worker/builtin_commands.py, and reject the
// same bad requests with the same error category, Python type and message. Values that describe
// a process (pid, uptime, RSS, counters) may differ; shapes may not.
#include "bridgepool/mock_executor.h"

#include <set>
#include <string>
#include <vector>

#include "bridgepool/bridge.h"
#include "bridgepool/pool.h"
#include "integration/test_support.h"

namespace bridgepool::testing {
namespace {

// The JSON types of a value, recursively. An array becomes the sorted set of its elements'
// shapes, so lists of different lengths (the command lists) compare by what they hold:
// {"a": 1, "b": [true, false]} -> {"a": "int", "b": ["boolean"]}.
Json shape(const Json& v) {
  switch (v.type()) {
    case Json::value_t::object: {
      Json s = Json::object();
      for (const auto& [key, item] : v.items()) s[key] = shape(item);
      return s;
    }
    case Json::value_t::array: {
      std::set<std::string> kinds;
      for (const auto& item : v) kinds.insert(shape(item).dump());
      Json s = Json::array();
      for (const auto& kind : kinds) s.push_back(Json::parse(kind));
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

// get_stats' "commands" is keyed by command name, which differs between the two command sets:
// compare the shape of its values instead, and check the built-ins are all there.
Json stats_shape(const Json& stats) {
  Json s = stats;
  Json values = Json::array();
  for (const auto& [name, calls] : stats["commands"].items()) values.push_back(calls);
  s["commands"] = values;
  return shape(s);
}

Json builtin_entries(const Json& list) {
  Json out = Json::array();
  for (const auto& c : list["commands"]) {
    if (c["builtin"] == true) out.push_back(c);
  }
  return out;
}

TEST(MockExecutorIntegration, BuiltinsHaveTheShapesOfARealWorkersBuiltins) {
  // A spawned worker, which has a group sentinel (the mock reports one; a forked worker's
  // get_stats has "sentinel_pid": null).
  auto spawned = test_config(1);
  spawned.start_method = StartMethod::kSpawn;
  auto pool = start_pool(spawned);
  ASSERT_TRUE(pool);
  auto version = pool->execute("get_stats");
  ASSERT_TRUE(version) << version.error().to_string();
  MockExecutorConfig config;  // the same handlers_version as the worker's module
  if ((*version)["handlers_version"].is_string()) {
    config.handlers_version = (*version)["handlers_version"].get<std::string>();
  }
  MockExecutor mock(config);
  ASSERT_TRUE(mock.add_handler(
      "echo", [](const Json& args, MockExecutor::Context&) -> Result<Json> { return args; }, true));
  Executor* executors[] = {pool.get(), &mock};
  // The same history on both: a session with state (an echo in it), so that no count is zero.
  for (Executor* e : executors) {
    ASSERT_TRUE(e->execute_in_session("s1", "echo", Json{{"x", 1}}));
    ASSERT_TRUE(e->execute("ping"));
  }
  auto both = [&](std::string_view command, Json args = Json::object(),
                  std::optional<std::string_view> session = std::nullopt) {
    std::vector<Json> out;
    for (Executor* e : executors) {
      auto r = session ? e->execute_in_session(*session, command, args) : e->execute(command, args);
      EXPECT_TRUE(r) << e->kind() << " " << command << ": " << r.error().to_string();
      out.push_back(r ? *r : Json());
    }
    return out;
  };

  auto ping = both("ping");
  EXPECT_EQ(ping[0], "pong");
  EXPECT_EQ(ping[1], ping[0]);

  auto health = both("health_check");
  EXPECT_EQ(shape(health[1]), shape(health[0])) << health[0].dump() << "\n" << health[1].dump();
  EXPECT_EQ(health[0]["status"], "healthy");
  EXPECT_EQ(health[1]["status"], "healthy");

  auto stats = both("get_stats");
  EXPECT_EQ(stats_shape(stats[1]), stats_shape(stats[0])) << stats[0].dump() << "\n"
                                                          << stats[1].dump();
  EXPECT_EQ(stats[1]["sessions"], stats[0]["sessions"]);  // same history, same count: 1
  EXPECT_EQ(stats[1]["errors"], stats[0]["errors"]);

  auto list = both("list_commands");
  EXPECT_EQ(shape(list[1]), shape(list[0])) << list[0].dump() << "\n" << list[1].dump();
  // The built-ins themselves, with their flags, are the same.
  EXPECT_EQ(builtin_entries(list[1]), builtin_entries(list[0]));
  EXPECT_EQ(builtin_entries(list[0]).size(), 6u);
  for (const auto& c : builtin_entries(list[0])) {
    const std::string name = c["name"];
    EXPECT_TRUE(stats[0]["commands"].contains(name)) << name;
    EXPECT_TRUE(stats[1]["commands"].contains(name)) << name;
  }

  auto closed = both("close_session", Json::object(), "s1");
  EXPECT_EQ(shape(closed[1]), shape(closed[0]));
  EXPECT_EQ(closed[1], closed[0]);  // {"closed": true, "session_id": "s1"}
  auto not_found = both("close_session", Json{{"session_id", "nope"}});
  EXPECT_EQ(not_found[1], not_found[0]);  // {"closed": false, "session_id": "nope"}
  auto no_session = both("close_session");
  EXPECT_EQ(no_session[1], no_session[0]);  // {"closed": false, "session_id": null}
  EXPECT_EQ(no_session[0]["session_id"], nullptr);

  // The runtime's own error replies: same category, Python type, retryable mark and message.
  auto bad_session = pool->execute("close_session", Json{{"session_id", 5}});
  auto mocked_bad_session = mock.execute("close_session", Json{{"session_id", 5}});
  ASSERT_FALSE(bad_session);
  ASSERT_FALSE(mocked_bad_session);
  EXPECT_EQ(mocked_bad_session.error().category, ErrorCategory::kInvalidRequest);
  EXPECT_EQ(mocked_bad_session.error().category, bad_session.error().category);
  EXPECT_EQ(mocked_bad_session.error().message, bad_session.error().message);
  ASSERT_TRUE(bad_session.error().python);
  ASSERT_TRUE(mocked_bad_session.error().python);
  EXPECT_EQ(mocked_bad_session.error().python->type, bad_session.error().python->type);
  EXPECT_EQ(mocked_bad_session.error().python->retryable, bad_session.error().python->retryable);

  // An unknown command: every executor refuses it with the same words, before any Python runs.
  auto unknown_pool = pool->execute("no_such_command");
  auto unknown_mock = mock.execute("no_such_command");
  ASSERT_FALSE(unknown_pool);
  ASSERT_FALSE(unknown_mock);
  EXPECT_EQ(unknown_mock.error().category, ErrorCategory::kInvalidRequest);
  EXPECT_EQ(unknown_mock.error().category, unknown_pool.error().category);
  EXPECT_FALSE(unknown_pool.error().python);
  EXPECT_FALSE(unknown_mock.error().python);
  // The lists of available commands differ; the sentence does not.
  const std::string prefix = "unknown command 'no_such_command'; available commands: ";
  EXPECT_EQ(unknown_pool.error().message.rfind(prefix, 0), 0u) << unknown_pool.error().message;
  EXPECT_EQ(unknown_mock.error().message.rfind(prefix, 0), 0u) << unknown_mock.error().message;

  // Last: the real worker exits after answering (the pool replaces it); the mock keeps serving.
  auto shutdown = both("shutdown");
  EXPECT_EQ(shape(shutdown[1]), shape(shutdown[0]));
  EXPECT_EQ(shutdown[1], shutdown[0]);  // {"shutting_down": true}
  EXPECT_TRUE(mock.execute("ping"));
}

}  // namespace
}  // namespace bridgepool::testing
