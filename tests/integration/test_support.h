// Shared helpers for integration tests: pool configs pointing at the shipped example handlers
// or at misbehaving modules in tests/data, event-driven waits with deadlines (no fixed sleeps),
// and /proc inspection of child processes.
#pragma once

#include <dirent.h>
#include <signal.h>
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

}  // namespace bridgepool::testing
