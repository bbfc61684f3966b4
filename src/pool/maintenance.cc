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

void Maintenance::start() { schedule(loop_.clock().now() + tick_); }

void Maintenance::stop() {
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
  }
  thread_.stop();
}

void Maintenance::schedule(TimePoint due) {
  loop_.post_at(due, [this, due] {
    {
      std::lock_guard lock(mu_);
      if (stopped_) return;
    }
    request_round();
    // The next grid point, or the latest one already passed (which then fires at once).
    const TimePoint now = loop_.clock().now();
    const auto passed = (now - due) / tick_;
    schedule(std::max(due + tick_, due + passed * tick_));
  });
}

void Maintenance::request_round() {
  {
    std::lock_guard lock(mu_);
    if (running_) {
      pending_ = true;
      return;
    }
    running_ = true;
  }
  if (!thread_.submit([this] { run_rounds(); })) {
    std::lock_guard lock(mu_);
    running_ = false;  // stopping
  }
}

void Maintenance::run_rounds() {
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopped_) {
        running_ = false;
        return;
      }
      pending_ = false;
    }
    round_();
    std::lock_guard lock(mu_);
    if (!pending_ || stopped_) {
      running_ = false;
      return;
    }
  }
}

}  // namespace bridgepool
