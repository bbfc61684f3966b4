// Metrics benchmarks (SPEC §9: metrics on the request path < 3% added latency).
//
//  --mode scrape    cost of one scrape (MetricsRegistry::render_prometheus) for a pool of 64
//                   workers that has served 1,000 distinct commands: PoolMetrics is fed synthetic
//                   events and snapshots through its three-getter constructor (every command ok,
//                   one in ten also failed), then the registry is rendered `--scrapes` times;
//                   reports the median and p90 render time and the bytes. Run once with the
//                   default command limit (100 + other) and once with the limit at 1,000 (every
//                   command its own series: the worst case the limit allows).
//                   Also: what PoolMetrics adds to one call without I/O (ns, hot caches).
//  --mode overhead  ping p50 with PoolMetrics attached vs not, on ONE pool of one worker: blocks
//                   of `--block` pings alternate (on off, off on, ...) and PoolMetrics is
//                   attached for each "on" block and detached after it, so both sides share the
//                   worker, the process and the drift of a noisy machine (two pools differ by
//                   ±4-10% between themselves here, more than the effect measured). Reports the
//                   pooled p50 ratio and the median of the per-round p50 ratios. `--pin` keeps
//                   the process tree on CPU 0.
// Usage: metrics_bench --mode scrape|overhead [--scrapes N] [--rounds N] [--block B] [--pin]
//                      [--python PATH] [--json]
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bridgepool/event_names.h"
#include "bridgepool/pool.h"
#include "bridgepool/pool_metrics.h"
#include "telemetry/latency_summary.h"

namespace {

using bridgepool::Event;
using bridgepool::EventBus;
using bridgepool::EventId;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string mode;
  int scrapes = 50, rounds = 40, block = 500;
  bool pin = false, json = false;
  std::string python;
};

void emit(EventBus& bus, EventId id, std::map<std::string, double> m,
          std::map<std::string, std::string> d) {
  bus.emit(Event{std::string(bridgepool::event_name(id)), std::move(m), std::move(d)});
}

// A pool's worth of history: 64 workers started and cycling, 1,000 commands, 10% failing.
void feed(EventBus& bus, int commands) {
  using bridgepool::TransitionReason;
  using bridgepool::WorkerState;
  for (int w = 1; w <= 64; ++w) {
    const std::string id = "w" + std::to_string(w);
    emit(bus, EventId::kWorkerReady, {{"startup_ms", 40.0 + w}}, {});
    bus.observe(bridgepool::TransitionObservation{"bench", id, WorkerState::kInitializing,
                                                  WorkerState::kReady,
                                                  TransitionReason::kInitComplete, 30});
    bus.observe(bridgepool::TransitionObservation{
        "bench", id, WorkerState::kReady, WorkerState::kBusy, TransitionReason::kCheckout, 5});
    bus.observe(bridgepool::TransitionObservation{
        "bench", id, WorkerState::kBusy, WorkerState::kReady, TransitionReason::kCheckinOk, 1});
  }
  for (int c = 0; c < commands; ++c) {
    const std::string command = "command_" + std::to_string(c);
    bus.observe(bridgepool::CallObservation{"bench", command, "ok", "", 100.0 + c, 10, 1});
    if (c % 10 == 0) {
      bus.observe(bridgepool::CallObservation{"bench", command, "python", "minor", 900, 10, 1});
    }
  }
}

nlohmann::json scrape_case(std::size_t limit, int scrapes) {
  EventBus bus;
  bridgepool::MetricsRegistry registry;
  bridgepool::PoolStats stats;
  stats.name = "bench";
  stats.size = 64;
  std::vector<bridgepool::WorkerInfo> workers(64);
  for (int w = 0; w < 64; ++w) {
    workers[w].id = "w" + std::to_string(w + 1);
    workers[w].state = bridgepool::WorkerState::kReady;
    workers[w].rss_bytes = 30'000'000 + w;
  }
  bridgepool::PoolMetrics metrics(
      bus, [&] { return stats; }, [&] { return workers; }, registry,
      bridgepool::PoolMetricsOptions{limit});
  feed(bus, 1000);
  std::vector<double> ms;
  std::size_t bytes = 0, lines = 0;
  for (int i = 0; i < scrapes; ++i) {
    auto t0 = Clock::now();
    const std::string text = registry.render_prometheus();
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    bytes = text.size();
    lines = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
  }
  auto s = bridgepool::LatencySummary::of(ms);
  std::printf(
      "scrape, 64 workers, 1000 commands, command limit %zu: median %.2f ms, p90 %.2f ms, "
      "%zu bytes, %zu lines (%d scrapes)\n",
      limit, s.p50, s.p90, bytes, lines, scrapes);
  return {{"command_limit", limit}, {"median_ms", s.p50}, {"p90_ms", s.p90},
          {"bytes", bytes},         {"lines", lines},     {"scrapes", scrapes}};
}

// What PoolMetrics adds to one call, without I/O: the call's observation and its two worker
// transitions (ready -> busy -> ready), in ns, one thread.
double hot_path_ns(int calls) {
  using bridgepool::TransitionReason;
  using bridgepool::WorkerState;
  EventBus bus;
  bridgepool::MetricsRegistry registry;
  bridgepool::PoolStats stats;
  stats.name = "bench";
  bridgepool::PoolMetrics metrics(
      bus, [&] { return stats; }, [] { return std::vector<bridgepool::WorkerInfo>{}; }, registry);
  const std::string command = "ping";
  auto t0 = Clock::now();
  for (int i = 0; i < calls; ++i) {
    bus.observe(bridgepool::TransitionObservation{
        "bench", "w1", WorkerState::kReady, WorkerState::kBusy, TransitionReason::kCheckout, 1});
    bus.observe(bridgepool::TransitionObservation{
        "bench", "w1", WorkerState::kBusy, WorkerState::kReady, TransitionReason::kCheckinOk, 1});
    bus.observe(bridgepool::CallObservation{"bench", command, "ok", "", 12, 1, 1});
  }
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / calls;
}

int scrape_mode(const Options& o) {
  const double per_call = hot_path_ns(200'000);
  std::printf("per call (observation + 2 transitions, no I/O): %.0f ns\n", per_call);
  nlohmann::json out{{"default_limit", scrape_case(100, o.scrapes)},
                     {"all_commands", scrape_case(1000, o.scrapes)},
                     {"per_call_ns", per_call}};
  if (o.json) std::printf("%s\n", out.dump().c_str());
  return 0;
}

void run_block(bridgepool::Pool& pool, int block, std::vector<double>& out) {
  for (int i = 0; i < block; ++i) {
    auto t0 = Clock::now();
    auto r = pool.execute("ping");
    auto t1 = Clock::now();
    if (!r) {
      std::fprintf(stderr, "metrics_bench: %s\n", r.error().to_string().c_str());
      std::exit(1);
    }
    out.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
}

// p50 of samples[from..end).
double p50_of(const std::vector<double>& samples, std::size_t from) {
  std::vector<double> slice(samples.begin() + static_cast<std::ptrdiff_t>(from), samples.end());
  return bridgepool::LatencySummary::of(slice).p50;
}

int report_overhead(const Options& o, std::vector<double>& on, std::vector<double>& off,
                    std::vector<double>& round_ratios) {
  const double round_ratio = bridgepool::LatencySummary::of(round_ratios).p50;
  auto a = bridgepool::LatencySummary::of(on);
  auto b = bridgepool::LatencySummary::of(off);
  const double p50_ratio = a.p50 / b.p50, mean_ratio = a.mean / b.mean;
  std::printf(
      "ping %s, %zu calls each: metrics on p50 %.2f us mean %.2f us; off p50 %.2f us "
      "mean %.2f us; added p50 %+.2f%% mean %+.2f%%, median of round p50 ratios %+.2f%% "
      "(goal < 3%%)\n",
      o.pin ? "pinned to CPU 0" : "unpinned", a.count, a.p50, a.mean, b.p50, b.mean,
      (p50_ratio - 1) * 100, (mean_ratio - 1) * 100, (round_ratio - 1) * 100);
  if (o.json) {
    nlohmann::json j{{"pinned", o.pin},
                     {"calls", a.count},
                     {"on_us", {{"p50", a.p50}, {"mean", a.mean}, {"p99", a.p99}}},
                     {"off_us", {{"p50", b.p50}, {"mean", b.mean}, {"p99", b.p99}}},
                     {"p50_ratio", p50_ratio},
                     {"round_p50_ratio", round_ratio},
                     {"mean_ratio", mean_ratio}};
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}

std::unique_ptr<bridgepool::Pool> start_pool(const Options& o, const char* name) {
  bridgepool::PoolConfig config;
  config.size = 1;
  config.name = name;
  config.logger = std::make_shared<bridgepool::Logger>(bridgepool::LogLevel::kOff);
  if (!o.python.empty()) config.python = o.python;
  auto started = bridgepool::Pool::start(config);
  if (!started) {
    std::fprintf(stderr, "metrics_bench: %s\n", started.error().to_string().c_str());
    std::exit(2);
  }
  return std::move(*started);
}

int overhead_mode(const Options& o) {
  auto pool = start_pool(o, "bench");
  bridgepool::MetricsRegistry registry;
  std::vector<double> on, off;
  bool all_counted = true;
  auto block_on = [&] {
    bridgepool::PoolMetrics metrics(*pool, registry);
    run_block(*pool, o.block, on);
    // The metrics must have counted every call of the block.
    all_counted &=
        registry.find("bridgepool_requests_total")->counter({"bench", "ping", "ok"}).value() ==
        double(o.block);
  };  // detached here: its series are dropped
  auto block_off = [&] { run_block(*pool, o.block, off); };
  block_on();  // warm-up, discarded
  block_off();
  on.clear();
  off.clear();
  // Besides the pooled p50s: the median over rounds of each round's p50 ratio, where both
  // sides ran back to back — robust to a shared machine's load changing between rounds.
  std::vector<double> round_ratios;
  for (int r = 0; r < o.rounds; ++r) {
    const std::size_t on_at = on.size(), off_at = off.size();
    if (r % 2 == 0) {
      block_on();
      block_off();
    } else {
      block_off();
      block_on();
    }
    round_ratios.push_back(p50_of(on, on_at) / p50_of(off, off_at));
  }
  if (!all_counted) {
    std::fprintf(stderr, "metrics_bench: the metrics did not count every call\n");
    return 1;
  }
  return report_overhead(o, on, off, round_ratios);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    auto value = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (!std::strcmp(argv[i], "--mode"))
      o.mode = value();
    else if (!std::strcmp(argv[i], "--scrapes"))
      o.scrapes = std::atoi(value().c_str());
    else if (!std::strcmp(argv[i], "--rounds"))
      o.rounds = std::atoi(value().c_str());
    else if (!std::strcmp(argv[i], "--block"))
      o.block = std::atoi(value().c_str());
    else if (!std::strcmp(argv[i], "--python"))
      o.python = value();
    else if (!std::strcmp(argv[i], "--pin"))
      o.pin = true;
    else if (!std::strcmp(argv[i], "--json"))
      o.json = true;
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (o.pin) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    sched_setaffinity(0, sizeof(set), &set);
  }
  if (o.mode == "scrape") return scrape_mode(o);
  if (o.mode == "overhead") return overhead_mode(o);
  std::fprintf(stderr, "metrics_bench: --mode scrape|overhead required\n");
  return 2;
}
