// LatencySummary: percentiles of a set of latency samples (pure).
//
// Used by `bridgepool bench` and the benchmarks. Percentiles are nearest-rank on the sorted
// samples (p50 of 1..100 is 50, p99 is 99), which is what load tools such as wrk report.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

namespace bridgepool {

struct LatencySummary {
  std::size_t count = 0;
  double p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;

  // Sorts `samples` in place.
  static LatencySummary of(std::vector<double>& samples) {
    LatencySummary s;
    s.count = samples.size();
    if (samples.empty()) return s;
    std::sort(samples.begin(), samples.end());
    auto rank = [&](double p) {
      auto idx = static_cast<std::size_t>(std::ceil(p / 100.0 * double(samples.size())));
      return samples[std::clamp<std::size_t>(idx, 1, samples.size()) - 1];
    };
    s.p50 = rank(50);
    s.p90 = rank(90);
    s.p99 = rank(99);
    s.max = samples.back();
    double sum = 0;
    for (double v : samples) sum += v;
    s.mean = sum / double(samples.size());
    return s;
  }
};

}  // namespace bridgepool
