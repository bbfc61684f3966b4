// Replacement latency (SPEC §9 "worker killed ... replacement ready"): SIGKILL an idle worker of
// a 2-worker pool N times and measure kill -> replacement ready (the pool's pool.worker.ready
// event). Prints p50/p99/max in ms; `--json` prints one JSON object as the last line.
// Usage: replacement_bench [--kills N] [--python PATH] [--json]
#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bridgepool/pool.h"
#include "telemetry/latency_summary.h"

int main(int argc, char** argv) {
  int kills = 30;
  bool json = false;
  bridgepool::PoolConfig config;
  config.size = 2;
  config.logger = std::make_shared<bridgepool::Logger>(bridgepool::LogLevel::kOff);
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--kills") && i + 1 < argc)
      kills = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--python") && i + 1 < argc)
      config.python = argv[++i];
    else if (!std::strcmp(argv[i], "--json"))
      json = true;
  }
  config.events = std::make_shared<bridgepool::EventBus>();
  std::mutex mu;
  std::condition_variable cv;
  int ready_events = 0;
  config.events->attach("pool.worker.ready", [&](const bridgepool::Event&) {
    std::lock_guard lock(mu);
    ++ready_events;
    cv.notify_all();
  });
  auto pool = bridgepool::Pool::start(config);
  if (!pool) {
    std::fprintf(stderr, "replacement_bench: %s\n", pool.error().to_string().c_str());
    return 2;
  }
  std::vector<double> ms;
  for (int k = 0; k < kills; ++k) {
    (*pool)->wait_ready(std::chrono::milliseconds(5000));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let the machine settle
    int before;
    {
      std::lock_guard lock(mu);
      before = ready_events;
    }
    auto t0 = std::chrono::steady_clock::now();
    ::kill((*pool)->workers().front().pid, SIGKILL);
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, std::chrono::seconds(10), [&] { return ready_events > before; })) {
      std::fprintf(stderr, "replacement_bench: no replacement within 10 s\n");
      return 1;
    }
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  auto s = bridgepool::LatencySummary::of(ms);
  std::printf("kill -> replacement ready over %zu kills: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
              s.count, s.p50, s.p99, s.max);
  if (json) {
    std::printf("%s\n",
                nlohmann::json{{"kills", s.count},
                               {"replacement_ms", {{"p50", s.p50}, {"p99", s.p99}, {"max", s.max}}}}
                    .dump()
                    .c_str());
  }
  return 0;
}
