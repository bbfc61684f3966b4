// ReplacementWatch: what replacement_bench learns from a pool's events about one killed worker —
// when a worker next became ready (`pool.worker.ready`) and when the killed worker left service
// (`pool.worker.transition` to terminating: the pool has removed it from its registry, so from
// then on `PoolStats::live` no longer counts it).
//
// Times are taken in the event handlers (on the pool's monitor thread) with the steady clock, so
// a figure does not include the bench thread's wake-up. Thread-safety: every method may be called
// from any thread; the handlers take the same mutex.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "bridgepool/event_bus.h"

namespace bridgepool::bench {

class ReplacementWatch {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // Attaches to `events`, which must outlive the watch (it detaches in the destructor).
  explicit ReplacementWatch(EventBus& events);
  ~ReplacementWatch();
  ReplacementWatch(const ReplacementWatch&) = delete;
  ReplacementWatch& operator=(const ReplacementWatch&) = delete;

  // Starts watching for worker `worker_id` to leave service; returns the count of ready events
  // so far (pass it to wait_ready_after). Call it just before killing that worker.
  std::uint64_t arm(std::string worker_id);
  // The time the armed worker left service, if it has.
  std::optional<TimePoint> removed_at() const;
  // The time of the first ready event after `count` of them, waiting up to `timeout`; nullopt
  // on timeout.
  std::optional<TimePoint> wait_ready_after(std::uint64_t count, std::chrono::milliseconds timeout);

 private:
  void on_ready();
  void on_transition(const Event& event);

  EventBus& events_;
  EventBus::HandlerId ready_handler_ = 0;
  EventBus::HandlerId transition_handler_ = 0;
  mutable std::mutex mu_;
  std::condition_variable ready_cv_;
  std::uint64_t ready_count_ = 0;
  TimePoint last_ready_at_{};
  std::string armed_id_;
  std::optional<TimePoint> removed_at_;
};

}  // namespace bridgepool::bench
