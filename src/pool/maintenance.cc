#include "pool/maintenance.h"

#include <algorithm>

namespace bridgepool {

Maintenance::Maintenance(EventLoop& loop, std::chrono::milliseconds tick,
                         std::function<void()> round)
    : loop_(loop), tick_(tick), round_(std::move(round)) {}

std::chrono::milliseconds Maintenance::tick_for(
    std::chrono::milliseconds health_interval, std::chrono::milliseconds recheck_interval,
    std::chrono::milliseconds session_cleanup_interval) {
  using std::chrono::milliseconds;
  // The recheck counts even with health checks off: degraded workers are probed regardless.
  milliseconds tick =
      std::min({milliseconds(1000), session_cleanup_interval, recheck_interval / 2});
  if (health_interval.count() > 0) tick = std::min(tick, health_interval / 2);
  return std::clamp(tick, milliseconds(10), milliseconds(1000));
}

void Maintenance::start() { schedule(); }

void Maintenance::stop() {
  stopped_ = true;
  thread_.stop();
}

void Maintenance::schedule() {
  loop_.post_after(tick_, [this] {
    if (stopped_) return;
    // One round at a time: a slow probe must not pile rounds up behind it.
    if (!running_.exchange(true)) {
      bool queued = thread_.submit([this] {
        if (!stopped_) round_();
        running_ = false;
      });
      if (!queued) return;  // stopping
    }
    schedule();
  });
}

}  // namespace bridgepool
