// Session affinity in the pool (SPEC §5): a session sticks to the worker that first served it;
// new sessions go to the least-loaded idle worker; a session whose worker was removed fails with
// `session_lost` (strict) or is rebound (hint) — never silently served by another worker.
#include <fmt/format.h>

#include "pool/pool_impl.h"

namespace bridgepool {
namespace {

constexpr std::size_t kMaxClosesPerRound = 256;

}  // namespace

WorkerPtr Pool::Impl::live_worker(WorkerKey key) const {
  std::lock_guard lock(mu);
  auto it = live.find(fmt::format("w{}", key));
  return it == live.end() ? nullptr : it->second;
}

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

Result<WorkerPtr> Pool::Impl::checkout_for_new_session(TimePoint deadline) {
  {
    std::lock_guard lock(mu);
    if (!shutting_down && !idle.empty()) {
      // Least-loaded: the idle worker holding the fewest sessions (ties: the most recently used,
      // which is warmest).
      auto best = idle.rbegin();
      std::size_t best_load = affinity.sessions_on((*best)->number());
      for (auto it = idle.rbegin(); it != idle.rend(); ++it) {
        std::size_t load = affinity.sessions_on((*it)->number());
        if (load < best_load) {
          best = it;
          best_load = load;
        }
      }
      WorkerPtr w = *best;
      idle.erase(std::next(best).base());
      ++borrowed;
      return w;
    }
  }
  return checkout(deadline);
}

Result<Json> Pool::execute_in_session(std::string_view session_id, std::string_view command,
                                      Json args, const ExecuteOptions& options) {
  Impl& s = *impl_;
  TimePoint started_at = s.clock.now();
  if (auto valid = s.validate(session_id, command, args); !valid) {
    return s.finish(tl::unexpected(valid.error()), command, started_at, Duration(0),
                    ClassifyInput{});
  }
  s.requests.fetch_add(1, std::memory_order_relaxed);
  TimePoint deadline = started_at + options.timeout.value_or(s.config.request_timeout);
  TimePoint checkout_deadline =
      std::min(deadline, started_at + options.checkout_timeout.value_or(s.config.checkout_timeout));
  wire::Request request{0, std::string(command), std::move(args), std::string(session_id),
                        std::nullopt};
  Duration queue_wait{0};
  // A session's calls go to its own worker, so a retry goes there too (no avoid_worker); a
  // session whose worker died fails with session_lost, which the classifier never retries.
  auto once = [&](std::uint32_t, const std::string&) {
    return s.run_session_once(session_id, request, options, checkout_deadline, deadline,
                              queue_wait);
  };
  Result<Json> result = s.run_call(command, request.args, options, deadline, once);
  if (!result) result.error().context.session_id = session_id;
  return s.finish(std::move(result), command, started_at, queue_wait);
}

Pool::Impl::Once Pool::Impl::run_session_once(std::string_view session_id,
                                              wire::Request& request,
                                              const ExecuteOptions& options,
                                              TimePoint checkout_deadline, TimePoint deadline,
                                              Duration& queue_wait) {
  Impl& s = *this;
  auto fail = [&](Error e) {
    e.context.session_id = session_id;
    if (e.category == ErrorCategory::kSession) s.session_lost_calls.fetch_add(1);
    bool timed_out = e.category == ErrorCategory::kTimeout;
    return Once{tl::unexpected(std::move(e)), "", false, false, timed_out};
  };
  const bool strict = s.config.session_mode == SessionMode::kStrict;
  const int max_attempts = static_cast<int>(s.config.size) + 2;
  for (int attempt = 1; attempt <= max_attempts; ++attempt) {
    LookupResult where = s.affinity.lookup(session_id);
    if (s.config.events->has_handlers()) {
      static constexpr const char* kOutcome[] = {"hit", "miss", "lost", "rebind"};
      s.emit("pool.session.affinity", {},
             {{"outcome", kOutcome[static_cast<int>(where.outcome)]},
              {"session_id", std::string(session_id)}});
    }
    bool fresh_binding = false;  // bound by this very call: no state can have been lost yet
    TimePoint checkout_start = s.clock.now();
    Result<WorkerPtr> worker = tl::unexpected(Error());
    if (where.outcome == LookupOutcome::kLost) {
      return fail(s.session_lost(session_id, where.lost_worker));
    }
    if (where.outcome == LookupOutcome::kHit) {
      WorkerPtr target = s.live_worker(*where.worker);
      if (!target) {
        // Removed between the lookup and now: the binding is being dropped.
        if (strict) return fail(s.session_lost(session_id, *where.worker));
        s.affinity.close(session_id);
        continue;
      }
      worker = s.checkout_worker(target, checkout_deadline);
      if (!worker && worker.error().category == ErrorCategory::kConnection) {
        if (strict) return fail(s.session_lost(session_id, *where.worker));
        s.affinity.close(session_id);
        continue;
      }
    } else {
      worker = s.checkout_for_new_session(checkout_deadline);
      if (worker) {
        BindResult bound = s.affinity.bind(session_id, (*worker)->number());
        if (bound.outcome != BindOutcome::kBound) {
          // Lost a race (another call bound it first, or the worker left): hand this worker
          // back unused and route again from the top.
          s.return_unused(*worker);
          if (bound.outcome == BindOutcome::kSessionLost) {
            return fail(s.session_lost(session_id, bound.worker));
          }
          continue;
        }
        fresh_binding = true;
        // A close of an earlier session with this id may still be queued for this worker. It
        // must reach the worker before the new session's first call (the new session starts
        // empty) and never after it (it would wipe the new state): send it now, we hold the
        // worker.
        if (s.take_pending_close((*worker)->id(), session_id)) {
          auto closed = s.send_close_now(*worker, session_id, deadline);
          if (!closed) return fail(closed.error());
        }
      }
    }
    queue_wait += s.clock.now() - checkout_start;
    if (!worker) return fail(worker.error());
    Impl::Attempt a = s.attempt_on(*worker, request, deadline, options.on_chunk);
    if (a.try_another_worker) {
      // The session's worker died before it got the request: its state died with it — unless
      // this call had just bound it, in which case there was no state yet: bind afresh.
      if (strict && !fresh_binding) {
        return fail(s.session_lost(session_id, (*worker)->number()));
      }
      s.affinity.close(session_id);
      continue;
    }
    if (!a.result) a.result.error().context.session_id = session_id;
    return Once{std::move(a.result), (*worker)->id(), a.fault != WorkerFault::kNotDelivered,
                ends_worker(a.fault), false};
  }
  Error e(ErrorCategory::kConnection,
          fmt::format("session '{}': no usable worker after {} attempts", session_id, max_attempts));
  return fail(std::move(e));
}

Result<bool> Pool::close_session(std::string_view session_id) {
  Impl& s = *impl_;
  auto closed = s.affinity.close(session_id);
  if (!closed) return false;
  if (closed->lost) return true;  // its worker and the state are gone already
  WorkerPtr w = s.live_worker(closed->worker);
  if (!w) return true;
  // Tell the worker to drop the session's state; if it is busy, the maintenance thread does it
  // when the worker is next idle, so close_session never waits on someone else's request.
  std::lock_guard lock(s.mu);
  s.pending_closes[w->id()].push_back(std::string(session_id));
  return true;
}

bool Pool::Impl::take_pending_close(const std::string& worker_id, std::string_view session_id) {
  std::lock_guard lock(mu);
  auto p = pending_closes.find(worker_id);
  if (p == pending_closes.end()) return false;
  auto before = p->second.size();
  std::erase(p->second, session_id);
  bool found = p->second.size() != before;
  if (p->second.empty()) pending_closes.erase(p);
  return found;
}

Result<void> Pool::Impl::send_close_now(const WorkerPtr& worker, std::string_view session_id,
                                        TimePoint deadline) {
  wire::Request request{0, "close_session", Json{{"session_id", session_id}}, std::nullopt,
                        std::nullopt};
  CallOutcome outcome = worker->call(request, deadline, nullptr);
  if (outcome.fault == WorkerFault::kNone) return {};
  Error e = outcome.result ? Error(ErrorCategory::kCommunication, "data after the reply")
                           : outcome.result.error();
  checkin_remove(worker, outcome.fault == WorkerFault::kTimeout ? TransitionReason::kTimeout
                                                                : TransitionReason::kExited,
                 true, "close_session: " + e.message);
  return tl::unexpected(std::move(e));
}

void Pool::Impl::sweep_sessions() {
  auto expired = affinity.expire();
  if (expired.empty()) return;
  emit("pool.session.affinity", {{"expired", double(expired.size())}}, {{"outcome", "expired"}});
  std::lock_guard lock(mu);
  for (auto& e : expired) {
    auto it = live.find(fmt::format("w{}", e.worker));
    if (it != live.end()) pending_closes[it->first].push_back(std::move(e.session_id));
  }
}

void Pool::Impl::send_closes(const WorkerPtr& worker, const std::vector<std::string>& ids) {
  TimePoint deadline = clock.now() + config.health_check_timeout;
  for (const auto& id : ids) {
    wire::Request request{0, "close_session", Json{{"session_id", id}}, std::nullopt,
                          std::nullopt};
    CallOutcome outcome = worker->call(request, deadline, nullptr);
    if (outcome.fault != WorkerFault::kNone) {
      checkin_remove(worker, outcome.fault == WorkerFault::kTimeout
                                 ? TransitionReason::kTimeout
                                 : TransitionReason::kExited,
                     true, "close_session: " + outcome.result.error().message);
      return;
    }
  }
  return_unused(worker);
}

void Pool::Impl::flush_pending_closes() {
  std::vector<std::pair<WorkerPtr, std::vector<std::string>>> work;
  {
    std::lock_guard lock(mu);
    if (pending_closes.empty() || shutting_down) return;
    for (auto it = idle.begin(); it != idle.end();) {
      auto p = pending_closes.find((*it)->id());
      if (p == pending_closes.end()) {
        ++it;
        continue;
      }
      std::vector<std::string> ids;
      auto& queued = p->second;
      std::size_t n = std::min(queued.size(), kMaxClosesPerRound);
      ids.assign(std::make_move_iterator(queued.begin()), std::make_move_iterator(queued.begin() + n));
      queued.erase(queued.begin(), queued.begin() + n);
      if (queued.empty()) pending_closes.erase(p);
      work.emplace_back(*it, std::move(ids));
      ++borrowed;
      it = idle.erase(it);
    }
  }
  for (auto& [w, ids] : work) send_closes(w, ids);
}

}  // namespace bridgepool
