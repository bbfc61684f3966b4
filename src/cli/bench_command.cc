#include "cli/bench_command.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bridgepool/pool.h"
#include "telemetry/latency_summary.h"

namespace bridgepool::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct CallerResult {
  std::vector<double> latencies_us;
  std::uint64_t ok = 0;
  std::map<std::string, std::uint64_t> errors;
  std::string first_error;
};

// Draws "[=====     ] 4500/10000  11872 req/s  errors 0" on stderr, ~10 times a second.
class ProgressLine {
 public:
  ProgressLine(std::size_t total, const std::atomic<std::size_t>& done,
               const std::atomic<std::size_t>& failed)
      : total_(total), done_(done), failed_(failed) {}
  void start() {
    thread_ = std::thread([this] {
      auto t0 = Clock::now();
      while (!stop_.load()) {
        draw(t0);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      draw(t0);
      std::fputs("\n", stderr);
    });
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  void draw(Clock::time_point t0) const {
    std::size_t done = done_.load();
    double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    int filled = static_cast<int>(30.0 * double(done) / double(total_));
    std::fprintf(stderr, "\r[%-30s] %zu/%zu  %.0f req/s  errors %zu ",
                 std::string(static_cast<std::size_t>(filled), '=').c_str(), done, total_,
                 secs > 0 ? double(done) / secs : 0.0, failed_.load());
    std::fflush(stderr);
  }
  std::size_t total_;
  const std::atomic<std::size_t>& done_;
  const std::atomic<std::size_t>& failed_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

nlohmann::json summary_json(const BenchOptions& o, std::size_t concurrency, const CallerResult& all,
                            const LatencySummary& lat, double secs, const PoolStats& st) {
  return {
      {"command", o.command},
      {"concurrency", concurrency},
      {"requests", o.requests},
      {"ok", all.ok},
      {"errors", all.errors},
      {"latency_us",
       {{"p50", lat.p50}, {"p90", lat.p90}, {"p99", lat.p99}, {"max", lat.max}, {"mean", lat.mean}}},
      {"throughput_per_s", secs > 0 ? double(o.requests) / secs : 0.0},
      {"duration_s", secs},
      {"workers", {{"configured", o.workers}, {"started", st.started}, {"replaced", st.replaced}}},
  };
}

void add_sessions(nlohmann::json& j, const BenchOptions& o, const PoolStats& st) {
  if (o.sessions == 0) return;
  j["sessions"] = {{"count", o.sessions},          {"hits", st.session_hits},
                   {"misses", st.session_misses},  {"lost", st.session_lost_calls},
                   {"rebound", st.session_rebinds}, {"expired", st.session_expirations}};
}

void print_human(const nlohmann::json& j, const CallerResult& all) {
  std::printf("bridgepool bench: %s x %zu with %zu callers on %zu workers\n",
              j["command"].get<std::string>().c_str(), j["requests"].get<std::size_t>(),
              j["concurrency"].get<std::size_t>(), j["workers"]["configured"].get<std::size_t>());
  const auto& l = j["latency_us"];
  std::printf("  ok %llu, errors %s\n", static_cast<unsigned long long>(all.ok),
              all.errors.empty() ? "none" : j["errors"].dump().c_str());
  if (!all.first_error.empty()) std::printf("  first error: %s\n", all.first_error.c_str());
  std::printf("  latency  p50 %.1f us   p90 %.1f us   p99 %.1f us   max %.1f us\n",
              l["p50"].get<double>(), l["p90"].get<double>(), l["p99"].get<double>(),
              l["max"].get<double>());
  std::printf("  throughput %.0f req/s over %.2f s\n", j["throughput_per_s"].get<double>(),
              j["duration_s"].get<double>());
  if (j.contains("sessions")) std::printf("  sessions %s\n", j["sessions"].dump().c_str());
  std::printf("  workers started %llu, replaced %llu\n",
              static_cast<unsigned long long>(j["workers"]["started"].get<std::uint64_t>()),
              static_cast<unsigned long long>(j["workers"]["replaced"].get<std::uint64_t>()));
}

}  // namespace

int run_bench(const BenchOptions& o) {
  nlohmann::json args = nlohmann::json::parse(o.args_json, nullptr, false);
  if (args.is_discarded() || !args.is_object()) {
    std::fprintf(stderr, "bridgepool bench: --args must be a JSON object, got: %s\n",
                 o.args_json.c_str());
    return 2;
  }
  bool level_ok = true;
  LogLevel level = level_from_name(o.log_level, &level_ok);
  if (!level_ok) {
    std::fprintf(stderr, "bridgepool bench: unknown --log-level '%s'\n", o.log_level.c_str());
    return 2;
  }
  PoolConfig config;
  config.name = "bench";
  config.size = o.workers;
  config.handlers = o.handlers;
  config.python = o.python;
  config.request_timeout = std::chrono::milliseconds(o.timeout_ms);
  config.logger = std::make_shared<Logger>(level);
  auto pool = Pool::start(config);
  if (!pool) {
    std::fprintf(stderr, "bridgepool bench: %s\n", pool.error().format_for_logging().c_str());
    return 2;
  }
  std::size_t concurrency = o.concurrency == 0 ? o.workers : o.concurrency;
  std::atomic<std::size_t> next{0}, done{0}, failed{0};
  std::vector<CallerResult> results(concurrency);
  ProgressLine progress(o.requests, done, failed);
  bool draw = o.progress && ::isatty(STDERR_FILENO);
  if (draw) progress.start();

  auto t0 = Clock::now();
  std::vector<std::thread> callers;
  for (std::size_t c = 0; c < concurrency; ++c) {
    callers.emplace_back([&, c] {
      CallerResult& r = results[c];
      r.latencies_us.reserve(o.requests / concurrency + 1);
      for (std::size_t i; (i = next.fetch_add(1)) < o.requests;) {
        auto start = Clock::now();
        auto reply = o.sessions == 0
                         ? (*pool)->execute(o.command, args)
                         : (*pool)->execute_in_session(fmt::format("bench-{}", i % o.sessions),
                                                       o.command, args);
        r.latencies_us.push_back(
            std::chrono::duration<double, std::micro>(Clock::now() - start).count());
        if (reply) {
          ++r.ok;
        } else {
          ++r.errors[std::string(category_name(reply.error().category))];
          if (r.first_error.empty()) r.first_error = reply.error().to_string();
          ++failed;
        }
        ++done;
      }
    });
  }
  for (auto& t : callers) t.join();
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  if (draw) progress.stop();

  CallerResult all;
  for (auto& r : results) {
    all.latencies_us.insert(all.latencies_us.end(), r.latencies_us.begin(), r.latencies_us.end());
    all.ok += r.ok;
    for (auto& [k, v] : r.errors) all.errors[k] += v;
    if (all.first_error.empty()) all.first_error = r.first_error;
  }
  LatencySummary lat = LatencySummary::of(all.latencies_us);
  PoolStats st = (*pool)->stats();
  (*pool)->shutdown();
  nlohmann::json j = summary_json(o, concurrency, all, lat, secs, st);
  add_sessions(j, o, st);
  print_human(j, all);
  if (o.json) std::printf("%s\n", j.dump().c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace bridgepool::cli
