#include "server/series_sampler.h"

#include <algorithm>
#include <cmath>

namespace bridgepool::server {

using Json = nlohmann::json;

namespace {

// Nearest-rank percentile of an unsorted sample, which it partially reorders.
double percentile(std::vector<double>& sample, double q) {
  auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sample.size())));
  auto index = rank == 0 ? 0 : rank - 1;
  std::nth_element(sample.begin(), sample.begin() + static_cast<std::ptrdiff_t>(index),
                   sample.end());
  return sample[index];
}

}  // namespace

// The ring starts now, so quiet seconds from the start show as zeros.
SeriesSampler::SeriesSampler(std::shared_ptr<const Clock> clock)
    : clock_(std::move(clock)), open_second_(now_second()) {}

std::int64_t SeriesSampler::now_second() const {
  using namespace std::chrono;
  return duration_cast<seconds>(clock_->wall_now().time_since_epoch()).count();
}

void SeriesSampler::record(double duration_us, bool ok) {
  std::lock_guard lock(mutex_);
  roll(now_second());
  if (open_durations_us_.size() < kMaxSamplesPerSecond) {
    open_durations_us_.push_back(duration_us);
  } else {
    open_durations_us_[open_requests_ % kMaxSamplesPerSecond] = duration_us;
  }
  ++open_requests_;
  if (!ok) ++open_errors_;
}

SeriesSampler::Point SeriesSampler::finalize_open() {
  Point p{open_requests_, open_errors_, std::nullopt, std::nullopt};
  if (!open_durations_us_.empty()) {
    p.p50_ms = percentile(open_durations_us_, 0.50) / 1000.0;
    p.p99_ms = percentile(open_durations_us_, 0.99) / 1000.0;
  }
  open_requests_ = 0;
  open_errors_ = 0;
  open_durations_us_.clear();
  return p;
}

void SeriesSampler::roll(std::int64_t second) {
  if (open_second_ == 0) open_second_ = second;
  if (second <= open_second_) return;
  points_.push_back(finalize_open());
  // Seconds without a call between the open one and now: zero points, at most a full ring.
  auto gap = std::min<std::int64_t>(second - open_second_ - 1, kPoints);
  for (std::int64_t i = 0; i < gap; ++i) points_.push_back(Point{});
  while (points_.size() > kPoints) points_.pop_front();
  open_second_ = second;
}

Json SeriesSampler::snapshot() {
  std::lock_guard lock(mutex_);
  auto second = now_second();
  roll(second);
  Json requests = Json::array(), errors = Json::array(), p50 = Json::array(), p99 = Json::array();
  for (const auto& p : points_) {
    requests.push_back(p.requests);
    errors.push_back(p.errors);
    p50.push_back(p.p50_ms ? Json(*p.p50_ms) : Json(nullptr));
    p99.push_back(p.p99_ms ? Json(*p.p99_ms) : Json(nullptr));
  }
  return Json{{"interval_s", 1},        {"end_ms", second * 1000}, {"requests_per_s", requests},
              {"errors_per_s", errors}, {"p50_ms", p50},           {"p99_ms", p99}};
}

}  // namespace bridgepool::server
