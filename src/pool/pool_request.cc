// One request on one worker, and checkout of a particular worker (sessions, broadcast).
#include <thread>

#include <fmt/format.h>

#include "pool/pool_impl.h"

namespace bridgepool {

namespace {

FailureKind failure_kind(WorkerFault fault) {
  switch (fault) {
    case WorkerFault::kNotDelivered: return FailureKind::kNotDelivered;
    case WorkerFault::kExited: return FailureKind::kProcessExited;
    case WorkerFault::kProtocol: return FailureKind::kProtocolViolation;
    case WorkerFault::kTimeout: return FailureKind::kRequestTimeout;
    case WorkerFault::kNone: break;
  }
  return FailureKind::kPythonException;
}

}  // namespace

Pool::Impl::Attempt Pool::Impl::attempt_on(const WorkerPtr& w, wire::Request& request,
                                           TimePoint deadline, const ChunkCallback& on_chunk) {
  std::optional<std::string> unusable = w->check_usable();
  if (!unusable && !transit(w, WorkerState::kBusy, TransitionReason::kCheckout)) {
    unusable = "it is no longer in service";
  }
  CallOutcome outcome;
  if (unusable) {
    {
      std::lock_guard lock(mu);
      ++discarded;
    }
    Error e(ErrorCategory::kConnection,
            fmt::format("worker {} was unusable at checkout: {}", w->id(), *unusable));
    e.context.worker_id = w->id();
    outcome = CallOutcome{tl::unexpected(std::move(e)), WorkerFault::kNotDelivered};
  } else {
    auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock.now());
    request.deadline_ms = std::max<std::int64_t>(0, remaining.count());
    outcome = w->call(request, deadline, on_chunk);
  }
  if (outcome.fault == WorkerFault::kNone) {
    // Success, or a Python exception reported in a normal reply: the worker is fine either way
    // (RecoveryPolicy: kPythonException keeps the worker). Retrying a Python error, when the
    // worker marked it retryable, is the caller's resilience layer's decision, not the pool's.
    checkin_ok(w);
    return Attempt{std::move(outcome.result), false, WorkerFault::kNone};
  }
  // Every worker-level failure goes through the one recovery policy (SPEC §4).
  FailureReport report;
  report.kind = failure_kind(outcome.fault);
  report.consecutive_failures = 1;
  report.idempotent = is_idempotent(request.command);
  report.delivered = outcome.fault != WorkerFault::kNotDelivered;
  {
    std::lock_guard lock(mu);
    report.shutting_down = shutting_down;
  }
  RecoveryDecision decision = recovery.decide(report);
  std::string detail = outcome.result ? std::string("data after the reply")
                                      : outcome.result.error().message;
  if (decision.worker == WorkerAction::kKeep) {
    checkin_ok(w);
  } else {
    // kRemove and kKill both take the worker out of service; SIGKILL is harmless for a process
    // that already exited and required for one whose state is unknown.
    checkin_remove(w, decision.transition, true, detail);
  }
  if (outcome.fault == WorkerFault::kNotDelivered) rerouted.fetch_add(1, std::memory_order_relaxed);
  // The pool itself re-routes only what provably never ran (not delivered). A delivered request
  // that the policy would retry (idempotent) goes back to the caller, whose resilience layer
  // owns the retry budget and breaker.
  bool reroute = decision.request == RequestAction::kRetryElsewhere &&
                 outcome.fault == WorkerFault::kNotDelivered;
  return Attempt{std::move(outcome.result), reroute, outcome.fault};
}

Result<WorkerPtr> Pool::Impl::checkout_worker(const WorkerPtr& target, TimePoint deadline) {
  std::unique_lock lock(mu);
  auto fail = [&](ErrorCategory category, std::string message) {
    Error e(category, std::move(message));
    e.context.operation = "checkout";
    e.context.worker_id = target->id();
    return tl::unexpected(std::move(e));
  };
  if (shutting_down) {
    return fail(ErrorCategory::kResource, fmt::format("pool '{}' is shutting down", config.name));
  }
  auto live_it = live.find(target->id());
  if (live_it == live.end() || live_it->second != target) {
    return fail(ErrorCategory::kConnection,
                fmt::format("worker {} is no longer in service", target->id()));
  }
  if (auto it = std::find(idle.begin(), idle.end(), target); it != idle.end()) {
    idle.erase(it);
    ++borrowed;
    return target;
  }
  auto waiter = std::make_shared<Waiter>();
  targeted[target->id()].push_back(waiter);
  TimePoint queued_at = clock.now();
  while (!waiter->worker && !waiter->error) {
    if (waiter->cv.wait_until(lock, deadline) == std::cv_status::timeout) break;
  }
  if (waiter->worker) return std::move(waiter->worker);
  if (waiter->error) return tl::unexpected(std::move(*waiter->error));
  if (auto t = targeted.find(target->id()); t != targeted.end()) {
    std::erase(t->second, waiter);
    if (t->second.empty()) targeted.erase(t);
  }
  auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(clock.now() - queued_at);
  return fail(ErrorCategory::kTimeout,
              fmt::format("worker {} stayed busy for {} ms (it is bound to this call's session "
                          "or addressed directly); {}",
                          target->id(), waited.count(), describe_load_locked()));
}

}  // namespace bridgepool

namespace bridgepool {

Pool::BroadcastResult Pool::broadcast(std::string_view command, Json args, milliseconds timeout) {
  Impl& s = *impl_;
  BroadcastResult out;
  std::vector<WorkerPtr> targets;
  {
    std::lock_guard lock(s.mu);
    for (const auto& [id, w] : s.live) targets.push_back(w);
  }
  if (auto valid = s.validate(std::nullopt, command, args); !valid) {
    for (const auto& w : targets) out.results.emplace(w->id(), tl::unexpected(valid.error()));
    out.failed = targets.size();
    return out;
  }
  TimePoint deadline = s.clock.now() + timeout;
  // One thread per worker: a busy worker must not delay the others' share of the broadcast.
  std::vector<Result<Json>> replies(targets.size(), tl::unexpected(Error()));
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    threads.emplace_back([&, i] {
      auto w = s.checkout_worker(targets[i], deadline);
      if (!w) {
        replies[i] = tl::unexpected(w.error());
        return;
      }
      wire::Request request{0, std::string(command), args, std::nullopt, std::nullopt};
      replies[i] = s.attempt_on(*w, request, deadline, nullptr).result;
    });
  }
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < targets.size(); ++i) {
    (replies[i] ? out.succeeded : out.failed)++;
    if (!replies[i]) replies[i].error().context.command = command;
    out.results.emplace(targets[i]->id(), std::move(replies[i]));
  }
  s.emit("pool.broadcast", {{"succeeded", double(out.succeeded)}, {"failed", double(out.failed)}},
         {{"command", std::string(command)}});
  return out;
}

}  // namespace bridgepool
