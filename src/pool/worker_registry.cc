#include "pool/worker_registry.h"

#include <algorithm>

#include <fmt/format.h>

#include "base/clock_wait.h"

namespace bridgepool {

WorkerRegistry::WorkerRegistry(const Clock& clock, std::size_t max_queue, Hooks hooks)
    : clock_(clock), hooks_(std::move(hooks)), queue_(max_queue) {}

Error WorkerRegistry::refusal(ErrorCategory category, std::string message) const {
  Error e(category, std::move(message));
  e.context.operation = "checkout";
  return e;
}

std::string WorkerRegistry::describe_load_locked() const {
  return fmt::format("{} of {} workers busy, {} degraded, {} starting, {} callers queued",
                     borrowed_, live_.size(), degraded_.size(),
                     hooks_.starting ? hooks_.starting() : 0, queue_.size());
}

RegistryCounts WorkerRegistry::counts_locked() const {
  return RegistryCounts{live_.size(), idle_.size(), borrowed_, degraded_.size(), queue_.size()};
}

RegistryCounts WorkerRegistry::counts() const {
  std::lock_guard lock(mu_);
  return counts_locked();
}

WorkerRegistry::WaiterPtr WorkerRegistry::give_back_locked(const WorkerPtr& worker,
                                                           bool with_handoff) {
  WaiterPtr waiter;
  if (auto t = targeted_.find(worker->id()); t != targeted_.end()) {
    waiter = std::move(t->second.front());
    t->second.pop_front();
    if (t->second.empty()) targeted_.erase(t);
  }
  while (!waiter) {
    auto ticket = queue_.pop_next(clock_.now());
    if (!ticket) break;
    if (auto it = waiters_.find(*ticket); it != waiters_.end()) waiter = it->second;
  }
  if (!waiter) {
    idle_.push_back(worker);
    return nullptr;
  }
  ++borrowed_;
  waiter->worker = worker;
  waiter->handing_off = with_handoff && waiter->handoff != nullptr;
  return waiter;
}

bool WorkerRegistry::admit(const WorkerPtr& worker, Tracking tracking,
                           const std::function<bool()>& gate) {
  WaiterPtr wake;
  {
    std::lock_guard lock(mu_);
    if (gate && !gate()) return false;
    live_.emplace(worker->id(), Slot{worker, tracking});
    wake = give_back_locked(worker, false);
  }
  state_cv_.notify_all();
  if (wake) wake->cv.notify_one();
  return true;
}

bool WorkerRegistry::remove(const WorkerPtr& worker, const Error& gone) {
  std::vector<WaiterPtr> to_wake;
  {
    std::lock_guard lock(mu_);
    auto it = live_.find(worker->id());
    if (it == live_.end() || it->second.worker != worker) return false;
    live_.erase(it);
    std::erase(idle_, worker);
    std::erase(degraded_, worker);
    if (auto t = targeted_.find(worker->id()); t != targeted_.end()) {
      for (auto& w : t->second) {
        w->error = gone;
        to_wake.push_back(std::move(w));
      }
      targeted_.erase(t);
    }
  }
  state_cv_.notify_all();
  for (auto& w : to_wake) w->cv.notify_one();
  return true;
}

WorkerPtr WorkerRegistry::find(std::uint64_t number) const {
  std::lock_guard lock(mu_);
  auto it = live_.find(fmt::format("w{}", number));
  return it == live_.end() ? nullptr : it->second.worker;
}

std::vector<WorkerPtr> WorkerRegistry::in_service() const {
  std::lock_guard lock(mu_);
  std::vector<WorkerPtr> out;
  out.reserve(live_.size());
  for (const auto& [id, slot] : live_) out.push_back(slot.worker);
  return out;
}

Result<WorkerPtr> WorkerRegistry::wait_locked(std::unique_lock<std::mutex>& lock,
                                              const WaiterPtr& waiter, TimePoint deadline) {
  while (!waiter->worker && !waiter->error) {
    if (!wait_until(clock_, waiter->cv, lock, deadline)) break;
  }
  // Given a worker, its handoff running on the giver's thread: that takes a write, and the
  // caller's state is being filled in — wait for it whatever the deadline.
  while (waiter->handing_off) waiter->cv.wait(lock);
  if (waiter->worker) return std::move(waiter->worker);
  if (waiter->error) return tl::unexpected(std::move(*waiter->error));
  return tl::unexpected(Error());  // timed out: the caller says how
}

void WorkerRegistry::hand_over(const WaiterPtr& waiter, const WorkerPtr& worker, bool handing_off) {
  if (handing_off) {
    (*waiter->handoff)(worker);
    std::lock_guard lock(mu_);
    waiter->handing_off = false;
  }
  waiter->cv.notify_one();
}

Result<WorkerPtr> WorkerRegistry::checkout(TimePoint deadline, std::string_view avoid,
                                           const Handoff* handoff) {
  std::unique_lock lock(mu_);
  if (closed_) return tl::unexpected(*closed_);
  if (!idle_.empty()) {
    // Most recently used first (warm caches); a retry skips the worker that just failed it
    // when another one is idle (SPEC §6: retries go to a different worker when one exists).
    auto it = std::prev(idle_.end());
    if (!avoid.empty() && (*it)->id() == avoid && idle_.size() > 1) it = std::prev(it);
    WorkerPtr w = std::move(*it);
    idle_.erase(it);
    ++borrowed_;
    return w;
  }
  if (live_.empty() && hooks_.failing_starts) {
    if (auto failing = hooks_.failing_starts()) {
      Error e = std::move(*failing);
      e.message = "no worker available, workers fail to start: " + e.message;
      return tl::unexpected(std::move(e));
    }
  }
  auto ticket = queue_.push(deadline);
  if (!ticket) {
    return tl::unexpected(
        refusal(ErrorCategory::kResource,
                fmt::format("checkout queue full: {} callers already waiting (max_queue={}); {}",
                            queue_.size(), queue_.max_waiters(), describe_load_locked())));
  }
  // Lazy start grows towards `size` when callers have to wait; beyond it, up to max_overflow
  // extra workers absorb a burst (retired again after overflow_idle_timeout).
  if (hooks_.on_wait) hooks_.on_wait();
  auto waiter = std::make_shared<Waiter>();
  waiter->handoff = handoff;
  waiters_.emplace(*ticket, waiter);
  const TimePoint queued_at = clock_.now();
  auto got = wait_locked(lock, waiter, deadline);
  waiters_.erase(*ticket);
  if (got || waiter->error) return got;
  queue_.remove(*ticket);
  auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now() - queued_at);
  return tl::unexpected(
      refusal(ErrorCategory::kTimeout, fmt::format("no worker became free within {} ms ({})",
                                                   waited.count(), describe_load_locked())));
}

Result<WorkerPtr> WorkerRegistry::checkout_worker(const WorkerPtr& target, TimePoint deadline,
                                                  const Handoff* handoff) {
  std::unique_lock lock(mu_);
  auto fail = [&](ErrorCategory category, std::string message) {
    Error e = refusal(category, std::move(message));
    e.context.worker_id = target->id();
    return tl::unexpected(std::move(e));
  };
  if (closed_) return tl::unexpected(*closed_);
  auto live_it = live_.find(target->id());
  if (live_it == live_.end() || live_it->second.worker != target) {
    return fail(ErrorCategory::kConnection,
                fmt::format("worker {} is no longer in service", target->id()));
  }
  if (auto it = std::find(idle_.begin(), idle_.end(), target); it != idle_.end()) {
    idle_.erase(it);
    ++borrowed_;
    return target;
  }
  auto waiter = std::make_shared<Waiter>();
  waiter->handoff = handoff;
  targeted_[target->id()].push_back(waiter);
  const TimePoint queued_at = clock_.now();
  auto got = wait_locked(lock, waiter, deadline);
  if (got || waiter->error) return got;
  if (auto t = targeted_.find(target->id()); t != targeted_.end()) {
    std::erase(t->second, waiter);
    if (t->second.empty()) targeted_.erase(t);
  }
  auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now() - queued_at);
  return fail(ErrorCategory::kTimeout,
              fmt::format("worker {} stayed busy for {} ms (it is bound to this call's session "
                          "or addressed directly); {}",
                          target->id(), waited.count(), describe_load_locked()));
}

WorkerPtr WorkerRegistry::take_least_loaded(
    const std::function<std::size_t(const Worker&)>& score) {
  std::lock_guard lock(mu_);
  if (closed_ || idle_.empty()) return nullptr;
  auto best = idle_.rbegin();
  std::size_t best_score = score(**best);
  for (auto it = std::next(idle_.rbegin()); it != idle_.rend(); ++it) {
    std::size_t s = score(**it);
    if (s < best_score) {
      best = it;
      best_score = s;
    }
  }
  WorkerPtr w = *best;
  idle_.erase(std::next(best).base());
  ++borrowed_;
  return w;
}

std::optional<Leave> WorkerRegistry::check_in(
    const WorkerPtr& worker, const std::function<std::optional<Leave>(Tracking&)>& decide) {
  WaiterPtr wake;
  bool handing_off = false;
  std::optional<Leave> leave;
  {
    std::lock_guard lock(mu_);
    auto it = live_.find(worker->id());
    // Removed meanwhile (e.g. its exit was noticed): it goes with its borrower.
    if (it == live_.end() || it->second.worker != worker) {
      --borrowed_;
    } else {
      leave = decide(it->second.tracking);
      if (!leave) {
        --borrowed_;
        wake = give_back_locked(worker, true);
        handing_off = wake && wake->handing_off;
      }
    }
  }
  state_cv_.notify_all();
  if (wake) hand_over(wake, worker, handing_off);
  return leave;
}

void WorkerRegistry::release(const WorkerPtr& worker) {
  {
    std::lock_guard lock(mu_);
    --borrowed_;
  }
  state_cv_.notify_all();
}

void WorkerRegistry::to_degraded(const WorkerPtr& worker) {
  {
    std::lock_guard lock(mu_);
    --borrowed_;
    auto it = live_.find(worker->id());
    if (it != live_.end() && it->second.worker == worker) degraded_.push_back(worker);
  }
  state_cv_.notify_all();
}

std::vector<WorkerPtr> WorkerRegistry::take_idle(
    const std::function<bool(const WorkerPtr&, Tracking&, bool degraded)>& pick) {
  std::vector<WorkerPtr> taken;
  std::lock_guard lock(mu_);
  if (closed_) return taken;
  for (bool degraded : {false, true}) {
    auto& from = degraded ? degraded_ : idle_;
    for (auto it = from.begin(); it != from.end();) {
      auto slot = live_.find((*it)->id());
      if (slot != live_.end() && pick(*it, slot->second.tracking, degraded)) {
        taken.push_back(*it);
        ++borrowed_;
        it = from.erase(it);
      } else {
        ++it;
      }
    }
  }
  return taken;
}

bool WorkerRegistry::with_tracking(const std::string& worker_id,
                                   const std::function<void(Tracking&)>& fn) {
  std::lock_guard lock(mu_);
  auto it = live_.find(worker_id);
  if (it == live_.end()) return false;
  fn(it->second.tracking);
  return true;
}

bool WorkerRegistry::read_tracking(const std::string& worker_id,
                                   const std::function<void(const Tracking&)>& fn) const {
  std::lock_guard lock(mu_);
  auto it = live_.find(worker_id);
  if (it == live_.end()) return false;
  fn(it->second.tracking);
  return true;
}

void WorkerRegistry::for_each_tracking(
    const std::function<void(const std::string& id, Tracking&)>& fn) {
  std::lock_guard lock(mu_);
  for (auto& [id, slot] : live_) fn(id, slot.tracking);
}

void WorkerRegistry::close(const Error& refusal) {
  std::vector<WaiterPtr> to_wake;
  {
    std::lock_guard lock(mu_);
    closed_ = refusal;
    for (auto& [id, list] : targeted_) {
      for (auto& w : list) to_wake.push_back(std::move(w));
    }
    targeted_.clear();
    for (auto ticket : queue_.drain()) {
      if (auto it = waiters_.find(ticket); it != waiters_.end()) to_wake.push_back(it->second);
    }
    for (auto& w : to_wake) w->error = refusal;
  }
  state_cv_.notify_all();
  for (auto& w : to_wake) w->cv.notify_one();
}

void WorkerRegistry::fail_waiters_if_none_live(const Error& error) {
  std::vector<WaiterPtr> to_wake;
  {
    std::lock_guard lock(mu_);
    // Nobody can be served while no worker is alive and starts keep failing: tell the waiters
    // now instead of letting each run into its checkout timeout.
    if (!live_.empty()) return;
    for (auto ticket : queue_.drain()) {
      if (auto it = waiters_.find(ticket); it != waiters_.end()) to_wake.push_back(it->second);
    }
    for (auto& w : to_wake) w->error = error;
  }
  for (auto& w : to_wake) w->cv.notify_one();
}

std::vector<WorkerPtr> WorkerRegistry::take_all_unused() {
  std::vector<WorkerPtr> out;
  {
    std::lock_guard lock(mu_);
    out = std::move(idle_);
    out.insert(out.end(), degraded_.begin(), degraded_.end());
    idle_.clear();
    degraded_.clear();
    for (const auto& w : out) live_.erase(w->id());
  }
  state_cv_.notify_all();
  return out;
}

bool WorkerRegistry::wait(const std::function<bool(const RegistryCounts&)>& done,
                          TimePoint deadline) {
  std::unique_lock lock(mu_);
  return wait_until(clock_, state_cv_, lock, deadline, [&] { return done(counts_locked()); });
}

void WorkerRegistry::notify() {
  { std::lock_guard lock(mu_); }  // orders the change before the waiters' next look
  state_cv_.notify_all();
}

}  // namespace bridgepool
