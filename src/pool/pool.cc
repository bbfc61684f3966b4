// Pool's public API: start, execute (sync, async, in sessions), broadcast, wait_ready,
// shutdown, statistics. The work is done by the components of Pool::Impl (pool_impl.h).
#include "bridgepool/pool.h"

#include <algorithm>
#include <thread>

#include <fmt/format.h>

#include "pool/pool_impl.h"
#include "pool/worker_command.h"
#include "process/fork_server_spawner.h"
#include "process/sigpipe.h"

namespace bridgepool {
namespace {

std::shared_ptr<const Clock> clock_of(const PoolConfig& config) {
  if (config.clock) return config.clock;
  return std::shared_ptr<const Clock>(&SteadyClock::instance(), [](const Clock*) {});
}

UniformRandom random_of(const PoolConfig& config) {
  if (config.random) return config.random;
  auto engine = std::make_shared<std::mt19937_64>(std::random_device{}());
  auto mu = std::make_shared<std::mutex>();
  return [engine, mu] {
    std::lock_guard lock(*mu);
    return std::uniform_real_distribution<double>(0.0, 1.0)(*engine);
  };
}

}  // namespace

Pool::Impl::Impl(PoolConfig cfg, std::string kind_name)
    : config(std::move(cfg)),
      kind(std::move(kind_name)),
      clock_owner(clock_of(config)),
      clock(*clock_owner),
      spawner(config.spawner ? config.spawner : default_spawner()),
      recovery(RecoveryLimits{static_cast<std::uint32_t>(config.max_health_failures),
                              static_cast<std::uint32_t>(config.max_checkin_failures)}),
      recycle(RecycleConfig{config.max_requests, config.max_requests_jitter, config.max_rss_mb}),
      health_config{config.health_check_interval, config.health_check_timeout,
                    static_cast<std::uint32_t>(config.max_health_failures),
                    config.health_recheck_interval},
      random(random_of(config)),
      telemetry(config.name, config.logger, config.events, clock),
      loop(clock),
      capacity(config.size, config.max_overflow, config.spare_workers,
               RespawnBackoff{config.respawn_backoff_initial, config.respawn_backoff_max},
               std::make_shared<const SpawnGeneration>(
                   SpawnGeneration{1, config, build_worker_env(config)})),
      registry(clock, config.max_queue,
               WorkerRegistry::Hooks{[this] {
                                       if (capacity.try_grow())
                                         fill_slot(std::chrono::milliseconds(0), "");
                                     },
                                     [this] { return capacity.failing_starts(); },
                                     [this] { return capacity.snapshot().starting; }}),
      affinity(clock,
               AffinityConfig{config.session_ttl,
                              config.session_mode == SessionMode::kStrict ? AffinityMode::kStrict
                                                                          : AffinityMode::kHint,
                              64}),
      resilience(config, kind, clock),
      supervisor(loop, *spawner, clock, telemetry, recovery, *this,
                 SupervisorConfig{config.init_timeout, config.kill_grace, config.max_frame_bytes,
                                  config.output_lines_per_second}),
      maintenance(loop, maintenance_tick(), [this] { maintenance_round(); }) {}

Pool::Impl::~Impl() { shutdown(std::chrono::milliseconds(0)); }

std::shared_ptr<Spawner> Pool::Impl::default_spawner() {
  ForkServerSpawner::Options o;
  o.start_timeout = config.init_timeout;
  o.fork_timeout = std::min<std::chrono::milliseconds>(config.init_timeout, o.fork_timeout);
  o.backoff_initial = config.respawn_backoff_initial;
  o.backoff_max = config.respawn_backoff_max;
  // Called only once workers launch, when `telemetry` (a later member) exists.
  o.log = [this](LogLevel level, const std::string& message) {
    telemetry.log(level, message, "fork-server");
  };
  return std::make_shared<ForkServerSpawner>(std::move(o));
}

Pool::Pool(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Pool::~Pool() { shutdown(); }

Result<std::unique_ptr<Pool>> Pool::start(PoolConfig config) {
  return start_as(std::move(config), "pool");
}

Result<std::unique_ptr<Pool>> Pool::start_as(PoolConfig config, std::string kind) {
  if (auto ok = config.resolve(); !ok) return tl::unexpected(ok.error());
  ignore_sigpipe_if_default();
  std::unique_ptr<Pool> pool(new Pool(std::make_unique<Impl>(std::move(config), std::move(kind))));
  Impl& s = *pool->impl_;
  auto started = s.start_workers();
  if (started) started = pool->wait_ready(s.config.startup_timeout, s.config.min_ready);
  if (!started) {
    pool->shutdown(std::chrono::milliseconds(0));
    Error e = started.error();
    // No worker could start: every worker is affected (critical; stop sending: circuit_break).
    classify_error(e, ClassifyInput{1, true, false, false});
    e.context.pool_name = s.config.name;
    e.context.adapter = s.kind;
    if (e.context.operation.empty()) e.context.operation = "start";
    return tl::unexpected(std::move(e));
  }
  return pool;
}

Result<void> Pool::wait_ready(milliseconds timeout, std::size_t count) {
  Impl& s = *impl_;
  if (count == 0) count = s.config.size;
  const TimePoint deadline = s.clock.now() + timeout;
  std::size_t live = 0;
  bool hopeless = false;
  s.registry.wait(
      [&](const RegistryCounts& c) {
        live = c.live;
        // Fail fast when every start so far has failed: waiting longer only repeats the failure.
        const CapacitySnapshot cap = s.capacity.snapshot();
        hopeless = c.live == 0 && cap.consecutive_init_failures >= s.config.min_ready;
        return c.live >= count || hopeless || s.capacity.closed();
      },
      deadline);
  if (live >= count) return {};
  if (s.capacity.closed()) return tl::unexpected(s.shutting_down_error("wait_ready"));
  const CapacitySnapshot cap = s.capacity.snapshot();
  if (cap.last_init_error && (hopeless || live == 0)) {
    Error e = *cap.last_init_error;
    e.message = fmt::format("{} '{}' could not start its worker{}: {}", s.kind, s.config.name,
                            s.config.size == 1 ? "" : "s", e.message);
    return tl::unexpected(std::move(e));
  }
  Error e(ErrorCategory::kTimeout,
          fmt::format("{} '{}': {} of {} workers ready after {} ms", s.kind, s.config.name, live,
                      count, timeout.count()));
  e.context.operation = "wait_ready";
  return tl::unexpected(std::move(e));
}

Result<Json> Pool::execute(std::string_view command, Json args, const ExecuteOptions& options) {
  return impl_->execute(std::nullopt, command, std::move(args), options);
}

Result<Json> Pool::execute_in_session(std::string_view session_id, std::string_view command,
                                      Json args, const ExecuteOptions& options) {
  return impl_->execute(session_id, command, std::move(args), options);
}

std::vector<Result<Json>> Pool::execute_many(std::string_view command, std::vector<Json> args,
                                             const ExecuteOptions& options) {
  return impl_->execute_many(command, std::move(args), options);
}

Result<bool> Pool::close_session(std::string_view session_id) {
  return impl_->close_session(session_id);
}

std::string_view Pool::kind() const { return impl_->kind; }

std::shared_ptr<AsyncExecutor> Pool::Impl::async_executor() {
  if (capacity.closed()) return nullptr;
  std::lock_guard lock(async_mu);
  // One thread per worker that could serve at once (overflow included): more could only wait.
  if (!async) async = std::make_shared<AsyncExecutor>(config.size + config.max_overflow + 1);
  return async;
}

std::future<Result<Json>> Pool::submit_async(std::optional<std::string> session,
                                             std::string command, Json args,
                                             ExecuteOptions options) {
  Impl& s = *impl_;
  auto promise = std::make_shared<std::promise<Result<Json>>>();
  auto future = promise->get_future();
  std::shared_ptr<AsyncExecutor> executor = s.async_executor();
  // The call's inputs travel behind one shared pointer, moved once, never copied.
  struct Job {
    std::optional<std::string> session;
    std::string command;
    Json args;
    ExecuteOptions options;
  };
  auto job = std::make_shared<Job>(
      Job{std::move(session), std::move(command), std::move(args), std::move(options)});
  auto run = [&s, promise, job] {
    std::optional<std::string_view> sid;
    if (job->session) sid = *job->session;
    promise->set_value(s.execute(sid, job->command, std::move(job->args), job->options));
  };
  // Refused (shutting down): answered here like a synchronous call (classified, counted; no
  // breaker touched).
  if (!executor || !executor->submit(run)) run();
  return future;
}

std::future<Result<Json>> Pool::execute_async(std::string command, Json args,
                                              ExecuteOptions options) {
  return submit_async(std::nullopt, std::move(command), std::move(args), std::move(options));
}

std::future<Result<Json>> Pool::execute_in_session_async(std::string session_id,
                                                         std::string command, Json args,
                                                         ExecuteOptions options) {
  return submit_async(std::move(session_id), std::move(command), std::move(args),
                      std::move(options));
}

Pool::BroadcastResult Pool::broadcast(std::string_view command, Json args, milliseconds timeout) {
  Impl& s = *impl_;
  BroadcastResult out;
  const std::vector<WorkerPtr> targets = s.registry.in_service();
  if (auto valid = s.validate(std::nullopt, command, args, {}); !valid) {
    for (const auto& w : targets) out.results.emplace(w->id(), tl::unexpected(valid.error()));
    out.failed = targets.size();
    return out;
  }
  const TimePoint deadline = s.clock.now() + timeout;
  // One thread per worker: a busy worker must not delay the others' share of the broadcast.
  std::vector<Result<Json>> replies(targets.size(), tl::unexpected(Error()));
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < targets.size(); ++i) {
    threads.emplace_back([&, i] {
      auto w = s.registry.checkout_worker(targets[i], deadline);
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
  s.telemetry.emit(EventId::kBroadcast,
                   {{"succeeded", double(out.succeeded)}, {"failed", double(out.failed)}},
                   {{"command", std::string(command)}});
  return out;
}

void Pool::shutdown(std::optional<milliseconds> grace) { impl_->shutdown(grace); }

std::shared_ptr<CircuitBreaker> Pool::breaker() const { return impl_->resilience.breaker(); }

PoolStats Pool::Impl::stats() const {
  PoolStats st;
  st.name = config.name;
  const RegistryCounts reg = registry.counts();
  const CapacitySnapshot cap = capacity.snapshot();
  st.size = config.size;
  st.live = reg.live;
  st.idle = reg.idle;
  st.busy = reg.busy;
  st.degraded = reg.degraded;
  st.starting = cap.starting;
  st.spare_workers = cap.spares;
  st.spares_starting = cap.spares_starting;
  st.spare_promotions = cap.spare_promotions;
  st.queue_length = reg.queue_length;
  st.sessions = affinity.size();
  st.generation = cap.generation;
  st.started = cap.started;
  st.replaced = cap.replaced;
  st.init_failures = cap.init_failures;
  if (cap.last_init_error) st.last_init_error = cap.last_init_error->message;
  st.exits = counters.exits.load();
  st.requests = counters.requests.load();
  st.ok = counters.ok.load();
  st.rerouted = counters.rerouted.load();
  st.discarded_workers = counters.discarded.load();
  st.health_checks = counters.health_checks.load();
  st.health_check_failures = counters.health_check_failures.load();
  st.checkin_errors = counters.checkin_errors.load();
  st.recycled = counters.recycled.load();
  st.overflow_retired = counters.overflow_retired.load();
  const SessionAffinity::Counters sc = affinity.counters();
  st.session_hits = sc.hits;
  st.session_misses = sc.misses;
  st.session_rebinds = sc.rebinds;
  st.session_expirations = sc.expirations;
  st.session_losses = sc.losses;
  st.session_lost_calls = counters.session_lost_calls.load();
  const RetryCounters& rc = resilience.counters();
  st.retries = rc.retries.load();
  st.retries_denied = rc.retries_denied.load();
  st.recovered = rc.recovered.load();
  st.circuit_rejected = rc.circuit_rejected.load();
  st.quarantine_refused = rc.quarantine_refused.load();
  if (auto b = resilience.breaker()) st.breaker_state = std::string(circuit_state_name(b->state()));
  for (std::size_t i = 0; i < counters.errors_by_category.size(); ++i) {
    if (auto n = counters.errors_by_category[i].load(); n > 0) {
      st.errors[std::string(category_name(static_cast<ErrorCategory>(i)))] = n;
    }
  }
  return st;
}

PoolStats Pool::stats() const { return impl_->stats(); }

std::vector<WorkerInfo> Pool::workers() const {
  const Impl& s = *impl_;
  std::vector<WorkerInfo> out;
  for (const auto& w : s.supervisor.workers()) {
    WorkerSnapshot snap = w->snapshot();
    WorkerInfo info;
    info.id = snap.id;
    info.pid = snap.pid;
    info.state = snap.state;
    info.health = snap.health;
    info.requests = snap.requests;
    info.python_errors = snap.python_errors;
    info.failures = snap.failures;
    info.uptime_s = std::chrono::duration<double>(snap.uptime).count();
    info.handlers_version = snap.handlers_version;
    info.current_session = snap.current_session;
    info.rss_bytes = w->process().resident_bytes().value_or(0);
    s.registry.read_tracking(snap.id, [&](const Tracking& t) { info.generation = t.generation; });
    info.spare =
        s.spares.read_tracking(snap.id, [&](const Tracking& t) { info.generation = t.generation; });
    for (const auto& t : snap.history) {
      info.history.push_back(TransitionInfo{
          t.from, t.to, t.reason,
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
  auto table = impl_->command_table.load();
  return table ? table->commands : std::vector<CommandSpec>{};
}

EventBus& Pool::events() { return *impl_->config.events; }

const PoolConfig& Pool::config() const { return impl_->config; }

}  // namespace bridgepool
