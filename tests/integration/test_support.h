// Shared helpers for integration tests: pool configs pointing at the shipped example handlers
// or at misbehaving modules in tests/data, event-driven waits with deadlines (no fixed sleeps),
// and /proc inspection of child processes.
#pragma once

#include <dirent.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "bridgepool/pool.h"

extern char** environ;

namespace bridgepool::testing {

inline std::string data_path(const std::string& name) {
  return std::string(BRIDGEPOOL_TEST_DATA_DIR) + "/" + name;
}

inline PoolConfig test_config(std::size_t size = 2, std::vector<std::string> handlers = {}) {
  PoolConfig c;
  c.name = "test";
  c.size = size;
  c.python = BRIDGEPOOL_TEST_PYTHON;
  c.handlers = std::move(handlers);
  c.init_timeout = std::chrono::milliseconds(10'000);
  c.checkout_timeout = std::chrono::milliseconds(5'000);
  c.request_timeout = std::chrono::milliseconds(10'000);
  c.logger = std::make_shared<Logger>(LogLevel::kOff);
  return c;
}

// A pool of `size` workers serving tests/data/edge_cases.py (the runtime's edge cases).
inline PoolConfig edge_config(std::size_t size = 1) {
  return test_config(size, {data_path("edge_cases.py")});
}

// Polls `done` every millisecond until it holds or `timeout` passes. Returns whether it held.
inline bool wait_until(const std::function<bool()>& done,
                       std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return done();
}

// True if `pid` exists and is not a zombie.
inline bool process_running(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return false;
  std::string line;
  std::getline(stat, line);
  auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

// Every process (zombies included) whose parent is `parent`.
inline std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0) continue;
    std::ifstream stat(std::string("/proc/") + e->d_name + "/stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state;
    pid_t ppid;
    rest >> state >> ppid;
    if (ppid == parent) out.push_back(pid);
  }
  ::closedir(d);
  return out;
}

// Collects log records (thread-safe) for assertions on captured worker output.
class LogCapture {
 public:
  std::shared_ptr<Logger> logger(LogLevel level = LogLevel::kInfo) {
    return std::make_shared<Logger>(level, [this](const LogRecord& r) {
      std::lock_guard lock(mu_);
      records_.push_back(r);
    });
  }
  std::vector<LogRecord> records() const {
    std::lock_guard lock(mu_);
    return records_;
  }
  std::size_t count_if(const std::function<bool(const LogRecord&)>& pred) const {
    std::lock_guard lock(mu_);
    std::size_t n = 0;
    for (const auto& r : records_) n += pred(r) ? 1 : 0;
    return n;
  }

 private:
  mutable std::mutex mu_;
  std::vector<LogRecord> records_;
};

// Starts a pool; on failure records a test failure with the full error and returns null.
// A fresh directory for one test's files, removed with everything in it at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "/bridgepool_test_XXXXXX";
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline std::unique_ptr<Pool> start_pool(PoolConfig config) {
  auto pool = Pool::start(std::move(config));
  EXPECT_TRUE(pool.has_value()) << (pool ? "" : pool.error().format_for_logging());
  return pool ? std::move(*pool) : nullptr;
}

// Pid of the worker with this id, or 0.
inline pid_t pid_of(Pool& pool, const std::string& id) {
  for (const auto& w : pool.workers()) {
    if (w.id == id) return w.pid;
  }
  return 0;
}

// Starts tests/helpers/orphan_host with `args`; returns its pid and the two pid lists it printed.
struct Host {
  pid_t pid = 0;
  std::vector<pid_t> workers, kids;
};

inline Host start_host(std::vector<std::string> args) {
  Host host;
  int out[2];
  if (::pipe(out) != 0) return host;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  args.insert(args.begin(), BRIDGEPOOL_HOST_HELPER);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (posix_spawn(&host.pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) host.pid = 0;
  posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  FILE* f = ::fdopen(out[0], "r");
  char line[512] = {0};
  for (auto* list : {&host.workers, &host.kids}) {
    if (!std::fgets(line, sizeof line, f)) break;
    std::istringstream in(line);
    std::string tag;
    in >> tag;
    for (pid_t p; in >> p;) list->push_back(p);
  }
  std::fclose(f);
  return host;
}

inline bool all_gone_within(const std::vector<pid_t>& pids, std::chrono::milliseconds limit) {
  return wait_until(
      [&] {
        for (pid_t p : pids) {
          if (process_running(p)) return false;
        }
        return true;
      },
      limit);
}

}  // namespace bridgepool::testing
