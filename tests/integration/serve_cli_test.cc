// The real `bridgepool serve`, `call` and `status` binaries over loopback: the listening line,
// SIGTERM draining a request in flight, SIGHUP rolling restart, configuration errors, and call
// with and without a server.
#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "integration/cli_process.h"
#include "integration/test_support.h"

namespace bridgepool {
namespace {

using Json = nlohmann::json;

using testing::read_text;
using testing::TempDir;

// The binary with the test interpreter, its output files named after `tag`.
class Cli : public testing::CliProcess {
 public:
  Cli(const TempDir& dir, const std::string& tag, std::vector<std::string> args,
      std::map<std::string, std::string> env = {})
      : CliProcess(dir, std::move(args), with_python(std::move(env)), tag + ".") {}

  // The exit status (WEXITSTATUS), or nullopt if it did not exit normally within `timeout`.
  std::optional<int> exit_code(std::chrono::milliseconds timeout) {
    auto status = wait(timeout);
    if (!status || !WIFEXITED(*status)) return std::nullopt;
    return WEXITSTATUS(*status);
  }

 private:
  static std::map<std::string, std::string> with_python(std::map<std::string, std::string> env) {
    env.emplace("BRIDGEPOOL_PYTHON", BRIDGEPOOL_TEST_PYTHON);
    return env;
  }
};

// `bridgepool serve --listen 127.0.0.1:0 ...` until it prints its listening line.
class Server {
 public:
  Server(const TempDir& dir, std::vector<std::string> args = {},
         std::map<std::string, std::string> env = {})
      : cli_(dir, "serve", with_listen(std::move(args)), std::move(env)) {
    const std::string prefix = "bridgepool serve: listening on http://";
    testing::wait_until([&] { return cli_.out().find('\n') != std::string::npos; },
                        std::chrono::milliseconds(30'000));
    std::string out = cli_.out();
    if (out.rfind(prefix, 0) == 0)
      url_ = "http://" + out.substr(prefix.size(), out.find('\n') - prefix.size());
  }
  const std::string& url() const { return url_; }
  Cli& cli() { return cli_; }
  httplib::Client client() const {
    httplib::Client c(url_);
    c.set_read_timeout(std::chrono::seconds(30));
    return c;
  }
  Json status() const {
    auto res = client().Get("/v1/status");
    return res ? Json::parse(res->body, nullptr, false) : Json();
  }

 private:
  static std::vector<std::string> with_listen(std::vector<std::string> args) {
    args.insert(args.begin(), {"serve", "--listen", "127.0.0.1:0", "--log-level", "warn"});
    return args;
  }
  Cli cli_;
  std::string url_;
};

std::vector<pid_t> worker_pids(const Json& status) {
  std::vector<pid_t> pids;
  for (const auto& w : status["workers"]) pids.push_back(w["pid"].get<pid_t>());
  return pids;
}

TEST(ServeCli, PrintsOneListeningLineAndServesStatus) {
  TempDir dir;
  Server server(dir);
  ASSERT_FALSE(server.url().empty()) << server.cli().out() << server.cli().err();
  std::string out = server.cli().out();
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  auto status = server.status();
  EXPECT_EQ(status["pool"]["size"], 2);
  EXPECT_EQ(status["workers"].size(), 2u);
}

TEST(ServeCli, SigtermDrainsTheRequestInFlightAndEndsTheWorkers) {
  TempDir dir;
  Server server(dir);
  ASSERT_FALSE(server.url().empty()) << server.cli().err();
  auto pids = worker_pids(server.status());
  ASSERT_EQ(pids.size(), 2u);
  std::optional<httplib::Result> reply;
  std::thread caller([&] {
    reply = server.client().Post("/v1/execute", R"({"command":"sleep","args":{"ms":800}})",
                                 "application/json");
  });
  ASSERT_TRUE(testing::wait_until([&] { return server.status()["pool"]["busy"] == 1; },
                                  std::chrono::milliseconds(10'000)));
  server.cli().signal(SIGTERM);
  caller.join();
  ASSERT_TRUE(*reply);
  EXPECT_EQ((*reply)->status, 200);
  EXPECT_EQ(Json::parse((*reply)->body)["result"]["slept_ms"], 800);
  EXPECT_EQ(server.cli().exit_code(std::chrono::milliseconds(20'000)), 0) << server.cli().err();
  for (pid_t pid : pids) EXPECT_FALSE(testing::process_running(pid)) << pid;
}

TEST(ServeCli, ASecondSigtermExitsAtOnceWith143) {
  TempDir dir;
  Server server(dir);
  ASSERT_FALSE(server.url().empty()) << server.cli().err();
  auto pids = worker_pids(server.status());
  std::thread caller([&] {
    server.client().Post("/v1/execute", R"({"command":"sleep","args":{"ms":30000}})",
                         "application/json");
  });
  ASSERT_TRUE(testing::wait_until([&] { return server.status()["pool"]["busy"] == 1; },
                                  std::chrono::milliseconds(10'000)));
  server.cli().signal(SIGTERM);  // drains: the 30 s request holds the exit
  // Draining: the listening socket is closed, so new connections are refused.
  ASSERT_TRUE(testing::wait_until([&] { return !server.client().Get("/healthz"); }));
  server.cli().signal(SIGTERM);
  EXPECT_EQ(server.cli().exit_code(std::chrono::milliseconds(10'000)), 143);
  caller.join();
  for (pid_t pid : pids) {
    EXPECT_TRUE(testing::wait_until([&] { return !testing::process_running(pid); })) << pid;
  }
}

TEST(ServeCli, SighupRollsTheWorkersOverWithoutFailedRequests) {
  TempDir dir;
  Server server(dir);
  ASSERT_FALSE(server.url().empty()) << server.cli().err();
  std::atomic<bool> done{false};
  std::atomic<int> failures{0}, calls{0};
  std::thread load([&] {
    auto c = server.client();
    while (!done) {
      auto r = c.Post("/v1/execute", R"({"command":"echo"})", "application/json");
      ++calls;
      if (!r || r->status != 200) ++failures;
    }
  });
  server.cli().signal(SIGHUP);
  bool rolled = testing::wait_until(
      [&] {
        auto s = server.status();
        if (s["workers"].size() != 2) return false;
        for (const auto& w : s["workers"]) {
          if (w["generation"] != 2 || w["state"] == "initializing") return false;
        }
        return true;
      },
      std::chrono::milliseconds(60'000));
  done = true;
  load.join();
  EXPECT_TRUE(rolled) << server.status().dump();
  EXPECT_GT(calls.load(), 0);
  EXPECT_EQ(failures.load(), 0);
  server.cli().signal(SIGTERM);
  EXPECT_EQ(server.cli().exit_code(std::chrono::milliseconds(20'000)), 0);
}

TEST(ServeCli, BadConfigurationExits2NamingTheSource) {
  TempDir dir;
  std::ofstream(dir.file("serve.toml")) << "workers = 2\nwrokers = 3\n";
  Cli bad(dir, "bad", {"serve", "--config", dir.file("serve.toml")});
  EXPECT_EQ(bad.exit_code(std::chrono::milliseconds(10'000)), 2);
  EXPECT_NE(bad.err().find("serve.toml:2: unknown key 'wrokers'"), std::string::npos) << bad.err();
  Cli env(dir, "env", {"serve"}, {{"BRIDGEPOOL_WORKERS", "many"}});
  EXPECT_EQ(env.exit_code(std::chrono::milliseconds(10'000)), 2);
  EXPECT_NE(env.err().find("BRIDGEPOOL_WORKERS: expected an integer"), std::string::npos);
}

TEST(ServeCli, RefusesANonLoopbackAddressWithoutAToken) {
  TempDir dir;
  Cli open(dir, "open", {"serve", "--listen", "0.0.0.0:0"});
  EXPECT_EQ(open.exit_code(std::chrono::milliseconds(10'000)), 2);
  EXPECT_NE(open.err().find("--insecure"), std::string::npos) << open.err();
}

TEST(ServeCli, CallAndStatusAgainstARunningServer) {
  TempDir dir;
  Server server(dir);
  ASSERT_FALSE(server.url().empty()) << server.cli().err();
  Cli call(dir, "call", {"call", "echo", R"({"a":1})", "--url", server.url()});
  EXPECT_EQ(call.exit_code(std::chrono::milliseconds(20'000)), 0) << call.err();
  EXPECT_EQ(Json::parse(call.out()), Json({{"a", 1}}));
  // Binary values go as {"$base64": ...} both ways (attachments between server and worker).
  Cli binary(dir, "binary",
             {"call", "echo", R"({"b":{"$base64":"AAEC/w=="}})", "--url", server.url()});
  EXPECT_EQ(binary.exit_code(std::chrono::milliseconds(20'000)), 0) << binary.err();
  EXPECT_EQ(Json::parse(binary.out()), Json::parse(R"({"b":{"$base64":"AAEC/w=="}})"));
  Cli fail(dir, "fail", {"call", "fail", "--url", server.url()});
  EXPECT_EQ(fail.exit_code(std::chrono::milliseconds(20'000)), 4);
  EXPECT_NE(fail.err().find("python: "), std::string::npos) << fail.err();
  Cli table(dir, "status", {"status", "--url", server.url()});
  EXPECT_EQ(table.exit_code(std::chrono::milliseconds(20'000)), 0) << table.err();
  EXPECT_NE(table.out().find("w1 "), std::string::npos) << table.out();
  Cli json(dir, "json", {"status", "--json", "--url", server.url()});
  EXPECT_EQ(json.exit_code(std::chrono::milliseconds(20'000)), 0);
  EXPECT_EQ(Json::parse(json.out())["pool"]["size"], 2);
}

TEST(ServeCli, CallWithoutAServerRunsOnALocalBridge) {
  TempDir dir;
  // Port 1 never has a server: the default URL is unreachable, so call starts a bridge.
  Cli call(dir, "call", {"call", "echo", R"({"b":2})"}, {{"BRIDGEPOOL_URL", "http://127.0.0.1:1"}});
  EXPECT_EQ(call.exit_code(std::chrono::milliseconds(30'000)), 0) << call.err();
  EXPECT_EQ(Json::parse(call.out()), Json({{"b", 2}}));
  Cli binary(dir, "binary", {"call", "echo", R"({"b":{"$base64":"TWFu"}})"},
             {{"BRIDGEPOOL_URL", "http://127.0.0.1:1"}});
  EXPECT_EQ(binary.exit_code(std::chrono::milliseconds(30'000)), 0) << binary.err();
  EXPECT_EQ(Json::parse(binary.out()), Json::parse(R"({"b":{"$base64":"TWFu"}})"));
}

TEST(ServeCli, CallWithBadArgumentsExits2AndUnreachableUrlExits10) {
  TempDir dir;
  Cli bad(dir, "bad", {"call", "echo", "[1]", "--url", "http://127.0.0.1:1"});
  EXPECT_EQ(bad.exit_code(std::chrono::milliseconds(10'000)), 2);
  Cli bad64(dir, "bad64",
            {"call", "echo", R"({"b":{"$base64":"!!"}})", "--url", "http://127.0.0.1:1"});
  EXPECT_EQ(bad64.exit_code(std::chrono::milliseconds(10'000)), 2);
  EXPECT_NE(bad64.err().find("base64"), std::string::npos) << bad64.err();
  Cli gone(dir, "gone", {"call", "echo", "--url", "http://127.0.0.1:1"});
  EXPECT_EQ(gone.exit_code(std::chrono::milliseconds(10'000)), 10) << gone.err();
}

}  // namespace
}  // namespace bridgepool
