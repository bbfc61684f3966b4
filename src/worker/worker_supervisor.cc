// WorkerSupervisor: spawn, handshake, init commands, output, exit and reaping of worker
// processes; see worker_supervisor.h for the contract and the threading.
#include "worker/worker_supervisor.h"

#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "base/clock_wait.h"
#include "worker/output_pipe.h"

namespace bridgepool {
namespace {

constexpr std::size_t kStderrTailLines = 20;  // kept per worker to explain a failed start

const std::string& shutdown_frame() {
  static const std::string frame = [] {
    std::string json;
    wire::append_request_json(json, wire::Request{0, "shutdown", Json::object(), {}, {}});
    std::string out;
    (void)wire::append_frame(out, json);
    return out;
  }();
  return frame;
}

Error start_error(std::string message, std::string_view operation) {
  Error e(ErrorCategory::kInitialization, std::move(message));
  e.context.operation = std::string(operation);
  return e;
}

}  // namespace

WorkerSupervisor::WorkerSupervisor(EventLoop& loop, Spawner& spawner, const Clock& clock,
                                   const WorkerTelemetry& telemetry, const RecoveryPolicy& recovery,
                                   Listener& listener, SupervisorConfig config)
    : loop_(loop),
      spawner_(spawner),
      clock_(clock),
      telemetry_(telemetry),
      recovery_(recovery),
      listener_(listener),
      config_(config) {}

WorkerSupervisor::~WorkerSupervisor() { stop(); }

void WorkerSupervisor::stop() { init_thread_.stop(); }

void WorkerSupervisor::launch(LaunchSpec spec) {
  {
    std::lock_guard lock(mu_);
    ++pending_;
  }
  // A fork server loading its modules answers later; everything else at once.
  const SpawnSpec spawn_spec = spec.spawn;
  spawner_.when_ready(spawn_spec, [this, spec = std::move(spec)]() mutable {
    loop_.post([this, spec = std::move(spec)]() mutable { spawn(std::move(spec)); });
  });
}

void WorkerSupervisor::close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  spawner_.close();  // launches waiting for a fork server go on (and fail: shutting down)
}

std::vector<WorkerPtr> WorkerSupervisor::workers() const {
  std::lock_guard lock(mu_);
  std::vector<WorkerPtr> out;
  out.reserve(known_.size());
  for (const auto& [id, w] : known_) out.push_back(w);
  return out;
}

bool WorkerSupervisor::wait_idle(TimePoint deadline) {
  std::unique_lock lock(mu_);
  return wait_until(clock_, idle_cv_, lock, deadline,
                    [&] { return pending_ == 0 && known_.empty(); });
}

void WorkerSupervisor::kill(const WorkerPtr& worker) const {
  if (!worker->process().has_exited()) worker->process().signal(SIGKILL);
}

void WorkerSupervisor::kill_all() const {
  for (const auto& w : workers()) kill(w);
}

void WorkerSupervisor::terminate(const WorkerPtr& worker, std::chrono::milliseconds grace) {
  // The shutdown command, then EOF: either makes the runtime exit; EOF also covers a worker
  // stuck before reading its next frame. Non-blocking and tiny, so it fits in the (empty) pipe
  // of an idle worker; if the write fails the worker is gone already.
  ChildProcess& p = worker->process();
  if (p.request_fd() >= 0) {
    ssize_t rc = ::write(p.request_fd(), shutdown_frame().data(), shutdown_frame().size());
    (void)rc;
  }
  p.close_request_pipe();
  std::weak_ptr<Worker> weak = worker;
  const auto kill_grace = config_.kill_grace;
  loop_.post_after(grace, [this, weak, kill_grace] {
    auto w = weak.lock();
    if (!w || w->process().has_exited()) return;
    telemetry_.log(LogLevel::kWarn, "worker did not exit after its shutdown grace; SIGTERM",
                   w->id());
    w->process().signal(SIGTERM);
    loop_.post_after(kill_grace, [weak] {
      if (auto w2 = weak.lock(); w2 && !w2->process().has_exited()) {
        w2->process().signal(SIGKILL);
      }
    });
  });
}

// ---- loop thread --------------------------------------------------------------------------

void WorkerSupervisor::report_failure(std::uint64_t number, std::uint64_t generation, Error error) {
  const std::string id = fmt::format("w{}", number);
  error.context.worker_id = id;
  error.context.pool_name = telemetry_.pool_name();
  telemetry_.log(LogLevel::kError, error.to_string(), id);
  telemetry_.emit(EventId::kWorkerInitFailed, {}, {{"worker_id", id}, {"error", error.message}});
  listener_.on_start_failed(number, generation, std::move(error));
}

void WorkerSupervisor::spawn(LaunchSpec spec) {
  bool closed;
  {
    std::lock_guard lock(mu_);
    closed = closed_;
  }
  const std::string id = fmt::format("w{}", spec.number);
  auto child = closed ? tl::unexpected(Error(ErrorCategory::kResource, "shutting down"))
                      : spawner_.spawn(spec.spawn);
  if (!child) {
    {
      std::lock_guard lock(mu_);
      --pending_;
    }
    idle_cv_.notify_all();
    report_failure(spec.number, spec.generation, child.error());
    return;
  }
  auto worker =
      std::make_shared<Worker>(spec.number, std::move(*child), config_.max_frame_bytes, clock_);
  OutputCapture::Limits limits;
  limits.lines_per_second = config_.output_lines_per_second;
  limits.burst = config_.output_lines_per_second * 2;
  auto proc = std::make_unique<Proc>(clock_, limits);
  proc->worker = worker;
  proc->spec = std::move(spec);
  proc->spawned_at = clock_.now();
  ChildProcess& p = worker->process();
  proc->exit_watch =
      loop_.watch(p.exit_fd(), EPOLLIN, [this, id](std::uint32_t) { on_exit_readable(id); });
  proc->response_watch = loop_.watch(p.response_fd(), EPOLLIN,
                                     [this, id](std::uint32_t) { on_response_readable(id); });
  for (bool is_stderr : {false, true}) {
    int fd = is_stderr ? p.stderr_fd() : p.stdout_fd();
    (is_stderr ? proc->stderr_watch : proc->stdout_watch) =
        loop_.watch(fd, EPOLLIN, [this, id, is_stderr](std::uint32_t) {
          if (auto it = procs_.find(id); it != procs_.end()) drain_output(*it->second, is_stderr);
        });
  }
  procs_.emplace(id, std::move(proc));
  {
    std::lock_guard lock(mu_);
    known_.emplace(id, worker);
    --pending_;
  }
  idle_cv_.notify_all();
  loop_.post_after(config_.init_timeout, [this, id] { on_init_timeout(id); });
  telemetry_.log(LogLevel::kDebug, fmt::format("spawned pid {}", worker->pid()), id);
  telemetry_.emit(EventId::kWorkerSpawned, {{"pid", double(worker->pid())}}, {{"worker_id", id}});
}

void WorkerSupervisor::on_response_readable(const std::string& id) {
  auto it = procs_.find(id);
  if (it == procs_.end() || it->second->phase != Phase::kStarting || it->second->handshaken) {
    return;
  }
  Proc& proc = *it->second;
  auto handshake = proc.worker->read_handshake();
  if (handshake && !*handshake) return;  // need more bytes
  loop_.unwatch(proc.response_watch);    // from now on whoever holds the worker reads this pipe
  proc.response_watch = 0;
  if (!handshake) {
    fail_start(proc, handshake.error());
    return;
  }
  proc.handshaken = true;
  if (proc.spec.init_commands.empty()) {
    finish_start(id, {});
    return;
  }
  // Init commands are request I/O: never on the loop. The worker stays `initializing` (so the
  // init timeout and exit handling still apply) until they all succeeded.
  WorkerPtr worker = proc.worker;
  auto commands = proc.spec.init_commands;
  bool queued = init_thread_.submit([this, id, worker, commands] {
    auto result = run_init_commands(*worker, commands);
    loop_.post([this, id, result] { finish_start(id, result); });
  });
  if (!queued) fail_start(proc, Error(ErrorCategory::kResource, "shutting down"));
}

Result<void> WorkerSupervisor::run_init_commands(Worker& worker,
                                                 const std::vector<InitCommand>& commands) {
  const TimePoint deadline = clock_.now() + config_.init_timeout;
  for (const auto& init : commands) {
    wire::Request request{0, init.command, init.args, std::nullopt, std::nullopt};
    CallOutcome outcome = worker.call(request, deadline, nullptr);
    if (outcome.result && outcome.fault == WorkerFault::kNone) continue;
    // A Python error, or any fault: a worker that cannot run its init commands never serves.
    std::string why = outcome.result
                          ? fmt::format("protocol violation ({})", fault_name(outcome.fault))
                          : outcome.result.error().message;
    Error e = start_error(
        fmt::format("init command '{}' failed on worker {}: {}", init.command, worker.id(), why),
        "init_command");
    if (!outcome.result) e.python = outcome.result.error().python;
    return tl::unexpected(std::move(e));
  }
  return {};
}

void WorkerSupervisor::finish_start(const std::string& id, const Result<void>& init) {
  auto it = procs_.find(id);
  if (it == procs_.end() || it->second->phase != Phase::kStarting) return;  // exited, timed out
  Proc& proc = *it->second;
  if (!init) {
    fail_start(proc, init.error());
    return;
  }
  const WorkerPtr& worker = proc.worker;
  proc.phase = Phase::kReady;
  worker->set_health(WorkerHealth::kHealthy);
  worker->note_ready(clock_.now());
  const Duration startup = clock_.now() - proc.spawned_at;
  const double startup_ms = std::chrono::duration<double, std::milli>(startup).count();
  telemetry_.transit(*worker, WorkerState::kReady, TransitionReason::kInitComplete,
                     {{"startup_ms", fmt::format("{:.1f}", startup_ms)}});
  telemetry_.log(LogLevel::kInfo,
                 fmt::format("worker ready (pid {}, {:.1f} ms)", worker->pid(), startup_ms), id);
  telemetry_.emit(EventId::kWorkerReady,
                  {{"startup_ms", startup_ms}, {"pid", double(worker->pid())}},
                  {{"worker_id", id}});
  listener_.on_ready(worker, proc.spec.generation, startup);
}

void WorkerSupervisor::fail_start(Proc& proc, Error error) {
  // Reported once the process is gone (on_exit_readable), so the error can carry its last
  // stderr lines — usually the reason (a traceback, a missing module). The policy's answer is
  // SIGKILL (a worker without a handshake cannot be asked to stop), which also makes that wait
  // a matter of microseconds.
  proc.phase = Phase::kFailed;
  proc.failure = std::move(error);
  FailureReport report;
  report.kind = FailureKind::kInitFailed;
  if (recovery_.decide(report).worker == WorkerAction::kKill) {
    kill(proc.worker);
  } else {
    terminate(proc.worker, std::chrono::milliseconds(0));
  }
}

void WorkerSupervisor::on_init_timeout(const std::string& id) {
  auto it = procs_.find(id);
  if (it == procs_.end() || it->second->phase != Phase::kStarting) return;
  Proc& proc = *it->second;
  fail_start(
      proc, start_error(
                fmt::format("worker {} (pid {}) did not {} within {} ms", id, proc.worker->pid(),
                            proc.handshaken ? "finish its init commands" : "complete its handshake",
                            config_.init_timeout.count()),
                proc.handshaken ? "init_command" : "handshake"));
}

void WorkerSupervisor::drain_output(Proc& proc, bool is_stderr) {
  ChildProcess& p = proc.worker->process();
  UniqueFd& fd = is_stderr ? p.stderr_owner() : p.stdout_owner();
  if (!fd) return;
  OutputCapture& capture = is_stderr ? proc.err : proc.out;
  std::vector<std::string> lines;
  if (drain_output_pipe(fd.get(), capture, lines)) {
    EventLoop::WatchId& watch = is_stderr ? proc.stderr_watch : proc.stdout_watch;
    loop_.unwatch(watch);
    watch = 0;
    fd.reset();
  }
  log_output_lines(telemetry_.logger(), telemetry_.pool_name(), proc.worker->id(), is_stderr,
                   std::move(lines), proc.stderr_tail, kStderrTailLines);
}

void WorkerSupervisor::on_exit_readable(const std::string& id) {
  auto it = procs_.find(id);
  if (it == procs_.end()) return;
  std::unique_ptr<Proc> proc = std::move(it->second);
  procs_.erase(it);
  WorkerPtr worker = proc->worker;
  // The last words first: they are what explains a crash. A worker that wrote its init_failed
  // frame (the import error's traceback) and exited may be seen exiting before its response
  // pipe is read, in the same batch of events: read that frame now.
  if (proc->phase == Phase::kStarting && !proc->handshaken) {
    auto handshake = worker->read_handshake();
    if (!handshake && handshake.error().python) {  // an init_failed frame, with its traceback
      proc->phase = Phase::kFailed;
      proc->failure = std::move(handshake.error());
    }
  }
  drain_output(*proc, false);
  drain_output(*proc, true);
  auto status = worker->process().reap();
  const std::string how = status ? status->describe() : "already reaped";
  for (auto watch :
       {proc->exit_watch, proc->response_watch, proc->stdout_watch, proc->stderr_watch}) {
    loop_.unwatch(watch);
  }
  telemetry_.log(LogLevel::kInfo, fmt::format("worker pid {} reaped: {}", worker->pid(), how), id);
  telemetry_.emit(EventId::kWorkerExited,
                  {{"pid", double(worker->pid())},
                   {"exit_code", status && !status->signaled ? double(status->code) : -1.0},
                   {"signal", status && status->signaled ? double(status->signal) : 0.0}},
                  {{"worker_id", id}, {"status", how}});
  if (proc->phase == Phase::kReady) {
    listener_.on_exit(worker, how);
    if (worker->state() == WorkerState::kTerminating) {
      telemetry_.transit(*worker, WorkerState::kTerminated, TransitionReason::kExited,
                         {{"status", how}});
    }
  } else {
    Error error = proc->failure ? std::move(*proc->failure)
                                : start_error(fmt::format("worker {} (pid {}) exited before its "
                                                          "start completed ({})",
                                                          id, worker->pid(), how),
                                              proc->handshaken ? "init_command" : "handshake");
    if (!proc->stderr_tail.empty() && error.context.cause.empty()) {
      error.context.cause = fmt::format("stderr: {}", fmt::join(proc->stderr_tail, "\n"));
    }
    telemetry_.transit(*worker, WorkerState::kTerminated, TransitionReason::kInitFailed,
                       {{"status", how}});
    report_failure(proc->spec.number, proc->spec.generation, std::move(error));
  }
  {
    std::lock_guard lock(mu_);
    known_.erase(id);
  }
  idle_cv_.notify_all();
}

}  // namespace bridgepool
