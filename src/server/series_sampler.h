// SeriesSampler: the per-second history of /v1/status "series" — requests, errors, p50 and p99
// of the calls that ended in each second, for the last 600 seconds (10 minutes).
//
// Fed with one record() per ended call (the service attaches it to the pool's `pool.request`
// events: m duration_us, d result). Seconds are wall-clock seconds of the injected Clock, so a
// test drives it with a ManualClock. A second is final once the clock has left it; snapshot()
// shows final seconds only, oldest first, with empty seconds as zero counts and null
// percentiles. The open second keeps its durations (at most kMaxSamplesPerSecond; beyond that,
// later samples overwrite earlier ones in turn), a final one only its four figures, so memory
// stays bounded at any rate.
// Thread-safety: every method may be called from any thread (one mutex, held briefly).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "bridgepool/clock.h"

namespace bridgepool::server {

class SeriesSampler {
 public:
  static constexpr std::size_t kPoints = 600;
  static constexpr std::size_t kMaxSamplesPerSecond = 65536;

  explicit SeriesSampler(std::shared_ptr<const Clock> clock);

  // One call ended now, after `duration_us`; `ok` false when it failed.
  void record(double duration_us, bool ok);
  // {"interval_s":1, "end_ms": unix ms at the end of the last point, "requests_per_s": [...],
  //  "errors_per_s": [...], "p50_ms": [...], "p99_ms": [...]} (null percentiles: no call ended).
  nlohmann::json snapshot();

 private:
  struct Point {
    std::uint64_t requests = 0;
    std::uint64_t errors = 0;
    std::optional<double> p50_ms;
    std::optional<double> p99_ms;
  };

  std::int64_t now_second() const;
  void roll(std::int64_t second);  // finalizes every second before `second` (lock held)
  Point finalize_open();

  std::shared_ptr<const Clock> clock_;
  std::mutex mutex_;
  std::deque<Point> points_;      // final seconds, oldest first
  std::int64_t open_second_ = 0;  // the second the open bucket belongs to (0: none yet)
  std::uint64_t open_requests_ = 0;
  std::uint64_t open_errors_ = 0;
  std::vector<double> open_durations_us_;
};

}  // namespace bridgepool::server
