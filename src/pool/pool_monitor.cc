// The pool's monitor thread: spawning, handshakes, init timeouts, output capture, exit detection
// and reaping. Everything here runs on Impl::loop (see pool_impl.h for the locking rules).
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "pool/pool_impl.h"
#include "worker/output_pipe.h"
#include "pool/worker_command.h"


namespace bridgepool {
namespace {

constexpr std::size_t kStderrTailLines = 20;

}  // namespace

void Pool::Impl::schedule_spawn(std::chrono::milliseconds delay) {
  {
    std::lock_guard lock(mu);
    ++starting;
  }
  post_spawn(delay);
}

void Pool::Impl::post_spawn(std::chrono::milliseconds delay) {
  loop.post_after(delay, [this] { spawn_worker(); });
}

void Pool::Impl::spawn_worker() {
  std::uint64_t number;
  std::shared_ptr<const SpawnGeneration> gen;
  {
    std::lock_guard lock(mu);
    gen = generation;
    if (shutting_down) {
      --starting;
      state_cv.notify_all();
      return;
    }
    number = next_worker_number++;
    // Until the child is in `known`, shutdown cannot see it: it waits for this count too, or it
    // could stop the loop between spawn and registration and leave the child unreaped.
    ++spawns_in_flight;
  }
  std::string id = fmt::format("w{}", number);
  auto child = spawner->spawn(worker_spawn_spec(gen->config, id, ::getpid(), gen->env));
  if (!child) {
    {
      std::lock_guard lock(mu);
      --spawns_in_flight;
      state_cv.notify_all();
    }
    on_init_failure(nullptr, id, child.error(), gen->number);
    return;
  }
  auto worker = std::make_shared<Worker>(number, std::move(*child), config.max_frame_bytes, clock);
  OutputCapture::Limits limits;
  limits.lines_per_second = config.output_lines_per_second;
  limits.burst = config.output_lines_per_second * 2;
  auto proc = std::make_unique<Proc>(clock, limits);
  proc->worker = worker;
  proc->spawned_at = clock.now();
  proc->generation = gen;
  ChildProcess& p = worker->process();
  proc->pid_watch = loop.watch(p.pidfd(), EPOLLIN, [this, id](std::uint32_t) { on_exit(id); });
  proc->response_watch = loop.watch(p.response_fd(), EPOLLIN,
                                    [this, id](std::uint32_t) { on_handshake_readable(id); });
  proc->stdout_watch = loop.watch(p.stdout_fd(), EPOLLIN,
                                  [this, id](std::uint32_t) { on_output(id, false); });
  proc->stderr_watch = loop.watch(p.stderr_fd(), EPOLLIN,
                                  [this, id](std::uint32_t) { on_output(id, true); });
  procs.emplace(id, std::move(proc));
  {
    std::lock_guard lock(mu);
    known.emplace(id, worker);
    --spawns_in_flight;
    state_cv.notify_all();
  }
  loop.post_after(config.init_timeout, [this, id] { on_init_timeout(id); });
  config.logger->log(LogLevel::kDebug, "pool", fmt::format("spawned pid {}", worker->pid()), id);
  emit("pool.worker.spawned", {{"pid", double(worker->pid())}}, {{"worker_id", id}});
}

void Pool::Impl::on_handshake_readable(const std::string& id) {
  auto it = procs.find(id);
  if (it == procs.end() || !it->second->initializing || it->second->handshaken) return;
  Proc& proc = *it->second;
  auto handshake = proc.worker->read_handshake();
  if (handshake && !*handshake) return;  // need more bytes
  loop.unwatch(proc.response_watch);  // from now on whoever holds the worker reads this pipe
  proc.response_watch = 0;
  if (!handshake) {
    proc.initializing = false;
    proc.worker->process().signal(SIGKILL);
    on_init_failure(&proc, id, handshake.error());
    return;
  }
  proc.handshaken = true;
  auto gen = proc.generation;
  if (gen->config.init_commands.empty()) {
    finish_init(id, {});
    return;
  }
  // Init commands are request I/O: never on the monitor thread. The worker stays
  // `initializing` (so the init timeout and exit handling still apply) until they all succeeded.
  WorkerPtr worker = proc.worker;
  maintenance->submit([this, id, worker, gen] {
    auto result = run_init_commands(*worker, gen->config.init_commands);
    loop.post([this, id, result] { finish_init(id, result); });
  });
}

Result<void> Pool::Impl::run_init_commands(Worker& worker,
                                           const std::vector<InitCommand>& commands) {
  TimePoint deadline = clock.now() + config.init_timeout;
  for (const auto& init : commands) {
    wire::Request request{0, init.command, init.args, std::nullopt, std::nullopt};
    CallOutcome outcome = worker.call(request, deadline, nullptr);
    if (!outcome.result) {
      Error e(ErrorCategory::kInitialization,
              fmt::format("init command '{}' failed on worker {}: {}", init.command, worker.id(),
                          outcome.result.error().message));
      e.python = outcome.result.error().python;
      e.context.operation = "init_command";
      return tl::unexpected(std::move(e));
    }
  }
  return {};
}

void Pool::Impl::finish_init(const std::string& id, const Result<void>& init) {
  auto it = procs.find(id);
  if (it == procs.end() || !it->second->initializing) return;  // exited or timed out meanwhile
  Proc& proc = *it->second;
  proc.initializing = false;
  if (!init) {
    proc.worker->process().signal(SIGKILL);
    on_init_failure(&proc, id, init.error());
    return;
  }
  admit(proc);
}

void Pool::Impl::admit(Proc& proc) {
  const WorkerPtr& worker = proc.worker;
  const std::string& id = worker->id();
  worker->set_health(WorkerHealth::kHealthy);
  worker->note_ready(clock.now());
  auto startup = std::chrono::duration<double, std::milli>(clock.now() - proc.spawned_at).count();
  transit(worker, WorkerState::kReady, TransitionReason::kInitComplete,
          {{"startup_ms", fmt::format("{:.1f}", startup)}});
  bool admitted = false;
  std::shared_ptr<Waiter> wake;
  {
    std::lock_guard lock(mu);
    --starting;
    if (!shutting_down) {
      admitted = true;
      consecutive_init_failures = 0;
      ++started;
      if (commands.empty()) {
        auto table = std::make_shared<CommandTable>();
        for (const auto& c : worker->handshake().commands) {
          commands.push_back(CommandSpec{c.name, c.idempotent});
          table->idempotent[c.name] = c.idempotent;
        }
        command_table.store(std::move(table));
      }
      live.emplace(id, worker);
      affinity.add_worker(worker->number());
      std::uniform_real_distribution<double> uniform(0.0, 1.0);
      Tracking t{HealthTracker(health_config, clock.now()),
                 recycle.limit_for_new_worker([&] { return uniform(rng); })};
      t.generation = proc.generation->number;
      t.last_used = clock.now();
      tracking.emplace(id, std::move(t));
      wake = give_back_locked(worker);
    }
    state_cv.notify_all();
  }
  if (wake) wake->cv.notify_one();
  if (!admitted) {
    transit(worker, WorkerState::kTerminating, TransitionReason::kShutdown);
    terminate_gracefully(worker, config.shutdown_grace);
    return;
  }
  config.logger->log(LogLevel::kInfo, "pool",
                     fmt::format("worker ready (pid {}, {:.1f} ms)", worker->pid(), startup), id);
  emit("pool.worker.ready", {{"startup_ms", startup}, {"pid", double(worker->pid())}},
       {{"worker_id", id}});
}

void Pool::Impl::on_init_timeout(const std::string& id) {
  auto it = procs.find(id);
  if (it == procs.end() || !it->second->initializing) return;
  Proc& proc = *it->second;
  proc.initializing = false;
  loop.unwatch(proc.response_watch);
  proc.response_watch = 0;
  proc.worker->process().signal(SIGKILL);
  Error e(ErrorCategory::kInitialization,
          fmt::format("worker {} (pid {}) did not complete its handshake within {} ms", id,
                      proc.worker->pid(), config.init_timeout.count()));
  e.context.operation = "handshake";
  on_init_failure(&proc, id, std::move(e));
}

void Pool::Impl::on_init_failure(Proc* proc, const std::string& id, Error error,
                                 std::uint64_t generation_number) {
  if (proc) generation_number = proc->generation->number;
  error.context.worker_id = id;
  error.context.pool_name = config.name;
  if (proc && !proc->stderr_tail.empty() && error.context.cause.empty()) {
    error.context.cause = fmt::format("stderr: {}", fmt::join(proc->stderr_tail, "\n"));
  }
  if (proc) transit(proc->worker, WorkerState::kTerminated, TransitionReason::kInitFailed);
  config.logger->log(LogLevel::kError, "pool", error.to_string(), id);
  emit("pool.worker.init_failed", {}, {{"worker_id", id}, {"error", error.message}});
  std::chrono::milliseconds delay{0};
  bool respawn = false;
  {
    std::lock_guard lock(mu);
    --starting;
    ++init_failures;
    ++consecutive_init_failures;
    last_init_error = error;
    last_failed_generation = generation_number;
    // Nobody can be served while no worker is alive and starts keep failing: tell the waiters now
    // instead of letting each run into its checkout timeout.
    if (live.empty()) fail_waiters_locked(error);
    respawn = !shutting_down && live.size() + starting < config.size;
    if (respawn) ++starting;  // counted with the decision, under the same lock
    delay = backoff.delay(consecutive_init_failures);
    state_cv.notify_all();
  }
  if (respawn) post_spawn(delay);
}

void Pool::Impl::drain_output(Proc& proc, bool is_stderr) {
  ChildProcess& p = proc.worker->process();
  UniqueFd& fd = is_stderr ? p.stderr_owner() : p.stdout_owner();
  if (!fd) return;
  OutputCapture& capture = is_stderr ? proc.err : proc.out;
  std::vector<std::string> lines;
  bool eof = drain_output_pipe(fd.get(), capture, lines);
  if (eof) {
    loop.unwatch(is_stderr ? proc.stderr_watch : proc.stdout_watch);
    (is_stderr ? proc.stderr_watch : proc.stdout_watch) = 0;
    fd.reset();
  }
  log_output_lines(*config.logger, proc.worker->id(), is_stderr, std::move(lines),
                   proc.stderr_tail, kStderrTailLines);
}

void Pool::Impl::on_output(const std::string& id, bool is_stderr) {
  auto it = procs.find(id);
  if (it != procs.end()) drain_output(*it->second, is_stderr);
}

void Pool::Impl::on_exit(const std::string& id) {
  auto it = procs.find(id);
  if (it == procs.end()) return;
  Proc& proc = *it->second;
  WorkerPtr worker = proc.worker;
  // Collect the last words first: they are what explains a crash.
  drain_output(proc, false);
  drain_output(proc, true);
  auto status = worker->process().reap();
  std::string how = status ? status->describe() : "already reaped";
  for (auto watch : {proc.pid_watch, proc.response_watch, proc.stdout_watch, proc.stderr_watch}) {
    loop.unwatch(watch);
  }
  bool was_initializing = proc.initializing;
  proc.initializing = false;
  if (was_initializing) {
    Error e(ErrorCategory::kInitialization,
            fmt::format("worker {} (pid {}) exited before its handshake ({})", id, worker->pid(), how));
    e.context.operation = "handshake";
    on_init_failure(&proc, id, std::move(e));
  } else {
    retire(worker, TransitionReason::kExited, false, how);
    if (worker->state() == WorkerState::kTerminating) {
      transit(worker, WorkerState::kTerminated, TransitionReason::kExited, {{"status", how}});
    }
  }
  config.logger->log(LogLevel::kInfo, "pool", fmt::format("worker pid {} reaped: {}", worker->pid(), how), id);
  emit("pool.worker.exited",
       {{"pid", double(worker->pid())},
        {"exit_code", status && !status->signaled ? double(status->code) : -1.0},
        {"signal", status && status->signaled ? double(status->signal) : 0.0}},
       {{"worker_id", id}, {"status", how}});
  procs.erase(it);
  std::lock_guard lock(mu);
  known.erase(id);
  ++exits;
  state_cv.notify_all();
}

void Pool::Impl::end_all_workers(std::chrono::milliseconds grace) {
  // Idle workers: shutdown command + EOF (close our end) — they exit within milliseconds.
  // Anything still borrowed or initializing at this point has outlived the grace: SIGKILL.
  std::vector<WorkerPtr> idle_now, others;
  {
    std::lock_guard lock(mu);
    idle_now = idle;
    idle_now.insert(idle_now.end(), degraded.begin(), degraded.end());
    idle.clear();
    degraded.clear();
    for (auto& [id, w] : known) {
      if (std::find(idle_now.begin(), idle_now.end(), w) == idle_now.end()) others.push_back(w);
    }
    for (auto& w : idle_now) live.erase(w->id());
  }
  for (auto& w : idle_now) {
    transit(w, WorkerState::kTerminating, TransitionReason::kShutdown);
    terminate_gracefully(w, grace);
  }
  for (auto& w : others) {
    if (!w->process().has_exited()) w->process().signal(SIGKILL);
  }
}

}  // namespace bridgepool
