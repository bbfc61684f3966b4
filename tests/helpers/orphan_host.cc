// orphan_host: a host process for the "no orphans" tests. `orphan_host [--fork-server] N
// [handlers command...]`
// starts a pool of N workers (with `handlers` if given), runs each `command` once (each must
// return {"pid": <a process it started>}), prints "PIDS <worker pid>..." and "KIDS <pid>..." on
// stdout, then sleeps until it is killed. The tests SIGKILL it and check that every worker and
// every process the handlers started is gone within a second (PR_SET_PDEATHSIG, EOF and the
// worker's group sentinel).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "bridgepool/pool.h"

int main(int argc, char** argv) {
  bridgepool::PoolConfig config;
  if (argc > 1 && std::string(argv[1]) == "--fork-server") {
    config.start_method = bridgepool::StartMethod::kForkServer;
    --argc;
    ++argv;
  }
  config.size = argc > 1 ? static_cast<std::size_t>(std::atoi(argv[1])) : 2;
  config.python = BRIDGEPOOL_TEST_PYTHON;
  if (argc > 2) config.handlers = {argv[2]};
  auto pool = bridgepool::Pool::start(config);
  if (!pool) {
    std::fprintf(stderr, "orphan_host: %s\n", pool.error().to_string().c_str());
    return 2;
  }
  std::string kids = "KIDS";
  for (int i = 3; i < argc; ++i) {
    auto r = (*pool)->execute(argv[i]);
    if (!r) {
      std::fprintf(stderr, "orphan_host: %s\n", r.error().to_string().c_str());
      return 3;
    }
    kids += " " + std::to_string((*r)["pid"].get<int>());
  }
  std::string line = "PIDS";
  for (const auto& w : (*pool)->workers()) line += " " + std::to_string(w.pid);
  std::printf("%s\n%s\n", line.c_str(), kids.c_str());
  std::fflush(stdout);
  for (;;) ::pause();
}
