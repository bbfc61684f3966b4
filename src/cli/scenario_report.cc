#include "cli/scenario_report.h"

#include <algorithm>
#include <functional>

#include <fmt/format.h>

#include "cli/breaker_timeline.h"
#include "cli/throughput_windows.h"

namespace bridgepool::cli {
namespace {

using Pick = std::function<bool(const SlotRecord&, Duration intended)>;

double seconds_of(Duration d) { return std::chrono::duration<double>(d).count(); }
double ms_of(Duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// The open-loop report of the requests `pick` selects.
OpenLoopReport tally_where(const ScenarioInputs& in, const Pick& pick) {
  OpenLoopTally tally;
  std::size_t picked = 0;
  for (std::size_t i = 0; i < in.records.size(); ++i) {
    const SlotRecord& r = in.records[i];
    Duration intended = in.schedule.intended(i);
    if (!pick(r, intended)) continue;
    ++picked;
    if (r.cut_off) tally.record_cut_off();
    if (!r.done) continue;
    tally.record(intended, r.sent, r.completed, r.ok ? "" : r.category);
  }
  return tally.report(picked);
}

Pick in_group(int group) {
  return [group](const SlotRecord& r, Duration) { return r.group == group; };
}
Pick sent_between(Duration from, Duration to, Pick also = nullptr) {
  return [=](const SlotRecord& r, Duration intended) {
    return intended >= from && intended < to && (!also || also(r, intended));
  };
}

nlohmann::json group_json(const OpenLoopReport& r) {
  return {{"requests", r.scheduled},
          {"sent", r.sent},
          {"ok", r.ok},
          {"failed", r.failed},
          {"errors", r.errors},
          {"p50_us", r.latency_us.p50},
          {"p99_us", r.latency_us.p99},
          {"max_us", r.latency_us.max},
          {"success_ratio", r.success_ratio}};
}

std::string group_line(std::string_view name, const OpenLoopReport& r) {
  return fmt::format(
      "  {}: {} calls, ok {}, failed {}, p50 {:.2f} ms, p99 {:.2f} ms, max {:.2f} ms", name, r.sent,
      r.ok, r.failed, r.latency_us.p50 / 1000, r.latency_us.p99 / 1000, r.latency_us.max / 1000);
}

// Adds a group's JSON and line under `key`.
void add_group(ScenarioOutcome& out, const std::string& key, std::string_view name,
               const OpenLoopReport& r) {
  out.figures[key] = group_json(r);
  out.lines.push_back(group_line(name, r));
}

nlohmann::json optional_ms(const std::optional<Duration>& d) {
  return d ? nlohmann::json(ms_of(*d)) : nlohmann::json();
}
std::string optional_ms_text(const std::optional<Duration>& d, std::string_view never) {
  return d ? fmt::format("{:.0f} ms", ms_of(*d)) : std::string(never);
}

// Successful completions per 100 ms window, optionally only of some requests.
WindowCounts ok_windows(const ScenarioInputs& in, const Pick& pick = nullptr) {
  WindowCounts counts(kThroughputWindow, in.plan.duration * 2);
  for (std::size_t i = 0; i < in.records.size(); ++i) {
    const SlotRecord& r = in.records[i];
    if (r.done && r.ok && (!pick || pick(r, in.schedule.intended(i)))) counts.add(r.completed);
  }
  return counts;
}

std::size_t count_where(const ScenarioInputs& in, const Pick& pick) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < in.records.size(); ++i)
    n += pick(in.records[i], in.schedule.intended(i));
  return n;
}

void analyse_cascade(const ScenarioInputs& in, ScenarioOutcome& out) {
  WindowCounts counts = ok_windows(in);
  const Duration first = in.plan.fault_starts.front();
  double baseline = counts.mean_between(first / 4, first);
  out.figures["window_ms"] = ms_of(kThroughputWindow);
  out.figures["baseline_per_window"] = baseline;
  out.figures["completions_per_window"] = counts.counts();
  out.figures["waves"] = nlohmann::json::array();
  for (std::size_t w = 0; w < in.plan.fault_starts.size(); ++w) {
    Duration at = in.plan.fault_starts[w];
    auto back = time_to_recover(counts, at, in.plan.duration, baseline);
    // A stall shorter than a window hides in the counts; the latencies of the requests due in
    // the second after the wave show it.
    OpenLoopReport next = tally_where(in, sent_between(at, at + std::chrono::seconds(1)));
    out.figures["waves"].push_back({{"at_s", seconds_of(at)},
                                    {"recovery_ms", optional_ms(back)},
                                    {"next_second", group_json(next)}});
    out.lines.push_back(fmt::format(
        "  wave {} at {:.2f} s (every worker SIGKILLed within {:.0f} ms): full throughput back "
        "after {} ({:.1f} completions per 100 ms before); requests due in the next second: p99 "
        "{:.2f} ms, max {:.2f} ms, failed {}",
        w + 1, seconds_of(at), ms_of(in.plan.fault_length), optional_ms_text(back, "never"),
        baseline, next.latency_us.p99 / 1000, next.latency_us.max / 1000, next.failed));
  }
  const char* kinds[] = {"echo", "submit"};
  for (int g = 0; g < 2; ++g) {
    std::size_t retried = count_where(
        in, [g](const SlotRecord& r, Duration) { return r.group == g && r.attempts > 1; });
    std::string name = fmt::format("{} ({})", kinds[g], g == 0 ? "idempotent" : "not idempotent");
    add_group(out, kinds[g], name, tally_where(in, in_group(g)));
    out.figures[kinds[g]]["retried"] = retried;
    out.lines.back() += fmt::format(", retried {}", retried);
  }
  out.subject = tally_where(in, [](const SlotRecord&, Duration) { return true; });
  out.subject_name = "every request";
}

void analyse_timeouts(const ScenarioInputs& in, ScenarioOutcome& out) {
  OpenLoopReport hung = tally_where(in, in_group(1));
  add_group(out, "hung",
            fmt::format("hung past the {:.0f} ms deadline", ms_of(in.plan.hang_deadline)), hung);
  out.subject = tally_where(in, in_group(0));
  out.subject_name = "the other 98%";
  add_group(out, "others", out.subject_name, out.subject);
  out.figures["hang_share"] = in.plan.hang_share;
  out.figures["deadline_ms"] = ms_of(in.plan.hang_deadline);
  out.figures["workers_replaced"] = in.stats.replaced;
  out.lines.push_back(fmt::format("  workers replaced {}", in.stats.replaced));
}

// The refused calls' own duration (return - send): how fast a refusal is.
std::vector<double> refusal_us(const ScenarioInputs& in) {
  std::vector<double> us;
  for (const auto& r : in.records) {
    if (r.refused && r.done) {
      us.push_back(std::chrono::duration<double, std::micro>(r.completed - r.sent).count());
    }
  }
  std::sort(us.begin(), us.end());
  return us;
}

void analyse_breaker(const ScenarioInputs& in, ScenarioOutcome& out) {
  const Duration from = in.plan.fault_starts.front();
  const Duration to = from + in.plan.fault_length;
  std::vector<BreakerObservation> seen;
  for (const auto& r : in.records) {
    if (r.group == 0 && r.done) seen.push_back({r.sent, r.completed, r.refused, r.breaker_closed});
  }
  BreakerTimeline t = breaker_timeline(std::move(seen), from, to);
  std::vector<double> refusals = refusal_us(in);
  out.figures["fault_s"] = {seconds_of(from), seconds_of(to)};
  out.figures["opened_after_ms"] = optional_ms(t.opened_after);
  out.figures["closed_after_recovery_ms"] = optional_ms(t.closed_after);
  out.figures["refused"] = t.refused;
  out.figures["refused_before_fault"] = t.refused_before_fault;
  out.figures["refusal_us"] = {{"p50", percentile_of_sorted(refusals, 50)},
                               {"p99", percentile_of_sorted(refusals, 99)},
                               {"max", refusals.empty() ? 0.0 : refusals.back()}};
  out.lines.push_back(fmt::format(
      "  flaky failing {:.2f}-{:.2f} s: breaker open after {}, {} calls refused (p50 {:.1f} us, "
      "p99 {:.1f} us each), closed {} after the command recovered",
      seconds_of(from), seconds_of(to), optional_ms_text(t.opened_after, "never"), t.refused,
      percentile_of_sorted(refusals, 50), percentile_of_sorted(refusals, 99),
      optional_ms_text(t.closed_after, "never")));
  add_group(out, "guarded", "flaky (guarded)", tally_where(in, in_group(0)));
  add_group(out, "others_before", "echo before the fault",
            tally_where(in, sent_between(Duration::zero(), from, in_group(1))));
  add_group(out, "others_during", "echo during the fault",
            tally_where(in, sent_between(from, to, in_group(1))));
  out.subject = tally_where(in, in_group(1));
  out.subject_name = "the other command (echo)";
}

void analyse_slow(const ScenarioInputs& in, ScenarioOutcome& out) {
  const Duration from = in.plan.fault_starts.front();
  const Duration to = from + in.plan.fault_length;
  OpenLoopReport slowed = tally_where(in, sent_between(from, to, in_group(1)));
  OpenLoopReport others = tally_where(in, sent_between(from, to, in_group(0)));
  double share =
      slowed.sent + others.sent == 0 ? 0 : double(slowed.sent) / double(slowed.sent + others.sent);
  out.figures["window_s"] = {seconds_of(from), seconds_of(to)};
  out.figures["slow_factor"] = in.plan.slow_factor;
  out.figures["slow_worker_share"] = share;
  out.figures["blind_share"] = 1.0 / double(std::max<std::size_t>(in.workers, 1));
  out.lines.push_back(fmt::format(
      "  one worker {:g}x slower {:.2f}-{:.2f} s: it served {:.1f}% of the calls meanwhile "
      "({:.1f}% if the queue did not route around it)",
      in.plan.slow_factor, seconds_of(from), seconds_of(to), share * 100,
      100.0 / double(std::max<std::size_t>(in.workers, 1))));
  add_group(out, "slow_worker", "served by the slow worker", slowed);
  add_group(out, "others_during", "served by the others meanwhile", others);
  add_group(out, "before", "every call before the window",
            tally_where(in, sent_between(Duration::zero(), from)));
  out.subject = tally_where(in, [](const SlotRecord&, Duration) { return true; });
  out.subject_name = "every request";
}

void analyse_fallback(const ScenarioInputs& in, ScenarioOutcome& out) {
  const Duration s = in.plan.fault_starts.front();
  const Duration half = in.plan.fault_length / 2;
  const Duration up = s + in.plan.fault_length;
  struct Phase {
    const char* key;
    const char* name;
    Duration from, to;
  };
  const Phase phases[] = {{"before", "before", Duration::zero(), s},
                          {"pool_down", "pool down", s, s + half},
                          {"pool_and_bridge_down", "pool and bridge down", s + half, up},
                          {"after", "after", up, in.plan.duration}};
  for (const Phase& p : phases) {
    add_group(out, p.key, p.name, tally_where(in, sent_between(p.from, p.to)));
    for (const char* adapter : {"pool", "bridge", "mock"}) {
      auto served =
          count_where(in, sent_between(p.from, p.to, [adapter](const SlotRecord& r, Duration) {
                        return r.ok && r.adapter == adapter;
                      }));
      out.figures[p.key]["served_by"][adapter] = served;
      double secs = seconds_of(p.to - p.from);
      out.figures[p.key]["served_per_s"][adapter] = secs > 0 ? double(served) / secs : 0.0;
    }
    out.lines.back() += ", served by " + out.figures[p.key]["served_by"].dump();
  }
  auto by_pool = [](const SlotRecord& r, Duration) { return r.adapter == "pool"; };
  WindowCounts pool_counts = ok_windows(in, by_pool);
  auto back =
      time_to_recover(pool_counts, up, in.plan.duration, pool_counts.mean_between(s / 4, s));
  out.figures["pool_back_after_ms"] = optional_ms(back);
  out.lines.push_back(fmt::format("  the pool served at its old rate again {} after it came back",
                                  optional_ms_text(back, "never")));
  out.subject = tally_where(in, [](const SlotRecord&, Duration) { return true; });
  out.subject_name = "every request";
}

}  // namespace

ScenarioOutcome analyse_scenario(const ScenarioInputs& in) {
  ScenarioOutcome out;
  out.figures = {{"name", scenario_name(in.plan.scenario)},
                 {"fault_starts_s", nlohmann::json::array()},
                 {"fault_length_s", seconds_of(in.plan.fault_length)},
                 {"events", in.applied}};
  for (Duration d : in.plan.fault_starts) out.figures["fault_starts_s"].push_back(seconds_of(d));
  // In the order of Scenario's values.
  using Analysis = void (*)(const ScenarioInputs&, ScenarioOutcome&);
  constexpr Analysis kAnalyses[] = {analyse_cascade, analyse_timeouts, analyse_breaker,
                                    analyse_slow, analyse_fallback};
  kAnalyses[static_cast<std::size_t>(in.plan.scenario)](in, out);
  for (const auto& r : in.records) {
    if (!r.first_error.empty()) {
      out.first_error = r.first_error;
      break;
    }
  }
  return out;
}

}  // namespace bridgepool::cli
