// A pool's workers entering and leaving service: starts (through the supervisor), admission,
// checkin, retirement and shutdown. These span several components (pool_impl.h); each step
// takes one component's lock at a time, in the order written there.
#include <signal.h>
#include <unistd.h>

#include <fmt/format.h>

#include "pool/pool_impl.h"
#include "pool/worker_command.h"

namespace bridgepool {

Error Pool::Impl::shutting_down_error(std::string_view operation) const {
  Error e(ErrorCategory::kResource, fmt::format("{} '{}' is shutting down", kind, config.name));
  e.context.operation = std::string(operation);
  return e;
}

Result<void> Pool::Impl::start_workers() {
  if (auto ok = loop.start(); !ok) return ok;
  maintenance.start();
  const std::size_t initial = config.eager ? config.size : config.min_ready;
  capacity.reserve_initial(initial);
  for (std::size_t i = 0; i < initial; ++i) launch_after(std::chrono::milliseconds(0));
  // The spares follow once min_ready workers serve (on_ready).
  return {};
}

void Pool::Impl::launch_after(std::chrono::milliseconds delay, StartRole role) {
  loop.post_after(delay, [this, role] {
    if (capacity.closed()) {
      capacity.cancel_start(role);
      registry.notify();
      return;
    }
    GenerationPtr gen = capacity.generation();
    const std::uint64_t number = capacity.next_worker_number();
    if (role == StartRole::kSpare) spares.note_start(number);
    LaunchSpec spec;
    spec.number = number;
    spec.generation = gen->number;
    spec.spawn = worker_spawn_spec(gen->config, fmt::format("w{}", number), ::getpid(), gen->env);
    spec.spawn.generation = gen->number;
    spec.init_commands = gen->config.init_commands;
    supervisor.launch(std::move(spec));
  });
}

Tracking Pool::Impl::new_tracking(std::uint64_t generation) {
  Tracking t{HealthTracker(health_config, clock.now()), recycle.limit_for_new_worker(random)};
  t.generation = generation;
  t.last_used = clock.now();
  return t;
}

void Pool::Impl::note_commands(const WorkerPtr& worker, std::uint64_t generation) {
  // Requests are validated against the commands of the newest generation in service: after a
  // rolling restart that adds a command, it is accepted as soon as a new worker serves.
  if (auto current = command_table.load(); !current || current->generation < generation) {
    auto table = std::make_shared<CommandTable>();
    table->generation = generation;
    for (const auto& c : worker->handshake().commands) {
      table->commands.push_back(CommandSpec{c.name, c.idempotent});
      table->idempotent[c.name] = c.idempotent;
    }
    command_table.store(std::move(table));
  }
}

void Pool::Impl::on_ready(const WorkerPtr& worker, std::uint64_t generation, Duration) {
  const StartRole role =
      spares.end_start(worker->number()) ? StartRole::kSpare : StartRole::kService;
  if (role == StartRole::kService) {
    note_commands(worker, generation);
    affinity.add_worker(worker->number());
  }
  const bool serving =
      role == StartRole::kSpare
          ? capacity.on_started(role)
          // Counted in service under the registry's lock, with the admission itself: a check-in
          // asking capacity.try_begin_recycle() (under that lock too) never counts a worker that is
          // not admitted yet, so two workers cannot both leave on its account.
          : registry.admit(worker, new_tracking(generation),
                           [&] { return capacity.on_started(role); });
  if (!serving) {
    // Started while the pool shut down: it never serves.
    telemetry.transit(*worker, WorkerState::kTerminating, TransitionReason::kShutdown);
    supervisor.terminate(worker, config.shutdown_grace);
    registry.notify();
    return;
  }
  if (role == StartRole::kSpare) {
    admit_spare(worker, generation);
    return;
  }
  // The initial spares start once start() has its min_ready workers, eager or lazy: they never
  // compete with those for the CPU, and a spare's failed start never fails start().
  if (!initial_spares_launched && registry.counts().live >= config.min_ready) {
    initial_spares_launched = true;
    const std::size_t spare_starts = capacity.reserve_initial_spares();
    for (std::size_t i = 0; i < spare_starts; ++i) {
      launch_after(std::chrono::milliseconds(0), StartRole::kSpare);
    }
  }
}

void Pool::Impl::on_start_failed(std::uint64_t number, std::uint64_t generation, Error error) {
  if (spares.end_start(number)) {
    if (auto delay = capacity.on_start_failed(error, generation, StartRole::kSpare)) {
      launch_after(*delay, StartRole::kSpare);
    }
    registry.notify();  // wait_ready: a failed start may make waiting hopeless
    return;
  }
  // A ready spare, if any, fills the slot now (before waiters are told nobody can serve).
  if (auto delay = capacity.on_start_failed(error, generation)) fill_slot(*delay, "");
  // Nobody can be served while no worker is alive and starts keep failing: tell the waiters
  // now instead of letting each run into its checkout timeout.
  registry.fail_waiters_if_none_live(error);
  registry.notify();  // wait_ready: a failed start may make waiting hopeless
}

void Pool::Impl::on_exit(const WorkerPtr& worker, const std::string& how) {
  counters.exits.fetch_add(1, std::memory_order_relaxed);
  worker_failed(worker, FailureKind::kProcessExited, 1, how, false);
}

void Pool::Impl::worker_failed(const WorkerPtr& worker, FailureKind kind, std::uint32_t consecutive,
                               const std::string& detail, bool borrowed) {
  FailureReport report;
  report.kind = kind;
  report.consecutive_failures = consecutive;
  report.shutting_down = capacity.closed();
  const RecoveryDecision decision = recovery.decide(report);
  switch (decision.worker) {
    case WorkerAction::kKeep:
      if (borrowed) checkin_ok(worker);
      return;
    case WorkerAction::kDegradeAndProbeSoon:
      // Out of rotation until a health probe passes, one recheck interval from now.
      if (worker->state() != WorkerState::kDegraded) {
        telemetry.transit(*worker, WorkerState::kDegraded, decision.transition,
                          {{"detail", detail}});
      }
      worker->set_health(WorkerHealth::kUnhealthy);
      if (kind == FailureKind::kCheckinError) {
        registry.with_tracking(worker->id(),
                               [&](Tracking& t) { t.health.mark_suspect(clock.now()); });
      }
      if (borrowed) registry.to_degraded(worker);
      return;
    case WorkerAction::kRemove:
    case WorkerAction::kKill: {
      // kKill: SIGKILL now — it must not run one more instruction of a request we have
      // already failed, and nothing it writes may be read. kRemove: the shutdown command, EOF,
      // then SIGTERM/SIGKILL after the grace (harmless for a process already gone).
      const bool kill = decision.worker == WorkerAction::kKill;
      if (borrowed) {
        checkin_remove(worker, decision.transition, kill, detail);
      } else {
        retire(worker, decision.transition, kill, detail);
      }
      return;
    }
  }
}

bool Pool::Impl::retire(const WorkerPtr& worker, TransitionReason reason, bool kill,
                        const std::string& detail, bool recycle_reserved) {
  Error gone(ErrorCategory::kConnection,
             fmt::format("worker {} left service ({}) while this call waited for it", worker->id(),
                         to_string(reason)));
  gone.context.worker_id = worker->id();
  if (spares.remove(worker)) {
    spare_left(worker, reason, kill, detail);
    return true;
  }
  if (!registry.remove(worker, gone)) {
    if (recycle_reserved) capacity.end_recycle();
    return false;
  }
  if (auto delay = capacity.on_removed(StartRole::kService, recycle_reserved)) {
    fill_slot(*delay, worker->id());
  }
  pending_closes.drop_worker(worker->id());
  if (std::size_t lost = affinity.drop_worker(worker->number()); lost > 0) {
    telemetry.emit(EventId::kSessionAffinity, {{"lost", double(lost)}},
                   {{"outcome", "worker_removed"}, {"worker_id", worker->id()}});
  }
  telemetry.transit(*worker, WorkerState::kTerminating, reason, {{"detail", detail}});
  // SIGKILL for a worker whose state cannot be trusted (protocol violation, missed deadline):
  // it must not run one more instruction of a request we have already failed.
  if (kill) supervisor.kill(worker);
  telemetry.log(LogLevel::kWarn, fmt::format("worker removed ({}): {}", to_string(reason), detail),
                worker->id());
  return true;
}

void Pool::Impl::checkin_remove(const WorkerPtr& worker, TransitionReason reason, bool kill,
                                const std::string& detail, bool recycle_reserved) {
  if (retire(worker, reason, kill, detail, recycle_reserved) && !kill) {
    supervisor.terminate(worker, config.shutdown_grace);
  }
  registry.release(worker);
}

std::optional<Leave> Pool::Impl::leave_on_return(const WorkerPtr& worker, Tracking& t) {
  t.health.note_activity(clock.now());
  t.last_used = clock.now();
  if (auto why = recycle.check(worker->requests(), t.rss_mb, t.recycle_limit)) t.recycle_due = why;
  if (t.retire_when_idle) return Leave{TransitionReason::kReplaced, "rolling restart"};
  if (t.recycle_due && capacity.try_begin_recycle()) {
    counters.recycled.fetch_add(1, std::memory_order_relaxed);
    return Leave{TransitionReason::kRecycled,
                 *t.recycle_due == RecycleReason::kMaxRss ? "memory limit (max_rss_mb) reached"
                                                          : "request limit (max_requests) reached",
                 true};
  }
  return std::nullopt;
}

void Pool::Impl::checkin_ok(const WorkerPtr& worker) {
  worker->reset_failures();
  if (!telemetry.transit(*worker, WorkerState::kReady, TransitionReason::kCheckinOk)) {
    // It left service meanwhile (its exit was noticed): it goes with its borrower.
    registry.release(worker);
    return;
  }
  auto leave = registry.check_in(worker, [&](Tracking& t) { return leave_on_return(worker, t); });
  if (leave) checkin_remove(worker, leave->reason, false, leave->detail, leave->recycle_reserved);
}

void Pool::Impl::return_unused(const WorkerPtr& worker) {
  registry.check_in(worker, [](Tracking&) { return std::optional<Leave>(); });
}

void Pool::Impl::shutdown(std::optional<std::chrono::milliseconds> grace_opt) {
  std::lock_guard once(shutdown_mu);
  if (shut_down) return;
  const std::chrono::milliseconds grace = grace_opt.value_or(config.shutdown_grace);
  const TimePoint deadline = clock.now() + grace;
  // No new work, no new workers; every waiting caller fails now.
  capacity.close();
  supervisor.close();
  registry.close(shutting_down_error("checkout"));
  // Requests in flight get the grace period to finish.
  registry.wait([](const RegistryCounts& c) { return c.busy == 0; }, deadline);
  // Async callers still queued fail fast now (checkout refuses); their threads end.
  std::shared_ptr<AsyncExecutor> async_threads;
  {
    std::lock_guard lock(async_mu);
    async_threads = std::move(async);
  }
  // All workers at once, on one shared deadline (SPEC §11.17): EOF + shutdown to unused ones,
  // SIGKILL to whatever is still busy (or starting) past the grace. On the loop, behind any
  // spawn already queued there, so every child is seen.
  const auto remaining = std::max<std::chrono::milliseconds>(
      std::chrono::milliseconds(100),
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock.now()));
  loop.post([this, remaining] {
    std::vector<WorkerPtr> unused = registry.take_all_unused();
    // Spares too (one being probed is killed below, like a busy worker).
    for (auto& w : spares.take_if([](const Tracking&) { return true; })) unused.push_back(w);
    for (const auto& w : unused) {
      telemetry.transit(*w, WorkerState::kTerminating, TransitionReason::kShutdown);
      supervisor.terminate(w, remaining);
    }
    for (const auto& w : supervisor.workers()) {
      if (std::find(unused.begin(), unused.end(), w) == unused.end()) supervisor.kill(w);
    }
  });
  const TimePoint hard_deadline =
      clock.now() + remaining + config.kill_grace + std::chrono::seconds(2);
  if (!supervisor.wait_idle(hard_deadline)) {
    supervisor.kill_all();
    supervisor.wait_idle(clock.now() + std::chrono::seconds(2));
  }
  if (async_threads) async_threads->stop();
  maintenance.stop();  // its round ends quickly: every worker is gone
  supervisor.stop();
  spawner->stop();  // the fork servers, now that every worker they forked is reaped
  loop.stop();
  if (auto left = supervisor.workers(); !left.empty()) {
    telemetry.log(LogLevel::kError,
                  fmt::format("{} workers could not be reaped at shutdown", left.size()));
  }
  shut_down = true;
}

}  // namespace bridgepool
