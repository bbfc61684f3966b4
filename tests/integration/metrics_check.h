// Checks a Prometheus scrape with the real parser: tests/data/check_metrics.py (Debian
// python3-prometheus-client) parses it and compares samples with expectations, so a test never
// passes on output nobody parsed. Used by the metrics tests and the HTTP service's /metrics test.
#pragma once

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "integration/test_support.h"

extern char** environ;

namespace bridgepool::testing {

// A scrape written to a temporary file, removed at scope exit.
struct ScrapeFile {
  explicit ScrapeFile(const std::string& text) {
    char name[] = "/tmp/bridgepool_metrics_XXXXXX";
    const int fd = mkstemp(name);
    EXPECT_GE(fd, 0);
    if (fd >= 0) close(fd);
    path = name;
    std::ofstream(path) << text;
  }
  ~ScrapeFile() { std::remove(path.c_str()); }
  std::string path;
};

// Exit status of `check_metrics.py FILE EXPECTATIONS` (argv, no shell); -1 if it did not run.
inline int check_metrics(const std::string& scrape, const nlohmann::json& expectations) {
  ScrapeFile file(scrape);
  const std::string script = data_path("check_metrics.py"), json = expectations.dump();
  std::vector<char*> argv = {
      const_cast<char*>(BRIDGEPOOL_TEST_PYTHON), const_cast<char*>(script.c_str()),
      const_cast<char*>(file.path.c_str()), const_cast<char*>(json.c_str()), nullptr};
  pid_t pid = 0;
  if (posix_spawn(&pid, BRIDGEPOOL_TEST_PYTHON, nullptr, nullptr, argv.data(), environ) != 0)
    return -1;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

inline nlohmann::json expect_sample(const std::string& name, nlohmann::json labels, double value,
                                    const char* op = "eq") {
  return nlohmann::json{
      {"name", name}, {"labels", std::move(labels)}, {"value", value}, {"op", op}};
}

}  // namespace bridgepool::testing
