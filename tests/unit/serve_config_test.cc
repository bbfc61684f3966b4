// ServeConfig: the merge of defaults < TOML < environment < flags, every rejected value naming
// its source, whole-config validation, and the docs/serve.md reference generated from the keys.
#include "server/serve_config.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "unit/golden_doc.h"

namespace bridgepool::server {
namespace {

struct Merged {
  ServeConfig config;
  SourceMap sources;
};

TEST(ServeConfig, DefaultsAreValid) {
  ServeConfig c;
  EXPECT_TRUE(validate(c, {}).has_value());
  EXPECT_EQ(c.listen, "127.0.0.1:8765");
  EXPECT_EQ(c.workers, 2u);
  EXPECT_EQ(c.log_format, "text");
}

TEST(ServeConfig, FileThenEnvironmentThenFlagsWin) {
  Merged m;
  ASSERT_TRUE(apply_toml(m.config, m.sources,
                         "workers = 3\nlog_level = \"debug\"\nmax_body_bytes = 100\n", "s.toml"));
  ASSERT_TRUE(apply_env(m.config, m.sources,
                        {{"BRIDGEPOOL_WORKERS", "4"}, {"BRIDGEPOOL_LOG_LEVEL", "warn"}}));
  ASSERT_TRUE(apply_text(m.config, m.sources, {{"workers", "5", "--workers"}}));
  EXPECT_EQ(m.config.workers, 5u);
  EXPECT_EQ(m.config.log_level, "warn");
  EXPECT_EQ(m.config.max_body_bytes, 100u);
  EXPECT_EQ(m.sources["workers"], "--workers");
  EXPECT_EQ(m.sources["log_level"], "BRIDGEPOOL_LOG_LEVEL");
  EXPECT_EQ(m.sources["max_body_bytes"], "s.toml:3");
}

TEST(ServeConfig, TomlUnknownKeyNamesFileAndLine) {
  Merged m;
  auto r = apply_toml(m.config, m.sources, "workers = 2\nwrokers = 3\n", "serve.toml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "serve.toml:2: unknown key 'wrokers'");
}

TEST(ServeConfig, TomlWrongTypeNamesFileLineAndKey) {
  Merged m;
  auto r = apply_toml(m.config, m.sources, "\nworkers = \"two\"\n", "serve.toml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "serve.toml:2: workers: expected an integer >= 0, got \"two\"");
}

TEST(ServeConfig, TomlNegativeAndFloatAreRefused) {
  Merged m;
  EXPECT_FALSE(apply_toml(m.config, m.sources, "workers = -1\n", "f"));
  auto r = apply_toml(m.config, m.sources, "workers = 1.5\n", "f");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("f:1: workers"), std::string::npos) << r.error();
}

TEST(ServeConfig, TomlSyntaxErrorNamesLine) {
  Merged m;
  auto r = apply_toml(m.config, m.sources, "workers = 2\nlisten = \n", "serve.toml");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().rfind("serve.toml:2: ", 0), 0u) << r.error();
}

TEST(ServeConfig, TomlListOfHandlers) {
  Merged m;
  ASSERT_TRUE(apply_toml(m.config, m.sources, "handlers = [\"a.py\", \"b\"]\n", "f"));
  EXPECT_EQ(m.config.handlers, (std::vector<std::string>{"a.py", "b"}));
  EXPECT_FALSE(apply_toml(m.config, m.sources, "handlers = [1]\n", "f"));
}

TEST(ServeConfig, EnvironmentBadIntegerNamesVariable) {
  Merged m;
  auto r = apply_env(m.config, m.sources, {{"BRIDGEPOOL_WORKERS", "2x"}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "BRIDGEPOOL_WORKERS: expected an integer >= 0, got '2x'");
}

TEST(ServeConfig, EnvironmentIgnoresOtherBridgepoolVariables) {
  Merged m;
  EXPECT_TRUE(apply_env(m.config, m.sources, {{"BRIDGEPOOL_PYTHONPATH", "/x"}}));
}

TEST(ServeConfig, EnvironmentListIsCommaSeparated) {
  Merged m;
  ASSERT_TRUE(apply_env(m.config, m.sources, {{"BRIDGEPOOL_HANDLERS", "a.py,b.py"}}));
  EXPECT_EQ(m.config.handlers, (std::vector<std::string>{"a.py", "b.py"}));
}

TEST(ServeConfig, FlagBadBooleanNamesFlag) {
  Merged m;
  auto r = apply_text(m.config, m.sources, {{"insecure", "maybe", "--insecure"}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "--insecure: expected true or false, got 'maybe'");
}

TEST(ServeConfig, UnknownFlagKeyIsRefused) {
  Merged m;
  EXPECT_FALSE(apply_text(m.config, m.sources, {{"nope", "1", "--nope"}}));
}

TEST(ServeConfig, ValidationNamesTheSourceOfTheBadKey) {
  Merged m;
  ASSERT_TRUE(apply_toml(m.config, m.sources, "min_ready = 3\n", "serve.toml"));
  auto r = validate(m.config, m.sources);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "serve.toml:1: min_ready: 3 is more than workers (2)");
}

TEST(ServeConfig, BadLogLevelAndFormatAreRefused) {
  Merged m;
  ASSERT_TRUE(apply_text(m.config, m.sources, {{"log_level", "loud", "--log-level"}}));
  EXPECT_EQ(validate(m.config, m.sources).error(),
            "--log-level: log_level: 'loud' is not debug|info|warn|error|off");
  m.config.log_level = "info";
  m.config.log_format = "xml";
  EXPECT_FALSE(validate(m.config, m.sources));
}

TEST(ServeConfig, NonLoopbackNeedsTokenOrInsecure) {
  Merged m;
  ASSERT_TRUE(apply_text(m.config, m.sources, {{"listen", "0.0.0.0:8765", "--listen"}}));
  auto r = validate(m.config, m.sources);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("--listen: listen: 0.0.0.0:8765 can be reached"), std::string::npos);
  m.config.token = "secret";
  EXPECT_TRUE(validate(m.config, m.sources));
  m.config.token.clear();
  m.config.insecure = true;
  EXPECT_TRUE(validate(m.config, m.sources));
}

TEST(ServeConfig, BadListenAddressIsRefused) {
  Merged m;
  m.config.listen = "127.0.0.1";
  EXPECT_FALSE(validate(m.config, m.sources));
  m.config.listen = "127.0.0.1:70000";
  EXPECT_FALSE(validate(m.config, m.sources));
}

TEST(ServeConfig, ZeroWorkersAndZeroTimeoutsAreRefused) {
  for (const char* key : {"workers", "max_body_bytes", "request_timeout_ms", "read_timeout_ms",
                          "checkout_timeout_ms", "session_ttl_s"}) {
    Merged m;
    ASSERT_TRUE(apply_text(m.config, m.sources, {{key, "0", "flag"}}));
    if (std::string(key) == "workers") m.config.min_ready = 0;
    EXPECT_FALSE(validate(m.config, m.sources)) << key;
  }
}

TEST(ServeConfig, PoolSettingsCarryOver) {
  ServeConfig c;
  c.workers = 3;
  c.max_overflow = 1;
  c.checkout_timeout_ms = 123;
  c.request_timeout_ms = 456;
  c.session_ttl_s = 7;
  c.handlers = {"h.py"};
  c.start_method = "fork-server";
  c.spare_workers = 2;
  PoolConfig p = to_pool_config(c);
  EXPECT_EQ(p.size, 3u);
  EXPECT_EQ(p.max_overflow, 1u);
  EXPECT_EQ(p.checkout_timeout, milliseconds(123));
  EXPECT_EQ(p.request_timeout, milliseconds(456));
  EXPECT_EQ(p.session_ttl, milliseconds(7000));
  EXPECT_EQ(p.handlers, c.handlers);
  EXPECT_EQ(p.start_method, StartMethod::kForkServer);
  EXPECT_EQ(p.spare_workers, 2u);
}

TEST(ServeConfig, StartMethodAndSparesAreChecked) {
  Merged m;
  ASSERT_TRUE(apply_text(m.config, m.sources, {{"start_method", "forkserver", "--start-method"}}));
  auto bad = validate(m.config, m.sources);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error(), "--start-method: start_method: 'forkserver' is not spawn|fork-server");
  Merged spares;
  ASSERT_TRUE(apply_text(spares.config, spares.sources, {{"spare_workers", "513", "flag"}}));
  EXPECT_FALSE(validate(spares.config, spares.sources));
  for (const char* ok : {"spawn", "fork-server", "fork_server"}) {
    Merged good;
    ASSERT_TRUE(apply_text(good.config, good.sources, {{"start_method", ok, "flag"}}));
    EXPECT_TRUE(validate(good.config, good.sources)) << ok;
  }
}

TEST(PoolConfigStartMethod, NamesRoundTripAndUnknownOnesAreRefused) {
  EXPECT_EQ(parse_start_method("spawn"), StartMethod::kSpawn);
  EXPECT_EQ(parse_start_method("fork-server"), StartMethod::kForkServer);
  EXPECT_EQ(parse_start_method(start_method_name(StartMethod::kForkServer)),
            StartMethod::kForkServer);
  EXPECT_FALSE(parse_start_method(""));
  EXPECT_FALSE(parse_start_method("Fork-Server"));
  PoolConfig too_many;
  too_many.spare_workers = 5000;
  EXPECT_FALSE(too_many.resolve());
}

TEST(ServeConfig, EnvAndFlagNamesDeriveFromTheKey) {
  KeyInfo k{"max_body_bytes", KeyType::kUint, ""};
  EXPECT_EQ(k.env_name(), "BRIDGEPOOL_MAX_BODY_BYTES");
  EXPECT_EQ(k.flag_name(), "--max-body-bytes");
}

// docs/serve.md holds the generated table between two markers; this fails when they differ.
// BRIDGEPOOL_UPDATE_DOCS=1 build/tests/unit_tests --gtest_filter='ServeReference.*' rewrites it.
TEST(ServeReference, DocsTableMatchesTheKeys) {
  const std::string doc = testing::read_source_file("docs/serve.md");
  const std::string begin = "<!-- keys:begin -->\n", end = "<!-- keys:end -->";
  auto b = doc.find(begin), e = doc.find(end);
  ASSERT_NE(b, std::string::npos) << "docs/serve.md has no " << begin;
  ASSERT_NE(e, std::string::npos) << "docs/serve.md has no " << end;
  testing::expect_generated_doc(
      "docs/serve.md", doc.substr(0, b + begin.size()) + serve_keys_markdown() + doc.substr(e));
}

}  // namespace
}  // namespace bridgepool::server
