// Single-bridge mode: one Python worker, no pool machinery. Behaviour and the threading model
// (callers do the I/O under one mutex; the bridge thread spawns, drains output and reaps) are
// described in include/bridgepool/bridge.h.
#include "bridgepool/bridge.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "bridgepool/clock.h"
#include "base/event_loop.h"
#include "resilience/error_classifier.h"
#include "pool/respawn_backoff.h"
#include "pool/request_validation.h"
#include "process/sigpipe.h"
#include "worker/output_pipe.h"
#include "pool/worker_command.h"
#include "process/spawner.h"
#include "worker/output_capture.h"
#include "worker/worker.h"

namespace bridgepool {
namespace {

using WorkerPtr = std::shared_ptr<Worker>;

constexpr std::size_t kStderrTailLines = 20;  // kept per worker to explain a failed start
// After SIGKILL a process is gone within microseconds unless stuck in the kernel (D state);
// two seconds is a generous bound for that last wait.
constexpr milliseconds kAfterKillWait{2'000};

// Waits until the process has exited (its pidfd is readable) or `timeout` passes.
bool wait_for_exit(const ChildProcess& process, milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  pollfd fd{process.pidfd(), POLLIN, 0};
  for (;;) {
    auto left = std::chrono::ceil<milliseconds>(deadline - std::chrono::steady_clock::now());
    int rc = ::poll(&fd, 1, static_cast<int>(std::max<std::int64_t>(0, left.count())));
    if (rc > 0) return true;
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0 || left.count() <= 0) return process.has_exited();
  }
}

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

// One call at a time, with a bounded wait to get in. Not std::timed_mutex: its try_lock_until
// is pthread_mutex_clocklock, which ThreadSanitizer does not intercept, so every TSan run would
// report a false "unlock of an unlocked mutex". The gate's mutex orders each call's accesses to
// the state it guards after the previous call's.
class CallGate {
 public:
  // Proof of being inside; leaves the gate when destroyed. Empty when the wait timed out.
  class Pass {
   public:
    explicit Pass(CallGate* gate) : gate_(gate) {}
    Pass(Pass&& other) noexcept : gate_(std::exchange(other.gate_, nullptr)) {}
    Pass& operator=(Pass&&) = delete;
    ~Pass() {
      if (gate_) gate_->leave();
    }
    explicit operator bool() const { return gate_ != nullptr; }

   private:
    CallGate* gate_;
  };

  Pass enter_until(TimePoint deadline) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_until(lock, deadline, [&] { return !busy_; })) return Pass(nullptr);
    busy_ = true;
    return Pass(this);
  }
  Pass enter() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !busy_; });
    busy_ = true;
    return Pass(this);
  }

 private:
  void leave() {
    {
      std::lock_guard lock(mu_);
      busy_ = false;
    }
    cv_.notify_one();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool busy_ = false;
};

}  // namespace

struct Bridge::Impl {
  explicit Impl(PoolConfig cfg)
      : config(std::move(cfg)),
        backoff{config.respawn_backoff_initial, config.respawn_backoff_max},
        worker_env(build_worker_env(config)) {}

  // ---- immutable after start ----
  PoolConfig config;
  const Clock& clock = SteadyClock::instance();
  PosixSpawner spawner;
  RespawnBackoff backoff;
  std::vector<std::string> worker_env;  // computed once, like the pool's
  EventLoop loop;                       // the bridge thread: spawn, output, reap

  // ---- callers: guarded by the gate, which a call holds from start to finish ----
  CallGate gate;
  WorkerPtr worker;  // null while none runs (after a crash, until the next call)
  std::unordered_map<std::string, bool> idempotent_commands;  // of the last admitted worker
  std::uint64_t next_worker_number = 1;
  bool ever_started = false;
  std::unordered_map<std::string, std::uint64_t> sessions;  // session -> worker number
  std::uint32_t consecutive_init_failures = 0;
  TimePoint next_start_at{};  // after a failed start: no new attempt before this
  std::optional<Error> last_init_error;
  bool shut_down = false;

  // ---- read by info() without waiting for a call: info_mu (never held during I/O) ----
  mutable std::mutex info_mu;
  WorkerPtr current;  // == worker
  std::string last_init_error_message;
  std::atomic<std::size_t> session_count{0};
  std::atomic<std::uint64_t> requests{0}, ok{0}, restarts{0}, init_failures{0}, session_rebinds{0};
  std::array<std::atomic<std::uint64_t>, 16> errors_by_category{};

  // ---- bridge thread only ----
  struct Proc {
    WorkerPtr worker;
    EventLoop::WatchId pid_watch = 0, stdout_watch = 0, stderr_watch = 0;
    OutputCapture out, err;
    std::deque<std::string> stderr_tail;
    Proc(const Clock& c, OutputCapture::Limits l) : out(c, l), err(c, l) {}
  };
  std::unordered_map<std::string, std::unique_ptr<Proc>> procs;
  std::string last_exit_id;  // the stderr tail of the last reaped worker, for start errors
  std::deque<std::string> last_exit_tail;

  struct Attempt {
    Result<Json> result;
    bool retry = false;  // the worker died before reading the request: safe to send it again
  };

  // ---- callers (inside the gate) ----
  Result<Json> run(std::optional<std::string_view> session, std::string_view command, Json args,
                   const ExecuteOptions& options);
  Result<WorkerPtr> ensure_worker_locked();
  Result<WorkerPtr> start_worker_locked();
  Result<void> await_handshake(Worker& worker, TimePoint deadline);
  Result<void> run_init_commands(Worker& worker, TimePoint deadline);
  tl::unexpected<Error> on_start_failed(const WorkerPtr& worker, const std::string& id,
                                        Error error);
  void admit(const WorkerPtr& worker, TimePoint spawned_at);
  Attempt attempt_on(const WorkerPtr& worker, wire::Request& request, TimePoint deadline,
                     const ChunkCallback& on_chunk);
  void retire_locked(TransitionReason reason, const std::string& detail);
  std::optional<Error> session_lost_locked(const std::string& session_id, const Worker& worker);
  void end_worker(Worker& worker, milliseconds grace);
  Result<Json> finish(Result<Json> result, std::string_view command,
                      std::optional<std::string_view> session, TimePoint started_at,
                      Duration queue_wait, int attempt);
  Error lock_timeout(TimePoint started_at, std::string_view operation) const;

  // ---- bridge thread ----
  Result<WorkerPtr> spawn_on_loop(std::uint64_t number);
  void drain_output(Proc& proc, bool is_stderr);
  void on_exit(const std::string& id);
  std::deque<std::string> stderr_tail(const std::string& id);
  void reap_all_on_loop();

  // Runs `task` on the bridge thread and returns its result. Callers only, never from the loop.
  template <typename F>
  std::invoke_result_t<F&> on_loop(F task) {
    // shared_ptr: set_value may still be returning on the bridge thread when get() wakes here.
    auto done = std::make_shared<std::promise<std::invoke_result_t<F&>>>();
    auto result = done->get_future();
    loop.post([done, &task] { done->set_value(task()); });
    return result.get();
  }

  void emit(std::string name, std::map<std::string, double> measurements,
            std::map<std::string, std::string> metadata) const;
};

// ---------------------------------------------------------------------------------------------
// Calls

Error Bridge::Impl::lock_timeout(TimePoint started_at, std::string_view operation) const {
  auto waited = std::chrono::duration_cast<milliseconds>(clock.now() - started_at);
  Error e(ErrorCategory::kTimeout,
          fmt::format("bridge '{}': waited {} ms for its single worker, busy with another call "
                      "(a bridge runs one call at a time)",
                      config.name, waited.count()));
  e.context.operation = std::string(operation);
  return e;
}

Result<Json> Bridge::Impl::run(std::optional<std::string_view> session, std::string_view command,
                               Json args, const ExecuteOptions& options) {
  TimePoint started_at = clock.now();
  if (options.report) *options.report = CallReport{"bridge", "", 0, {}};
  if (auto valid = validate_request(session, command, args); !valid) {
    errors_by_category[static_cast<std::size_t>(ErrorCategory::kInvalidRequest)]++;
    if (session) valid.error().context.session_id = std::string(*session);
    classify_error(valid.error(), ClassifyInput{});
    valid.error().context.adapter = "bridge";
    return tl::unexpected(valid.error());
  }
  requests.fetch_add(1, std::memory_order_relaxed);
  const milliseconds timeout = options.timeout.value_or(config.request_timeout);
  const milliseconds wait =
      std::min(timeout, options.checkout_timeout.value_or(config.checkout_timeout));
  CallGate::Pass pass = gate.enter_until(started_at + wait);
  if (!pass) {
    return finish(tl::unexpected(lock_timeout(started_at, "checkout")), command, session,
                  started_at, clock.now() - started_at, 1);
  }
  const Duration queue_wait = clock.now() - started_at;
  std::optional<std::string> session_id;
  if (session) session_id = std::string(*session);
  wire::Request request{0, std::string(command), std::move(args), session_id, std::nullopt};
  for (int attempt = 1;; ++attempt) {
    TimePoint before_start = clock.now();
    auto w = ensure_worker_locked();
    if (!w) {
      return finish(tl::unexpected(w.error()), command, session, started_at, queue_wait, attempt);
    }
    if (session_id) {
      if (auto lost = session_lost_locked(*session_id, **w)) {
        return finish(tl::unexpected(std::move(*lost)), command, session, started_at, queue_wait,
                      attempt);
      }
    }
    // A restart has its own budget (init_timeout): it is not charged to the request.
    TimePoint deadline = started_at + timeout + (clock.now() - before_start);
    if (deadline - clock.now() < milliseconds(1)) {
      // Not worth sending: the reply could not arrive in time and the worker would be killed.
      Error e(ErrorCategory::kTimeout,
              fmt::format("bridge '{}': the {} ms deadline passed before the request could be sent",
                          config.name, timeout.count()));
      return finish(tl::unexpected(std::move(e)), command, session, started_at, queue_wait,
                    attempt);
    }
    bool newly_bound = session_id && sessions.emplace(*session_id, (*w)->number()).second;
    if (newly_bound) session_count.fetch_add(1, std::memory_order_relaxed);
    if (options.report) {
      options.report->attempts = static_cast<std::uint32_t>(attempt);
      options.report->worker_id = (*w)->id();
    }
    Attempt a = attempt_on(*w, request, deadline, options.on_chunk);
    if (a.retry && attempt == 1) {
      if (newly_bound) {  // the dead worker never saw the session: bind it to the next one
        sessions.erase(*session_id);
        session_count.fetch_sub(1, std::memory_order_relaxed);
      }
      continue;
    }
    return finish(std::move(a.result), command, session, started_at, queue_wait, attempt);
  }
}

std::optional<Error> Bridge::Impl::session_lost_locked(const std::string& session_id,
                                                       const Worker& w) {
  auto it = sessions.find(session_id);
  if (it == sessions.end() || it->second == w.number()) return std::nullopt;
  if (config.session_mode == SessionMode::kHint) {
    // Hint mode: the caller accepts a fresh state; the session moves to the running worker.
    config.logger->log(
        LogLevel::kInfo, "bridge",
        fmt::format("session '{}' rebound from w{} (exited) to {}", session_id, it->second, w.id()),
        w.id());
    it->second = w.number();
    session_rebinds.fetch_add(1, std::memory_order_relaxed);
    return std::nullopt;
  }
  Error e(ErrorCategory::kSession,
          fmt::format("session '{}' was bound to worker w{}, which exited; its state is lost",
                      session_id, it->second));
  e.context.operation = "session";
  e.context.worker_id = fmt::format("w{}", it->second);
  e.context.cause = fmt::format(
      "strict sessions: the session now fails until close_session('{}') "
      "acknowledges the loss; worker {} serves new sessions",
      session_id, w.id());
  return e;
}

Bridge::Impl::Attempt Bridge::Impl::attempt_on(const WorkerPtr& w, wire::Request& request,
                                               TimePoint deadline, const ChunkCallback& on_chunk) {
  w->transition(WorkerState::kBusy, TransitionReason::kCheckout);
  auto remaining = std::chrono::duration_cast<milliseconds>(deadline - clock.now());
  request.deadline_ms = std::max<std::int64_t>(0, remaining.count());
  CallOutcome outcome = w->call(request, deadline, on_chunk);
  switch (outcome.fault) {
    case WorkerFault::kNone:
      w->transition(WorkerState::kReady, TransitionReason::kCheckinOk);
      return Attempt{std::move(outcome.result), false};
    case WorkerFault::kNotDelivered:
      retire_locked(TransitionReason::kExited, outcome.result.error().message);
      return Attempt{std::move(outcome.result), true};
    case WorkerFault::kExited:
      retire_locked(TransitionReason::kExited, outcome.result.error().message);
      break;
    case WorkerFault::kProtocol:
      retire_locked(TransitionReason::kProtocolError,
                    outcome.result ? "data after the reply" : outcome.result.error().message);
      break;
    case WorkerFault::kTimeout:
      // SIGKILL (in retire): it must not run one more instruction of a request we have failed.
      retire_locked(TransitionReason::kTimeout, outcome.result.error().message);
      break;
  }
  return Attempt{std::move(outcome.result), false};
}

Result<Json> Bridge::Impl::finish(Result<Json> result, std::string_view command,
                                  std::optional<std::string_view> session, TimePoint started_at,
                                  Duration queue_wait, int attempt) {
  auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(clock.now() - started_at);
  if (result) {
    ok.fetch_add(1, std::memory_order_relaxed);
  } else {
    Error& e = result.error();
    e.context.command = command;
    if (session) e.context.session_id = std::string(*session);
    e.context.elapsed = elapsed;
    e.context.queue_wait = std::chrono::duration_cast<std::chrono::microseconds>(queue_wait);
    // The bridge does not retry by itself (a FallbackChain or the caller may): classify so the
    // caller knows whether it could. Its one worker is "all workers": a start failure is critical.
    auto cmd = idempotent_commands.find(std::string(command));
    bool may_have_run = e.category == ErrorCategory::kConnection ||
                        e.category == ErrorCategory::kCommunication ||
                        e.category == ErrorCategory::kPython ||
                        (e.category == ErrorCategory::kTimeout && e.context.operation != "checkout");
    classify_error(e, ClassifyInput{static_cast<std::uint32_t>(attempt),
                                    e.category == ErrorCategory::kInitialization, may_have_run,
                                    cmd != idempotent_commands.end() && cmd->second});
    e.context.pool_name = config.name;
    if (e.context.adapter.empty()) e.context.adapter = "bridge";
    if (e.context.operation.empty()) e.context.operation = "execute";
    errors_by_category[static_cast<std::size_t>(e.category)].fetch_add(1,
                                                                       std::memory_order_relaxed);
  }
  if (config.events->has_handlers()) {
    emit("bridge.request", {{"duration_us", double(elapsed.count())}},
         {{"command", std::string(command)},
          {"result", result ? "ok" : std::string(category_name(result.error().category))}});
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// The worker's life, seen from the callers

Result<WorkerPtr> Bridge::Impl::ensure_worker_locked() {
  if (shut_down) {
    return make_error(ErrorCategory::kResource,
                      fmt::format("bridge '{}' is shut down", config.name));
  }
  if (worker) {
    auto unusable = worker->check_usable();
    if (!unusable) return worker;
    bool exited = worker->process().has_exited();
    retire_locked(exited ? TransitionReason::kExited : TransitionReason::kProtocolError,
                  "found before a call: " + *unusable);
  }
  TimePoint now = clock.now();
  if (last_init_error && now < next_start_at) {
    // A start failed moments ago: repeating it on every call would only spawn a crash loop.
    Error e = *last_init_error;
    e.message = fmt::format(
        "bridge '{}' has no worker; its last start failed and the next "
        "attempt is allowed in {} ms: {}",
        config.name, std::chrono::ceil<milliseconds>(next_start_at - now).count(), e.message);
    return tl::unexpected(std::move(e));
  }
  return start_worker_locked();
}

Result<WorkerPtr> Bridge::Impl::start_worker_locked() {
  const std::uint64_t number = next_worker_number++;
  const std::string id = fmt::format("w{}", number);
  const TimePoint spawned_at = clock.now();
  const TimePoint deadline = spawned_at + config.init_timeout;
  Result<WorkerPtr> spawned = on_loop([this, number] { return spawn_on_loop(number); });
  if (!spawned) return on_start_failed(nullptr, id, spawned.error());
  const WorkerPtr& w = *spawned;
  if (auto ready = await_handshake(*w, deadline); !ready)
    return on_start_failed(w, id, ready.error());
  if (auto init = run_init_commands(*w, deadline); !init)
    return on_start_failed(w, id, init.error());
  admit(w, spawned_at);
  return w;
}

Result<void> Bridge::Impl::await_handshake(Worker& w, TimePoint deadline) {
  auto init_error = [&](std::string message) {
    Error e(ErrorCategory::kInitialization, std::move(message));
    e.context.operation = "handshake";
    return tl::unexpected(std::move(e));
  };
  for (;;) {
    auto handshake = w.read_handshake();  // initialization error on init_failed / EOF / garbage
    if (!handshake) return tl::unexpected(handshake.error());
    if (*handshake) return {};
    auto left = std::chrono::ceil<milliseconds>(deadline - clock.now());
    if (left.count() <= 0) {
      return init_error(
          fmt::format("worker {} (pid {}) did not complete its handshake within {} ms", w.id(),
                      w.pid(), config.init_timeout.count()));
    }
    pollfd fds[2] = {{w.process().response_fd(), POLLIN, 0}, {w.process().pidfd(), POLLIN, 0}};
    int rc = ::poll(fds, 2, static_cast<int>(left.count()));
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return init_error(fmt::format("poll failed: {}", std::strerror(errno)));
    if (fds[0].revents == 0 && fds[1].revents != 0) {
      // Exited while something else (a grandchild) still holds the response pipe open: read what
      // it wrote, and if that is not a handshake the start failed.
      auto last = w.read_handshake();
      if (!last) return tl::unexpected(last.error());
      if (*last) return {};
      return init_error(fmt::format("worker {} (pid {}) exited before its handshake ({})", w.id(),
                                    w.pid(), w.describe_exit()));
    }
  }
}

Result<void> Bridge::Impl::run_init_commands(Worker& w, TimePoint deadline) {
  for (const auto& init : config.init_commands) {
    wire::Request request{0, init.command, init.args, std::nullopt, std::nullopt};
    CallOutcome outcome = w.call(request, deadline, nullptr);
    if (!outcome.result || outcome.fault != WorkerFault::kNone) {
      Error e(
          ErrorCategory::kInitialization,
          fmt::format("init command '{}' failed on worker {}: {}", init.command, w.id(),
                      outcome.result ? "data after the reply" : outcome.result.error().message));
      if (!outcome.result) e.python = outcome.result.error().python;
      e.context.operation = "init_command";
      return tl::unexpected(std::move(e));
    }
  }
  return {};
}

tl::unexpected<Error> Bridge::Impl::on_start_failed(const WorkerPtr& w, const std::string& id,
                                                    Error error) {
  error.context.worker_id = id;
  error.context.pool_name = config.name;
  if (w) {
    w->process().signal(SIGKILL);
    w->transition(WorkerState::kTerminated, TransitionReason::kInitFailed);
    // Its last stderr lines usually say why (a traceback from the runtime itself, a missing
    // module); wait for the exit so they have all been written, then collect them.
    wait_for_exit(w->process(), kAfterKillWait);
    auto tail = stderr_tail(id);
    if (!tail.empty() && error.context.cause.empty()) {
      error.context.cause = fmt::format("stderr: {}", fmt::join(tail, "\n"));
    }
  }
  init_failures.fetch_add(1, std::memory_order_relaxed);
  ++consecutive_init_failures;
  next_start_at = clock.now() + backoff.delay(consecutive_init_failures);
  last_init_error = error;
  {
    std::lock_guard lock(info_mu);
    last_init_error_message = error.message;
  }
  config.logger->log(LogLevel::kError, "bridge", error.to_string(), id);
  emit("bridge.worker.init_failed", {}, {{"worker_id", id}, {"error", error.message}});
  return tl::unexpected(std::move(error));
}

void Bridge::Impl::admit(const WorkerPtr& w, TimePoint spawned_at) {
  w->set_health(WorkerHealth::kHealthy);
  w->note_ready(clock.now());
  auto startup = std::chrono::duration<double, std::milli>(clock.now() - spawned_at).count();
  w->transition(WorkerState::kReady, TransitionReason::kInitComplete,
                {{"startup_ms", fmt::format("{:.1f}", startup)}});
  if (ever_started) restarts.fetch_add(1, std::memory_order_relaxed);
  ever_started = true;
  consecutive_init_failures = 0;
  next_start_at = TimePoint{};
  worker = w;
  idempotent_commands.clear();
  for (const auto& c : w->handshake().commands) idempotent_commands[c.name] = c.idempotent;
  {
    std::lock_guard lock(info_mu);
    current = w;
  }
  config.logger->log(LogLevel::kInfo, "bridge",
                     fmt::format("worker ready (pid {}, {:.1f} ms)", w->pid(), startup), w->id());
  emit("bridge.worker.ready", {{"startup_ms", startup}, {"pid", double(w->pid())}},
       {{"worker_id", w->id()}});
}

void Bridge::Impl::retire_locked(TransitionReason reason, const std::string& detail) {
  WorkerPtr w = std::exchange(worker, nullptr);
  {
    std::lock_guard lock(info_mu);
    current.reset();
  }
  if (!w) return;
  w->transition(WorkerState::kTerminating, reason, {{"detail", detail}});
  // Killed rather than asked: every reason to get here leaves its stream or its state in doubt.
  // The bridge thread reaps it (and what is left of its process group) as soon as it is gone.
  if (!w->process().has_exited()) w->process().signal(SIGKILL);
  if (w->process().reaped()) w->transition(WorkerState::kTerminated, reason);
  config.logger->log(LogLevel::kWarn, "bridge",
                     fmt::format("worker removed ({}): {}", reason_name(reason), detail), w->id());
}

void Bridge::Impl::end_worker(Worker& w, milliseconds grace) {
  ChildProcess& p = w.process();
  // The shutdown command, then EOF: either makes the runtime exit 0. Non-blocking and tiny, so it
  // fits in the (empty) pipe of an idle worker; if the write fails the worker is gone already.
  if (p.request_fd() >= 0) {
    ssize_t rc = ::write(p.request_fd(), shutdown_frame().data(), shutdown_frame().size());
    (void)rc;
  }
  p.close_request_pipe();
  if (wait_for_exit(p, grace)) return;
  config.logger->log(LogLevel::kWarn, "bridge",
                     fmt::format("worker did not exit within {} ms; SIGTERM", grace.count()),
                     w.id());
  p.signal(SIGTERM);
  if (wait_for_exit(p, config.kill_grace)) return;
  p.signal(SIGKILL);
  wait_for_exit(p, kAfterKillWait);
}

void Bridge::Impl::emit(std::string name, std::map<std::string, double> measurements,
                        std::map<std::string, std::string> metadata) const {
  if (!config.events->has_handlers()) return;
  Event e;
  e.name = std::move(name);
  e.measurements = std::move(measurements);
  e.metadata = std::move(metadata);
  e.metadata.emplace("bridge", config.name);
  config.events->emit(e);
}

// ---------------------------------------------------------------------------------------------
// The bridge thread: spawning, output, reaping

Result<WorkerPtr> Bridge::Impl::spawn_on_loop(std::uint64_t number) {
  const std::string id = fmt::format("w{}", number);
  auto child = spawner.spawn(worker_spawn_spec(config, id, ::getpid(), worker_env));
  if (!child) return tl::unexpected(child.error());
  auto w = std::make_shared<Worker>(number, std::move(*child), config.max_frame_bytes, clock);
  OutputCapture::Limits limits;
  limits.lines_per_second = config.output_lines_per_second;
  limits.burst = config.output_lines_per_second * 2;
  auto proc = std::make_unique<Proc>(clock, limits);
  proc->worker = w;
  ChildProcess& p = w->process();
  proc->pid_watch = loop.watch(p.pidfd(), EPOLLIN, [this, id](std::uint32_t) { on_exit(id); });
  proc->stdout_watch = loop.watch(p.stdout_fd(), EPOLLIN, [this, id](std::uint32_t) {
    if (auto it = procs.find(id); it != procs.end()) {
      drain_output(*it->second, false);
    }
  });
  proc->stderr_watch = loop.watch(p.stderr_fd(), EPOLLIN, [this, id](std::uint32_t) {
    if (auto it = procs.find(id); it != procs.end()) {
      drain_output(*it->second, true);
    }
  });
  procs.emplace(id, std::move(proc));
  config.logger->log(LogLevel::kDebug, "bridge", fmt::format("spawned pid {}", w->pid()), id);
  emit("bridge.worker.spawned", {{"pid", double(w->pid())}}, {{"worker_id", id}});
  return w;
}

void Bridge::Impl::drain_output(Proc& proc, bool is_stderr) {
  ChildProcess& p = proc.worker->process();
  UniqueFd& fd = is_stderr ? p.stderr_owner() : p.stdout_owner();
  if (!fd) return;
  OutputCapture& capture = is_stderr ? proc.err : proc.out;
  std::vector<std::string> lines;
  bool eof = drain_output_pipe(fd.get(), capture, lines);
  if (eof) {
    EventLoop::WatchId& watch = is_stderr ? proc.stderr_watch : proc.stdout_watch;
    loop.unwatch(watch);
    watch = 0;
    fd.reset();
  }
  log_output_lines(*config.logger, proc.worker->id(), is_stderr, std::move(lines),
                   proc.stderr_tail, kStderrTailLines);
}

void Bridge::Impl::on_exit(const std::string& id) {
  auto it = procs.find(id);
  if (it == procs.end()) return;
  Proc& proc = *it->second;
  WorkerPtr w = proc.worker;
  drain_output(proc, false);  // the last words first: they explain a crash
  drain_output(proc, true);
  auto status = w->process().reap();
  std::string how = status ? status->describe() : "already reaped";
  for (auto watch : {proc.pid_watch, proc.stdout_watch, proc.stderr_watch}) loop.unwatch(watch);
  if (w->state() == WorkerState::kTerminating) {
    w->transition(WorkerState::kTerminated, TransitionReason::kExited, {{"status", how}});
  }
  config.logger->log(LogLevel::kInfo, "bridge",
                     fmt::format("worker pid {} reaped: {}", w->pid(), how), id);
  emit("bridge.worker.exited",
       {{"pid", double(w->pid())},
        {"exit_code", status && !status->signaled ? double(status->code) : -1.0},
        {"signal", status && status->signaled ? double(status->signal) : 0.0}},
       {{"worker_id", id}, {"status", how}});
  last_exit_id = id;
  last_exit_tail = std::move(proc.stderr_tail);
  procs.erase(it);
}

std::deque<std::string> Bridge::Impl::stderr_tail(const std::string& id) {
  return on_loop([this, &id] {
    if (auto it = procs.find(id); it != procs.end()) {
      drain_output(*it->second, true);
      return it->second->stderr_tail;
    }
    return id == last_exit_id ? last_exit_tail : std::deque<std::string>{};
  });
}

void Bridge::Impl::reap_all_on_loop() {
  std::vector<std::string> ids;
  for (auto& [id, proc] : procs) {
    if (!proc->worker->process().has_exited()) proc->worker->process().signal(SIGKILL);
    ids.push_back(id);
  }
  // reap() blocks until the exit, which SIGKILL makes a matter of microseconds.
  for (const auto& id : ids) on_exit(id);
}

// ---------------------------------------------------------------------------------------------
// Public API

Bridge::Bridge(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Bridge::~Bridge() { shutdown(); }

Result<std::unique_ptr<Bridge>> Bridge::start(PoolConfig config) {
  if (auto ok = config.resolve(); !ok) return tl::unexpected(ok.error());
  ignore_sigpipe_if_default();
  auto impl = std::make_unique<Impl>(std::move(config));
  if (auto ok = impl->loop.start(); !ok) return tl::unexpected(ok.error());
  std::unique_ptr<Bridge> bridge(new Bridge(std::move(impl)));
  Impl& s = *bridge->impl_;
  Result<WorkerPtr> first;
  {
    CallGate::Pass pass = s.gate.enter();
    first = s.start_worker_locked();
  }
  if (!first) {
    Error e = first.error();
    e.message = fmt::format("bridge '{}' could not start its worker: {}", s.config.name, e.message);
    bridge->shutdown(milliseconds(0));
    return tl::unexpected(std::move(e));
  }
  return bridge;
}

Result<Json> Bridge::execute(std::string_view command, Json args, const ExecuteOptions& options) {
  return impl_->run(std::nullopt, command, std::move(args), options);
}

Result<Json> Bridge::execute_in_session(std::string_view session_id, std::string_view command,
                                        Json args, const ExecuteOptions& options) {
  return impl_->run(session_id, command, std::move(args), options);
}

Result<bool> Bridge::close_session(std::string_view session_id) {
  Impl& s = *impl_;
  TimePoint started_at = s.clock.now();
  if (session_id.empty()) return make_error(ErrorCategory::kInvalidRequest, "session id is empty");
  CallGate::Pass pass = s.gate.enter_until(started_at + s.config.checkout_timeout);
  if (!pass) {
    Error e = s.lock_timeout(started_at, "close_session");
    e.context.session_id = std::string(session_id);
    return tl::unexpected(std::move(e));
  }
  auto it = s.sessions.find(std::string(session_id));
  if (it == s.sessions.end()) return false;
  const std::uint64_t bound = it->second;
  s.sessions.erase(it);
  s.session_count.fetch_sub(1, std::memory_order_relaxed);
  // A lost session (its worker is gone) has no state left to free.
  if (s.shut_down || !s.worker || s.worker->number() != bound || s.worker->check_usable()) {
    return true;
  }
  wire::Request request{0, "close_session", Json{{"session_id", std::string(session_id)}},
                        std::string(session_id), std::nullopt};
  WorkerPtr w = s.worker;
  Impl::Attempt a = s.attempt_on(w, request, s.clock.now() + s.config.request_timeout, nullptr);
  if (a.result) return true;
  Error& e = a.result.error();
  // The worker refused the request (it is fine): report that. Any worker-level failure took the
  // worker — and the session's state with it — away, which is what closing asked for.
  if (e.category == ErrorCategory::kPython || e.category == ErrorCategory::kInvalidRequest) {
    e.context.session_id = std::string(session_id);
    e.context.pool_name = s.config.name;
    return tl::unexpected(std::move(e));
  }
  return true;
}

void Bridge::shutdown(std::optional<milliseconds> grace_opt) {
  Impl& s = *impl_;
  const milliseconds grace = grace_opt.value_or(s.config.shutdown_grace);
  std::optional<CallGate::Pass> pass;
  pass.emplace(s.gate.enter_until(s.clock.now() + grace));
  if (!*pass) {
    // A call is still running past the grace: end its worker so the call returns (connection
    // error), then take over.
    {
      std::lock_guard info(s.info_mu);
      if (s.current) s.current->process().signal(SIGKILL);
    }
    pass.emplace(s.gate.enter());
  }
  if (s.shut_down) return;
  s.shut_down = true;
  if (WorkerPtr w = s.worker) {
    s.worker.reset();
    {
      std::lock_guard info(s.info_mu);
      s.current.reset();
    }
    w->transition(WorkerState::kTerminating, TransitionReason::kShutdown);
    s.end_worker(*w, grace);
  }
  // Everything the bridge ever started is reaped before its thread ends (the thread's end would
  // SIGKILL any survivor through PR_SET_PDEATHSIG anyway, but could not reap it).
  s.on_loop([&s] {
    s.reap_all_on_loop();
    return true;
  });
  s.loop.stop();
}

BridgeInfo Bridge::info() const {
  const Impl& s = *impl_;
  BridgeInfo info;
  info.name = s.config.name;
  WorkerPtr w;
  {
    std::lock_guard lock(s.info_mu);
    w = s.current;
    info.last_init_error = s.last_init_error_message;
  }
  info.state = "none";
  if (w) {
    WorkerSnapshot snap = w->snapshot();
    info.worker_id = snap.id;
    info.pid = snap.pid;
    info.state = state_name(snap.state);
    info.worker_requests = snap.requests;
  }
  info.requests = s.requests.load();
  info.ok = s.ok.load();
  info.restarts = s.restarts.load();
  info.init_failures = s.init_failures.load();
  info.sessions = s.session_count.load();
  info.session_rebinds = s.session_rebinds.load();
  for (std::size_t i = 0; i < s.errors_by_category.size(); ++i) {
    auto n = s.errors_by_category[i].load();
    if (n > 0) info.errors[std::string(category_name(static_cast<ErrorCategory>(i)))] = n;
  }
  return info;
}

const PoolConfig& Bridge::config() const { return impl_->config; }

}  // namespace bridgepool
