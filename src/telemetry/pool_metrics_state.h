// PoolMetrics::State: what PoolMetrics' bus observer, event handlers and collector share — the
// families of BRIDGEPOOL_POOL_METRICS, the handles a call resolves once (per command, per
// transition), and the series the last scrape set. It is the bus's CallObserver (calls and worker
// transitions arrive as typed records, call_observer.h) and is owned by a shared_ptr that the bus
// and every handler hold, so one still running on another thread when PoolMetrics detaches never
// sees freed memory.
// Thread-safety: on_*() from any thread; collect() from the registry's scrape (one at a time);
// the handle caches are filled under mu_ and read through atomic pointers: a call whose command
// is the previous call's, and every transition seen before, takes no lock (entries are never
// removed or moved while the State lives).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <deque>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "bridgepool/pool.h"
#include "bridgepool/pool_metrics.h"

namespace bridgepool {

struct PoolMetrics::State final : CallObserver {
  State(MetricsRegistry& registry, std::string pool_name, StatsGetter stats, WorkersGetter workers);

  void on_call(const CallObservation& call) override;
  void on_transition(const TransitionObservation& transition) override;
  void on_worker_ready(const Event& event);
  void on_breaker_transition(const Event& event);
  void collect();
  // Drops every series labelled with this pool (on detach).
  void drop_series();

  static constexpr std::size_t kStates = 6;    // WorkerState values
  static constexpr std::size_t kReasons = 15;  // TransitionReason values

  struct Families {
#define BRIDGEPOOL_PM_FAMILY(member, name, labels, source, help) MetricFamily* member;
    BRIDGEPOOL_POOL_METRICS(BRIDGEPOOL_PM_FAMILY, BRIDGEPOOL_PM_FAMILY, BRIDGEPOOL_PM_FAMILY)
#undef BRIDGEPOOL_PM_FAMILY
  };
  struct CommandSeries {
    Counter ok;
    Histogram duration;
  };

  MetricsRegistry& registry;
  const std::string pool;
  const StatsGetter stats;
  const WorkersGetter workers;
  Families families{};
  std::vector<MetricFamily*> stat_families;  // one per kStatExports-exported statistic, in order
  Histogram queue_wait, execution, startup;
  std::array<Counter, kStates> state_seconds;

 private:
  // Hash and equality that also take string_view: a call's command is looked up without a copy.
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  const CommandSeries& command_series(std::string_view command);
  const Counter& transition_counter(const TransitionObservation& t);
  void collect_stats(const PoolStats& s);
  void collect_workers(const std::vector<WorkerInfo>& list);
  void collect_breaker(const std::string& state);

  using CommandMap = std::unordered_map<std::string, CommandSeries, NameHash, std::equal_to<>>;
  std::mutex mu_;
  CommandMap commands_;  // admitted commands only (node-based: entries never move)
  CommandSeries other_;  // every command past the limit
  std::atomic<const CommandMap::value_type*> last_command_{nullptr};
  std::deque<Counter> transition_store_;  // the counters transitions_ points to
  std::array<std::atomic<const Counter*>, kStates * kStates * kReasons> transitions_{};
  std::set<std::string> rss_workers_;  // collector only
};

}  // namespace bridgepool
