// RecoveryOrchestrator: a recovery is a Job that moves between three places, all under mu_:
// the ready queue (its next call may run now: a worker takes it), the timer queue (a delayed
// retry; the watchdog moves it back to the ready queue when due) and neither (a call is running
// on a worker). Its time limit is a second timer entry. Whoever ends a recovery first — the worker
// with the call's result, the watchdog with the time limit, or shutdown — claims the job under
// mu_ (Job::answered); everyone after finds it claimed and drops what it has. That single flag,
// read and written only under the lock, is what makes every recovery answered exactly once.
#include "bridgepool/recovery_orchestrator.h"

#include <fmt/format.h>

#include <algorithm>
#include <exception>
#include <utility>

namespace bridgepool {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using SteadyTime = std::chrono::steady_clock::time_point;

struct RecoveryOrchestrator::Job {
  std::uint64_t id = 0;     // 0: never accepted (refused)
  RecoveryRequest request;  // immutable once the job is queued: read without the lock
  Done done;                // moved out by the one delivery
  RecoveryStrategy strategy = RecoveryStrategy::kAbandon;  // picked from request.error
  TimePoint start;      // on the injected clock, for elapsed times
  SteadyTime deadline;  // real time: the time limit is a wait

  // Guarded by mu_.
  Error last_error;            // the latest failure (the triggering one until a call fails)
  std::uint32_t attempts = 1;  // calls started, the failed original included
  bool next_is_failover = false;
  bool failover_used = false;
  bool in_call = false;
  bool answered = false;
  std::optional<Timers::iterator> deadline_timer;
  std::optional<Timers::iterator> resume_timer;
};

namespace {

void append_cause(Error& e, std::string_view note) {
  e.context.cause =
      e.context.cause.empty() ? std::string(note) : fmt::format("{}; {}", e.context.cause, note);
}

std::string_view event_name(RecoveryResultKind kind) {
  switch (kind) {
    case RecoveryResultKind::kRecovered:
      return "recovery.succeeded";
    case RecoveryResultKind::kFailedOver:
      return "recovery.failed_over";
    case RecoveryResultKind::kFailed:
      return "recovery.failed";
  }
  return "recovery.failed";
}

// Runs the user's retry or failover. They should not throw; if one does, the exception stops at
// this boundary as a kSystem error (strategy abandon: nothing to gain from retrying it).
Result<Json> call_operation(const RecoveryRequest& request, bool failover, std::uint32_t attempt) {
  const char* what = failover ? "failover" : "retry";
  try {
    return failover ? request.failover() : request.retry(attempt);
  } catch (const std::exception& e) {
    return make_error(ErrorCategory::kSystem,
                      fmt::format("{} of {} threw: {}", what, request.name, e.what()));
  } catch (...) {
    return make_error(ErrorCategory::kSystem,
                      fmt::format("{} of {} threw a non-standard exception", what, request.name));
  }
}

// The cause note of a recovery that gave up, by reason (internal::next_recovery_step).
std::string_view give_up_note(std::string_view reason) {
  if (reason == "attempts_exhausted") return "its strategy's attempt budget is used up";
  if (reason == "not_retryable") return "the latest error's strategy allows no retry";
  if (reason == "circuit_break") return "strategy circuit_break makes no call";
  if (reason == "no_retry") return "no retry operation was given";
  if (reason == "no_failover") return "the error asks for failover but none was given";
  if (reason == "failover_failed") return "the failover failed too";
  return reason;
}

}  // namespace

std::string_view recovery_result_name(RecoveryResultKind kind) {
  switch (kind) {
    case RecoveryResultKind::kRecovered:
      return "recovered";
    case RecoveryResultKind::kFailedOver:
      return "failed_over";
    case RecoveryResultKind::kFailed:
      return "failed";
  }
  return "failed";
}

microseconds recovery_backoff_delay(const RecoveryConfig& config, std::uint32_t retry) {
  if (retry == 0) return microseconds(0);
  const microseconds cap = std::max(config.backoff_cap, microseconds(0));
  microseconds delay = std::min(std::max(config.backoff_base, microseconds(0)), cap);
  // Doubling stops at the cap, so the loop runs at most ~64 times whatever `retry` is, and
  // `delay > cap / 2` checks before doubling so the product never overflows.
  for (std::uint32_t n = 1; n < retry && delay > microseconds(0) && delay < cap; ++n) {
    delay = delay > cap / 2 ? cap : delay * 2;
  }
  return delay;
}

namespace internal {

RecoveryStep next_recovery_step(const RecoveryConfig& config, RecoveryStrategy latest,
                                std::uint32_t attempts, bool has_retry, bool has_failover,
                                bool failover_used) {
  if (allows_retry(latest)) {
    if (!has_retry) return {RecoveryStepKind::kGiveUp, {}, "no_retry"};
    if (attempts >= attempt_budget(latest))
      return {RecoveryStepKind::kGiveUp, {}, "attempts_exhausted"};
    const microseconds delay = latest == RecoveryStrategy::kBackoffRetry
                                   ? recovery_backoff_delay(config, attempts)
                                   : std::max(config.immediate_delay, microseconds(0));
    return {RecoveryStepKind::kRetry, delay, {}};
  }
  // A circuit_break triggering error means "stop sending": no call at all. After a retry, the
  // target turning circuit_break-class is a reason to try the next adapter instead.
  const bool wants_failover = latest == RecoveryStrategy::kFailover ||
                              (latest == RecoveryStrategy::kCircuitBreak && attempts > 1);
  if (wants_failover && has_failover && !failover_used)
    return {RecoveryStepKind::kFailover, {}, {}};
  if (failover_used) return {RecoveryStepKind::kGiveUp, {}, "failover_failed"};
  if (wants_failover) return {RecoveryStepKind::kGiveUp, {}, "no_failover"};
  if (latest == RecoveryStrategy::kCircuitBreak)
    return {RecoveryStepKind::kGiveUp, {}, "circuit_break"};
  return {RecoveryStepKind::kGiveUp, {}, "not_retryable"};
}

}  // namespace internal

RecoveryOrchestrator::RecoveryOrchestrator(RecoveryConfig config, const Clock& clock,
                                           std::shared_ptr<EventBus> events)
    : config_(std::move(config)), clock_(clock), events_(std::move(events)) {
  const std::size_t threads = std::max<std::size_t>(config_.threads, 1);
  for (std::size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
  watchdog_ = std::thread([this] { watchdog_loop(); });
}

RecoveryOrchestrator::~RecoveryOrchestrator() { shutdown(); }

std::future<RecoveryOutcome> RecoveryOrchestrator::recover(RecoveryRequest request) {
  // std::function needs a copyable callable, hence the shared promise.
  auto promise = std::make_shared<std::promise<RecoveryOutcome>>();
  std::future<RecoveryOutcome> future = promise->get_future();
  recover(std::move(request),
          [promise](RecoveryOutcome outcome) { promise->set_value(std::move(outcome)); });
  return future;
}

void RecoveryOrchestrator::recover(RecoveryRequest request, Done done) {
  auto job = std::make_shared<Job>();
  job->request = std::move(request);
  job->done = std::move(done);
  job->strategy = job->request.error.strategy;
  job->start = clock_.now();
  job->last_error = job->request.error;
  job->last_error.context.attempt = 1;
  emit("recovery.initiated", *job, nullptr, {});

  std::optional<Delivery> delivery;
  {
    std::lock_guard lock(mu_);
    ++counters_.initiated;
    if (stopping_) {
      ++counters_.rejected;
      delivery = abandon_locked(
          job, "shutting_down",
          Error(ErrorCategory::kResource,
                fmt::format("recovery of {} refused: the recovery orchestrator is shutting down",
                            job->request.name)));
    } else {
      delivery = start_locked(job);
    }
  }
  if (delivery) deliver(std::move(*delivery));
}

RecoveryCounters RecoveryOrchestrator::counters() const {
  std::lock_guard lock(mu_);
  RecoveryCounters snapshot = counters_;
  snapshot.pending = live_.size();
  return snapshot;
}

void RecoveryOrchestrator::shutdown() {
  std::lock_guard join_lock(join_mu_);
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  watchdog_cv_.notify_all();
  // The watchdog answers every pending recovery before it exits; the workers then leave as soon
  // as the call each may be running returns (its result is dropped: the job is answered).
  if (watchdog_.joinable()) watchdog_.join();
  for (auto& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
}

void RecoveryOrchestrator::worker_loop() {
  for (;;) {
    JobPtr job;
    {
      std::unique_lock lock(mu_);
      work_cv_.wait(lock, [this] { return stopping_ || !ready_.empty(); });
      if (stopping_) return;  // queued jobs are answered by the watchdog's drain
      job = std::move(ready_.front());
      ready_.pop_front();
    }
    run_step(job);
  }
}

void RecoveryOrchestrator::run_step(const JobPtr& job) {
  std::uint32_t attempt = 0;
  bool failover = false;
  {
    std::lock_guard lock(mu_);
    if (job->answered) return;  // timed out (or shut down) while it waited in the queue
    attempt = ++job->attempts;
    failover = job->next_is_failover;
    job->in_call = true;
  }
  Result<Json> result = call_operation(job->request, failover, attempt);
  std::optional<Delivery> delivery;
  {
    std::lock_guard lock(mu_);
    job->in_call = false;
    if (job->answered) return;  // a late result: the time limit already answered; drop it
    if (result) {
      delivery = finish_locked(
          job, std::move(result),
          failover ? RecoveryResultKind::kFailedOver : RecoveryResultKind::kRecovered);
    } else {
      delivery = after_failure_locked(job, std::move(result.error()));
    }
  }
  if (delivery) deliver(std::move(*delivery));
}

void RecoveryOrchestrator::watchdog_loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    std::vector<Delivery> due;
    const SteadyTime now = std::chrono::steady_clock::now();
    while (!timers_.empty() && timers_.begin()->first <= now) {
      auto node = timers_.extract(timers_.begin());
      const JobPtr job = std::move(node.mapped().job);
      if (node.mapped().kind == TimerKind::kResume) {
        job->resume_timer.reset();
        ready_.push_back(job);
        work_cv_.notify_one();
      } else {
        job->deadline_timer.reset();
        if (auto delivery = time_out_locked(job)) due.push_back(std::move(*delivery));
      }
    }
    if (!due.empty()) {
      lock.unlock();
      for (auto& delivery : due) deliver(std::move(delivery));
      lock.lock();
      continue;
    }
    // Real time: an entry added earlier than the first wakes us (add_timer_locked notifies).
    if (timers_.empty()) {
      watchdog_cv_.wait(lock);
    } else {
      // A copy: wait_until reads its argument again after waking, and the entry may be erased
      // while the lock is released.
      const SteadyTime earliest = timers_.begin()->first;
      watchdog_cv_.wait_until(lock, earliest);
    }
  }
  // Shutting down: answer everything still pending, wherever it is (queued, delayed, running).
  std::vector<JobPtr> pending;
  for (auto& [id, job] : live_) pending.push_back(job);
  std::vector<Delivery> out;
  for (const JobPtr& job : pending) {
    Error error(ErrorCategory::kResource,
                fmt::format("recovery of {} abandoned: the recovery orchestrator is shutting down",
                            job->request.name));
    append_cause(error, fmt::format("last error: {}", job->last_error.to_string()));
    if (auto delivery = abandon_locked(job, "shutting_down", std::move(error))) {
      out.push_back(std::move(*delivery));
    }
  }
  lock.unlock();
  for (auto& delivery : out) deliver(std::move(delivery));
}

std::optional<RecoveryOrchestrator::Delivery> RecoveryOrchestrator::start_locked(
    const JobPtr& job) {
  // A recovery that makes no call (abandon, circuit_break, nothing to fail over to) is answered
  // with its real error at once; only one that would wait counts against max_pending.
  const internal::RecoveryStep first = internal::next_recovery_step(
      config_, job->last_error.strategy, job->attempts, static_cast<bool>(job->request.retry),
      static_cast<bool>(job->request.failover), job->failover_used);
  if (first.kind == internal::RecoveryStepKind::kGiveUp)
    return give_up_locked(job, first.reason, {});
  if (live_.size() >= config_.max_pending) {
    ++counters_.rejected;
    return abandon_locked(
        job, "refused",
        Error(ErrorCategory::kResource,
              fmt::format("recovery of {} refused: {} recoveries pending (max_pending {})",
                          job->request.name, live_.size(), config_.max_pending)));
  }
  job->id = next_job_id_++;
  live_.emplace(job->id, job);
  const milliseconds limit = job->request.time_limit;
  if (limit <= milliseconds(0)) return time_out_locked(job);
  job->deadline = std::chrono::steady_clock::now() + limit;
  add_timer_locked(job, TimerKind::kDeadline, job->deadline);
  return take_step_locked(job);
}

std::optional<RecoveryOrchestrator::Delivery> RecoveryOrchestrator::after_failure_locked(
    const JobPtr& job, Error error) {
  error.context.attempt = static_cast<int>(job->attempts);
  job->last_error = std::move(error);
  return take_step_locked(job);
}

std::optional<RecoveryOrchestrator::Delivery> RecoveryOrchestrator::take_step_locked(
    const JobPtr& job) {
  const RecoveryRequest& request = job->request;
  const internal::RecoveryStep step = internal::next_recovery_step(
      config_, job->last_error.strategy, job->attempts, static_cast<bool>(request.retry),
      static_cast<bool>(request.failover), job->failover_used);
  switch (step.kind) {
    case internal::RecoveryStepKind::kGiveUp:
      return give_up_locked(job, step.reason, {});
    case internal::RecoveryStepKind::kFailover:
      job->next_is_failover = true;
      job->failover_used = true;
      ready_.push_back(job);
      work_cv_.notify_one();
      return std::nullopt;
    case internal::RecoveryStepKind::kRetry:
      break;
  }
  job->next_is_failover = false;
  if (step.delay <= microseconds(0)) {
    ready_.push_back(job);
    work_cv_.notify_one();
    return std::nullopt;
  }
  const SteadyTime when = std::chrono::steady_clock::now() + step.delay;
  if (when >= job->deadline) {
    // Waiting could only end in a timeout; answer now with the real error instead.
    return give_up_locked(
        job, "deadline",
        fmt::format("no time left for attempt {} (after a {} us delay) within "
                    "the {} ms time limit",
                    job->attempts + 1, step.delay.count(), request.time_limit.count()));
  }
  add_timer_locked(job, TimerKind::kResume, when);
  return std::nullopt;
}

std::optional<RecoveryOrchestrator::Delivery> RecoveryOrchestrator::give_up_locked(
    const JobPtr& job, std::string_view reason, std::string note) {
  if (note.empty()) note = std::string(give_up_note(reason));
  Error error = job->last_error;
  append_cause(error, fmt::format("recovery ({}) stopped after {} attempt(s): {}",
                                  strategy_name(job->strategy), job->attempts, note));
  return finish_locked(job, tl::unexpected<Error>(std::move(error)), RecoveryResultKind::kFailed,
                       reason);
}

std::optional<RecoveryOrchestrator::Delivery> RecoveryOrchestrator::time_out_locked(
    const JobPtr& job) {
  if (job->answered) return std::nullopt;
  ++counters_.timed_out;
  Error error(
      ErrorCategory::kTimeout,
      fmt::format("recovery of {} did not finish within {} ms; last error: {}", job->request.name,
                  job->request.time_limit.count(), job->last_error.to_string()));
  error.context.cause = job->in_call ? "a call was still running; its result will be discarded"
                                     : "no call was running";
  return abandon_locked(job, "timed_out", std::move(error));
}

std::optional<RecoveryOrchestrator::Delivery> RecoveryOrchestrator::abandon_locked(
    const JobPtr& job, std::string_view reason, Error error) {
  // The final error keeps where the failure happened (command, worker, pool) from the trigger.
  const std::string cause = std::move(error.context.cause);
  error.context = job->request.error.context;
  error.context.operation = "recovery";
  error.context.cause = cause;
  error.context.elapsed = elapsed_since(job->start);
  error.severity = job->request.error.severity;
  error.strategy = RecoveryStrategy::kAbandon;
  return finish_locked(job, tl::unexpected<Error>(std::move(error)), RecoveryResultKind::kFailed,
                       reason);
}

std::optional<RecoveryOrchestrator::Delivery> RecoveryOrchestrator::finish_locked(
    const JobPtr& job, Result<Json> result, RecoveryResultKind kind, std::string_view reason) {
  if (job->answered) return std::nullopt;
  job->answered = true;
  if (job->deadline_timer) timers_.erase(*job->deadline_timer);
  if (job->resume_timer) timers_.erase(*job->resume_timer);
  job->deadline_timer.reset();
  job->resume_timer.reset();
  live_.erase(job->id);
  switch (kind) {
    case RecoveryResultKind::kRecovered:
      ++counters_.succeeded;
      break;
    case RecoveryResultKind::kFailedOver:
      ++counters_.failed_over;
      break;
    case RecoveryResultKind::kFailed:
      ++counters_.failed;
      break;
  }
  RecoveryOutcome outcome;
  outcome.kind = kind;
  outcome.strategy = job->strategy;
  outcome.attempts = job->attempts;
  outcome.elapsed = elapsed_since(job->start);
  if (!result) result.error().context.attempt = static_cast<int>(job->attempts);
  outcome.result = std::move(result);
  return Delivery{job, std::move(outcome), reason};
}

void RecoveryOrchestrator::add_timer_locked(const JobPtr& job, TimerKind kind, SteadyTime when) {
  const auto it = timers_.emplace(when, TimerEntry{kind, job});
  (kind == TimerKind::kDeadline ? job->deadline_timer : job->resume_timer) = it;
  if (it == timers_.begin()) watchdog_cv_.notify_one();  // earlier than what it waits for
}

void RecoveryOrchestrator::deliver(Delivery delivery) const {
  emit(event_name(delivery.outcome.kind), *delivery.job, &delivery.outcome, delivery.reason);
  // Only this delivery ever touches `done` (the job was claimed once, under mu_).
  Done done = std::move(delivery.job->done);
  if (!done) return;
  try {
    done(std::move(delivery.outcome));
  } catch (...) {
    // Swallowed by contract (see recover()): a throwing callback must not kill a worker or the
    // watchdog, which would leave other recoveries unanswered.
  }
}

void RecoveryOrchestrator::emit(std::string_view name, const Job& job,
                                const RecoveryOutcome* outcome, std::string_view reason) const {
  if (events_ == nullptr || !events_->has_handlers()) return;
  const Error& error =
      outcome != nullptr && !outcome->result ? outcome->result.error() : job.request.error;
  Event event;
  event.name = std::string(name);
  event.measurements = {
      {"attempts", outcome != nullptr ? double(outcome->attempts) : 1.0},
      {"elapsed_us", outcome != nullptr ? double(outcome->elapsed.count()) : 0.0}};
  event.metadata = {{"name", job.request.name},
                    {"strategy", std::string(strategy_name(job.strategy))},
                    {"category", std::string(category_name(error.category))}};
  if (!reason.empty()) event.metadata["reason"] = std::string(reason);
  event.time = clock_.wall_now();
  events_->emit(event);
}

microseconds RecoveryOrchestrator::elapsed_since(TimePoint start) const {
  return std::max(std::chrono::ceil<microseconds>(clock_.now() - start), microseconds(0));
}

}  // namespace bridgepool
