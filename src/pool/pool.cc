// Pool's public API: start, execute, async, wait_ready, shutdown, statistics.
#include "bridgepool/pool.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "pool/pool_impl.h"
#include "pool/request_validation.h"
#include "process/sigpipe.h"
#include "pool/worker_command.h"


namespace bridgepool {
Result<void> Pool::Impl::validate(std::optional<std::string_view> session,
                                  std::string_view command, const Json& args) const {
  if (auto valid = validate_request(session, command, args); !valid) return valid;
  // Unknown commands are refused here, before any worker is touched (SPEC §11.4).
  auto table = command_table.load();
  if (table->idempotent.empty() || table->idempotent.contains(std::string(command))) return {};
  std::vector<std::string> names;
  for (const auto& [name, _] : table->idempotent) names.push_back(name);
  std::sort(names.begin(), names.end());
  Error e(ErrorCategory::kInvalidRequest,
          fmt::format("unknown command '{}'; available: {}", command, fmt::join(names, ", ")));
  e.context.operation = "execute";
  return tl::unexpected(std::move(e));
}

Pool::Impl::Impl(PoolConfig cfg)
    : config(std::move(cfg)),
      spawner(std::make_unique<PosixSpawner>()),
      backoff{config.respawn_backoff_initial, config.respawn_backoff_max},
      recovery(RecoveryLimits{static_cast<std::uint32_t>(config.max_health_failures),
                              static_cast<std::uint32_t>(config.max_checkin_failures),
                              static_cast<std::uint32_t>(config.size + 2)}),
      recycle(RecycleConfig{config.max_requests, config.max_requests_jitter, config.max_rss_mb}),
      health_config{config.health_check_interval, config.health_check_timeout,
                    static_cast<std::uint32_t>(config.max_health_failures),
                    config.health_recheck_interval},
      affinity(clock, AffinityConfig{config.session_ttl,
                                     config.session_mode == SessionMode::kStrict
                                         ? AffinityMode::kStrict
                                         : AffinityMode::kHint,
                                     64}),
      queue(config.max_queue),
      generation(std::make_shared<const SpawnGeneration>(
          SpawnGeneration{1, config, build_worker_env(config)})),
      command_table(std::make_shared<const CommandTable>()),
      retry_budget(config.resilience.retry_budget_ratio, config.resilience.retry_budget_min) {
  const ResilienceConfig& r = config.resilience;
  if (!r.enabled) return;
  breakers = r.breakers ? r.breakers
                        : std::make_shared<BreakerRegistry>(SteadyClock::instance(), config.events);
  if (r.breaker_enabled) breaker = breakers->get_or_create("pool:" + config.name, r.breaker);
  if (r.quarantine.enabled) quarantine = std::make_unique<PoisonQuarantine>(r.quarantine, clock);
}

Pool::Pool(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Pool::~Pool() { shutdown(); }

Result<std::unique_ptr<Pool>> Pool::start(PoolConfig config) {
  if (auto ok = config.resolve(); !ok) return tl::unexpected(ok.error());
  ignore_sigpipe_if_default();
  auto impl = std::make_unique<Impl>(std::move(config));
  if (auto ok = impl->loop.start(); !ok) return tl::unexpected(ok.error());
  impl->maintenance = std::make_unique<AsyncExecutor>(1);
  impl->schedule_maintenance();
  std::size_t initial = impl->config.eager ? impl->config.size : impl->config.min_ready;
  for (std::size_t i = 0; i < initial; ++i) impl->schedule_spawn(std::chrono::milliseconds(0));
  std::unique_ptr<Pool> pool(new Pool(std::move(impl)));
  auto ready = pool->wait_ready(pool->impl_->config.startup_timeout, pool->impl_->config.min_ready);
  if (!ready) {
    pool->shutdown(std::chrono::milliseconds(0));
    Error e = ready.error();
    // No worker could start: every worker is affected (critical; stop sending: circuit_break).
    classify_error(e, ClassifyInput{1, true, false, false});
    e.context.pool_name = pool->impl_->config.name;
    e.context.adapter = "pool";
    if (e.context.operation.empty()) e.context.operation = "start";
    return tl::unexpected(std::move(e));
  }
  return pool;
}

Result<void> Pool::wait_ready(milliseconds timeout, std::size_t count) {
  Impl& s = *impl_;
  if (count == 0) count = s.config.size;
  std::unique_lock lock(s.mu);
  bool done = s.state_cv.wait_for(lock, timeout, [&] {
    // Fail fast when every start so far has failed: waiting longer only repeats the failure.
    bool hopeless = s.live.empty() && s.consecutive_init_failures >= s.config.min_ready;
    return s.live.size() >= count || s.shutting_down || hopeless;
  });
  if (s.live.size() >= count) return {};
  if (s.shutting_down) {
    return make_error(ErrorCategory::kResource, fmt::format("pool '{}' is shutting down", s.config.name));
  }
  if (s.last_init_error && (done || s.live.empty())) {
    Error e = *s.last_init_error;
    e.message = fmt::format("pool '{}' could not start its workers: {}", s.config.name, e.message);
    return tl::unexpected(std::move(e));
  }
  Error e(ErrorCategory::kTimeout,
          fmt::format("pool '{}': {} of {} workers ready after {} ms", s.config.name,
                      s.live.size(), count, timeout.count()));
  e.context.operation = "wait_ready";
  return tl::unexpected(std::move(e));
}

Result<Json> Pool::Impl::finish(Result<Json> result, std::string_view command,
                                TimePoint started_at, Duration queue_wait,
                                std::optional<ClassifyInput> classify) {
  auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(clock.now() - started_at);
  if (result) {
    ok.fetch_add(1, std::memory_order_relaxed);
  } else {
    Error& e = result.error();
    e.context.command = command;
    e.context.elapsed = elapsed;
    e.context.queue_wait = std::chrono::duration_cast<std::chrono::microseconds>(queue_wait);
    if (classify) classify_error(e, *classify);
    e.context.pool_name = config.name;
    if (e.context.adapter.empty()) e.context.adapter = "pool";
    if (e.context.operation.empty()) e.context.operation = "execute";
    errors_by_category[static_cast<std::size_t>(e.category)].fetch_add(1, std::memory_order_relaxed);
  }
  if (config.events->has_handlers()) {
    emit("pool.request", {{"duration_us", double(elapsed.count())},
                          {"queue_wait_us", double(std::chrono::duration_cast<std::chrono::microseconds>(queue_wait).count())}},
         {{"command", std::string(command)},
          {"result", result ? "ok" : std::string(category_name(result.error().category))}});
  }
  return result;
}

Result<Json> Pool::execute(std::string_view command, Json args, const ExecuteOptions& options) {
  Impl& s = *impl_;
  TimePoint started_at = s.clock.now();
  if (auto valid = s.validate(std::nullopt, command, args); !valid) {
    return s.finish(tl::unexpected(valid.error()), command, started_at, Duration(0),
                    ClassifyInput{});
  }
  s.requests.fetch_add(1, std::memory_order_relaxed);

  TimePoint deadline = started_at + options.timeout.value_or(s.config.request_timeout);
  TimePoint checkout_deadline =
      std::min(deadline, started_at + options.checkout_timeout.value_or(s.config.checkout_timeout));
  wire::Request request{0, std::string(command), std::move(args), std::nullopt, std::nullopt};
  Duration queue_wait{0};
  auto once = [&](std::uint32_t, const std::string& avoid) {
    return s.run_once(request, checkout_deadline, deadline, options.on_chunk, avoid, queue_wait);
  };
  Result<Json> result = s.run_call(command, request.args, options, deadline, once);
  return s.finish(std::move(result), command, started_at, queue_wait);
}

std::future<Result<Json>> Pool::execute_async(std::string command, Json args,
                                              ExecuteOptions options) {
  Impl& s = *impl_;
  auto promise = std::make_shared<std::promise<Result<Json>>>();
  auto future = promise->get_future();
  AsyncExecutor* executor = nullptr;
  {
    std::lock_guard lock(s.mu);
    if (!s.shutting_down) {
      // One thread per worker that could serve at once (overflow included): more could only wait.
      if (!s.async) s.async = std::make_unique<AsyncExecutor>(s.config.size + s.config.max_overflow + 1);
      executor = s.async.get();
    }
  }
  auto task = [this, promise, command = std::move(command), args = std::move(args),
               options = std::move(options)]() mutable {
    promise->set_value(execute(command, std::move(args), options));
  };
  if (!executor || !executor->submit(task)) {
    promise->set_value(make_error(ErrorCategory::kResource,
                                  fmt::format("pool '{}' is shutting down", s.config.name)));
  }
  return future;
}

void Pool::shutdown(std::optional<milliseconds> grace_opt) {
  Impl& s = *impl_;
  milliseconds grace = grace_opt.value_or(s.config.shutdown_grace);
  auto deadline = std::chrono::steady_clock::now() + grace;
  {
    std::unique_lock lock(s.mu);
    if (s.shutting_down) {
      s.state_cv.wait(lock, [&] { return s.shut_down; });
      return;
    }
    s.shutting_down = true;
    Error e(ErrorCategory::kResource, fmt::format("pool '{}' is shutting down", s.config.name));
    e.context.operation = "checkout";
    s.fail_waiters_locked(e);
    // Requests in flight get the grace period to finish.
    s.state_cv.wait_until(lock, deadline, [&] { return s.borrowed == 0; });
  }
  // Async callers still queued fail fast now (checkout refuses); their threads end.
  std::unique_ptr<AsyncExecutor> async;
  {
    std::lock_guard lock(s.mu);
    async = std::move(s.async);
  }
  // All workers at once, on one shared deadline (SPEC §11.17): EOF + shutdown to idle ones,
  // SIGKILL to whatever is still busy past the grace; escalation timers run on the loop.
  auto remaining = std::max<milliseconds>(
      milliseconds(100),
      std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now()));
  s.loop.post([&s, remaining] { s.end_all_workers(remaining); });
  {
    std::unique_lock lock(s.mu);
    auto hard_deadline = std::chrono::steady_clock::now() + remaining + s.config.kill_grace +
                         std::chrono::seconds(2);
    // A spawn in flight on the loop registers its child in `known` before end_all_workers (posted
    // behind it) runs, so waiting for both means every child is seen, signalled and reaped.
    auto all_gone = [&] { return s.known.empty() && s.spawns_in_flight == 0; };
    s.state_cv.wait_until(lock, hard_deadline, all_gone);
    if (!all_gone()) {
      for (auto& [id, w] : s.known) w->process().signal(SIGKILL);
      s.state_cv.wait_for(lock, std::chrono::seconds(2), all_gone);
    }
  }
  if (async) async->stop();
  if (s.maintenance) s.maintenance->stop();  // its tasks end quickly: every worker is gone
  s.loop.stop();
  std::lock_guard lock(s.mu);
  if (!s.known.empty()) {
    s.config.logger->log(LogLevel::kError, "pool",
                         fmt::format("{} workers could not be reaped at shutdown", s.known.size()));
  }
  s.shut_down = true;
  s.state_cv.notify_all();
}

std::shared_ptr<CircuitBreaker> Pool::breaker() const { return impl_->breaker; }

PoolStats Pool::stats() const {
  const Impl& s = *impl_;
  PoolStats st;
  {
    std::lock_guard lock(s.mu);
    st.name = s.config.name;
    st.size = s.config.size;
    st.live = s.live.size();
    st.idle = s.idle.size();
    st.busy = s.borrowed;
    st.starting = s.starting;
    st.queue_length = s.queue.size();
    st.started = s.started;
    st.replaced = s.replaced;
    st.init_failures = s.init_failures;
    st.exits = s.exits;
    st.discarded_workers = s.discarded;
    for (const auto& [id, w] : s.live) st.degraded += w->state() == WorkerState::kDegraded ? 1 : 0;
    st.health_checks = s.health_checks;
    st.health_check_failures = s.health_check_failures;
    st.recycled = s.recycled;
    st.sessions = s.affinity.size();
    st.generation = s.generation->number;
    st.overflow_retired = s.overflow_retired;
    if (s.last_init_error) st.last_init_error = s.last_init_error->message;
  }
  st.requests = s.requests.load();
  st.ok = s.ok.load();
  st.rerouted = s.rerouted.load();
  auto sc = s.affinity.counters();
  st.session_hits = sc.hits;
  st.session_misses = sc.misses;
  st.session_rebinds = sc.rebinds;
  st.session_expirations = sc.expirations;
  st.session_losses = sc.losses;
  st.session_lost_calls = s.session_lost_calls.load();
  st.retries = s.retries.load();
  st.retries_denied = s.retries_denied.load();
  st.circuit_rejected = s.circuit_rejected.load();
  st.quarantine_refused = s.quarantine_refused.load();
  if (s.breaker) st.breaker_state = std::string(circuit_state_name(s.breaker->state()));
  for (std::size_t i = 0; i < s.errors_by_category.size(); ++i) {
    auto n = s.errors_by_category[i].load();
    if (n > 0) st.errors[std::string(category_name(static_cast<ErrorCategory>(i)))] = n;
  }
  return st;
}

std::vector<WorkerInfo> Pool::workers() const {
  std::vector<WorkerPtr> all;
  {
    std::lock_guard lock(impl_->mu);
    for (const auto& [id, w] : impl_->known) all.push_back(w);
  }
  std::vector<WorkerInfo> out;
  for (const auto& w : all) {
    WorkerSnapshot snap = w->snapshot();
    WorkerInfo info;
    info.id = snap.id;
    info.pid = snap.pid;
    info.state = state_name(snap.state);
    info.health = health_name(snap.health);
    info.requests = snap.requests;
    info.python_errors = snap.python_errors;
    info.failures = snap.failures;
    info.uptime_s = std::chrono::duration<double>(snap.uptime).count();
    info.handlers_version = snap.handlers_version;
    info.current_session = snap.current_session;
    {
      std::lock_guard lock(impl_->mu);
      auto t = impl_->tracking.find(snap.id);
      if (t != impl_->tracking.end()) info.generation = t->second.generation;
    }
    for (const auto& t : snap.history) {
      info.history.push_back(TransitionInfo{
          std::string(state_name(t.from)), std::string(state_name(t.to)),
          std::string(reason_name(t.reason)),
          std::chrono::duration<double, std::milli>(t.time_in_previous).count(),
          std::chrono::duration_cast<std::chrono::milliseconds>(t.wall_time.time_since_epoch())
              .count()});
    }
    out.push_back(std::move(info));
  }
  std::sort(out.begin(), out.end(), [](const WorkerInfo& a, const WorkerInfo& b) {
    return a.id.size() != b.id.size() ? a.id.size() < b.id.size() : a.id < b.id;
  });
  return out;
}

std::vector<CommandSpec> Pool::commands() const {
  std::lock_guard lock(impl_->mu);
  return impl_->commands;
}

EventBus& Pool::events() { return *impl_->config.events; }

const PoolConfig& Pool::config() const { return impl_->config; }

}  // namespace bridgepool
