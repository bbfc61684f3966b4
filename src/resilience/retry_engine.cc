// RetryEngine: see retry_engine.h for the loop and the reasons behind its order.
#include "resilience/retry_engine.h"

#include <algorithm>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "base/clock_wait.h"
#include "resilience/poison_quarantine.h"

namespace bridgepool {

namespace {

using std::chrono::microseconds;

// One run: the state that lives across attempts, and the decisions between them.
class Loop {
 public:
  Loop(const RetryPolicy& policy, const RetryHooks& hooks)
      : policy_(policy),
        hooks_(hooks),
        clock_(hooks.clock != nullptr ? *hooks.clock : SteadyClock::instance()),
        start_(clock_.now()),
        max_attempts_(std::max<std::uint32_t>(policy.max_attempts, 1)),
        deadline_(hooks.deadline),
        report_outcomes_(hooks.quarantine != nullptr && hooks.quarantine->wants_fingerprint()) {
    if (policy.deadline) {
      // A deadline near the Rep maximum must not overflow: saturate at the request deadline.
      auto budget = std::min(*policy.deadline, microseconds(std::chrono::hours(24 * 365)));
      TimePoint own = start_ + std::max(budget, microseconds(0));
      deadline_ = deadline_ ? std::min(*deadline_, own) : own;
    }
  }

  std::optional<Error> run(const AttemptFn& attempt_fn, std::uint32_t* attempts_made);

 private:
  struct Next {
    std::string_view reason;  // empty: retry after `delay`
    std::string note;         // for the error's cause
    microseconds delay{0};
  };
  Next next_after(const Error& error, std::uint32_t attempt, const AttemptReport& report);
  std::optional<Error> admit(std::uint32_t attempt, CircuitBreaker::Permit& permit);
  Error refused(Error refusal, std::uint32_t attempt,
                std::atomic<std::uint64_t> RetryCounters::*counter);
  Error gave_up(Error& error, std::uint32_t attempt, const Next& next);
  std::uint64_t fingerprint() {
    if (!fingerprint_) fingerprint_ = hooks_.fingerprint ? hooks_.fingerprint() : 0;
    return *fingerprint_;
  }
  bool quarantine_asks() const {
    return hooks_.quarantine != nullptr && (report_outcomes_ || fingerprint_.has_value());
  }
  void count(std::atomic<std::uint64_t> RetryCounters::*field) const {
    if (hooks_.counters != nullptr) {
      (hooks_.counters->*field).fetch_add(1, std::memory_order_relaxed);
    }
  }
  microseconds elapsed() const { return std::chrono::ceil<microseconds>(clock_.now() - start_); }
  void emit(EventId id, std::uint32_t attempts, const Error* error, std::string_view reason,
            microseconds delay = microseconds(0)) const;

  const RetryPolicy& policy_;
  const RetryHooks& hooks_;
  const Clock& clock_;
  const TimePoint start_;
  const std::uint32_t max_attempts_;
  std::optional<TimePoint> deadline_;
  const bool report_outcomes_;  // the quarantine sees this request's outcomes
  std::optional<std::uint64_t> fingerprint_;
  std::optional<Error> previous_;  // the last failed attempt's error
  microseconds previous_delay_{0};
  bool holding_grant_ = false;  // a budget grant taken for the attempt about to run
};

std::optional<Error> Loop::run(const AttemptFn& attempt_fn, std::uint32_t* attempts_made) {
  std::string last_worker;
  for (std::uint32_t attempt = 1;; ++attempt) {
    if (attempts_made != nullptr) *attempts_made = attempt;
    CircuitBreaker::Permit permit;
    if (auto refusal = admit(attempt, permit)) return refusal;
    AttemptReport report = attempt_fn(attempt, last_worker);
    if (holding_grant_) hooks_.budget->end_retry();
    holding_grant_ = false;
    if (hooks_.breaker != nullptr) {
      hooks_.breaker->record(permit, report.breaker_outcome.value_or(
                                         report.error != nullptr ? breaker_outcome_of(*report.error)
                                                                 : BreakerOutcome::kSuccess));
    }
    if (hooks_.quarantine != nullptr) {
      if (report.killed_worker) {
        hooks_.quarantine->record_kill(fingerprint(), report.worker_id);
      } else if (quarantine_asks()) {
        hooks_.quarantine->record_survived(fingerprint());
      }
    }
    if (report.error == nullptr) {
      if (attempt > 1) {
        count(&RetryCounters::recovered);
        emit(EventId::kRetryRecovered, attempt, nullptr, {});
      }
      return std::nullopt;
    }
    Error& e = *report.error;
    if (e.context.worker_id.empty()) e.context.worker_id = report.worker_id;
    if (hooks_.classify) hooks_.classify(e, attempt, &report);
    e.context.attempt = static_cast<int>(attempt);
    Next next = next_after(e, attempt, report);
    if (!next.reason.empty()) return gave_up(e, attempt, next);
    if (next.delay.count() > 0) {
      if (hooks_.sleep) {
        hooks_.sleep(next.delay);
      } else {
        sleep_until(clock_, clock_.now() + next.delay);
      }
    }
    if (hooks_.budget != nullptr && !hooks_.budget->try_begin_retry()) {
      count(&RetryCounters::retries_denied);
      return gave_up(e, attempt,
                     {"budget_exhausted", "retry budget exhausted (too many retries in flight)"});
    }
    holding_grant_ = hooks_.budget != nullptr;
    count(&RetryCounters::retries);
    emit(EventId::kRetryAttempt, attempt + 1, &e, {}, next.delay);
    previous_delay_ = next.delay;
    last_worker = report.worker_id;
    previous_ = e;
  }
}

std::optional<Error> Loop::admit(std::uint32_t attempt, CircuitBreaker::Permit& permit) {
  // Asked before every attempt: a retry of a request whose first attempt killed a worker is
  // exactly what the quarantine is for.
  if (quarantine_asks()) {
    if (auto ok = hooks_.quarantine->admit(fingerprint(), hooks_.command); !ok) {
      return refused(std::move(ok.error()), attempt, &RetryCounters::quarantine_refused);
    }
  }
  if (hooks_.breaker != nullptr) {
    auto admitted = hooks_.breaker->acquire();
    if (!admitted) {
      return refused(std::move(admitted.error()), attempt, &RetryCounters::circuit_rejected);
    }
    permit = *admitted;
  }
  return std::nullopt;
}

Error Loop::refused(Error refusal, std::uint32_t attempt,
                    std::atomic<std::uint64_t> RetryCounters::*counter) {
  if (holding_grant_) hooks_.budget->end_retry();  // the retry it was granted for never ran
  holding_grant_ = false;
  count(counter);
  if (hooks_.classify) hooks_.classify(refusal, 1, nullptr);
  refusal.context.attempt = static_cast<int>(attempt);
  if (previous_) {
    refusal.context.worker_id = previous_->context.worker_id;
    refusal.append_cause(
        fmt::format("after attempt {} failed: {}", attempt - 1, previous_->to_string()));
  }
  emit(EventId::kRetryGaveUp, attempt, &refusal,
       refusal.category == ErrorCategory::kCircuitOpen ? "circuit_open" : "quarantined");
  return refusal;
}

Loop::Next Loop::next_after(const Error& error, std::uint32_t attempt,
                            const AttemptReport& report) {
  // The attempt limit: max_attempts and, with the default decision, what the error's strategy
  // allows (immediate_retry 3, backoff_retry 5).
  std::uint32_t limit = max_attempts_;
  if (hooks_.should_retry) {
    if (!hooks_.should_retry(error, attempt)) return {"not_retryable", {}};
  } else {
    if (!error.retryable()) return {"not_retryable", {}};
    limit = std::min(limit, attempt_budget(error.strategy));
  }
  if (attempt >= limit) {
    return {"attempts_exhausted", fmt::format("gave up after {} attempts", attempt)};
  }
  // A checkout that timed out spent the attempt's whole time budget: nothing is left.
  if (report.no_time_left) return {"deadline", {}};
  if (hooks_.stop) {
    if (auto why = hooks_.stop()) return {*why, {}};
  }
  // immediate_retry means "try again now" (error.h), on another worker; only backoff_retry
  // waits. A custom should_retry decides *whether*; the policy's backoff still paces it.
  const bool immediate =
      !hooks_.should_retry && error.strategy == RecoveryStrategy::kImmediateRetry;
  const UniformRandom& random = hooks_.random ? hooks_.random : UniformRandom(thread_local_uniform);
  const microseconds delay =
      immediate ? microseconds(0) : backoff_delay(policy_, attempt, previous_delay_, random);
  // delay > deadline - now rather than now + delay > deadline: a delay near the Rep maximum (a
  // huge max_delay) must not overflow the sum. A delay ending exactly at the deadline is fine.
  if (deadline_ && delay > std::chrono::duration_cast<microseconds>(*deadline_ - clock_.now())) {
    return {"deadline", "no time left for a retry before the deadline"};
  }
  return {{}, {}, delay};
}

Error Loop::gave_up(Error& error, std::uint32_t attempt, const Next& next) {
  if (!next.note.empty()) error.append_cause(next.note);
  // Only calls that retried, or could have: a first-attempt error that simply may not be
  // retried (a Python ValueError) is not a retry story.
  if (attempt > 1 || next.reason != "not_retryable") {
    emit(EventId::kRetryGaveUp, attempt, &error, next.reason);
  }
  return std::move(error);
}

void Loop::emit(EventId id, std::uint32_t attempts, const Error* error, std::string_view reason,
                microseconds delay) const {
  if (!hooks_.events || !hooks_.events->has_handlers()) return;
  Event event;
  event.name = std::string(event_name(id));
  event.measurements = {{"elapsed_us", double(elapsed().count())}};
  event.measurements[id == EventId::kRetryAttempt ? "attempt" : "attempts"] = double(attempts);
  event.metadata = {{"name", hooks_.name}};
  if (!hooks_.command.empty()) event.metadata["command"] = hooks_.command;
  if (error != nullptr) {
    event.metadata["category"] = std::string(category_name(error->category));
    event.metadata["strategy"] = std::string(strategy_name(error->strategy));
  }
  if (id == EventId::kRetryAttempt) {
    event.measurements["delay_us"] = double(delay.count());
    event.metadata["backoff"] = std::string(backoff_strategy_name(policy_.strategy));
  }
  if (!reason.empty()) event.metadata["reason"] = std::string(reason);
  event.time = clock_.wall_now();
  hooks_.events->emit(event);
}

}  // namespace

std::optional<Error> run_with_retries(const RetryPolicy& policy, const RetryHooks& hooks,
                                      const AttemptFn& attempt, std::uint32_t* attempts_made) {
  return Loop(policy, hooks).run(attempt, attempts_made);
}

}  // namespace bridgepool
