// SlidingWindow: counts over the last N seconds, kept in a ring of fixed-width time buckets.
//
// The error reporter (error_reporter.h) keeps one ring of per-request counts (requests, errors by
// category and severity) and one of worker losses; this file is the time arithmetic they share.
// Time is a TimePoint passed by the caller (read from an injected Clock), never read here.
//
// Arithmetic. Bucket k holds everything added at times t with floor(t / width) == k. A window of
// length W (a whole number n = W / width of buckets) read at `now` sums the n buckets
// k_now - n + 1 .. k_now, where k_now = floor(now / width): the current, partial bucket and the
// n - 1 whole ones before it. So it covers between W - width and W of history. Example, width 1 s,
// W = 60 s, now = 125.4 s: buckets 66..125, i.e. additions at 66.0 s <= t <= 125.4 s; one at
// 65.9 s has expired, one at 66.0 s still counts; at now = 126.0 s the bucket 66 expires too.
//
// Memory is the ring, fixed at construction: span / width buckets, whatever is added. A slot is
// reused by overwriting (its bucket number tells whether it is current), so a long idle period
// or a jump of the clock needs no sweeping: stale slots are simply not summed. An addition older
// than the ring (its slot already holds a newer bucket) is dropped; the clock not moving puts
// everything in one bucket.
// Thread-safety: none; the owner locks.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "bridgepool/clock.h"

namespace bridgepool::internal {

// Floor division of a time by a bucket width (correct for times before the epoch too).
inline std::int64_t bucket_index(TimePoint t, Duration width) {
  const auto ticks = t.time_since_epoch().count();
  const auto w = width.count();
  return ticks >= 0 ? ticks / w : -((-ticks + w - 1) / w);
}

// Counts must be default-constructible (all zero) and support `counts += other`.
template <typename Counts>
class SlidingWindow {
 public:
  // `width` > 0; `span` (the longest window that can be read) is rounded up to whole buckets.
  SlidingWindow(Duration width, Duration span)
      : width_(width), slots_(static_cast<std::size_t>((span + width - Duration(1)) / width)) {}

  // Adds `counts` to the bucket of time `t`.
  void add(TimePoint t, const Counts& counts) {
    const std::int64_t k = bucket_index(t, width_);
    Slot& slot = slots_[slot_of(k)];
    if (slot.bucket > k) return;  // older than the ring: that history is gone
    if (slot.bucket < k) slot = Slot{k, Counts{}};
    slot.counts += counts;
  }

  // The sum over the window of length `window` (rounded up to whole buckets, at most the span)
  // that ends at `now`.
  Counts sum(TimePoint now, Duration window) const {
    const std::int64_t k_now = bucket_index(now, width_);
    const auto n = std::min<std::int64_t>(static_cast<std::int64_t>(slots_.size()),
                                          (window + width_ - Duration(1)) / width_);
    Counts total{};
    for (const Slot& slot : slots_) {
      if (slot.bucket <= k_now && slot.bucket > k_now - n) total += slot.counts;
    }
    return total;
  }

  std::size_t bucket_count() const { return slots_.size(); }
  Duration width() const { return width_; }

 private:
  struct Slot {
    std::int64_t bucket = std::numeric_limits<std::int64_t>::min();  // never used yet
    Counts counts{};
  };

  std::size_t slot_of(std::int64_t k) const {
    const auto size = static_cast<std::int64_t>(slots_.size());
    return static_cast<std::size_t>(((k % size) + size) % size);
  }

  Duration width_;
  std::vector<Slot> slots_;
};

}  // namespace bridgepool::internal
