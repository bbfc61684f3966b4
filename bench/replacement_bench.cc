// Replacement latency, pool start and memory per worker, for one handler module and one start
// method (SPEC §9 "worker killed -> replacement ready"; issue #10's goals).
//
//   replacement_bench [--handlers FILE] [--start-method spawn|fork-server] [--spare-workers N]
//                     [--kills N] [--workers N] [--start-workers N] [--python P] [--json]
//
// 1. Pool start: Pool::start with --start-workers workers (default 8) and min_ready = all of
//    them, timed; then the PSS (/proc/PID/smaps_rollup) of every worker and of the whole process
//    tree under this bench (workers plus whatever else the start method runs: sentinels, a fork
//    server's template process). 0 skips this part.
// 2. Kills: a pool of --workers (default 2) with --spare-workers spares. N times: wait until the
//    pool is whole and nothing is starting, SIGKILL an idle worker, and measure
//      * kill -> replacement ready: the next `pool.worker.ready` event (with spares, that is the
//        spare started to take the promoted one's place);
//      * kill -> full capacity: the killed worker has left service (its transition to
//        terminating) and PoolStats::live is back at --workers, polled every 0.2 ms.
// Prints p50/p99/max in ms; `--json` prints one JSON object as the last line. The fork floor
// (a raw os.fork() of the loaded interpreter) is bench/fork_floor.py; scripts/bench runs both.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bridgepool/pool.h"
#include "process_tree.h"
#include "replacement_watch.h"
#include "telemetry/latency_summary.h"
#include "telemetry/smaps_rollup.h"

namespace bridgepool::bench {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct Options {
  std::string handlers;  // "": the shipped examples/handlers.py
  std::string start_method = "spawn";
  std::size_t spare_workers = 0;
  std::size_t kills = 30;
  std::size_t workers = 2;
  std::size_t start_workers = 8;
  std::string python;
  int timeout_ms = 60'000;  // per start; spawning 8 heavy workers on 2 busy cores takes seconds
  bool json = false;
};

double ms_since(Clock::time_point t0, Clock::time_point t1) {
  return std::chrono::duration<double, std::milli>(t1 - t0).count();
}

PoolConfig base_config(const Options& o) {
  PoolConfig config;
  config.python = o.python;
  if (!o.handlers.empty()) config.handlers = {o.handlers};
  config.start_method = *parse_start_method(o.start_method);  // CLI11 checked the spelling
  config.logger = std::make_shared<Logger>(LogLevel::kOff);
  config.events = std::make_shared<EventBus>();
  config.init_timeout = milliseconds(o.timeout_ms);
  config.startup_timeout = milliseconds(o.timeout_ms);
  return config;
}

// --- Pool start and memory --------------------------------------------------------------------

struct StartFigures {
  std::size_t workers = 0;
  double ready_ms = 0;                 // Pool::start until min_ready = all workers ready
  std::vector<double> worker_pss_mib;  // one per worker
  std::vector<double> worker_rss_mib;
  double tree_pss_mib = 0;  // every process under this bench
  std::size_t tree_processes = 0;
};

constexpr double kMiB = 1024.0 * 1024.0;

// The PSS of each worker and of the whole tree under this process, the pool being started.
Result<void> measure_memory(const Pool& pool, StartFigures& out) {
  for (const WorkerInfo& w : pool.workers()) {
    auto m = read_smaps_rollup(w.pid);
    if (!m) return tl::unexpected(m.error());
    out.worker_pss_mib.push_back(double(m->pss_bytes) / kMiB);
    out.worker_rss_mib.push_back(double(m->rss_bytes) / kMiB);
  }
  for (pid_t pid : descendant_pids(::getpid())) {
    if (auto m = read_smaps_rollup(pid)) {  // a process that exited meanwhile is skipped
      out.tree_pss_mib += double(m->pss_bytes) / kMiB;
      ++out.tree_processes;
    }
  }
  return {};
}

Result<StartFigures> measure_pool_start(PoolConfig config, std::size_t workers) {
  config.size = workers;
  config.min_ready = workers;
  config.spare_workers = 0;  // the time to a full pool, not to a pool and its spares
  StartFigures out;
  out.workers = workers;
  const auto t0 = Clock::now();
  auto pool = Pool::start(std::move(config));
  if (!pool) return tl::unexpected(pool.error());
  out.ready_ms = ms_since(t0, Clock::now());
  if (auto memory = measure_memory(**pool, out); !memory) return tl::unexpected(memory.error());
  (*pool)->shutdown();
  return out;
}

// --- Kills ------------------------------------------------------------------------------------

struct KillFigures {
  std::vector<double> ready_ms;          // kill -> next pool.worker.ready
  std::vector<double> full_capacity_ms;  // kill -> killed one removed and live == size again
};

// Waits (polling every ms) until `size` workers serve and none is starting: spares replenished,
// the previous replacement's process fully started.
Result<void> wait_settled(Pool& pool, std::size_t size, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const PoolStats st = pool.stats();
    if (st.live >= size && st.starting == 0) return {};
    if (Clock::now() > deadline) {
      return make_error(ErrorCategory::kTimeout,
                        fmt::format("pool not settled after {} ms: live {}, starting {}; last "
                                    "start error: {}",
                                    timeout.count(), st.live, st.starting, st.last_init_error));
    }
    std::this_thread::sleep_for(milliseconds(1));
  }
}

std::optional<WorkerInfo> idle_worker(const Pool& pool) {
  for (const WorkerInfo& w : pool.workers()) {
    if (w.state == WorkerState::kReady && w.pid > 0) return w;
  }
  return std::nullopt;
}

// kill -> the killed worker removed and PoolStats::live back at `size`, polled every 0.2 ms.
std::optional<Clock::time_point> poll_full_capacity(Pool& pool, const ReplacementWatch& watch,
                                                    std::size_t size, Clock::time_point deadline) {
  for (;;) {
    const auto now = Clock::now();
    if (watch.removed_at() && pool.stats().live >= size) return now;
    if (now > deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

Result<void> one_kill(Pool& pool, ReplacementWatch& watch, const Options& o, KillFigures& out) {
  auto victim = idle_worker(pool);
  if (!victim) return make_error(ErrorCategory::kResource, "no idle worker to kill");
  const std::uint64_t ready_before = watch.arm(victim->id);
  const auto t0 = Clock::now();
  if (::kill(victim->pid, SIGKILL) != 0) {
    return make_error(ErrorCategory::kSystem, fmt::format("kill({}) failed", victim->pid));
  }
  const auto deadline = t0 + milliseconds(o.timeout_ms);
  const auto full = poll_full_capacity(pool, watch, o.workers, deadline);
  const auto ready = watch.wait_ready_after(
      ready_before, std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
  if (!full || !ready) {
    return make_error(ErrorCategory::kTimeout, fmt::format("no {} within {} ms of killing {}",
                                                           ready ? "full capacity" : "replacement",
                                                           o.timeout_ms, victim->id));
  }
  out.ready_ms.push_back(ms_since(t0, *ready));
  out.full_capacity_ms.push_back(ms_since(t0, *full));
  return {};
}

Result<KillFigures> measure_kills(PoolConfig config, const Options& o, Json& handlers_info) {
  config.size = o.workers;
  config.spare_workers = o.spare_workers;
  ReplacementWatch watch(*config.events);
  auto pool = Pool::start(std::move(config));
  if (!pool) return tl::unexpected(pool.error());
  Pool& p = **pool;
  const auto commands = p.commands();
  if (std::any_of(commands.begin(), commands.end(), [](auto& c) { return c.name == "info"; })) {
    if (auto info = p.execute("info")) handlers_info = *info;  // bench/heavy_handlers.py says
  }                                                            // which heavy kind it is
  KillFigures out;
  for (std::size_t k = 0; k < o.kills; ++k) {
    if (auto settled = wait_settled(p, o.workers, milliseconds(o.timeout_ms)); !settled) {
      return tl::unexpected(settled.error());
    }
    std::this_thread::sleep_for(milliseconds(50));  // let the machine settle
    if (auto killed = one_kill(p, watch, o, out); !killed) return tl::unexpected(killed.error());
  }
  p.shutdown();
  return out;
}

// --- Output -----------------------------------------------------------------------------------

Json summary_json(std::vector<double> samples) {
  const auto s = LatencySummary::of(samples);
  return {{"p50", s.p50}, {"p90", s.p90}, {"p99", s.p99}, {"max", s.max}, {"mean", s.mean}};
}

Json start_json(const StartFigures& s) {
  auto mean = [](const std::vector<double>& v) {
    double sum = 0;
    for (double x : v) sum += x;
    return v.empty() ? 0.0 : sum / double(v.size());
  };
  auto [min_pss, max_pss] = std::minmax_element(s.worker_pss_mib.begin(), s.worker_pss_mib.end());
  return {{"workers", s.workers},
          {"ready_ms", s.ready_ms},
          {"worker_pss_mib",
           {{"mean", mean(s.worker_pss_mib)},
            {"min", s.worker_pss_mib.empty() ? 0.0 : *min_pss},
            {"max", s.worker_pss_mib.empty() ? 0.0 : *max_pss}}},
          {"worker_rss_mib", {{"mean", mean(s.worker_rss_mib)}}},
          {"tree_pss_mib", s.tree_pss_mib},
          {"tree_processes", s.tree_processes}};
}

void print_human(const Json& r) {
  std::printf("replacement_bench: %s, start method %s, %zu spare(s)\n",
              r["handlers"].get<std::string>().c_str(),
              r["start_method"].get<std::string>().c_str(), r["spare_workers"].get<std::size_t>());
  if (r.contains("pool_start")) {
    const Json& s = r["pool_start"];
    std::printf(
        "pool start, %zu workers: all ready after %.0f ms; PSS per worker mean %.1f MiB "
        "(RSS %.1f MiB); PSS of the whole tree (%zu processes) %.1f MiB\n",
        s["workers"].get<std::size_t>(), s["ready_ms"].get<double>(),
        s["worker_pss_mib"]["mean"].get<double>(), s["worker_rss_mib"]["mean"].get<double>(),
        s["tree_processes"].get<std::size_t>(), s["tree_pss_mib"].get<double>());
  }
  for (const char* key : {"replacement_ms", "full_capacity_ms"}) {
    const Json& s = r[key];
    std::printf("kill -> %s over %zu kills: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
                std::string(key) == "replacement_ms" ? "replacement ready" : "full capacity",
                r["kills"].get<std::size_t>(), s["p50"].get<double>(), s["p99"].get<double>(),
                s["max"].get<double>());
  }
}

int run(const Options& o) {
  const PoolConfig config = base_config(o);
  Json r = {{"handlers", config.handlers.empty() ? default_handlers() : config.handlers.front()},
            {"start_method", std::string(start_method_name(config.start_method))},
            {"spare_workers", o.spare_workers},
            {"workers", o.workers},
            {"kills", o.kills},
            {"handlers_info", nullptr}};
  if (o.start_workers > 0) {
    auto start = measure_pool_start(config, o.start_workers);
    if (!start) {
      std::fprintf(stderr, "replacement_bench: pool start: %s\n",
                   start.error().to_string().c_str());
      return 1;
    }
    r["pool_start"] = start_json(*start);
  }
  auto kills = measure_kills(config, o, r["handlers_info"]);
  if (!kills) {
    std::fprintf(stderr, "replacement_bench: kills: %s\n", kills.error().to_string().c_str());
    return 1;
  }
  r["replacement_ms"] = summary_json(kills->ready_ms);
  r["full_capacity_ms"] = summary_json(kills->full_capacity_ms);
  print_human(r);
  if (o.json) std::printf("%s\n", r.dump().c_str());
  return 0;
}

}  // namespace
}  // namespace bridgepool::bench

int main(int argc, char** argv) {
  bridgepool::bench::Options o;
  CLI::App app{"replacement_bench: kill -> replacement ready, pool start and PSS per worker"};
  app.add_option("--handlers", o.handlers, "Handler module file (default: examples/handlers.py)")
      ->check(CLI::ExistingFile);
  app.add_option("--start-method", o.start_method, "spawn|fork-server")
      ->check(CLI::IsMember({"spawn", "fork-server", "fork_server"}));
  app.add_option("--spare-workers", o.spare_workers, "Warm spares kept aside")
      ->check(CLI::Range(0, 64));
  app.add_option("--kills", o.kills, "Workers killed, one after another")
      ->check(CLI::Range(1, 100000));
  app.add_option("--workers", o.workers, "Size of the pool whose workers are killed")
      ->check(CLI::Range(1, 64));
  app.add_option("--start-workers", o.start_workers, "Pool start timed with N workers (0: skip)")
      ->check(CLI::Range(0, 256));
  app.add_option("--python", o.python, "Python interpreter for the workers");
  app.add_option("--timeout-ms", o.timeout_ms, "Limit for a start or a replacement")
      ->check(CLI::Range(100, 3'600'000));
  app.add_flag("--json", o.json, "Print one JSON object as the last line");
  CLI11_PARSE(app, argc, argv);
  return bridgepool::bench::run(o);
}
