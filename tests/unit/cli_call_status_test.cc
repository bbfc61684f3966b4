// `bridgepool call` / `status`: exit codes by error category and the worker table.
#include <gtest/gtest.h>

#include "cli/api_client.h"
#include "cli/call_exit.h"
#include "cli/status_table.h"

namespace bridgepool::cli {
namespace {

TEST(CallExit, OneCodePerKindOfFailure) {
  EXPECT_EQ(exit_code_for(ErrorCategory::kInvalidRequest), 3);
  EXPECT_EQ(exit_code_for(ErrorCategory::kPython), 4);
  EXPECT_EQ(exit_code_for(ErrorCategory::kTimeout), 5);
  EXPECT_EQ(exit_code_for(ErrorCategory::kSession), 6);
  EXPECT_EQ(exit_code_for(ErrorCategory::kResource), 7);
  EXPECT_EQ(exit_code_for(ErrorCategory::kCircuitOpen), 7);
  EXPECT_EQ(exit_code_for(ErrorCategory::kConnection), 8);
  EXPECT_EQ(exit_code_for(ErrorCategory::kInitialization), 8);
  EXPECT_EQ(exit_code_for(ErrorCategory::kSystem), 9);
}

TEST(CallExit, HelpListsEveryCode) {
  std::string help = call_exit_help();
  EXPECT_NE(help.find("  3   invalid_request\n"), std::string::npos) << help;
  EXPECT_NE(help.find("  7   resource, circuit_open\n"), std::string::npos) << help;
  EXPECT_NE(help.find("  8   initialization, connection, communication, health_check\n"),
            std::string::npos)
      << help;
  EXPECT_NE(help.find("  10  no server reachable"), std::string::npos) << help;
}

TEST(StatusTable, OneRowPerWorker) {
  auto status = nlohmann::json::parse(R"({
    "server": {"version": "0.1.0", "uptime_s": 12.5, "listen": "127.0.0.1:8765"},
    "pool": {"name": "default", "ready": true, "size": 2, "busy": 1, "queue_length": 0,
             "requests": 10, "ok": 9},
    "breaker": {"state": "closed"},
    "workers": [{"id": "w1", "pid": 1234, "state": "busy", "health": "healthy", "requests": 6,
                 "python_errors": 1, "uptime_s": 3.25, "generation": 1,
                 "current_session": "s1", "rss_bytes": 10485760},
                {"id": "w2"},
                {"id": "w3", "pid": 1240, "state": "ready", "health": "healthy",
                 "spare": true}]})");
  std::string table = format_status(status);
  EXPECT_NE(table.find("server  127.0.0.1:8765  version 0.1.0  up 12.5 s"), std::string::npos)
      << table;
  EXPECT_NE(table.find("w1         1234 busy          healthy"), std::string::npos) << table;
  EXPECT_NE(table.find("10.0  s1"), std::string::npos) << table;
  EXPECT_NE(table.find("w2            - -"), std::string::npos) << table;
  EXPECT_NE(table.find("w3         1240 spare         healthy"), std::string::npos) << table;
}

TEST(StatusTable, NoWorkersSaysSo) {
  EXPECT_NE(format_status(nlohmann::json::object()).find("(no workers)"), std::string::npos);
}

// --url (and $BRIDGEPOOL_URL) must be http://HOST[:PORT]: httplib's client throws on other
// schemes, and a path would be silently dropped.
TEST(ApiClient, UrlProblems) {
  EXPECT_EQ(url_problem("http://127.0.0.1:8765"), "");
  EXPECT_EQ(url_problem("http://localhost"), "");
  EXPECT_NE(url_problem("garbage://x"), "");
  EXPECT_NE(url_problem("https://x"), "");
  EXPECT_NE(url_problem("127.0.0.1:8765"), "");
  EXPECT_NE(url_problem("http://"), "");
  EXPECT_NE(url_problem("http://:8765"), "");
  EXPECT_NE(url_problem("http://host/v1"), "");
  // api_call says so instead of letting httplib throw.
  auto reply = api_call("garbage://x", "/v1/status", std::nullopt, "", std::chrono::seconds(1));
  ASSERT_FALSE(reply);
  EXPECT_NE(reply.error().find("http://"), std::string::npos) << reply.error();
}

}  // namespace
}  // namespace bridgepool::cli
