// Open-loop load for `bridgepool bench --rate R --duration D` (SPEC §9: "1000 requests/s with 5%
// injected failures: p99 < 20 ms, success after retries >= 99.99%").
//
// A closed-loop bench (C callers, each sending its next request when the previous one returns)
// slows down with the pool it measures: during a 100 ms stall it sends nothing, so the requests
// that a real client would have sent meanwhile are never measured ("coordinated omission") and the
// stall shows up as one slow sample. Open loop fixes the send times up front — request i is due at
// start + i/R — and measures every latency from that *intended* time. The same stall at 1000 req/s
// then costs ~100 requests between 100 ms and 0 ms of extra latency, which is what users see.
//
// This header holds the parts that need neither threads nor clocks, so they are tested with
// made-up times (tests/unit/open_loop_test.cc): the schedule (SendSchedule), the accounting
// (OpenLoopTally -> OpenLoopReport) and the SLA verdict (judge_sla, sla_line). Every time here is
// an offset from the run's start, supplied by the caller. The sender threads that sleep until each
// intended time and call the pool are run_open_loop() (open_loop.cc); the flags, the pool and the
// printing are in bench_command.cc. All functions here are pure and may be called from any thread;
// an OpenLoopTally is not synchronised (one per sender thread, merged at the end).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "bridgepool/clock.h"
#include "cli/stop_flag.h"
#include "telemetry/latency_summary.h"

namespace bridgepool::cli {

// When each request of a run is due: slot i at i/R seconds after the start, for every i with
// i/R < D. 1000 req/s for 10 s is slots 0..9999, due at 0, 1 ms, ..., 9.999 s.
class SendSchedule {
 public:
  // rate_per_s <= 0 or duration <= 0 gives an empty schedule.
  SendSchedule(double rate_per_s, Duration duration) : rate_(rate_per_s), duration_(duration) {
    if (rate_ <= 0 || duration_ <= Duration::zero()) return;
    // The number of i >= 0 with i/R < D is ceil(R·D). The 1e-9 keeps an R·D that should be a whole
    // number but comes out as 10000.000000001 from becoming 10001.
    double exact = rate_ * std::chrono::duration<double>(duration_).count();
    size_ = static_cast<std::size_t>(std::ceil(exact - 1e-9));
  }

  // Returns the number of requests in the run.
  std::size_t size() const { return size_; }
  double rate() const { return rate_; }
  Duration duration() const { return duration_; }

  // Returns when `slot` is due, as an offset from the start. Computed from the slot number rather
  // than by adding 1/R repeatedly, so rounding does not accumulate: slot 9999 at 1000/s is
  // exactly 9.999 s.
  Duration intended(std::size_t slot) const {
    return Duration(std::llround(double(slot) * 1e9 / rate_));
  }

 private:
  double rate_;
  Duration duration_;
  std::size_t size_ = 0;
};

// Nearest-rank percentile of samples sorted ascending (the rule LatencySummary uses: p50 of
// 1..100 is 50, p99.9 of 1..1000 is 999). Returns 0 for no samples.
inline double percentile_of_sorted(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  // 99.9 / 100 × 1000 is 999.0000000000001 in binary; the 1e-9 keeps its ceiling at 999.
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * double(sorted.size()) - 1e-9));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

// The figures of one run.
struct OpenLoopReport {
  std::size_t scheduled = 0;  // slots in the schedule
  std::size_t sent = 0;       // requests that completed (successfully or not)
  std::size_t cut_off = 0;    // sent, then ended by an interrupt's shutdown: not in `sent`
  std::uint64_t ok = 0;
  std::uint64_t failed = 0;
  std::map<std::string, std::uint64_t> errors;  // category -> count; sums to `failed`
  LatencySummary latency_us;                    // completion - intended send time
  double p999_us = 0;
  double send_lag_p99_us = 0;  // actual - intended send time: how far behind the senders were
  double send_lag_max_us = 0;
  double elapsed_s = 0;      // start -> last completion
  double achieved_rate = 0;  // sent / elapsed_s (0 when nothing completed)
  double success_ratio = 0;  // ok / sent (0 when nothing completed)

  // Slots with no outcome: never sent (an interrupted run), or lost (a bug).
  std::size_t missing() const { return scheduled - std::min(scheduled, sent + cut_off); }
};

// Per-request accounting. One tally per sender thread (no locking); merge() them at the end.
class OpenLoopTally {
 public:
  // Records one completed request. Offsets are from the run's start: `intended` from the
  // schedule, `sent` when the request really went out (>= intended unless the caller sent early),
  // `completed` when the reply (or the error) came back. `error_category` is "" for a success.
  void record(Duration intended, Duration sent, Duration completed,
              std::string_view error_category) {
    latencies_us_.push_back(micros(completed - intended));
    send_lags_us_.push_back(micros(sent - intended));
    last_completion_ = std::max(last_completion_, completed);
    if (error_category.empty()) {
      ++ok_;
    } else {
      auto it = errors_.find(error_category);
      if (it == errors_.end()) it = errors_.emplace(std::string(error_category), 0).first;
      ++it->second;
    }
  }

  // Records a request that an interrupt ended before it completed (the pool was shut down under
  // it). It is neither a success nor a failure of the pool under test, and its latency measures
  // the shutdown, so it is only counted.
  void record_cut_off() { ++cut_off_; }

  void merge(const OpenLoopTally& other) {
    latencies_us_.insert(latencies_us_.end(), other.latencies_us_.begin(),
                         other.latencies_us_.end());
    send_lags_us_.insert(send_lags_us_.end(), other.send_lags_us_.begin(),
                         other.send_lags_us_.end());
    last_completion_ = std::max(last_completion_, other.last_completion_);
    ok_ += other.ok_;
    cut_off_ += other.cut_off_;
    for (const auto& [category, n] : other.errors_) errors_[category] += n;
  }

  std::size_t count() const { return latencies_us_.size(); }

  // Returns the figures, `scheduled` being the schedule's size (to spot missing requests).
  OpenLoopReport report(std::size_t scheduled) const {
    OpenLoopReport r;
    r.scheduled = scheduled;
    r.sent = latencies_us_.size();
    r.ok = ok_;
    r.cut_off = cut_off_;
    for (const auto& [category, n] : errors_) {
      r.errors.emplace(category, n);
      r.failed += n;
    }
    std::vector<double> latencies = latencies_us_;
    r.latency_us = LatencySummary::of(latencies);  // sorts `latencies`
    r.p999_us = percentile_of_sorted(latencies, 99.9);
    std::vector<double> lags = send_lags_us_;
    std::sort(lags.begin(), lags.end());
    r.send_lag_p99_us = percentile_of_sorted(lags, 99);
    r.send_lag_max_us = lags.empty() ? 0 : lags.back();
    r.elapsed_s = std::chrono::duration<double>(last_completion_).count();
    r.achieved_rate = r.elapsed_s > 0 ? double(r.sent) / r.elapsed_s : 0;
    r.success_ratio = r.sent > 0 ? double(r.ok) / double(r.sent) : 0;
    return r;
  }

 private:
  static double micros(Duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

  std::vector<double> latencies_us_;
  std::vector<double> send_lags_us_;
  Duration last_completion_{0};
  std::uint64_t ok_ = 0;
  std::size_t cut_off_ = 0;
  std::map<std::string, std::uint64_t, std::less<>> errors_;
};

// SPEC §9's goal by default: p99 strictly below 20 ms, success ratio at least 99.99%.
struct SlaThresholds {
  double p99_ms_max = 20.0;
  double success_min = 0.9999;  // a ratio, not a percentage
};

struct SlaVerdict {
  bool p99_ok = false;
  bool success_ok = false;
  bool pass() const { return p99_ok && success_ok; }
};

// Returns the verdict on a report. A run in which nothing completed fails both parts: there is no
// p99 to compare, and a success ratio of 0/0 proves nothing.
inline SlaVerdict judge_sla(const OpenLoopReport& r, const SlaThresholds& t) {
  SlaVerdict v;
  if (r.sent == 0) return v;
  v.p99_ok = r.latency_us.p99 < t.p99_ms_max * 1000.0;
  // The threshold usually arrives as a percentage: 99.99 / 100 is 0.99989999999999990, and
  // 9999 / 10000 is 0.99990000000000001; the 1e-12 keeps a ratio exactly at the threshold from
  // failing on the last bit either way.
  v.success_ok = r.success_ratio >= t.success_min - 1e-12;
  return v;
}

// Returns the human verdict line, e.g.
//   "SLA: PASS  p99 4.1 ms < 20 ms, success 99.998% >= 99.99%"
//   "SLA: FAIL  p99 4.1 ms < 20 ms, success 95.012% < 99.99% (fail)"
inline std::string sla_line(const OpenLoopReport& r, const SlaThresholds& t, const SlaVerdict& v) {
  if (r.sent == 0) return "SLA: FAIL  no request completed";
  double p99_ms = r.latency_us.p99 / 1000.0;
  return fmt::format("SLA: {}  p99 {:.1f} ms {} {:g} ms{}, success {:.3f}% {} {:g}%{}",
                     v.pass() ? "PASS" : "FAIL", p99_ms, v.p99_ok ? "<" : ">=", t.p99_ms_max,
                     v.p99_ok ? "" : " (fail)", r.success_ratio * 100.0, v.success_ok ? ">=" : "<",
                     t.success_min * 100.0, v.success_ok ? "" : " (fail)");
}

// -- the runner (open_loop.cc): real threads, the real clock ----------------------------------

// What one request of the load came to.
struct SendOutcome {
  std::string error_category;  // "" on success
  bool cut_off = false;        // ended by an interrupt's shutdown (OpenLoopTally::record_cut_off)
};

// One request of the load: sends it and says how it ended. Called concurrently from the sender
// threads with the slot number (0..size-1).
using OpenLoopCall = std::function<SendOutcome(std::size_t slot)>;

// Live counters for a progress display, updated as requests complete.
struct OpenLoopProgress {
  std::atomic<std::size_t> done{0};
  std::atomic<std::size_t> failed{0};
};

// Runs every slot of `schedule` through `call` on `senders` threads: each thread takes the next
// slot, sleeps until it is due if it is early, calls, and records the latency from the intended
// time. Blocks the calling thread until the last request has completed; returns the merged tally.
// When `stop` (optional) is requested, no further request is sent — a sender waiting for its
// slot's time wakes at once — and the run returns as soon as the requests in flight return.
// `start` (optional) is when slot 0 is due; by default 5 ms from now. A caller that times other
// things against the schedule (the fault injector of scenario_runner.h) passes its own.
OpenLoopTally run_open_loop(
    const SendSchedule& schedule, std::size_t senders, const OpenLoopCall& call,
    OpenLoopProgress& progress, StopFlag* stop = nullptr,
    std::optional<std::chrono::steady_clock::time_point> start = std::nullopt);

}  // namespace bridgepool::cli
