// Pool::Impl: the composition root of a pool. It owns the components — each with its own state
// and lock — and the few operations that span several of them (admitting a started worker,
// retiring one, a request's attempt, shutdown). It has no mutex of its own.
//
//   component          state it owns                                 lock
//   -----------------  --------------------------------------------  -------------------------
//   WorkerSupervisor   worker processes: spawn .. reap, output       its mu_ (leaf) + the loop
//   Capacity           how many serve / are starting, generation     its mu_ (leaf)
//   WorkerRegistry     in-service workers, idle/degraded, waiters    its mu_
//   SpareSet           warm spares kept aside, spare starts          its mu_ (leaf)
//   SessionAffinity    session -> worker bindings                    64 shard locks + 2 (leaf)
//   PendingCloses      session closes owed to busy workers           its mu_ (leaf)
//   PoolResilience     breaker, retry budget, quarantine, counters   their own (leaf)
//   Maintenance        the maintenance thread and its schedule       atomics
//   RequestCounters    requests, ok, errors by category, ...         atomics
//
// Lock order (written once): WorkerRegistry::mu_ -> {Capacity::mu_, SessionAffinity's locks,
// PendingCloses::mu_, a Worker's mutex}; every other lock is a leaf, never held while calling
// another component. Nothing calls back into the registry while holding a lock.
//
// Threads (docs/design.md has the full table): callers (requests: checkout, I/O, checkin); the
// monitor loop (EventLoop: spawns, handshakes, output, exits, timers); the supervisor's init
// thread (init commands); the maintenance thread (probes, recycling, session closes); the async
// threads (execute_async); broadcast threads (one per worker, for the call's duration).
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "base/async_executor.h"
#include "base/event_loop.h"
#include "base/shared_slot.h"
#include "bridgepool/clock.h"
#include "bridgepool/pool.h"
#include "pool/capacity.h"
#include "pool/health_tracker.h"
#include "pool/maintenance.h"
#include "pool/pending_closes.h"
#include "pool/pool_resilience.h"
#include "pool/recycle_policy.h"
#include "pool/session_affinity.h"
#include "pool/spare_set.h"
#include "pool/worker_registry.h"
#include "process/spawner.h"
#include "resilience/error_classifier.h"
#include "worker/recovery_policy.h"
#include "worker/worker.h"
#include "worker/worker_supervisor.h"
#include "worker/worker_telemetry.h"

namespace bridgepool {

struct BatchRun;  // pool_batch.cc

// Per-call counters of the request path (lock-free: read on every request).
struct RequestCounters {
  std::atomic<std::uint64_t> requests{0}, ok{0}, rerouted{0}, discarded{0}, session_lost_calls{0};
  std::atomic<std::uint64_t> exits{0}, health_checks{0}, health_check_failures{0};
  std::atomic<std::uint64_t> checkin_errors{0}, recycled{0}, overflow_retired{0};
  std::array<std::atomic<std::uint64_t>, 16> errors_by_category{};
};

struct Pool::Impl final : WorkerSupervisor::Listener {
  // `kind` is what CallReport::adapter and Executor::kind() say: "pool", or "bridge" for a
  // Bridge (a pool of one).
  Impl(PoolConfig cfg, std::string kind);
  ~Impl() override;

  // ---- immutable after start ----
  const PoolConfig config;
  const std::string kind;
  std::shared_ptr<const Clock> clock_owner;
  const Clock& clock;
  std::shared_ptr<Spawner> spawner;
  const RecoveryPolicy recovery;
  const RecyclePolicy recycle;
  const HealthConfig health_config;
  UniformRandom random;  // recycling jitter
  WorkerTelemetry telemetry;

  // ---- components ----
  EventLoop loop;  // the monitor thread
  Capacity capacity;
  WorkerRegistry registry;
  SpareSet spares;
  SessionAffinity affinity;
  PendingCloses pending_closes;
  PoolResilience resilience;
  RequestCounters counters;
  WorkerSupervisor supervisor;
  Maintenance maintenance;

  // The command table of the newest generation's handshake (read on every request; a leaf lock).
  struct CommandTable {
    std::uint64_t generation = 0;  // of the worker whose handshake it holds
    std::vector<CommandSpec> commands;
    std::unordered_map<std::string, bool> idempotent;  // name -> idempotent
  };
  SharedSlot<const CommandTable> command_table;

  std::mutex async_mu;                   // guards `async` creation and hand-over at shutdown
  std::shared_ptr<AsyncExecutor> async;  // created on the first execute_async or batch
  std::mutex shutdown_mu;                // one shutdown at a time; later callers wait for it
  bool shut_down = false;                // guarded by shutdown_mu
  TimePoint last_session_sweep{};        // maintenance thread only
  bool initial_spares_launched = false;  // monitor thread only

  // ---- lifecycle (pool_lifecycle.cc) ----
  Result<void> start_workers();
  // Starts one worker (or spare) after `delay`; the start was already counted in Capacity.
  void launch_after(std::chrono::milliseconds delay, StartRole role = StartRole::kService);
  // Fills one counted service slot: a ready spare at once if there is one, else a start after
  // `delay` (on the monitor thread, where every admission happens). `replaces`: the worker
  // that left ("" for growth or a failed start).
  void fill_slot(std::chrono::milliseconds delay, std::string replaces);
  // The newest generation's command table, from a worker that is about to serve.
  void note_commands(const WorkerPtr& worker, std::uint64_t generation);
  // WorkerSupervisor::Listener (monitor thread).
  void on_ready(const WorkerPtr& worker, std::uint64_t generation, Duration startup) override;
  void on_start_failed(std::uint64_t number, std::uint64_t generation, Error error) override;
  void on_exit(const WorkerPtr& worker, const std::string& how) override;
  // Takes a worker out of service (any thread): registry, capacity (and its replacement),
  // sessions, transition, SIGKILL if `kill`. False if it already was out.
  // `recycle_reserved`: the removal Capacity::try_begin_recycle() reserved.
  bool retire(const WorkerPtr& worker, TransitionReason reason, bool kill,
              const std::string& detail, bool recycle_reserved = false);
  // The borrower is done with a worker that must leave service: retire it, end it (gracefully
  // unless `kill`) and release it.
  void checkin_remove(const WorkerPtr& worker, TransitionReason reason, bool kill,
                      const std::string& detail, bool recycle_reserved = false);
  // The borrower gives back a worker whose round trip went fine: back to service unless a
  // recycling limit or a rolling restart says it must go.
  void checkin_ok(const WorkerPtr& worker);
  // Every worker-level failure, on every path (a request, a probe, a session close, a checkin
  // error, the exit watcher): RecoveryPolicy decides, this carries the decision out — keep,
  // degrade (probe soon), remove (gracefully) or kill — and starts the replacement. `borrowed`:
  // the caller holds the worker and gives it up here. `consecutive`: the worker's failures of
  // this kind, this one included (health and checkin errors count; others are 1).
  void worker_failed(const WorkerPtr& worker, FailureKind kind, std::uint32_t consecutive,
                     const std::string& detail, bool borrowed);
  // The handler marked the worker unhealthy (its reply is good): a checkin `error`.
  // `request`: the call whose reply marked the worker (its ids go into the log line).
  void checkin_error(const WorkerPtr& worker, const std::string& reason,
                     const wire::Request& request);
  // Gives back a worker taken out of rotation without a request (probe, lost bind).
  void return_unused(const WorkerPtr& worker);
  void shutdown(std::optional<std::chrono::milliseconds> grace);
  Error shutting_down_error(std::string_view operation) const;

  // ---- warm spares (pool_spares.cc) ----
  // Monitor thread: a ready spare of the current generation goes into service (false if none).
  bool promote_spare(const std::string& replaces);
  // Monitor thread: a spare that completed its start joins the set (retired at once if a
  // rolling restart made its generation old meanwhile).
  void admit_spare(const WorkerPtr& worker, std::uint64_t generation);
  // A spare taken out of the set leaves: counted (and replenished), terminating, SIGKILL if
  // `kill`, logged. The caller ends it otherwise.
  void spare_left(const WorkerPtr& worker, TransitionReason reason, bool kill,
                  const std::string& detail);
  // Ends (gracefully) the spares `pick` chooses, for `reason`; returns how many.
  std::size_t retire_spares(const std::function<bool(const Tracking&)>& pick,
                            TransitionReason reason, const std::string& detail);
  // Spares of another generation than the current one leave (rolling restart, its revert).
  void retire_stale_spares();
  // Maintenance thread: RSS of the spares, recycling of those over a limit, and their probes.
  void care_for_spares(TimePoint now);
  void probe_spare(const WorkerPtr& worker);

  // ---- requests (pool_request.cc) ----
  struct Attempt {
    Result<Json> result;
    WorkerFault fault = WorkerFault::kNone;
  };
  // One round trip on a checked-out worker, then its checkin by RecoveryPolicy (`close`: the
  // caller asked for the worker to be removed after a good round trip).
  Attempt attempt_on(const WorkerPtr& worker, wire::Request& request, TimePoint deadline,
                     const ChunkCallback& on_chunk, bool close = false);
  // attempt_on in two halves. The first — the worker checked, marked busy, the request written —
  // may run on another caller's thread: the one that hands this caller its worker (see
  // WorkerRegistry::Handoff); the second, on the caller's thread, reads the reply and checks the
  // worker in. `Sending` is the first half's state, owned by the caller.
  struct Sending {
    Sending(const wire::PreparedRequest& r, TimePoint d) : request(&r), deadline(d) {}
    const wire::PreparedRequest* request;
    TimePoint deadline;
    bool done = false;  // send_attempt ran
    std::uint64_t id = 0;
    std::optional<CallOutcome> failed;  // it could not be sent: the attempt's outcome
    FailureKind kind = FailureKind::kPythonException;
  };
  // Requests up to this size (JSON text and attachments) may be sent by another caller's thread:
  // a write into an empty pipe (64 KiB) that never waits for the worker to read.
  static constexpr std::size_t kHandoffMaxBytes = 16 * 1024;
  void send_attempt(const WorkerPtr& worker, Sending& sending);
  Attempt finish_attempt(const WorkerPtr& worker, Sending& sending, wire::Request& request,
                         const ChunkCallback& on_chunk, bool close);
  // One sessionless attempt: checkout (avoiding `avoid_worker` when another is idle), round
  // trip, re-routing what was provably not delivered (it never ran: not a retry). Sends
  // `prepared` if given (a batch), else `request`.
  PoolResilience::Once run_once(wire::Request& request, TimePoint checkout_deadline,
                                TimePoint deadline, const ExecuteOptions& options,
                                const std::string& avoid_worker, Duration& queue_wait,
                                const wire::PreparedRequest* prepared = nullptr);
  // Validation, deadlines, the resilient call and the accounting of one call.
  Result<Json> execute(std::optional<std::string_view> session, std::string_view command, Json args,
                       const ExecuteOptions& options);
  // The log line of a call that ended (debug if it succeeded, info if not), with its pool,
  // worker, session and wire request id.
  // `command` and `session` as command_label() / session_label() say them ("" : no session).
  void log_call_end(const Result<Json>& result, std::string_view command, std::string_view session,
                    std::string_view worker_id, std::uint64_t request_id,
                    std::chrono::microseconds elapsed) const;
  // Shape of the request (UTF-8, depth, numbers, timeouts), then the command's existence.
  Result<void> validate(std::optional<std::string_view> session, std::string_view command,
                        const Json& args, const ExecuteOptions& options) const;
  bool is_idempotent(std::string_view command) const;
  void count_error(const Error& e);

  // ---- batches (pool_batch.cc) ----
  std::vector<Result<Json>> execute_many(std::string_view command, std::vector<Json> items,
                                         const ExecuteOptions& options);
  // One chunk of a batch, through the resilience layer (any lane's thread).
  void run_chunk(BatchRun& run, std::size_t chunk);
  // The threads of execute_async (and of execute_many's helper lanes), created on first use;
  // null once the pool shuts down. Shared: shutdown may take them away meanwhile.
  std::shared_ptr<AsyncExecutor> async_executor();

  // ---- sessions (pool_sessions.cc) ----
  PoolResilience::Once run_session_once(std::string_view session_id, wire::Request& request,
                                        const ExecuteOptions& options, TimePoint checkout_deadline,
                                        TimePoint deadline, Duration& queue_wait);
  Error session_lost(std::string_view session_id, WorkerKey worker) const;
  Result<bool> close_session(std::string_view session_id);
  // Sends close_session for each id on a worker the caller holds; gives it back after. On a
  // fault the worker is removed and the error returned.
  Result<void> send_closes(const WorkerPtr& worker, const std::vector<std::string>& session_ids,
                           TimePoint deadline, bool give_back);
  void sweep_sessions();        // maintenance thread
  void flush_pending_closes();  // maintenance thread

  // ---- maintenance (pool_maintenance.cc) ----
  void maintenance_round();  // maintenance thread
  void probe(const WorkerPtr& worker, bool was_degraded);
  // One health_check round trip on a worker the caller holds (or a spare it marked probing),
  // counted and emitted; `detail` says what failed.
  struct ProbeResult {
    WorkerFault fault = WorkerFault::kNone;
    bool healthy = false;
    std::string detail;
  };
  ProbeResult send_probe(const WorkerPtr& worker, bool degraded, bool spare);
  // Resident memory of every worker and spare (when max_rss_mb is set); marks recycling due.
  void measure_rss();
  std::chrono::milliseconds maintenance_tick() const;
  // posix_spawn, or fork from a zygote for StartMethod::kForkServer (fork_server_spawner.h); its
  // log lines go through `telemetry` (tagged "fork-server").
  std::shared_ptr<Spawner> default_spawner();
  std::optional<Leave> leave_on_return(const WorkerPtr& worker, Tracking& tracking);
  Tracking new_tracking(std::uint64_t generation);

  // ---- stats (pool.cc) ----
  PoolStats stats() const;
};

}  // namespace bridgepool
