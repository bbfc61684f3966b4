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

#include "integration/test_support.h"

extern char** environ;

namespace bridgepool {
namespace {

using Json = nlohmann::json;

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "/bp_serve_XXXXXX";
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The command as a child: argv without a shell, stdout and stderr to files, extra environment.
class Cli {
 public:
  Cli(const TempDir& dir, const std::string& tag, std::vector<std::string> args,
      std::map<std::string, std::string> env = {})
      : out_(dir.file(tag + ".out")), err_(dir.file(tag + ".err")) {
    std::vector<std::string> argv_s{BRIDGEPOOL_CLI};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    env.emplace("BRIDGEPOOL_PYTHON", BRIDGEPOOL_TEST_PYTHON);
    std::vector<std::string> env_s;
    for (char** e = environ; *e; ++e) {
      std::string kv(*e);
      if (!env.count(kv.substr(0, kv.find('=')))) env_s.push_back(kv);
    }
    for (const auto& [k, v] : env) env_s.push_back(k + "=" + v);
    std::vector<char*> argv, envp;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data()) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
  }
  ~Cli() {
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  std::string out() const { return read_text(out_); }
  std::string err() const { return read_text(err_); }
  bool signal(int signo) const { return ::kill(pid_, signo) == 0; }

  // The exit status (WEXITSTATUS), or nullopt if it did not exit within `timeout`.
  std::optional<int> wait(std::chrono::milliseconds timeout) {
    bool exited = testing::wait_until(
        [&] {
          int status = 0;
          if (::waitpid(pid_, &status, WNOHANG) != pid_) return false;
          status_ = status;
          return true;
        },
        timeout);
    if (!exited || !WIFEXITED(*status_)) return std::nullopt;
    return WEXITSTATUS(*status_);
  }

 private:
  std::string out_, err_;
  pid_t pid_ = -1;
  std::optional<int> status_;
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
  EXPECT_EQ(server.cli().wait(std::chrono::milliseconds(20'000)), 0) << server.cli().err();
  for (pid_t pid : pids) EXPECT_FALSE(testing::process_running(pid)) << pid;
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
  EXPECT_EQ(server.cli().wait(std::chrono::milliseconds(20'000)), 0);
}

TEST(ServeCli, BadConfigurationExits2NamingTheSource) {
  TempDir dir;
  std::ofstream(dir.file("serve.toml")) << "workers = 2\nwrokers = 3\n";
  Cli bad(dir, "bad", {"serve", "--config", dir.file("serve.toml")});
  EXPECT_EQ(bad.wait(std::chrono::milliseconds(10'000)), 2);
  EXPECT_NE(bad.err().find("serve.toml:2: unknown key 'wrokers'"), std::string::npos) << bad.err();
  Cli env(dir, "env", {"serve"}, {{"BRIDGEPOOL_WORKERS", "many"}});
  EXPECT_EQ(env.wait(std::chrono::milliseconds(10'000)), 2);
  EXPECT_NE(env.err().find("BRIDGEPOOL_WORKERS: expected an integer"), std::string::npos);
}

TEST(ServeCli, RefusesANonLoopbackAddressWithoutAToken) {
  TempDir dir;
  Cli open(dir, "open", {"serve", "--listen", "0.0.0.0:0"});
  EXPECT_EQ(open.wait(std::chrono::milliseconds(10'000)), 2);
  EXPECT_NE(open.err().find("--insecure"), std::string::npos) << open.err();
}

TEST(ServeCli, CallAndStatusAgainstARunningServer) {
  TempDir dir;
  Server server(dir);
  ASSERT_FALSE(server.url().empty()) << server.cli().err();
  Cli call(dir, "call", {"call", "echo", R"({"a":1})", "--url", server.url()});
  EXPECT_EQ(call.wait(std::chrono::milliseconds(20'000)), 0) << call.err();
  EXPECT_EQ(Json::parse(call.out()), Json({{"a", 1}}));
  Cli fail(dir, "fail", {"call", "fail", "--url", server.url()});
  EXPECT_EQ(fail.wait(std::chrono::milliseconds(20'000)), 4);
  EXPECT_NE(fail.err().find("python: "), std::string::npos) << fail.err();
  Cli table(dir, "status", {"status", "--url", server.url()});
  EXPECT_EQ(table.wait(std::chrono::milliseconds(20'000)), 0) << table.err();
  EXPECT_NE(table.out().find("w1 "), std::string::npos) << table.out();
  Cli json(dir, "json", {"status", "--json", "--url", server.url()});
  EXPECT_EQ(json.wait(std::chrono::milliseconds(20'000)), 0);
  EXPECT_EQ(Json::parse(json.out())["pool"]["size"], 2);
}

TEST(ServeCli, CallWithoutAServerRunsOnALocalBridge) {
  TempDir dir;
  // Port 1 never has a server: the default URL is unreachable, so call starts a bridge.
  Cli call(dir, "call", {"call", "echo", R"({"b":2})"}, {{"BRIDGEPOOL_URL", "http://127.0.0.1:1"}});
  EXPECT_EQ(call.wait(std::chrono::milliseconds(30'000)), 0) << call.err();
  EXPECT_EQ(Json::parse(call.out()), Json({{"b", 2}}));
}

TEST(ServeCli, CallWithBadArgumentsExits2AndUnreachableUrlExits10) {
  TempDir dir;
  Cli bad(dir, "bad", {"call", "echo", "[1]", "--url", "http://127.0.0.1:1"});
  EXPECT_EQ(bad.wait(std::chrono::milliseconds(10'000)), 2);
  Cli gone(dir, "gone", {"call", "echo", "--url", "http://127.0.0.1:1"});
  EXPECT_EQ(gone.wait(std::chrono::milliseconds(10'000)), 10) << gone.err();
}

}  // namespace
}  // namespace bridgepool
