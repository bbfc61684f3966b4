// orphan_host: a host process for the "no orphans" test. It starts a pool of N workers, prints
// one line "PIDS <pid> <pid> ..." on stdout, then sleeps until it is killed. The test SIGKILLs it
// and checks that every worker pid is gone within a second (PR_SET_PDEATHSIG + EOF).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "bridgepool/pool.h"

int main(int argc, char** argv) {
  bridgepool::PoolConfig config;
  config.size = argc > 1 ? static_cast<std::size_t>(std::atoi(argv[1])) : 2;
  config.python = BRIDGEPOOL_TEST_PYTHON;
  auto pool = bridgepool::Pool::start(config);
  if (!pool) {
    std::fprintf(stderr, "orphan_host: %s\n", pool.error().to_string().c_str());
    return 2;
  }
  std::string line = "PIDS";
  for (const auto& w : (*pool)->workers()) line += " " + std::to_string(w.pid);
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  for (;;) ::pause();
}
