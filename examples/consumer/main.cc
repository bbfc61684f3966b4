// A program built against an installed bridgepool (see README.md beside this file): a pool of two
// workers running the example handlers shipped with the library plus this program's own
// handlers file, installed next to the executable. Prints what it did; exits 0 if all went well.
#include <cstdio>
#include <filesystem>
#include <string>

#include "bridgepool/pool.h"

int main() {
  bridgepool::PoolConfig config;
  config.size = 2;
  const auto here = std::filesystem::read_symlink("/proc/self/exe").parent_path();
  config.handlers = {bridgepool::default_handlers(), (here / "consumer_handlers.py").string()};
  auto pool = bridgepool::Pool::start(config);
  if (!pool) {
    std::fprintf(stderr, "%s\n", pool.error().format_for_logging().c_str());
    return 1;
  }
  int failures = 0;
  for (int i = 0; i < 4; ++i) {
    auto reply = (*pool)->execute("echo", {{"i", i}});
    std::printf("echo %d -> %s\n", i,
                reply ? reply->dump().c_str() : reply.error().message.c_str());
    failures += !reply || reply->value("i", -1) != i;
  }
  auto where = (*pool)->broadcast("where");  // once on every worker
  for (const auto& [worker, reply] : where.results) {
    std::printf("worker %s runtime %s\n", worker.c_str(),
                reply ? reply->value("runtime", "?").c_str() : reply.error().message.c_str());
  }
  failures += where.succeeded != 2 || where.failed != 0;
  std::printf("%s\n", failures == 0 ? "consumer: ok" : "consumer: FAILED");
  return failures == 0 ? 0 : 1;
}
