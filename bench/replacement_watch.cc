#include "replacement_watch.h"

#include <utility>

namespace bridgepool::bench {

ReplacementWatch::ReplacementWatch(EventBus& events) : events_(events) {
  ready_handler_ = events_.attach("pool.worker.ready", [this](const Event&) { on_ready(); });
  transition_handler_ =
      events_.attach("pool.worker.transition", [this](const Event& e) { on_transition(e); });
}

ReplacementWatch::~ReplacementWatch() {
  events_.detach(ready_handler_);
  events_.detach(transition_handler_);
}

std::uint64_t ReplacementWatch::arm(std::string worker_id) {
  std::lock_guard lock(mu_);
  armed_id_ = std::move(worker_id);
  removed_at_.reset();
  return ready_count_;
}

std::optional<ReplacementWatch::TimePoint> ReplacementWatch::removed_at() const {
  std::lock_guard lock(mu_);
  return removed_at_;
}

std::optional<ReplacementWatch::TimePoint> ReplacementWatch::wait_ready_after(
    std::uint64_t count, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  if (!ready_cv_.wait_for(lock, timeout, [&] { return ready_count_ > count; })) {
    return std::nullopt;
  }
  // Only the first ready event after `count` matters; a later one cannot have happened before
  // the caller's next arm(), since the bench waits for this one before killing again.
  return last_ready_at_;
}

void ReplacementWatch::on_ready() {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mu_);
  ++ready_count_;
  last_ready_at_ = now;
  ready_cv_.notify_all();
}

void ReplacementWatch::on_transition(const Event& event) {
  const auto now = std::chrono::steady_clock::now();
  auto meta = [&](const char* key) {
    auto it = event.metadata.find(key);
    return it == event.metadata.end() ? std::string_view{} : std::string_view(it->second);
  };
  std::lock_guard lock(mu_);
  if (!armed_id_.empty() && meta("worker_id") == armed_id_ && meta("to") == "terminating" &&
      !removed_at_) {
    removed_at_ = now;
  }
}

}  // namespace bridgepool::bench
