// Session affinity in the pool (SPEC §5): a session sticks to the worker that first served it;
// new sessions go to the least-loaded idle worker; a session whose worker was removed fails with
// `session_lost` (strict) or is rebound (hint) — never silently served by another worker.
#include <fmt/format.h>

#include "pool/pool_impl.h"

namespace bridgepool {
namespace {

constexpr std::size_t kMaxClosesPerRound = 256;

}  // namespace

Error Pool::Impl::session_lost(std::string_view session_id, WorkerKey worker) const {
  Error e(ErrorCategory::kSession,
          fmt::format("session_lost: session '{}' was bound to worker w{}, which was removed; "
                      "its state is gone (close the session to start it again)",
                      session_id, worker));
  e.context.operation = "execute_in_session";
  e.context.session_id = session_id;
  e.context.worker_id = fmt::format("w{}", worker);
  return e;
}

PoolResilience::Once Pool::Impl::run_session_once(std::string_view session_id,
                                                  wire::Request& request,
                                                  const ExecuteOptions& options,
                                                  TimePoint checkout_deadline, TimePoint deadline,
                                                  Duration& queue_wait) {
  auto fail = [&](Error e) {
    e.context.session_id = session_id;
    if (e.category == ErrorCategory::kSession) {
      counters.session_lost_calls.fetch_add(1, std::memory_order_relaxed);
    }
    PoolResilience::Once once;
    once.no_time_left = e.category == ErrorCategory::kTimeout;
    once.refused_by_pool = capacity.closed();
    once.result = tl::unexpected(std::move(e));
    return once;
  };
  const bool strict = config.session_mode == SessionMode::kStrict;
  const std::size_t max_routes = config.size + config.max_overflow + 2;
  const wire::PreparedRequest prepared = wire::prepare_request(request);
  const bool may_hand_off = wire::payload_bytes(prepared) <= kHandoffMaxBytes;
  for (std::size_t route = 1; route <= max_routes; ++route) {
    LookupResult where = affinity.lookup(session_id);
    if (telemetry.emitting(EventId::kSessionAffinity)) {
      static constexpr const char* kOutcome[] = {"hit", "miss", "lost", "rebind"};
      telemetry.emit(EventId::kSessionAffinity, {},
                     {{"outcome", kOutcome[static_cast<int>(where.outcome)]},
                      {"session_id", std::string(session_id)}});
    }
    if (where.outcome == LookupOutcome::kLost) {
      return fail(session_lost(session_id, where.lost_worker));
    }
    bool fresh_binding = false;  // bound by this very call: no state can have been lost yet
    // A bound session's call may be sent by the caller that frees its worker (run_once says
    // why); one still to be bound is not: binding and owed closes come first.
    Sending sending(prepared, deadline);
    const WorkerRegistry::Handoff handoff = [this, &sending](const WorkerPtr& w) {
      send_attempt(w, sending);
    };
    const TimePoint checkout_start = clock.now();
    Result<WorkerPtr> worker = tl::unexpected(Error());
    if (where.outcome == LookupOutcome::kHit) {
      WorkerPtr target = registry.find(*where.worker);
      if (target) {
        worker =
            registry.checkout_worker(target, checkout_deadline, may_hand_off ? &handoff : nullptr);
      }
      if (!target || (!worker && worker.error().category == ErrorCategory::kConnection)) {
        // Removed between the lookup and now: the binding is being dropped.
        if (strict) return fail(session_lost(session_id, *where.worker));
        affinity.close(session_id);
        continue;
      }
    } else {
      // Least-loaded: the idle worker holding the fewest sessions (ties: the most recently
      // used, which is warmest); else wait for any worker.
      WorkerPtr idle = registry.take_least_loaded(
          [this](const Worker& w) { return affinity.sessions_on(w.number()); });
      worker = idle ? Result<WorkerPtr>(idle) : registry.checkout(checkout_deadline);
      if (worker) {
        BindResult bound = affinity.bind(session_id, (*worker)->number());
        if (bound.outcome != BindOutcome::kBound) {
          // Lost a race (another call bound it first, or the worker left): hand this worker
          // back unused and route again from the top.
          return_unused(*worker);
          if (bound.outcome == BindOutcome::kSessionLost) {
            return fail(session_lost(session_id, bound.worker));
          }
          continue;
        }
        fresh_binding = true;
        // A close of an earlier session with this id may still be owed to this worker. It
        // must reach the worker before the new session's first call (the new session starts
        // empty) and never after it (it would wipe the new state): send it now, we hold it.
        if (pending_closes.take((*worker)->id(), session_id)) {
          auto closed = send_closes(*worker, {std::string(session_id)}, deadline, false);
          if (!closed) return fail(closed.error());
        }
      }
    }
    queue_wait += clock.now() - checkout_start;
    if (!worker) return fail(worker.error());
    if (!sending.done) send_attempt(*worker, sending);
    Attempt a = finish_attempt(*worker, sending, request, options.on_chunk, options.close_worker);
    if (a.fault == WorkerFault::kNotDelivered) {
      // The session's worker died before it got the request: its state died with it — unless
      // this call had just bound it, in which case there was no state yet: bind afresh.
      if (strict && !fresh_binding) return fail(session_lost(session_id, (*worker)->number()));
      affinity.close(session_id);
      continue;
    }
    PoolResilience::Once once;
    if (!a.result) a.result.error().context.session_id = session_id;
    once.result = std::move(a.result);
    once.worker_id = (*worker)->id();
    once.may_have_run = true;
    once.killed_worker = ends_worker(a.fault);
    return once;
  }
  return fail(Error(
      ErrorCategory::kConnection,
      fmt::format("session '{}': no usable worker after {} attempts", session_id, max_routes)));
}

Result<bool> Pool::Impl::close_session(std::string_view session_id) {
  if (session_id.empty()) {
    return make_error(ErrorCategory::kInvalidRequest, "session id is empty");
  }
  auto closed = affinity.close(session_id);
  if (!closed) return false;
  if (closed->lost) return true;  // its worker and the state are gone already
  WorkerPtr w = registry.find(closed->worker);
  if (!w) return true;
  // Tell the worker to drop the session's state; if it is busy, the maintenance thread does it
  // when the worker is next idle, so close_session never waits on someone else's request.
  pending_closes.add(w->id(), std::string(session_id));
  return true;
}

Result<void> Pool::Impl::send_closes(const WorkerPtr& worker,
                                     const std::vector<std::string>& session_ids,
                                     TimePoint deadline, bool give_back) {
  for (const auto& id : session_ids) {
    wire::Request request{0, "close_session", Json{{"session_id", id}}, std::nullopt, std::nullopt};
    CallOutcome outcome = worker->call(request, deadline, nullptr);
    if (outcome.fault != WorkerFault::kNone) {
      Error e = outcome.result ? Error(ErrorCategory::kCommunication, "data after the reply")
                               : outcome.result.error();
      worker_failed(worker, failure_kind_of(outcome.fault), 1, "close_session: " + e.message, true);
      return tl::unexpected(std::move(e));
    }
  }
  if (give_back) return_unused(worker);
  return {};
}

void Pool::Impl::sweep_sessions() {
  auto expired = affinity.expire();
  if (expired.empty()) return;
  telemetry.emit(EventId::kSessionAffinity, {{"expired", double(expired.size())}},
                 {{"outcome", "expired"}});
  for (auto& e : expired) {
    if (WorkerPtr w = registry.find(e.worker)) pending_closes.add(w->id(), std::move(e.session_id));
  }
}

void Pool::Impl::flush_pending_closes() {
  if (pending_closes.empty()) return;
  std::vector<WorkerPtr> owed =
      registry.take_idle([this](const WorkerPtr& w, Tracking&, bool degraded) {
        return !degraded && pending_closes.owes(w->id());
      });
  const TimePoint deadline = clock.now() + config.health_check_timeout;
  for (const auto& w : owed) {
    (void)send_closes(w, pending_closes.take_some(w->id(), kMaxClosesPerRound), deadline, true);
  }
}

}  // namespace bridgepool
