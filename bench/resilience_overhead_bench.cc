// Cost of the resilience layer on a successful call (SPEC §9: < 2% added latency). Two pools of
// one worker each, identical except for `resilience.enabled`, answer the same `ping`; the rounds
// alternate between them in blocks (A B B A ...) so drift of a shared, noisy machine falls on both
// alike. Reports p50 and mean per pool and the ratios (with / without). `--pin` keeps the whole
// process tree on CPU 0 (workers inherit the affinity), the low-noise configuration.
// Usage: resilience_overhead_bench [--rounds N] [--block B] [--pin] [--python PATH] [--json]
#include <sched.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bridgepool/pool.h"
#include "telemetry/latency_summary.h"

namespace {

using bridgepool::Pool;
using bridgepool::PoolConfig;

std::unique_ptr<Pool> start(PoolConfig config, bool resilience) {
  config.name = resilience ? "with" : "without";
  config.resilience.enabled = resilience;
  auto pool = Pool::start(config);
  if (!pool) {
    std::fprintf(stderr, "resilience_overhead_bench: %s\n", pool.error().to_string().c_str());
    std::exit(2);
  }
  return std::move(*pool);
}

// `block` pings on `pool`, each timed on its own, appended to `out` (microseconds).
void run_block(Pool& pool, int block, std::vector<double>& out) {
  for (int i = 0; i < block; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    auto r = pool.execute("ping");
    auto t1 = std::chrono::steady_clock::now();
    if (!r) {
      std::fprintf(stderr, "resilience_overhead_bench: %s\n", r.error().to_string().c_str());
      std::exit(1);
    }
    out.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 40, block = 500;
  bool json = false, pin = false;
  PoolConfig config;
  config.size = 1;
  config.logger = std::make_shared<bridgepool::Logger>(bridgepool::LogLevel::kOff);
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--rounds") && i + 1 < argc)
      rounds = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--block") && i + 1 < argc)
      block = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--python") && i + 1 < argc)
      config.python = argv[++i];
    else if (!std::strcmp(argv[i], "--pin"))
      pin = true;
    else if (!std::strcmp(argv[i], "--json"))
      json = true;
  }
  if (pin) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    sched_setaffinity(0, sizeof(set), &set);
  }
  auto with = start(config, true);
  auto without = start(config, false);
  std::vector<double> a, b;
  run_block(*with, block, a);  // warm-up, discarded
  run_block(*without, block, b);
  a.clear();
  b.clear();
  for (int r = 0; r < rounds; ++r) {
    // A B, then B A: each pool goes first half of the time.
    if (r % 2 == 0) {
      run_block(*with, block, a);
      run_block(*without, block, b);
    } else {
      run_block(*without, block, b);
      run_block(*with, block, a);
    }
  }
  auto sa = bridgepool::LatencySummary::of(a);
  auto sb = bridgepool::LatencySummary::of(b);
  double p50_ratio = sa.p50 / sb.p50, mean_ratio = sa.mean / sb.mean;
  std::printf(
      "ping %s, %zu calls each: with resilience p50 %.2f us mean %.2f us; without p50 %.2f "
      "us mean %.2f us; added p50 %+.2f%% mean %+.2f%% (goal < 2%%)\n",
      pin ? "pinned to CPU 0" : "unpinned", sa.count, sa.p50, sa.mean, sb.p50, sb.mean,
      (p50_ratio - 1) * 100, (mean_ratio - 1) * 100);
  if (json) {
    nlohmann::json j{{"pinned", pin},
                     {"calls", sa.count},
                     {"with_us", {{"p50", sa.p50}, {"mean", sa.mean}, {"p99", sa.p99}}},
                     {"without_us", {{"p50", sb.p50}, {"mean", sb.mean}, {"p99", sb.p99}}},
                     {"p50_ratio", p50_ratio},
                     {"mean_ratio", mean_ratio}};
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}
