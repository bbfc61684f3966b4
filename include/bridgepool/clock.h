// Clock: injected time. Production code asks a Clock for "now" so tests can drive time by hand.
//
// SteadyClock is the real monotonic clock; ManualClock only moves when a test calls advance().
// Both are thread-safe. A pool takes its Clock from PoolConfig::clock, so its deadlines, timers,
// backoffs, health intervals and session expiry all follow one clock: tests drive a whole pool
// with a ManualClock and no sleeps. Blocking waits measured against a clock (condition variables,
// poll and epoll timeouts) never wait longer in real time than wait_slice() before they read
// now() again — unbounded for the real clock, one millisecond for a manual one, whose time moves
// only when a test advances it.
#pragma once

#include <atomic>
#include <chrono>
#include <optional>

namespace bridgepool {

using Duration = std::chrono::nanoseconds;
using TimePoint = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
  // Wall-clock time, for records humans read (transition history, logs).
  virtual std::chrono::system_clock::time_point wall_now() const = 0;
  // Longest real-time wait before a waiter must read now() again; nullopt: wait to the deadline.
  virtual std::optional<Duration> wait_slice() const { return std::nullopt; }
};

class SteadyClock final : public Clock {
 public:
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
  std::chrono::system_clock::time_point wall_now() const override {
    return std::chrono::system_clock::now();
  }
  // Process-wide instance for code that was not handed a clock.
  static const SteadyClock& instance() {
    static const SteadyClock clock;
    return clock;
  }
};

class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimePoint start = TimePoint{} + std::chrono::hours(1))
      : now_(start.time_since_epoch().count()) {}
  TimePoint now() const override { return TimePoint(Duration(now_.load())); }
  // Wall time moves with now(), from a fixed origin (2026-01-01T00:00:00Z).
  std::chrono::system_clock::time_point wall_now() const override {
    return std::chrono::system_clock::time_point(std::chrono::seconds(1767225600)) +
           std::chrono::duration_cast<std::chrono::system_clock::duration>(Duration(now_.load()));
  }
  void advance(Duration d) { now_.fetch_add(d.count()); }
  std::optional<Duration> wait_slice() const override { return std::chrono::milliseconds(1); }

 private:
  std::atomic<Duration::rep> now_;
};

}  // namespace bridgepool
