// The resilience layer around a Pool call (SPEC §6): the pool's circuit breaker, poison-request
// quarantine, error classification, and retries within the retry budget, on a different worker
// when one exists. Runs entirely on the caller's thread; the breaker and budget are a short
// mutex and atomics, never held around the call (SPEC §11 item 2).
//
//   caller ── quarantined? ──yes──> invalid_request error (abandon; no worker touched)
//      │ no
//      ▼
//   breaker.acquire ──open──> circuit_open error (strategy failover: a chain's next adapter)
//      │ admitted
//      ▼
//   one attempt (checkout, round trip) ── ok ──> record success ──> result
//      │ error
//      ▼
//   record failure / quarantine kill ──> classify (severity, strategy)
//      │ strategy allows retry, attempts < min(policy, strategy budget), time left
//      ▼
//   sleep backoff (0 for immediate_retry) ──> budget ok? ──> next attempt, avoiding the worker
//                                                            that failed
#include <thread>

#include <fmt/format.h>

#include "pool/pool_impl.h"

namespace bridgepool {
namespace {

void append_cause(Error& e, std::string_view note) {
  e.context.cause = e.context.cause.empty() ? std::string(note)
                                            : fmt::format("{}; {}", e.context.cause, note);
}

}  // namespace

Result<Json> Pool::Impl::run_call(std::string_view command, const Json& args,
                                  const ExecuteOptions& options, TimePoint deadline,
                                  const OnceFn& once) {
  std::uint32_t attempts = 0;
  std::string served_by;
  auto tracked = [&](std::uint32_t attempt, const std::string& avoid) {
    attempts = attempt;
    Once o = once(attempt, avoid);
    served_by = o.worker_id;
    return o;
  };
  Result<Json> result = tl::unexpected(Error());
  if (config.resilience.enabled) {
    result = run_resilient(command, args, options, deadline, tracked);
  } else {
    Once o = tracked(1, {});
    result = std::move(o.result);
    if (!result) {
      classify_error(result.error(),
                     ClassifyInput{1, false, o.may_have_run, is_idempotent(command)});
    }
  }
  if (options.report) {
    options.report->adapter = "pool";
    options.report->worker_id = served_by;
    options.report->attempts = attempts;
  }
  return result;
}

bool Pool::Impl::is_idempotent(std::string_view command) const {
  auto table = command_table.load();
  auto it = table->idempotent.find(std::string(command));
  return it != table->idempotent.end() && it->second;
}

bool Pool::Impl::no_worker_in_service() const {
  // "Every worker affected" (severity critical): none serves and none is about to — either none
  // is starting, or the starts keep failing (a crash loop). Replacements on their way after a
  // few crashes are not critical: a retry's checkout simply waits for one.
  std::lock_guard lock(mu);
  return live.empty() && (starting == 0 || consecutive_init_failures > 0);
}

Pool::Impl::Once Pool::Impl::run_once(wire::Request& request, TimePoint checkout_deadline,
                                      TimePoint deadline, const ChunkCallback& on_chunk,
                                      const std::string& avoid_worker, Duration& queue_wait) {
  // A worker found dead before it read the request is replaced and the request goes to another
  // one at once (it never ran: always safe, and not a retry); bounded so a pool whose workers
  // all die on arrival still answers.
  const int max_reroutes = static_cast<int>(config.size) + 2;
  std::string avoid = avoid_worker;
  for (int reroute = 1;; ++reroute) {
    TimePoint checkout_start = clock.now();
    auto worker = checkout(checkout_deadline, avoid);
    queue_wait += clock.now() - checkout_start;
    if (!worker) {
      bool timed_out = worker.error().category == ErrorCategory::kTimeout;
      return Once{tl::unexpected(worker.error()), "", false, false, timed_out};
    }
    std::string id = (*worker)->id();
    Attempt a = attempt_on(*worker, request, deadline, on_chunk);
    if (!a.try_another_worker || reroute >= max_reroutes) {
      bool delivered = a.fault != WorkerFault::kNotDelivered;
      return Once{std::move(a.result), std::move(id), delivered, ends_worker(a.fault), false};
    }
    avoid.clear();
  }
}

Result<Json> Pool::Impl::run_resilient(std::string_view command, const Json& args,
                                       const ExecuteOptions& options, TimePoint deadline,
                                       const OnceFn& once) {
  const RetryPolicy& policy = options.retry ? *options.retry : config.resilience.retry;
  const TimePoint started = clock.now();
  // Retries stop at the request deadline, or earlier at the policy's own overall deadline.
  const TimePoint retry_deadline =
      policy.deadline ? std::min(deadline, started + *policy.deadline) : deadline;
  // The fingerprint costs a JSON dump: computed only when the quarantine asks for it, or when
  // an attempt has just killed a worker.
  std::optional<std::uint64_t> fingerprint;
  auto fp = [&] {
    if (!fingerprint) fingerprint = PoisonQuarantine::fingerprint(command, args);
    return *fingerprint;
  };
  // wants_fingerprint(): always while anything is tracked, else one call in 16 (so survivals
  // keep reaching the quarantine's survivor table; see poison_quarantine.h).
  const bool report_outcomes = quarantine && quarantine->wants_fingerprint();
  RetryBudget::RequestScope in_flight(retry_budget);
  const bool idempotent = is_idempotent(command);
  std::string last_worker;
  std::optional<Error> previous;  // the last attempt's error, once there was one
  std::chrono::microseconds previous_delay{0};
  bool retrying = false;
  // A refusal before an attempt (quarantine, breaker) is what the caller gets; it carries the
  // previous attempt's error in its cause. It is classified as a first attempt of its own kind
  // (no worker was touched), so a breaker that opened during a call's retries still reads
  // `failover`, not the `abandon` of a third critical attempt.
  auto refuse = [&](Error e, std::uint32_t attempt, std::atomic<std::uint64_t>& counter) {
    if (retrying) retry_budget.end_retry();
    counter.fetch_add(1, std::memory_order_relaxed);
    e.context.worker_id = last_worker;
    classify_error(e, ClassifyInput{1, false, false, idempotent});
    e.context.attempt = static_cast<int>(attempt);
    if (previous) {
      append_cause(e, fmt::format("after attempt {} failed: {}", attempt - 1, previous->to_string()));
    }
    return tl::unexpected(std::move(e));
  };
  for (std::uint32_t attempt = 1;; ++attempt) {
    // Asked before every attempt: a retry of a request whose first attempt killed a worker is
    // exactly what the quarantine is for.
    if (report_outcomes || fingerprint) {
      if (auto ok = quarantine->admit(fp(), command); !ok) {
        return refuse(ok.error(), attempt, quarantine_refused);
      }
    }
    std::optional<CircuitBreaker::Permit> permit;
    if (breaker) {
      auto admitted = breaker->acquire();
      if (!admitted) return refuse(admitted.error(), attempt, circuit_rejected);
      permit = *admitted;
    }
    Once o = once(attempt, last_worker);
    if (retrying) retry_budget.end_retry();
    retrying = false;
    if (breaker) {
      breaker->record(*permit, o.result ? BreakerOutcome::kSuccess
                                        : breaker_outcome_of(o.result.error()));
    }
    if (quarantine) {
      if (o.killed_worker) {
        quarantine->record_kill(fp(), o.worker_id);
      } else if (report_outcomes || fingerprint) {
        quarantine->record_survived(fp());
      }
    }
    if (o.result) return std::move(o.result);

    Error& e = o.result.error();
    if (e.context.worker_id.empty()) e.context.worker_id = o.worker_id;
    bool all_down = e.category != ErrorCategory::kPython && no_worker_in_service();
    classify_error(e, ClassifyInput{attempt, all_down, o.may_have_run, idempotent});
    RetryStep step = next_retry(e, attempt, policy, previous_delay, retry_deadline, o);
    if (!step.reason.empty()) {
      if (!step.note.empty()) append_cause(e, step.note);
      emit_gave_up(command, e, attempt, step.reason, clock.now() - started);
      return std::move(o.result);
    }
    // The backoff sleep costs the pool nothing, so the budget is asked after it: it bounds the
    // retries actually sent (Envoy's "active retries"), and a request that waited is not refused
    // because others were merely waiting too.
    if (step.delay.count() > 0) std::this_thread::sleep_for(step.delay);
    if (!retry_budget.try_begin_retry()) {
      retries_denied.fetch_add(1, std::memory_order_relaxed);
      append_cause(e, "retry budget exhausted (too many retries in flight)");
      emit_gave_up(command, e, attempt, "budget_exhausted", clock.now() - started);
      return std::move(o.result);
    }
    retries.fetch_add(1, std::memory_order_relaxed);
    if (config.events->has_handlers()) {
      auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(clock.now() - started);
      emit("retry.attempt",
           {{"attempt", double(attempt + 1)},
            {"delay_us", double(step.delay.count())},
            {"elapsed_us", double(elapsed.count())}},
           {{"name", "pool:" + config.name},
            {"command", std::string(command)},
            {"category", std::string(category_name(e.category))},
            {"strategy", std::string(strategy_name(e.strategy))},
            {"backoff", std::string(backoff_strategy_name(policy.strategy))}});
    }
    previous_delay = step.delay;
    last_worker = o.worker_id;
    previous = e;
    retrying = true;
  }
}

Pool::Impl::RetryStep Pool::Impl::next_retry(const Error& e, std::uint32_t attempt,
                                             const RetryPolicy& policy,
                                             std::chrono::microseconds previous_delay,
                                             TimePoint retry_deadline, const Once& o) {
  if (!e.retryable()) return {"not_retryable", "", {}};
  if (attempt >= std::min(policy.max_attempts, attempt_budget(e.strategy))) {
    return {"attempts_exhausted", fmt::format("gave up after {} attempts", attempt), {}};
  }
  // A checkout that timed out spent the attempt's whole checkout budget: nothing is left.
  if (o.no_time_left) return {"deadline", "", {}};
  {
    std::lock_guard lock(mu);
    if (shutting_down) return {"shutting_down", "", {}};
  }
  // immediate_retry goes now (to another worker); backoff_retry waits the policy's delay.
  std::chrono::microseconds delay{0};
  if (e.strategy == RecoveryStrategy::kBackoffRetry) {
    delay = backoff_delay(policy, attempt, previous_delay, thread_local_uniform);
  }
  if (clock.now() + delay >= retry_deadline) {
    return {"deadline", "no time left for a retry before the deadline", {}};
  }
  return {"", "", delay};
}

void Pool::Impl::emit_gave_up(std::string_view command, const Error& e, std::uint32_t attempts,
                              std::string_view reason, Duration elapsed) {
  // Only calls that retried, or could have: a first-attempt error that is simply not
  // retryable (a Python ValueError) is not a retry story.
  if (!config.events->has_handlers() || (attempts == 1 && reason == "not_retryable")) return;
  emit("retry.gave_up",
       {{"attempts", double(attempts)},
        {"elapsed_us",
         double(std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count())}},
       {{"name", "pool:" + config.name},
        {"command", std::string(command)},
        {"category", std::string(category_name(e.category))},
        {"strategy", std::string(strategy_name(e.strategy))},
        {"reason", std::string(reason)}});
}

}  // namespace bridgepool
