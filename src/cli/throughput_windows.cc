#include "cli/throughput_windows.h"

#include <algorithm>

namespace bridgepool::cli {

WindowCounts::WindowCounts(Duration window, Duration span)
    : window_(std::max(window, Duration(1))),
      counts_(static_cast<std::size_t>(std::max(span, Duration::zero()) / window_) + 1, 0) {}

void WindowCounts::add(Duration at) {
  auto index = at <= Duration::zero() ? 0 : static_cast<std::size_t>(at / window_);
  ++counts_[std::min(index, counts_.size() - 1)];
}

double WindowCounts::mean_between(Duration from, Duration to) const {
  double sum = 0;
  std::size_t n = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    Duration begin = window_ * static_cast<Duration::rep>(i);
    if (begin < from || begin + window_ > to) continue;
    sum += counts_[i];
    ++n;
  }
  return n == 0 ? 0 : sum / double(n);
}

std::optional<Duration> time_to_recover(const WindowCounts& counts, Duration fault_at,
                                        Duration load_end, double baseline, double ratio,
                                        Duration dip_horizon) {
  if (baseline <= 0) return Duration::zero();
  const Duration w = counts.window();
  // The windows that end by load_end.
  const auto whole = static_cast<std::size_t>(std::max(load_end, Duration::zero()) / w);
  const std::vector<std::uint32_t> c(
      counts.counts().begin(), counts.counts().begin() + std::min(whole, counts.counts().size()));
  const double level = ratio * baseline;
  auto first = static_cast<std::size_t>(std::max(fault_at, Duration::zero()) / w);
  std::size_t dip = c.size();
  for (std::size_t i = first; i < c.size() && w * Duration::rep(i) < fault_at + dip_horizon; ++i) {
    if (c[i] < level) {
      dip = i;
      break;
    }
  }
  if (dip == c.size()) return Duration::zero();
  for (std::size_t i = dip + 1; i < c.size(); ++i) {
    if (c[i] >= level) return std::max(Duration::zero(), w * Duration::rep(i) - fault_at);
  }
  return std::nullopt;
}

}  // namespace bridgepool::cli
