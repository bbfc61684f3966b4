// Throughput over time for the failure scenarios of `bridgepool bench --scenario`
// (fault_schedule.h): completions counted in fixed windows (100 ms) of the run, and from those
// counts how long the pool took to get back to full throughput after a fault.
//
// "Back to full throughput" is judged against a baseline, normally the mean count per window
// before the fault: after the fault the count first dips below `ratio` x baseline (90% by
// default), and the pool is back at the start of the first later window whose count reaches it
// again. Example with 100 ms windows, baseline 100/window, fault at 2.0 s: counts 98 (2.0 s),
// 12 (2.1 s), 40 (2.2 s), 130 (2.3 s) -> dip at 2.1 s, back at 2.3 s: 300 ms. A fault that causes
// no dip within `dip_horizon` after it costs 0. Open loop makes the count a fair measure: the
// load does not slow down with the pool, so a window below the baseline is work not done.
//
// Pure functions over a vector of counts; WindowCounts is not synchronised (filled by one thread
// after the run).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "bridgepool/clock.h"

namespace bridgepool::cli {

inline constexpr Duration kThroughputWindow = std::chrono::milliseconds(100);

class WindowCounts {
 public:
  // Windows of `window` (> 0) covering [0, span]; later offsets go to the last window.
  WindowCounts(Duration window, Duration span);
  // Counts one event at `at` (negative offsets count in the first window).
  void add(Duration at);
  Duration window() const { return window_; }
  const std::vector<std::uint32_t>& counts() const { return counts_; }
  // Returns the mean count of the windows that lie wholly inside [from, to); 0 if none does.
  double mean_between(Duration from, Duration to) const;

 private:
  Duration window_;
  std::vector<std::uint32_t> counts_;
};

// Returns how long after `fault_at` throughput was back (see above): 0 without a dip within
// `dip_horizon`, nothing if it dipped and never came back. Only windows that end by `load_end`
// count: after the load's last request the count drops for want of requests, not of a pool.
// `baseline` <= 0 gives 0 (there is nothing to fall below).
std::optional<Duration> time_to_recover(const WindowCounts& counts, Duration fault_at,
                                        Duration load_end, double baseline, double ratio = 0.9,
                                        Duration dip_horizon = std::chrono::seconds(1));

}  // namespace bridgepool::cli
