// Maintenance: the pool's maintenance thread and its schedule. Every tick (from the monitor
// loop's timers, so it follows the pool's Clock) one round runs on the maintenance thread —
// never two at once: a slow probe must not pile rounds up behind it. The round itself (health
// probes, recycling, overflow retirement, session expiry and closes) is the pool's; this class
// only owns the thread and the pacing.
//
// Tick: often enough to honour the shortest configured period (a degraded worker's recheck),
// never a busy loop: min(1 s, session_cleanup_interval, recheck / 2, and health interval / 2 when
// health checks are on), clamped to [10 ms, 1 s].
// Thread-safety: start/stop from the pool's owner thread; rounds on the maintenance thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>

#include "base/async_executor.h"
#include "base/event_loop.h"

namespace bridgepool {

class Maintenance {
 public:
  Maintenance(EventLoop& loop, std::chrono::milliseconds tick, std::function<void()> round);
  // Schedules the first round.
  void start();
  // Finishes the round in progress, if any; no round starts after.
  void stop();

  // The tick for a pool's periods (see above). Pure.
  static std::chrono::milliseconds tick_for(std::chrono::milliseconds health_interval,
                                            std::chrono::milliseconds recheck_interval,
                                            std::chrono::milliseconds session_cleanup_interval);

 private:
  void schedule();

  EventLoop& loop_;
  const std::chrono::milliseconds tick_;
  const std::function<void()> round_;
  AsyncExecutor thread_{1};
  std::atomic<bool> running_{false};
  std::atomic<bool> stopped_{false};
};

}  // namespace bridgepool
