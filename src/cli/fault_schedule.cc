#include "cli/fault_schedule.h"

#include <algorithm>
#include <array>
#include <numeric>
#include <random>
#include <utility>

namespace bridgepool::cli {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr std::array<std::pair<std::string_view, Scenario>, 5> kScenarios{{
    {"cascade", Scenario::kCascade},
    {"timeouts", Scenario::kTimeouts},
    {"breaker", Scenario::kBreaker},
    {"slow", Scenario::kSlow},
    {"fallback", Scenario::kFallback},
}};

// splitmix64: a well-mixed 64-bit hash, so consecutive slots get independent-looking draws.
std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A fault lasts the figure, or a quarter of the run when that is shorter.
Duration fault_length(Duration figure, Duration run) { return std::min(figure, run / 4); }

// Every worker killed once, in a seeded order, at seeded offsets within [wave, wave + spread).
void add_cascade_wave(ScenarioPlan& plan, Duration wave, Duration spread, std::size_t workers,
                      std::mt19937_64& rng) {
  std::vector<std::size_t> order(workers);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin() + 1, order.end(), rng);  // target 0 first: it takes the snapshot
  std::vector<Duration> offsets(workers, Duration::zero());
  std::uniform_int_distribution<Duration::rep> within(
      0, std::max<Duration::rep>(0, spread.count() - 1));
  for (std::size_t i = 1; i < workers; ++i) offsets[i] = Duration(within(rng));
  std::sort(offsets.begin(), offsets.end());
  for (std::size_t i = 0; i < workers; ++i) {
    plan.events.push_back({wave + offsets[i], FaultAction::kKillWorker, order[i]});
  }
  plan.fault_starts.push_back(wave);
}

void add_window(ScenarioPlan& plan, Duration start, Duration length, FaultAction on,
                FaultAction off, std::size_t target = 0) {
  plan.events.push_back({start, on, target});
  plan.events.push_back({start + length, off, target});
}

}  // namespace

std::optional<Scenario> parse_scenario(std::string_view name) {
  for (const auto& [n, s] : kScenarios) {
    if (n == name) return s;
  }
  return std::nullopt;
}

std::string_view scenario_name(Scenario scenario) {
  for (const auto& [n, s] : kScenarios) {
    if (s == scenario) return n;
  }
  return "?";
}

std::string scenario_names() {
  std::string out;
  for (const auto& [n, s] : kScenarios) out += (out.empty() ? "" : ", ") + std::string(n);
  return out;
}

std::string_view fault_action_name(FaultAction action) {
  // In the order of FaultAction's values.
  constexpr std::string_view kNames[] = {"kill_worker", "fail_on",     "fail_off",
                                         "slow_on",     "slow_off",    "pool_down",
                                         "pool_up",     "bridge_down", "bridge_up"};
  auto i = static_cast<std::size_t>(action);
  return i < std::size(kNames) ? kNames[i] : "?";
}

ScenarioPlan plan_scenario(Scenario scenario, Duration duration, std::size_t workers,
                           std::uint64_t seed) {
  ScenarioPlan plan;
  plan.scenario = scenario;
  plan.duration = duration;
  workers = std::max<std::size_t>(workers, 1);
  std::mt19937_64 rng(mix(seed));
  const Duration start = duration / 4;
  switch (scenario) {
    case Scenario::kCascade:
      plan.fault_length = fault_length(kCascadeSpread, duration);
      add_cascade_wave(plan, start, plan.fault_length, workers, rng);
      add_cascade_wave(plan, duration * 5 / 8, plan.fault_length, workers, rng);
      break;
    case Scenario::kTimeouts:
      plan.hang_share = kHangShare;
      plan.hang_deadline = kHangDeadline;
      plan.fault_starts.push_back(Duration::zero());
      plan.fault_length = duration;
      break;
    case Scenario::kBreaker:
      plan.fault_length = fault_length(seconds(5), duration);
      plan.breaker_open_timeout = std::min<Duration>(seconds(1), duration / 20);
      add_window(plan, start, plan.fault_length, FaultAction::kFailOn, FaultAction::kFailOff);
      plan.fault_starts.push_back(start);
      break;
    case Scenario::kSlow: {
      plan.fault_length = fault_length(seconds(2), duration);
      plan.slow_factor = kSlowFactor;
      std::size_t target = std::uniform_int_distribution<std::size_t>(0, workers - 1)(rng);
      add_window(plan, start, plan.fault_length, FaultAction::kSlowOn, FaultAction::kSlowOff,
                 target);
      plan.fault_starts.push_back(start);
      break;
    }
    case Scenario::kFallback:
      plan.fault_length = fault_length(seconds(5), duration);
      plan.breaker_open_timeout = std::min<Duration>(seconds(1), duration / 20);
      add_window(plan, start, plan.fault_length, FaultAction::kPoolDown, FaultAction::kPoolUp);
      add_window(plan, start + plan.fault_length / 2, plan.fault_length / 2,
                 FaultAction::kBridgeDown, FaultAction::kBridgeUp);
      plan.fault_starts.push_back(start);
      break;
  }
  std::stable_sort(plan.events.begin(), plan.events.end(),
                   [](const FaultEvent& a, const FaultEvent& b) { return a.at < b.at; });
  return plan;
}

Duration slow_call_length(double rate, std::size_t workers) {
  if (rate <= 0) return milliseconds(10);
  Duration half_busy = std::chrono::duration_cast<Duration>(
      std::chrono::duration<double>(double(std::max<std::size_t>(workers, 1)) / (2 * rate)));
  return std::clamp<Duration>(half_busy, milliseconds(1), milliseconds(10));
}

bool hangs(std::uint64_t seed, std::size_t slot, double share) {
  // The top 53 bits as a double in [0, 1).
  double draw = double(mix(mix(seed) ^ std::uint64_t(slot)) >> 11) * 0x1.0p-53;
  return draw < share;
}

std::vector<FaultEvent> FaultSchedule::take_due(Duration elapsed) {
  std::vector<FaultEvent> due;
  while (next_ < events_.size() && events_[next_].at <= elapsed) due.push_back(events_[next_++]);
  return due;
}

std::optional<Duration> FaultSchedule::next_due() const {
  if (done()) return std::nullopt;
  return events_[next_].at;
}

}  // namespace bridgepool::cli
