// Helpers for tests that run the real `bridgepool` binary (BRIDGEPOOL_CLI): whole-file reads,
// and the binary as a child process whose stdout and stderr go to
// files and that the test can signal and wait for (on a pidfd, no polling).
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "integration/test_support.h"  // TempDir

extern char** environ;

namespace bridgepool::testing {

inline std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// The `bridgepool` binary as a child of the test: argv without a shell (so arguments up to the
// kernel's 128 KiB per argument pass as they are), stdout and stderr to separate files (named
// `tag` + "stdout" / "stderr" in `dir`, so several processes can share one directory), extra
// environment on top of the test's own.
class CliProcess {
 public:
  CliProcess(const TempDir& dir, std::vector<std::string> args,
             std::map<std::string, std::string> env = {}, const std::string& tag = "")
      : out_path_(dir.file(tag + "stdout")), err_path_(dir.file(tag + "stderr")) {
    std::vector<std::string> argv_s{BRIDGEPOOL_CLI};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
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
    posix_spawn_file_actions_addopen(&actions, 1, out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_addopen(&actions, 2, err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    started_ = std::chrono::steady_clock::now();
    if (::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data()) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&actions);
    if (pid_ > 0) pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  }
  ~CliProcess() {
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (pidfd_ >= 0) ::close(pidfd_);
  }

  pid_t pid() const { return pid_; }
  bool signal(int signo) const { return pid_ > 0 && ::kill(pid_, signo) == 0; }

  // Waits (on the pidfd, no polling) until the process exits or `timeout` passes. Returns its
  // wait status, or nothing on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout) {
    if (status_) return status_;
    pollfd p{pidfd_, POLLIN, 0};
    int rc;
    do {
      rc = ::poll(&p, 1, static_cast<int>(timeout.count()));
    } while (rc < 0 && errno == EINTR);
    if (rc <= 0) return std::nullopt;
    int status = 0;
    if (::waitpid(pid_, &status, 0) != pid_) return std::nullopt;
    exited_ = std::chrono::steady_clock::now();
    status_ = status;
    return status_;
  }
  std::chrono::steady_clock::duration run_time() const { return exited_ - started_; }

  std::string out() const { return read_text(out_path_); }
  std::string err() const { return read_text(err_path_); }

 private:
  std::string out_path_, err_path_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  std::optional<int> status_;
  std::chrono::steady_clock::time_point started_, exited_;
};

}  // namespace bridgepool::testing
