// Maintenance: the pool's maintenance thread and its schedule. Every tick (from the monitor
// loop's timers, so it follows the pool's Clock) one round runs on the maintenance thread —
// never two at once. A tick that finds a round still running (a slow probe) is not lost: one
// more round follows as soon as that one ends, however many ticks fell due meanwhile, so rounds
// never pile up and a change of time is always seen by a round that starts after it. The round
// itself (health probes, recycling, overflow retirement, session expiry and closes) is the
// pool's; this class only owns the thread and the pacing.
//
// Tick: often enough to honour the shortest configured period (a degraded worker's recheck),
// never a busy loop: min(1 s, session_cleanup_interval, recheck / 2, and health interval / 2 when
// health checks are on), clamped to [10 ms, 1 s]. Ticks stay on a fixed grid (start + k·tick)
// however late one fires: after a stall (or a test's jump of a ManualClock) one tick falls due at
// once for the latest grid point passed, the missed ones before it are coalesced, and the grid
// goes on from there — so every grid point a clock reaches gets its round.
// Thread-safety: start/stop from the pool's owner thread; rounds on the maintenance thread.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>

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
  void schedule(TimePoint due);
  void request_round();  // monitor thread: a tick fell due
  void run_rounds();     // maintenance thread

  EventLoop& loop_;
  const std::chrono::milliseconds tick_;
  const std::function<void()> round_;
  AsyncExecutor thread_{1};
  std::mutex mu_;         // guards the three flags
  bool running_ = false;  // a round is queued or running
  bool pending_ = false;  // a tick fell due while it ran: one more round follows
  bool stopped_ = false;
};

}  // namespace bridgepool
