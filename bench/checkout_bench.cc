// The pool's checkout + checkin without I/O (SPEC §9: < 300 ns uncontended), in ns per pair, on
// 1 thread and on 2 threads sharing one registry:
//   registry   WorkerRegistry::checkout() of an idle worker, then check_in() with the pool's
//              "stay in service" decision
//   states     the same plus the worker state machine's moves the pool makes around a call
//              (ready -> busy at checkout, busy -> ready at checkin, each kept in its history)
// One worker per thread, so two threads contend for the registry's lock, not for a worker. The
// request's own cost (one poll(2) of the worker's descriptors at checkout, the write, the read)
// is I/O and not counted. Each figure is the median of `--rounds` rounds of `--iterations`
// pairs per thread (wall time of the round / pairs per thread).
//   checkout_bench [--iterations N] [--rounds R] [--json]
// The last line with --json is one JSON object (scripts/bench reads it).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "pool/worker_registry.h"
#include "process/inert_process.h"

namespace bridgepool {
namespace {

struct Setup {
  SteadyClock clock;
  WorkerRegistry registry{clock, 1024, {}};
  Setup() {
    for (std::uint64_t n = 1; n <= 2; ++n) {
      auto w = std::make_shared<Worker>(n, std::make_unique<InertProcess>(), 1 << 20, clock);
      (void)w->transition(WorkerState::kReady, TransitionReason::kInitComplete);
      registry.admit(w, Tracking{HealthTracker(HealthConfig{}, clock.now())});
    }
  }
};

std::optional<Leave> stay(Tracking&) { return std::nullopt; }

// `pairs` checkouts + checkins on this thread; false if a checkout failed.
bool loop(Setup& s, long pairs, bool states) {
  const TimePoint deadline = s.clock.now() + std::chrono::hours(1);
  for (long i = 0; i < pairs; ++i) {
    auto w = s.registry.checkout(deadline);
    if (!w) return false;
    if (states) {
      (void)(*w)->transition(WorkerState::kBusy, TransitionReason::kCheckout);
      (void)(*w)->transition(WorkerState::kReady, TransitionReason::kCheckinOk);
    }
    s.registry.check_in(*w, stay);
  }
  return true;
}

// ns per pair: the median over rounds of (round wall time / pairs per thread).
double measure(Setup& s, int threads, bool states, long pairs, int rounds) {
  std::vector<double> per_round;
  for (int r = 0; r < rounds; ++r) {
    std::vector<std::thread> pool;
    bool ok = true;
    const auto t0 = std::chrono::steady_clock::now();
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&] {
        if (!loop(s, pairs, states)) ok = false;
      });
    }
    for (auto& th : pool) th.join();
    const double ns =
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    if (!ok) {
      std::fprintf(stderr, "checkout_bench: a checkout failed\n");
      std::exit(1);
    }
    per_round.push_back(ns / double(pairs));
  }
  std::sort(per_round.begin(), per_round.end());
  return per_round[per_round.size() / 2];
}

int usage() {
  std::fprintf(stderr, "usage: checkout_bench [--iterations N>0] [--rounds R>0] [--json]\n");
  return 2;
}

}  // namespace
}  // namespace bridgepool

int main(int argc, char** argv) {
  using namespace bridgepool;
  long pairs = 1'000'000;
  int rounds = 7;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> long {
      if (i + 1 >= argc) return -1;
      char* end = nullptr;
      long v = std::strtol(argv[++i], &end, 10);
      return (end && *end == '\0') ? v : -1;
    };
    if (arg == "--iterations") {
      pairs = value();
      if (pairs <= 0) return usage();
    } else if (arg == "--rounds") {
      long r = value();
      if (r <= 0 || r > 1000) return usage();
      rounds = static_cast<int>(r);
    } else if (arg == "--json") {
      json = true;
    } else {
      return usage();
    }
  }
  Setup setup;
  nlohmann::json out = {{"iterations", pairs}, {"rounds", rounds}};
  for (bool states : {false, true}) {
    for (int threads : {1, 2}) {
      const double ns = measure(setup, threads, states, pairs, rounds);
      const std::string key = std::string(states ? "states" : "registry") + "_" +
                              std::to_string(threads) + "_thread" + (threads > 1 ? "s" : "");
      out[key + "_ns"] = ns;
      if (!json) std::printf("%-24s %8.1f ns per checkout + checkin\n", key.c_str(), ns);
    }
  }
  if (json) std::printf("%s\n", out.dump().c_str());
  return 0;
}
