#include "cli/bench_command.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "bridgepool/pool.h"
#include "cli/args_json.h"
#include "cli/fault_schedule.h"
#include "cli/open_loop.h"
#include "cli/scenario_runner.h"
#include "cli/signal_watch.h"
#include "cli/stop_flag.h"
#include "telemetry/latency_summary.h"

namespace bridgepool::cli {
namespace {

using Clock = std::chrono::steady_clock;

// Requests in flight when SIGINT/SIGTERM arrives get this long to finish before the pool is shut
// down under them. Bench requests take micro- to milliseconds, so 2 s lets every ordinary one
// finish, while Ctrl-C still feels prompt: the summary follows the signal within the 2 s plus
// the workers' exit (tens of ms; the pool SIGKILLs a worker still busy at the deadline).
constexpr std::chrono::milliseconds kInFlightGrace{2000};

struct CallerResult {
  std::vector<double> latencies_us;
  std::vector<double> queue_waits_us;  // closed loop: each call's wait for a free worker
  std::uint64_t ok = 0;
  std::map<std::string, std::uint64_t> errors;
  std::string first_error;
  std::uint64_t completed = 0;  // requests (batches: items) that ended

  void count(const Result<Json>& reply) {
    ++completed;
    if (reply) {
      ++ok;
      return;
    }
    ++errors[std::string(category_name(reply.error().category))];
    if (first_error.empty()) first_error = reply.error().to_string();
  }
};

// Draws "[=====     ] 4500/10000  11872 req/s  errors 0" on stderr every `interval` (closed
// loop: 10 times a second; open loop: once a second, so the line itself adds little load).
class ProgressLine {
 public:
  ProgressLine(std::size_t total, const std::atomic<std::size_t>& done,
               const std::atomic<std::size_t>& failed,
               std::chrono::milliseconds interval = std::chrono::milliseconds(100))
      : total_(total), done_(done), failed_(failed), interval_(interval) {}
  void start() {
    thread_ = std::thread([this] {
      auto t0 = Clock::now();
      while (!stop_.load()) {
        draw(t0);
        std::unique_lock lock(mutex_);
        wake_.wait_for(lock, interval_, [this] { return stop_.load(); });
      }
      draw(t0);
      std::fputs("\n", stderr);
    });
  }
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
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
  std::chrono::milliseconds interval_;
  std::mutex mutex_;
  std::condition_variable wake_;  // ends the wait between draws at stop()
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// How a run ended, as far as interrupts go.
struct Interruption {
  bool interrupted = false;
  int signo = 0;
  std::uint64_t cut_off = 0;  // requests that the interrupt's shutdown ended (in flight, queued)
};

void add_interruption(nlohmann::json& j, const Interruption& in, std::uint64_t completed) {
  j["interrupted"] = in.interrupted;
  if (!in.interrupted) return;
  j["signal"] = SignalWatch::name_of(in.signo);
  j["completed"] = completed;
  j["cut_off"] = in.cut_off;
}

void print_interruption(const Interruption& in, std::uint64_t completed, std::size_t planned) {
  if (!in.interrupted) return;
  std::printf(
      "bridgepool bench: INTERRUPTED by %s: %llu of %zu requests completed, %llu cut off "
      "at shutdown\n",
      SignalWatch::name_of(in.signo).c_str(), static_cast<unsigned long long>(completed), planned,
      static_cast<unsigned long long>(in.cut_off));
}

// Returns the exit status of a run that got as far as sending requests (bench_command.h).
int exit_status(const Interruption& in, std::uint64_t completed, std::uint64_t ok,
                const std::string& first_error, bool sla_strict_failed) {
  if (in.interrupted) return kExitSignalBase + in.signo;
  if (completed > 0 && ok == 0) {
    std::fprintf(stderr, "bridgepool bench: every request failed (%llu of %llu); first error: %s\n",
                 static_cast<unsigned long long>(completed),
                 static_cast<unsigned long long>(completed), first_error.c_str());
    return kExitAllFailed;
  }
  return sla_strict_failed ? kExitSlaFailed : kExitOk;
}

// What SIGINT and SIGTERM do (bench_command.h). The callbacks run on SignalWatch's thread.
class InterruptResponse {
 public:
  explicit InterruptResponse(const BenchOptions& o) : options_(o) {}
  StopFlag& stop() { return stop_; }
  // Called once Pool::start has returned a pool: from then on a first signal stops the load.
  void pool_started() { pool_started_.store(true); }
  // Called when the load has ended: from then on a first signal changes nothing.
  void load_ended() { load_ended_.store(true); }

  // Runs `print` (the summary) unless an exit_now() has begun: the summary is printed whole or
  // not at all, never half, and never after a second signal said to exit at once.
  void report(const std::function<void()>& print) {
    std::lock_guard lock(report_mutex_);
    print();
    std::fflush(stdout);
  }

  void on_first(int signo) {
    stop_.request(signo);
    if (!pool_started_.load()) exit_now(signo, /*start_up=*/true);
    if (load_ended_.load()) {
      std::fprintf(stderr,
                   "\nbridgepool bench: %s: the run is complete and finishing (%s again "
                   "exits at once)\n",
                   SignalWatch::name_of(signo).c_str(), SignalWatch::name_of(signo).c_str());
      return;
    }
    std::fprintf(stderr,
                 "\nbridgepool bench: %s: stopping; requests in flight get %lld ms to finish "
                 "(%s again exits at once)\n",
                 SignalWatch::name_of(signo).c_str(),
                 static_cast<long long>(kInFlightGrace.count()),
                 SignalWatch::name_of(signo).c_str());
  }

  void on_again(int signo) {
    std::fprintf(stderr, "bridgepool bench: %s again: ending the workers and exiting at once\n",
                 SignalWatch::name_of(signo).c_str());
    exit_now(signo, /*start_up=*/false);
  }

 private:
  void print_start_up_summary(int signo) const {
    std::printf("bridgepool bench: INTERRUPTED by %s during the pool's start-up: no request sent\n",
                SignalWatch::name_of(signo).c_str());
    if (options_.json) {
      nlohmann::json j = {{"command", options_.command},
                          {"interrupted", true},
                          {"signal", SignalWatch::name_of(signo)},
                          {"phase", "start-up"},
                          {"completed", 0},
                          {"cut_off", 0}};
      std::printf("%s\n", j.dump().c_str());
    }
  }

  // Pool::start cannot be cancelled, and a second signal asks not to wait for the pool's
  // shutdown: end the workers' process groups here, then leave without unwinding (the other
  // threads are still inside the pool).
  [[noreturn]] void exit_now(int signo, bool start_up) {
    // Held until the process ends: once the workers die, the load threads would otherwise race
    // to print a summary whose requests this very kill cut off. A summary already being printed
    // is let finish — unless stdout is stuck (a full pipe nobody reads), hence the bound.
    (void)report_mutex_.try_lock_for(std::chrono::seconds(1));
    if (start_up) print_start_up_summary(signo);
    kill_child_process_groups();
    std::fflush(stdout);
    std::fflush(stderr);
    std::_Exit(kExitSignalBase + signo);
  }

  const BenchOptions& options_;
  StopFlag stop_;
  std::atomic<bool> pool_started_{false};
  std::atomic<bool> load_ended_{false};
  std::timed_mutex report_mutex_;
};

// Runs `load` on the calling thread. If a stop is requested before it returns, a helper thread
// shuts `pool` down with kInFlightGrace of grace: requests still in flight get that long to
// finish, then their workers are ended and the calls return with an error. `shutdown_begun` is
// set just before, so the load can tell those errors (cut off) from the pool's own. Returns
// whether the run was interrupted.
bool run_interruptible(Pool& pool, StopFlag& stop, std::atomic<bool>& shutdown_begun,
                       const std::function<void()>& load) {
  std::atomic<bool> finished{false};
  std::thread responder([&] {
    if (stop.wait([&] { return finished.load(); })) {
      shutdown_begun.store(true);
      pool.shutdown(kInFlightGrace);
    }
  });
  load();
  finished.store(true);
  stop.notify();
  responder.join();
  return shutdown_begun.load();
}

nlohmann::json summary_json(const BenchOptions& o, std::size_t concurrency, const CallerResult& all,
                            const LatencySummary& lat, double secs, const PoolStats& st) {
  return {
      {"command", o.command},
      {"concurrency", concurrency},
      {"requests", o.requests},
      {"ok", all.ok},
      {"errors", all.errors},
      {"latency_us",
       {{"p50", lat.p50},
        {"p90", lat.p90},
        {"p99", lat.p99},
        {"max", lat.max},
        {"mean", lat.mean}}},
      {"throughput_per_s", secs > 0 ? double(all.completed) / secs : 0.0},
      {"duration_s", secs},
      {"workers", {{"configured", o.workers}, {"started", st.started}, {"replaced", st.replaced}}},
  };
}

void add_sessions(nlohmann::json& j, const BenchOptions& o, const PoolStats& st) {
  if (o.sessions == 0) return;
  j["sessions"] = {{"count", o.sessions},           {"hits", st.session_hits},
                   {"misses", st.session_misses},   {"lost", st.session_lost_calls},
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
  if (j.contains("queue_wait_us")) {
    const auto& w = j["queue_wait_us"];
    std::printf("  queue wait  p50 %.1f us   p99 %.1f us   max %.1f us\n", w["p50"].get<double>(),
                w["p99"].get<double>(), w["max"].get<double>());
  }
  std::printf("  throughput %.0f req/s over %.2f s\n", j["throughput_per_s"].get<double>(),
              j["duration_s"].get<double>());
  if (j.contains("sessions")) std::printf("  sessions %s\n", j["sessions"].dump().c_str());
  std::printf("  workers started %llu, replaced %llu\n",
              static_cast<unsigned long long>(j["workers"]["started"].get<std::uint64_t>()),
              static_cast<unsigned long long>(j["workers"]["replaced"].get<std::uint64_t>()));
}

// -- open loop (--rate) --------------------------------------------------------------------

struct OpenLoopOutcome {
  OpenLoopReport report;
  std::string first_error;
};

// Sends o.rate requests/s for o.duration_s seconds through `pool` (less when `stop` is
// requested) and returns the figures.
OpenLoopOutcome drive_open_loop(const BenchOptions& o, const nlohmann::json& args, Pool& pool,
                                std::size_t senders, StopFlag& stop,
                                const std::atomic<bool>& shutdown_begun) {
  SendSchedule schedule(
      o.rate, std::chrono::duration_cast<Duration>(std::chrono::duration<double>(o.duration_s)));
  std::mutex first_error_mutex;
  std::string first_error;
  OpenLoopCall call = [&](std::size_t slot) -> SendOutcome {
    nlohmann::json distinct;
    if (o.distinct_args) (distinct = args)["slot"] = slot;
    const nlohmann::json& sent = o.distinct_args ? distinct : args;
    auto reply = o.sessions == 0 ? pool.execute(o.command, sent)
                                 : pool.execute_in_session(
                                       fmt::format("bench-{}", slot % o.sessions), o.command, sent);
    if (reply) return {};
    if (shutdown_begun.load()) return {"", true};
    std::lock_guard lock(first_error_mutex);
    if (first_error.empty()) first_error = reply.error().to_string();
    return {std::string(category_name(reply.error().category)), false};
  };
  OpenLoopProgress progress;
  ProgressLine line(schedule.size(), progress.done, progress.failed, std::chrono::seconds(1));
  bool draw = o.progress && ::isatty(STDERR_FILENO);
  if (draw) line.start();
  OpenLoopTally tally = run_open_loop(schedule, senders, call, progress, &stop);
  if (draw) line.stop();
  return {tally.report(schedule.size()), first_error};
}

nlohmann::json open_loop_json(const BenchOptions& o, std::size_t senders, const OpenLoopReport& r,
                              const SlaThresholds& t, const SlaVerdict& v, const PoolStats& st) {
  const LatencySummary& l = r.latency_us;
  return {
      {"mode", "open_loop"},
      {"command", o.command},
      {"rate", o.rate},
      {"duration_s", o.duration_s},
      {"elapsed_s", r.elapsed_s},
      {"senders", senders},
      {"requests", r.scheduled},
      {"sent", r.sent},
      {"ok", r.ok},
      {"failed", r.failed},
      {"errors", r.errors},
      {"latency_us",
       {{"p50", l.p50},
        {"p90", l.p90},
        {"p99", l.p99},
        {"p999", r.p999_us},
        {"max", l.max},
        {"mean", l.mean}}},
      {"send_lag_us", {{"p99", r.send_lag_p99_us}, {"max", r.send_lag_max_us}}},
      {"achieved_rate", r.achieved_rate},
      {"success_ratio", r.success_ratio},
      {"workers", {{"configured", o.workers}, {"started", st.started}, {"replaced", st.replaced}}},
      {"pool",
       {{"retries", st.retries},
        {"retries_denied", st.retries_denied},
        {"circuit_rejected", st.circuit_rejected},
        {"quarantine_refused", st.quarantine_refused}}},
      {"sla",
       {{"p99_ms_max", t.p99_ms_max},
        {"success_min", t.success_min},
        {"p99_ok", v.p99_ok},
        {"success_ok", v.success_ok},
        {"pass", v.pass()}}},
  };
}

void print_open_loop_human(const nlohmann::json& j, const OpenLoopOutcome& out) {
  const OpenLoopReport& r = out.report;
  std::printf(
      "bridgepool bench (open loop): %s at %g req/s for %g s (%zu requests), %zu senders "
      "on %zu workers\n",
      j["command"].get<std::string>().c_str(), j["rate"].get<double>(),
      j["duration_s"].get<double>(), r.scheduled, j["senders"].get<std::size_t>(),
      j["workers"]["configured"].get<std::size_t>());
  std::printf("  sent %zu, ok %llu, failed %llu%s%s\n", r.sent,
              static_cast<unsigned long long>(r.ok), static_cast<unsigned long long>(r.failed),
              r.errors.empty() ? "" : " ", r.errors.empty() ? "" : j["errors"].dump().c_str());
  if (!out.first_error.empty()) std::printf("  first error: %s\n", out.first_error.c_str());
  const LatencySummary& l = r.latency_us;
  std::printf(
      "  latency from intended send  p50 %.1f us   p90 %.1f us   p99 %.1f us   "
      "p99.9 %.1f us   max %.1f us\n",
      l.p50, l.p90, l.p99, r.p999_us, l.max);
  std::printf("  send lag  p99 %.1f us   max %.1f us\n", r.send_lag_p99_us, r.send_lag_max_us);
  std::printf("  achieved %.1f req/s over %.2f s, success %.3f%%\n", r.achieved_rate, r.elapsed_s,
              r.success_ratio * 100.0);
  if (j.contains("sessions")) std::printf("  sessions %s\n", j["sessions"].dump().c_str());
  std::printf("  workers started %llu, replaced %llu\n",
              static_cast<unsigned long long>(j["workers"]["started"].get<std::uint64_t>()),
              static_cast<unsigned long long>(j["workers"]["replaced"].get<std::uint64_t>()));
  const auto& p = j["pool"];
  auto count = [&p](const char* key) {
    return static_cast<unsigned long long>(p[key].get<std::uint64_t>());
  };
  std::printf(
      "  pool retries %llu, retries denied %llu, circuit rejected %llu, quarantine "
      "refused %llu\n",
      count("retries"), count("retries_denied"), count("circuit_rejected"),
      count("quarantine_refused"));
}

// Senders must not be the bottleneck, or the run measures the load generator. A sender is held
// for the whole call, retries and their backoff included, so by Little's law R req/s at a mean
// of L seconds per call needs R·L senders: 1000/s at 50 ms is 50. Measured: with 8 senders, a
// 5% retryable-failure load at 1000/s had a send-lag p99 of 22 ms; with 32, 1.2 ms.
std::size_t open_loop_senders(const BenchOptions& o) {
  if (o.senders != 0) return o.senders;
  auto by_rate = static_cast<std::size_t>(std::ceil(o.rate * 0.05));
  return std::max({std::size_t{8}, 2 * o.workers, by_rate});
}

Duration duration_of(double seconds) {
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(seconds));
}

// The load of an open-loop run: plain (drive_open_loop) or a failure scenario (run_scenario).
// Returns the scenario's outcome when there is one; fails when the scenario cannot be set up.
Result<std::optional<ScenarioOutcome>> drive_load(const BenchOptions& o, const nlohmann::json& args,
                                                  Pool& pool, std::size_t senders, StopFlag& stop,
                                                  const std::atomic<bool>& shutdown_begun,
                                                  OpenLoopOutcome& out) {
  if (o.scenario.empty()) {
    out = drive_open_loop(o, args, pool, senders, stop, shutdown_begun);
    return std::nullopt;
  }
  ScenarioOptions so;
  so.plan =
      plan_scenario(*parse_scenario(o.scenario), duration_of(o.duration_s), o.workers, o.seed);
  so.rate = o.rate;
  so.workers = o.workers;
  so.senders = senders;
  so.seed = o.seed;
  auto run = run_scenario(so, pool, stop, shutdown_begun);
  if (!run) return tl::unexpected(run.error());
  out = {run->report, run->first_error};
  return std::move(*run);
}

// Adds a scenario's figures and the verdict on its subject to the JSON's "scenario".
void add_scenario(nlohmann::json& j, const ScenarioOutcome& s, const BenchOptions& o,
                  const SlaVerdict& v) {
  j["scenario"] = s.figures;
  j["scenario"]["seed"] = o.seed;
  j["scenario"]["sla"] = {{"subject", s.subject_name},
                          {"sent", s.subject.sent},
                          {"p99_us", s.subject.latency_us.p99},
                          {"success_ratio", s.subject.success_ratio},
                          {"p99_ok", v.p99_ok},
                          {"success_ok", v.success_ok},
                          {"pass", v.pass()}};
}

void print_scenario(const ScenarioOutcome& s, const SlaThresholds& t, const SlaVerdict& v) {
  std::printf("scenario %s\n", s.figures["name"].get<std::string>().c_str());
  for (const auto& line : s.lines) std::printf("%s\n", line.c_str());
  std::printf("%s (%s)\n", sla_line(s.subject, t, v).c_str(), s.subject_name.c_str());
}

// The open-loop bench on a started pool; returns the exit status (bench_command.h).
int run_open_loop_bench(const BenchOptions& o, const nlohmann::json& args, Pool& pool,
                        InterruptResponse& response) {
  StopFlag& stop = response.stop();
  const std::size_t senders = open_loop_senders(o);
  std::atomic<bool> shutdown_begun{false};
  OpenLoopOutcome out;
  Result<std::optional<ScenarioOutcome>> scenario = std::nullopt;
  Interruption in;
  in.interrupted = run_interruptible(pool, stop, shutdown_begun, [&] {
    scenario = drive_load(o, args, pool, senders, stop, shutdown_begun, out);
  });
  response.load_ended();
  PoolStats st = pool.stats();
  pool.shutdown();
  if (!scenario) {
    std::fprintf(stderr, "bridgepool bench: scenario %s cannot run: %s\n", o.scenario.c_str(),
                 scenario.error().to_string().c_str());
    return kExitUsage;
  }
  in.signo = stop.signal_number();
  in.cut_off = out.report.cut_off;
  // 99.99 / 100 is 0.99989999999999990 in binary; rounding to 12 decimals gives the double
  // nearest 0.9999, so the JSON says 0.9999 (judge_sla tolerates either).
  SlaThresholds thresholds{o.sla_p99_ms, std::round(o.sla_success_pct * 1e10) / 1e12};
  SlaVerdict verdict = judge_sla(out.report, thresholds);
  nlohmann::json j = open_loop_json(o, senders, out.report, thresholds, verdict, st);
  add_sessions(j, o, st);
  add_interruption(j, in, out.report.sent);
  SlaVerdict scenario_verdict;
  if (*scenario) {
    scenario_verdict = judge_sla((*scenario)->subject, thresholds);
    add_scenario(j, **scenario, o, scenario_verdict);
    j["command"] = "scenario " + o.scenario;  // the scenario chose the commands
  }
  response.report([&] {
    print_interruption(in, out.report.sent, out.report.scheduled);
    print_open_loop_human(j, out);
    std::printf("%s\n", sla_line(out.report, thresholds, verdict).c_str());
    if (*scenario) print_scenario(**scenario, thresholds, scenario_verdict);
    if (o.json) std::printf("%s\n", j.dump().c_str());
  });
  bool judged_pass = *scenario ? scenario_verdict.pass() : verdict.pass();
  return exit_status(in, out.report.sent, out.report.ok, out.first_error,
                     o.sla_strict && !judged_pass);
}

// What a closed-loop run came to.
struct ClosedLoopOutcome {
  CallerResult all;  // the callers' results, merged
  double secs = 0;
  Interruption in;
};

// Runs o.requests requests on `concurrency` caller threads (fewer when interrupted).
ClosedLoopOutcome drive_closed_loop(const BenchOptions& o, const nlohmann::json& args, Pool& pool,
                                    std::size_t concurrency, InterruptResponse& response) {
  StopFlag& stop = response.stop();
  std::atomic<std::size_t> next{0}, done{0}, failed{0};
  std::atomic<bool> shutdown_begun{false};
  std::vector<CallerResult> results(concurrency);
  std::vector<std::uint64_t> cut_off(concurrency, 0);
  auto caller = [&](std::size_t c) {
    CallerResult& r = results[c];
    r.latencies_us.reserve(o.requests / concurrency + 1);
    r.queue_waits_us.reserve(o.requests / concurrency + 1);
    CallReport report;
    ExecuteOptions options;
    options.report = &report;
    options.batch_chunk = o.batch_chunk;
    const std::size_t step = std::max<std::size_t>(o.batch, 1);
    for (std::size_t i; !stop.stop_requested() && (i = next.fetch_add(step)) < o.requests;) {
      auto start = Clock::now();
      if (o.batch > 0) {
        std::vector<Json> items(std::min(step, o.requests - i), args);
        for (std::size_t k = 0; k < items.size(); ++k) items[k]["i"] = i + k;
        auto replies = pool.execute_many(o.command, std::move(items), options);
        const bool cut = shutdown_begun.load();
        r.latencies_us.push_back(
            std::chrono::duration<double, std::micro>(Clock::now() - start).count());
        r.queue_waits_us.push_back(double(report.queue_wait.count()));
        for (const auto& reply : replies) {
          if (!reply && cut) {
            ++cut_off[c];
            continue;
          }
          r.count(reply);
          failed += !reply;
          ++done;
        }
        continue;
      }
      auto reply = o.sessions == 0
                       ? pool.execute(o.command, args, options)
                       : pool.execute_in_session(fmt::format("bench-{}", i % o.sessions), o.command,
                                                 args, options);
      if (!reply && shutdown_begun.load()) {
        ++cut_off[c];  // ended by the interrupt's shutdown: its latency measures that
        continue;
      }
      r.latencies_us.push_back(
          std::chrono::duration<double, std::micro>(Clock::now() - start).count());
      r.queue_waits_us.push_back(double(report.queue_wait.count()));
      r.count(reply);
      failed += !reply;
      ++done;
    }
  };
  ProgressLine progress(o.requests, done, failed);
  bool draw = o.progress && ::isatty(STDERR_FILENO);
  if (draw) progress.start();
  ClosedLoopOutcome out;
  auto t0 = Clock::now();
  out.in.interrupted = run_interruptible(pool, stop, shutdown_begun, [&] {
    std::vector<std::thread> callers;
    for (std::size_t c = 0; c < concurrency; ++c) callers.emplace_back(caller, c);
    for (auto& t : callers) t.join();
  });
  response.load_ended();
  out.secs = std::chrono::duration<double>(Clock::now() - t0).count();
  if (draw) progress.stop();
  out.in.signo = stop.signal_number();
  for (auto n : cut_off) out.in.cut_off += n;
  for (auto& r : results) {
    out.all.latencies_us.insert(out.all.latencies_us.end(), r.latencies_us.begin(),
                                r.latencies_us.end());
    out.all.queue_waits_us.insert(out.all.queue_waits_us.end(), r.queue_waits_us.begin(),
                                  r.queue_waits_us.end());
    out.all.ok += r.ok;
    out.all.completed += r.completed;
    for (auto& [k, v] : r.errors) out.all.errors[k] += v;
    if (out.all.first_error.empty()) out.all.first_error = r.first_error;
  }
  return out;
}

// The closed-loop bench on a started pool; returns the exit status (bench_command.h).
int run_closed_loop_bench(const BenchOptions& o, const nlohmann::json& args, Pool& pool,
                          InterruptResponse& response) {
  std::size_t concurrency = o.concurrency == 0 ? o.workers : o.concurrency;
  ClosedLoopOutcome out = drive_closed_loop(o, args, pool, concurrency, response);
  std::uint64_t completed = out.all.completed;
  LatencySummary lat = LatencySummary::of(out.all.latencies_us);
  PoolStats st = pool.stats();
  pool.shutdown();
  nlohmann::json j = summary_json(o, concurrency, out.all, lat, out.secs, st);
  const LatencySummary wait = LatencySummary::of(out.all.queue_waits_us);
  j["queue_wait_us"] = {{"p50", wait.p50}, {"p99", wait.p99}, {"max", wait.max}};
  add_sessions(j, o, st);
  if (o.batch > 0) j["batch"] = {{"items", o.batch}, {"chunk", o.batch_chunk}};
  add_interruption(j, out.in, completed);
  response.report([&] {
    print_interruption(out.in, completed, o.requests);
    print_human(j, out.all);
    if (o.json) std::printf("%s\n", j.dump().c_str());
  });
  return exit_status(out.in, completed, out.all.ok, out.all.first_error, false);
}

// -- before the pool starts -------------------------------------------------------------------

// Returns the contents of `path`, or why it cannot be read (the strerror text).
tl::expected<std::string, std::string> read_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return tl::unexpected(std::strerror(EISDIR));
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) return tl::unexpected(std::strerror(errno != 0 ? errno : EIO));
  std::ostringstream text;
  text << in.rdbuf();  // an empty file gives "", which the parser then calls empty input
  if (in.bad()) return tl::unexpected(std::strerror(EIO));
  return text.str();
}

// Returns the request arguments, or prints why they are unusable and returns nothing.
std::optional<nlohmann::json> request_args(const BenchOptions& o) {
  std::string source = "--args";
  std::string text = o.args_json;
  if (!o.args_file.empty()) {
    auto contents = read_file(o.args_file);
    if (!contents) {
      std::fprintf(stderr, "bridgepool bench: cannot read --args-file '%s': %s\n",
                   printable_excerpt(o.args_file).c_str(), contents.error().c_str());
      return std::nullopt;
    }
    source = "--args-file '" + printable_excerpt(o.args_file) + "'";
    text = std::move(*contents);
  }
  auto args = parse_args_object(text, source);
  if (!args) {
    std::fprintf(stderr, "bridgepool bench: %s\n", args.error().c_str());
    return std::nullopt;
  }
  return std::move(*args);
}

// Returns whether every handler module given as a file exists; prints the first that does not.
// The worker takes a spec ending in ".py" or containing '/' as a file, anything else as a
// module name (python/bridgepool_worker/runtime.py, load_handler_module); names are left to the
// worker, whose import error Pool::start reports.
bool handler_files_exist(const BenchOptions& o) {
  for (const auto& spec : o.handlers) {
    if (!spec.ends_with(".py") && spec.find('/') == std::string::npos) continue;
    std::error_code ec;
    if (std::filesystem::is_regular_file(spec, ec)) continue;
    std::fprintf(stderr, "bridgepool bench: --handlers '%s': %s\n", printable_excerpt(spec).c_str(),
                 std::filesystem::exists(spec, ec) ? "not a regular file" : "no such file");
    return false;
  }
  return true;
}

PoolConfig pool_config(const BenchOptions& o, LogLevel level) {
  PoolConfig config;
  config.name = "bench";
  config.size = o.workers;
  config.handlers = o.handlers;
  config.python = o.python;
  config.start_method = parse_start_method(o.start_method).value_or(StartMethod::kForkServer);
  config.spare_workers = o.spare_workers;
  config.request_timeout = std::chrono::milliseconds(o.timeout_ms);
  config.logger = std::make_shared<Logger>(level);
  return config;
}

}  // namespace

int run_bench(const BenchOptions& o) {
  auto args = request_args(o);
  if (!args) return kExitUsage;
  bool level_ok = true;
  LogLevel level = level_from_name(o.log_level, &level_ok);
  if (!level_ok) {
    std::fprintf(stderr, "bridgepool bench: unknown --log-level '%s'\n",
                 printable_excerpt(o.log_level).c_str());
    return kExitUsage;
  }
  if (!handler_files_exist(o)) return kExitUsage;
  if (!o.scenario.empty() && !parse_scenario(o.scenario)) {
    std::fprintf(stderr, "bridgepool bench: unknown --scenario '%s' (one of: %s)\n",
                 printable_excerpt(o.scenario).c_str(), scenario_names().c_str());
    return kExitUsage;
  }

  // Before Pool::start creates the first thread (signal_watch.h).
  InterruptResponse response(o);
  auto watch = SignalWatch::start([&](int signo) { response.on_first(signo); },
                                  [&](int signo) { response.on_again(signo); });
  if (!watch) {
    std::fprintf(stderr, "bridgepool bench: %s\n", watch.error().to_string().c_str());
    return kExitUsage;
  }
  auto pool = Pool::start(pool_config(o, level));
  if (!pool) {
    // One line: the pool has already logged each worker's failure, traceback included.
    std::fprintf(stderr, "bridgepool bench: the pool could not start: %s\n",
                 printable_excerpt(pool.error().message, 2000).c_str());
    return kExitUsage;
  }
  response.pool_started();
  return o.rate > 0 ? run_open_loop_bench(o, *args, **pool, response)
                    : run_closed_loop_bench(o, *args, **pool, response);
}

}  // namespace bridgepool::cli
