// Checkout, checkin and retirement: how workers move between idle, borrowed and out of service.
// Runs on caller threads (and the monitor thread for retirements); see pool_impl.h for locking.
#include <signal.h>

#include <algorithm>

#include <fmt/format.h>

#include "pool/pool_impl.h"

namespace bridgepool {

std::string Pool::Impl::describe_load_locked() const {
  return fmt::format("{} of {} workers busy, {} starting, {} callers queued", borrowed,
                     live.size(), starting, queue.size());
}

std::vector<std::shared_ptr<Pool::Impl::Waiter>> Pool::Impl::fail_targeted_waiters_locked(
    const std::string& worker_id, const Error& error) {
  std::vector<std::shared_ptr<Waiter>> out;
  auto t = targeted.find(worker_id);
  if (t == targeted.end()) return out;
  for (auto& w : t->second) {
    w->error = error;
    out.push_back(std::move(w));
  }
  targeted.erase(t);
  return out;
}

void Pool::Impl::fail_waiters_locked(const Error& error) {
  for (auto& [id, list] : targeted) {
    for (auto& w : list) {
      w->error = error;
      w->cv.notify_one();
    }
  }
  targeted.clear();
  for (auto ticket : queue.drain()) {
    auto it = waiters.find(ticket);
    if (it == waiters.end()) continue;
    it->second->error = error;
    it->second->cv.notify_one();
  }
}

std::shared_ptr<Pool::Impl::Waiter> Pool::Impl::give_back_locked(const WorkerPtr& worker) {
  if (auto t = targeted.find(worker->id()); t != targeted.end()) {
    auto waiter = std::move(t->second.front());
    t->second.pop_front();
    if (t->second.empty()) targeted.erase(t);
    ++borrowed;
    waiter->worker = worker;
    return waiter;
  }
  while (auto ticket = queue.pop_next(clock.now())) {
    auto it = waiters.find(*ticket);
    if (it == waiters.end()) continue;
    ++borrowed;
    it->second->worker = worker;
    return it->second;
  }
  idle.push_back(worker);
  return nullptr;
}

Result<WorkerPtr> Pool::Impl::checkout(TimePoint deadline, const std::string& avoid) {
  std::unique_lock lock(mu);
  auto refuse = [&](ErrorCategory category, std::string message) {
    Error e(category, std::move(message));
    e.context.operation = "checkout";
    return tl::unexpected(std::move(e));
  };
  if (shutting_down) {
    return refuse(ErrorCategory::kResource, fmt::format("pool '{}' is shutting down", config.name));
  }
  if (!idle.empty()) {
    // Most recently used first (warm caches); a retry skips the worker that just failed it
    // when another one is idle (SPEC §6: retries go to a different worker when one exists).
    auto it = std::prev(idle.end());
    if (!avoid.empty() && (*it)->id() == avoid && idle.size() > 1) it = std::prev(it);
    WorkerPtr w = std::move(*it);
    idle.erase(it);
    ++borrowed;
    return w;
  }
  if (live.empty() && consecutive_init_failures > 0 && last_init_error) {
    Error e = *last_init_error;
    e.message = "no worker available, workers fail to start: " + e.message;
    return tl::unexpected(std::move(e));
  }
  // Lazy start grows towards `size` when callers have to wait; beyond it, up to max_overflow
  // extra workers absorb a burst (retired again after overflow_idle_timeout).
  bool grow = live.size() + starting < config.size + config.max_overflow;
  auto ticket = queue.push(deadline);
  if (!ticket) {
    return refuse(ErrorCategory::kResource,
                  fmt::format("checkout queue full: {} callers already waiting (max_queue={}); {}",
                              queue.size(), queue.max_waiters(), describe_load_locked()));
  }
  if (grow) {
    ++starting;
    post_spawn(std::chrono::milliseconds(0));  // loop.post takes only the loop's own lock
  }
  auto waiter = std::make_shared<Waiter>();
  waiters.emplace(*ticket, waiter);
  TimePoint queued_at = clock.now();
  while (!waiter->worker && !waiter->error) {
    if (waiter->cv.wait_until(lock, deadline) == std::cv_status::timeout) break;
  }
  waiters.erase(*ticket);
  if (waiter->worker) return std::move(waiter->worker);
  queue.remove(*ticket);
  if (waiter->error) return tl::unexpected(std::move(*waiter->error));
  auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(clock.now() - queued_at);
  return refuse(ErrorCategory::kTimeout,
                fmt::format("no worker became free within {} ms ({})", waited.count(),
                            describe_load_locked()));
}

void Pool::Impl::checkin_ok(const WorkerPtr& worker) {
  worker->reset_failures();
  bool ready = transit(worker, WorkerState::kReady, TransitionReason::kCheckinOk);
  std::shared_ptr<Waiter> wake;
  bool recycle_now = false, restart_now = false;
  std::string recycle_detail = "recycling limit reached";
  {
    std::lock_guard lock(mu);
    --borrowed;
    // Retired meanwhile (e.g. by the monitor): it must not go back into service.
    auto it = live.find(worker->id());
    bool in_service = ready && it != live.end() && it->second == worker;
    if (in_service) {
      auto t = tracking.find(worker->id());
      if (t != tracking.end()) {
        t->second.health.note_activity(clock.now());
        t->second.last_used = clock.now();
        if (auto why = recycle.check(worker->requests(), t->second.rss_mb,
                                     t->second.recycle_limit)) {
          t->second.recycle_due = why;
        }
      }
      restart_now = retire_on_return_locked(worker);
      recycle_now = !restart_now && recycle_if_due_locked(worker);
      if (recycle_now && t != tracking.end() && t->second.recycle_due) {
        recycle_detail = *t->second.recycle_due == RecycleReason::kMaxRss
                             ? "memory limit (max_rss_mb) reached"
                             : "request limit (max_requests) reached";
      }
      if (recycle_now) ++recycled;
      if (recycle_now || restart_now) {
        ++borrowed;  // stays out of rotation; checkin_remove below gives it up
      } else {
        wake = give_back_locked(worker);
      }
    }
    if (shutting_down) state_cv.notify_all();  // shutdown waits for borrowed == 0
  }
  if (wake) wake->cv.notify_one();
  if (recycle_now) checkin_remove(worker, TransitionReason::kRecycled, false, recycle_detail);
  if (restart_now) checkin_remove(worker, TransitionReason::kReplaced, false, "rolling restart");
}

void Pool::Impl::checkin_remove(const WorkerPtr& worker, TransitionReason reason, bool kill,
                                const std::string& detail) {
  bool removed_now = retire(worker, reason, kill, detail);
  if (removed_now && !kill) terminate_gracefully(worker, config.shutdown_grace);
  std::lock_guard lock(mu);
  --borrowed;
  state_cv.notify_all();
}

bool Pool::Impl::retire(const WorkerPtr& worker, TransitionReason reason, bool kill,
                        const std::string& detail) {
  bool replace = false;
  std::chrono::milliseconds replace_delay{0};
  std::vector<std::shared_ptr<Waiter>> to_wake;
  {
    std::lock_guard lock(mu);
    auto it = live.find(worker->id());
    if (it == live.end() || it->second != worker) return false;
    live.erase(it);
    std::erase(idle, worker);
    std::erase(degraded, worker);
    tracking.erase(worker->id());
    pending_closes.erase(worker->id());
    Error gone(ErrorCategory::kConnection,
               fmt::format("worker {} left service ({}) while this call waited for it",
                           worker->id(), reason_name(reason)));
    gone.context.worker_id = worker->id();
    to_wake = fail_targeted_waiters_locked(worker->id(), gone);
    // Replace only up to the configured size: an overflow worker leaving is not replaced.
    if (!shutting_down && live.size() + starting < config.size) {
      replace = true;
      ++replaced;
      ++starting;  // counted with the decision (see post_spawn)
      replace_delay = backoff.delay(consecutive_init_failures);
    }
  }
  for (auto& w : to_wake) w->cv.notify_one();
  std::size_t sessions_lost = affinity.drop_worker(worker->number());
  if (sessions_lost > 0) {
    emit("pool.session.affinity", {{"lost", double(sessions_lost)}},
         {{"outcome", "worker_removed"}, {"worker_id", worker->id()}});
  }
  transit(worker, WorkerState::kTerminating, reason, {{"detail", detail}});
  // SIGKILL for a worker whose state cannot be trusted (protocol violation, missed deadline):
  // it must not run one more instruction of a request we have already failed.
  if (kill) worker->process().signal(SIGKILL);
  config.logger->log(LogLevel::kWarn, "pool",
                     fmt::format("worker removed ({}): {}", reason_name(reason), detail),
                     worker->id());
  if (replace) post_spawn(replace_delay);
  return true;
}

void Pool::Impl::terminate_gracefully(const WorkerPtr& worker, std::chrono::milliseconds grace) {
  // The shutdown command, then EOF: either makes the runtime exit; EOF also covers a worker
  // stuck before reading its next frame. A failed write is fine: the worker is gone already.
  static const std::string kShutdownFrame = [] {
    std::string json;
    wire::append_request_json(json, wire::Request{0, "shutdown", Json::object(), {}, {}});
    std::string frame;
    (void)wire::append_frame(frame, json);
    return frame;
  }();
  // Non-blocking and tiny: it fits in the (empty) pipe of an idle worker, or is dropped.
  ssize_t rc = ::write(worker->process().request_fd(), kShutdownFrame.data(), kShutdownFrame.size());
  (void)rc;
  worker->process().close_request_pipe();
  std::weak_ptr<Worker> weak = worker;
  auto kill_grace = config.kill_grace;
  loop.post_after(grace, [this, weak, kill_grace] {
    auto w = weak.lock();
    if (!w || w->process().has_exited()) return;
    w->process().signal(SIGTERM);
    loop.post_after(kill_grace, [weak] {
      if (auto w2 = weak.lock(); w2 && !w2->process().has_exited()) w2->process().signal(SIGKILL);
    });
  });
}

bool Pool::Impl::transit(const WorkerPtr& worker, WorkerState to, TransitionReason reason,
                         std::map<std::string, std::string> metadata) {
  auto t = worker->transition(to, reason, std::move(metadata));
  if (!t) return false;
  if (config.logger->enabled(LogLevel::kDebug)) {
    config.logger->log(LogLevel::kDebug, "worker",
                       fmt::format("{} -> {} ({})", state_name(t->from), state_name(t->to),
                                   reason_name(t->reason)),
                       worker->id());
  }
  if (config.events->has_handlers()) {
    std::map<std::string, std::string> meta = t->metadata;
    meta["worker_id"] = worker->id();
    meta["from"] = state_name(t->from);
    meta["to"] = state_name(t->to);
    meta["reason"] = reason_name(t->reason);
    meta["pool"] = config.name;
    emit("pool.worker.transition",
         {{"time_in_previous_ms",
           std::chrono::duration<double, std::milli>(t->time_in_previous).count()}},
         std::move(meta));
  }
  return true;
}

void Pool::Impl::emit(std::string name, std::map<std::string, double> measurements,
                      std::map<std::string, std::string> metadata) {
  if (!config.events->has_handlers()) return;
  Event e;
  e.name = std::move(name);
  e.measurements = std::move(measurements);
  e.metadata = std::move(metadata);
  e.metadata.emplace("pool", config.name);
  config.events->emit(e);
}

}  // namespace bridgepool
