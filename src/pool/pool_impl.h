// Pool::Impl: the pool's internal state, shared by pool.cc (public API, execute, shutdown),
// pool_monitor.cc (the monitor thread: spawn, handshake, exit, output) and pool_checkout.cc
// (checkout/checkin/retire).
//
// Locking: `mu` guards everything in the "shared" block; a Worker's own state machine has its own
// mutex and is only ever locked *after* mu or alone (never mu after a worker lock). The "monitor
// thread only" block is touched exclusively by tasks and callbacks running on `loop`.
//
// Worker life in the pool:
//   spawn (monitor) -> handshake (monitor) -> live: idle <-> borrowed (callers) -> retired
//   (any thread: leaves `live`, replacement scheduled) -> exit noticed and reaped (monitor).
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <random>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "bridgepool/clock.h"
#include "base/event_loop.h"
#include "bridgepool/pool.h"
#include "pool/async_executor.h"
#include "pool/checkout_queue.h"
#include "pool/health_tracker.h"
#include "pool/recovery_policy.h"
#include "pool/recycle_policy.h"
#include "pool/respawn_backoff.h"
#include "pool/session_affinity.h"
#include "process/spawner.h"
#include "resilience/error_classifier.h"
#include "resilience/poison_quarantine.h"
#include "resilience/retry_budget.h"
#include "worker/output_capture.h"
#include "worker/worker.h"

namespace bridgepool {

using WorkerPtr = std::shared_ptr<Worker>;

struct Pool::Impl {
  explicit Impl(PoolConfig cfg);

  // ---- immutable after start ----
  PoolConfig config;
  const Clock& clock = SteadyClock::instance();
  std::unique_ptr<Spawner> spawner;
  RespawnBackoff backoff;
  RecoveryPolicy recovery;
  RecyclePolicy recycle;
  HealthConfig health_config;
  SessionAffinity affinity;
  // What new workers are started with: the interpreter, handlers, environment and init commands
  // of one "generation". rolling_restart() installs a new generation; workers remember theirs.
  struct SpawnGeneration {
    std::uint64_t number = 1;
    PoolConfig config;
    std::vector<std::string> env;  // computed once per generation
  };

  EventLoop loop;

  // ---- shared, guarded by mu ----
  mutable std::mutex mu;
  std::condition_variable state_cv;  // live/borrowed/unreaped changes: wait_ready, shutdown
  std::unordered_map<std::string, WorkerPtr> known;  // every process not yet reaped
  std::unordered_map<std::string, WorkerPtr> live;   // in service: idle or borrowed
  std::vector<WorkerPtr> idle;                       // LIFO: the most recently used stays hot
  CheckoutQueue queue;
  struct Waiter {
    std::condition_variable cv;
    WorkerPtr worker;
    std::optional<Error> error;
  };
  // shared_ptr: the waker notifies after releasing mu (so the woken thread does not immediately
  // block on mu again), by which time the waiter may already have left checkout().
  std::unordered_map<CheckoutQueue::Ticket, std::shared_ptr<Waiter>> waiters;
  // Callers waiting for one particular worker (session affinity, broadcast), FIFO per worker.
  // They are served before the general queue: they cannot use any other worker.
  std::unordered_map<std::string, std::deque<std::shared_ptr<Waiter>>> targeted;
  std::size_t borrowed = 0;
  std::size_t starting = 0;  // spawns scheduled, spawning or handshaking
  bool shutting_down = false;
  bool shut_down = false;
  std::shared_ptr<const SpawnGeneration> generation;
  std::uint64_t last_failed_generation = 0;  // generation of the last worker that failed to start
  std::uint64_t overflow_retired = 0;
  std::uint32_t consecutive_init_failures = 0;
  std::uint32_t spawns_in_flight = 0;  // spawn_worker between its shutdown check and `known`
  std::optional<Error> last_init_error;
  std::uint64_t next_worker_number = 1;
  std::uint64_t started = 0, replaced = 0, init_failures = 0, exits = 0, discarded = 0;
  std::vector<CommandSpec> commands;
  // Per live worker: health bookkeeping and recycling limits.
  struct Tracking {
    HealthTracker health;
    std::uint64_t recycle_limit = 0;  // requests; 0 = no limit
    double rss_mb = 0;
    std::optional<RecycleReason> recycle_due = std::nullopt;  // set once a limit is reached
    std::uint64_t generation = 1;
    bool retire_when_idle = false;  // rolling restart: leave service at the next checkin
    TimePoint last_used{};          // last checkin (for retiring idle overflow workers)
  };
  std::unordered_map<std::string, Tracking> tracking;
  std::vector<WorkerPtr> degraded;  // live but out of rotation until a probe passes
  std::mt19937_64 rng{std::random_device{}()};
  std::uint64_t health_checks = 0, health_check_failures = 0, recycled = 0;
  // Sessions whose worker must be told to drop their state (expired or closed while the worker
  // was busy): worker id -> session ids. Flushed by the maintenance thread when it is idle.
  std::unordered_map<std::string, std::vector<std::string>> pending_closes;
  TimePoint last_session_sweep{};

  // ---- lock-free counters and the command table (read on every request) ----
  std::atomic<std::uint64_t> requests{0}, ok{0}, rerouted{0};
  std::atomic<std::uint64_t> session_lost_calls{0};  // every call failed with session_lost
  std::array<std::atomic<std::uint64_t>, 16> errors_by_category{};
  struct CommandTable {
    std::unordered_map<std::string, bool> idempotent;  // name -> idempotent
  };
  std::atomic<std::shared_ptr<const CommandTable>> command_table;

  std::unique_ptr<AsyncExecutor> async;  // created on first execute_async (guarded by mu)
  // One thread for the pool's own request I/O off the monitor thread: init commands (later
  // health probes and session clean-up). Created at start, stopped at shutdown.
  std::unique_ptr<AsyncExecutor> maintenance;

  // ---- monitor thread only ----
  struct Proc {
    WorkerPtr worker;
    bool initializing = true;  // until admitted (handshake + init commands) or failed
    bool handshaken = false;
    EventLoop::WatchId pid_watch = 0, response_watch = 0, stdout_watch = 0, stderr_watch = 0;
    OutputCapture out, err;
    std::deque<std::string> stderr_tail;  // last lines, for init-failure messages
    TimePoint spawned_at;
    std::shared_ptr<const SpawnGeneration> generation;
    Proc(const Clock& c, OutputCapture::Limits l) : out(c, l), err(c, l) {}
  };
  std::unordered_map<std::string, std::unique_ptr<Proc>> procs;

  // ---- monitor side (pool_monitor.cc) ----
  void schedule_spawn(std::chrono::milliseconds delay);  // any thread; caller must NOT hold mu
  // Posts a spawn whose `starting` count the caller already took under mu, together with the
  // decision to spawn: deciding and counting in one critical section is what keeps two threads
  // from both seeing "one short" and starting two workers for one missing slot.
  void post_spawn(std::chrono::milliseconds delay);
  void spawn_worker();
  void on_handshake_readable(const std::string& id);
  Result<void> run_init_commands(Worker& worker, const std::vector<InitCommand>& commands);
  void finish_init(const std::string& id, const Result<void>& init);
  void admit(Proc& proc);
  void on_init_timeout(const std::string& id);
  void on_init_failure(Proc* proc, const std::string& id, Error error,
                       std::uint64_t generation_number = 0);
  void on_output(const std::string& id, bool is_stderr);
  void drain_output(Proc& proc, bool is_stderr);
  void on_exit(const std::string& id);
  void end_all_workers(std::chrono::milliseconds grace);

  // ---- checkout side (pool_checkout.cc) ----
  // An idle worker (not `avoid` when another is idle), else waits in FIFO order.
  Result<WorkerPtr> checkout(TimePoint deadline, const std::string& avoid = {});
  // mu held; `worker` is live and ready and not counted as borrowed: hands it to the oldest
  // waiter (counting it borrowed) or puts it on the idle stack. Returns the waiter to notify
  // once mu is released (null if it went idle).
  [[nodiscard]] std::shared_ptr<Waiter> give_back_locked(const WorkerPtr& worker);
  void checkin_ok(const WorkerPtr& worker);
  // The borrower is done with a worker that must leave service.
  void checkin_remove(const WorkerPtr& worker, TransitionReason reason, bool kill,
                      const std::string& detail);
  // Takes a worker out of service (any thread). Returns false if it already was.
  bool retire(const WorkerPtr& worker, TransitionReason reason, bool kill,
              const std::string& detail);
  // EOF on the request pipe now, SIGTERM after `grace`, SIGKILL kill_grace later. The worker
  // must not be borrowed (its request pipe is closed here).
  void terminate_gracefully(const WorkerPtr& worker, std::chrono::milliseconds grace);
  void fail_waiters_locked(const Error& error);

  // ---- requests (pool_request.cc) ----
  struct Attempt {
    Result<Json> result;
    bool try_another_worker = false;  // the request provably never ran: safe to re-route
    WorkerFault fault = WorkerFault::kNone;
  };
  // One round trip on a checked-out worker, then its checkin (ok, or removal by fault).
  Attempt attempt_on(const WorkerPtr& worker, wire::Request& request, TimePoint deadline,
                     const ChunkCallback& on_chunk);
  // Checks out exactly `target`, waiting while it is busy. Error (connection) if it leaves
  // service first.
  Result<WorkerPtr> checkout_worker(const WorkerPtr& target, TimePoint deadline);
  std::vector<std::shared_ptr<Waiter>> fail_targeted_waiters_locked(const std::string& worker_id,
                                                                    const Error& error);

  // ---- resilience (pool_resilience.cc): breaker, retries, budget, quarantine ----
  std::shared_ptr<BreakerRegistry> breakers;
  std::shared_ptr<CircuitBreaker> breaker;  // null when resilience.breaker_enabled is false
  RetryBudget retry_budget;
  std::unique_ptr<PoisonQuarantine> quarantine;  // null when disabled
  std::atomic<std::uint64_t> retries{0}, retries_denied{0}, circuit_rejected{0},
      quarantine_refused{0};
  // One attempt as the resilience loop sees it.
  struct Once {
    Result<Json> result;
    std::string worker_id;       // the worker it ran on ("" if none was checked out)
    bool may_have_run = false;   // written to a worker that may have read it
    bool killed_worker = false;  // the worker died or had to be killed (crash, hang, bad stream)
    bool no_time_left = false;   // the attempt used up its own time budget (checkout timeout)
  };
  using OnceFn = std::function<Once(std::uint32_t attempt, const std::string& avoid_worker)>;
  // One call: run_resilient, or (resilience disabled) a single classified attempt; fills
  // options.report. Caller's thread.
  Result<Json> run_call(std::string_view command, const Json& args, const ExecuteOptions& options,
                        TimePoint deadline, const OnceFn& once);
  // Breaker, quarantine, classification and retries around `once` (SPEC §6). Caller's thread.
  Result<Json> run_resilient(std::string_view command, const Json& args,
                             const ExecuteOptions& options, TimePoint deadline, const OnceFn& once);
  // One sessionless attempt: checkout (avoiding `avoid_worker` when another is idle), round trip,
  // re-routing what was provably not delivered.
  Once run_once(wire::Request& request, TimePoint checkout_deadline, TimePoint deadline,
                const ChunkCallback& on_chunk, const std::string& avoid_worker,
                Duration& queue_wait);
  // Whether and when an attempt that failed with `e` is tried again: `reason` empty = retry
  // after `delay`; else why not ("not_retryable", "attempts_exhausted", "deadline",
  // "shutting_down") and a note for the error's cause.
  struct RetryStep {
    std::string reason;
    std::string note;
    std::chrono::microseconds delay{0};
  };
  RetryStep next_retry(const Error& e, std::uint32_t attempt, const RetryPolicy& policy,
                       std::chrono::microseconds previous_delay, TimePoint retry_deadline,
                       const Once& o);
  void emit_gave_up(std::string_view command, const Error& e, std::uint32_t attempts,
                    std::string_view reason, Duration elapsed);
  bool is_idempotent(std::string_view command) const;
  bool no_worker_in_service() const;  // and none on its way (see pool_resilience.cc)

  // ---- maintenance (pool_maintenance.cc): health probes, recycling ----
  std::atomic<bool> maintenance_running{false};
  std::chrono::milliseconds maintenance_tick() const;
  void schedule_maintenance();  // monitor thread: posts the next round
  void maintenance_round();     // maintenance thread
  void probe(const WorkerPtr& worker, bool was_degraded);
  // Gives back a worker that was taken out of rotation without a request (probe, lost bind).
  void return_unused(const WorkerPtr& worker);
  // mu held: take an idle worker that is due for recycling out of service, if capacity allows.
  bool recycle_if_due_locked(const WorkerPtr& worker);
  // mu held: whether a worker coming back must leave service instead (rolling restart).
  bool retire_on_return_locked(const WorkerPtr& worker) const;

  // ---- sessions (pool_sessions.cc) ----
  Result<WorkerPtr> checkout_for_new_session(TimePoint deadline);
  // One attempt of a session call: routed to the session's worker (or a new binding).
  Once run_session_once(std::string_view session_id, wire::Request& request,
                        const ExecuteOptions& options, TimePoint checkout_deadline,
                        TimePoint deadline, Duration& queue_wait);
  WorkerPtr live_worker(WorkerKey key) const;  // null if not in service
  Error session_lost(std::string_view session_id, WorkerKey worker) const;
  void sweep_sessions();   // maintenance thread
  bool take_pending_close(const std::string& worker_id, std::string_view session_id);
  // Sends close_session on a worker the caller holds; on a fault the worker is removed.
  Result<void> send_close_now(const WorkerPtr& worker, std::string_view session_id,
                              TimePoint deadline);
  void flush_pending_closes();  // maintenance thread
  void send_closes(const WorkerPtr& worker, const std::vector<std::string>& session_ids);

  // ---- helpers ----
  // Shape of the request (and session id, if any), then the command against the handshake.
  Result<void> validate(std::optional<std::string_view> session, std::string_view command,
                        const Json& args) const;
  bool transit(const WorkerPtr& worker, WorkerState to, TransitionReason reason,
               std::map<std::string, std::string> metadata = {});
  void emit(std::string name, std::map<std::string, double> measurements,
            std::map<std::string, std::string> metadata);
  // Counts, stamps the context and emits pool.request. Errors are classified by `classify` if
  // given (run_resilient classifies its own).
  Result<Json> finish(Result<Json> result, std::string_view command, TimePoint started_at,
                      Duration queue_wait, std::optional<ClassifyInput> classify = std::nullopt);
  std::string describe_load_locked() const;  // "3 of 4 workers busy, 2 callers queued"
};

}  // namespace bridgepool
