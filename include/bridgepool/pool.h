// Pool: a pool of long-lived Python worker processes (SPEC §5). The library's main entry point.
//
//   auto pool = bridgepool::Pool::start(config);        // spawns workers concurrently
//   auto reply = (*pool)->execute("echo", {{"x", 1}});  // Result<Json>
//
// Every public method is thread-safe. execute() does the request I/O on the calling thread (no
// hand-off to a pool thread); background work — exit detection, handshakes, output capture,
// respawning — runs on the pool's own monitor thread, health probes and session clean-up on its
// maintenance thread (docs/design.md lists every thread and lock). Nothing throws: failures are
// Error values whose category says what happened (see error.h). The pool ignores SIGPIPE
// process-wide if it is at its default (a write to a dead worker must be an EPIPE error, not a dead
// host).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "bridgepool/config.h"
#include "bridgepool/error.h"
#include "bridgepool/event_bus.h"
#include "bridgepool/executor.h"
#include "bridgepool/pool_stats.h"
#include "bridgepool/worker_state.h"

namespace bridgepool {

struct TransitionInfo {
  WorkerState from = WorkerState::kInitializing;
  WorkerState to = WorkerState::kInitializing;
  TransitionReason reason = TransitionReason::kInitComplete;
  double time_in_previous_ms = 0;
  std::int64_t wall_time_ms = 0;  // Unix epoch
};

struct WorkerInfo {
  std::string id;
  pid_t pid = 0;
  WorkerState state = WorkerState::kInitializing;
  WorkerHealth health = WorkerHealth::kUnknown;
  std::uint64_t requests = 0;
  std::uint64_t python_errors = 0;
  std::uint64_t failures = 0;  // consecutive checkin errors
  double uptime_s = 0;
  std::string handlers_version;
  std::uint64_t generation = 0;  // spawn generation (1 at start, +1 per rolling_restart)
  std::string current_session;   // session of the request in flight ("" when idle or sessionless)
  std::uint64_t rss_bytes = 0;   // resident memory of the process now (0: unknown or exited)
  bool spare = false;  // a warm spare kept aside (PoolConfig::spare_workers): takes no traffic
  std::vector<TransitionInfo> history;
};

struct CommandSpec {
  std::string name;
  bool idempotent = false;
};

class Pool final : public Executor {
 public:
  // Starts the workers and waits (up to startup_timeout) until min_ready are ready. Returns an
  // initialization error carrying the Python traceback when workers cannot start at all.
  static Result<std::unique_ptr<Pool>> start(PoolConfig config);
  ~Pool() override;  // shutdown(config.shutdown_grace) if not done
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Runs `command` on a free worker. Blocks the calling thread up to checkout + request time.
  Result<Json> execute(std::string_view command, Json args = Json::object(),
                       const ExecuteOptions& options = {}) override;
  // Runs in a session: the first call binds the session to the least-loaded worker, later calls
  // go to that worker (waiting while it is busy, up to the checkout timeout). If that worker was
  // removed, strict mode fails with a `session` error naming the session and the dead worker.
  Result<Json> execute_in_session(std::string_view session_id, std::string_view command,
                                  Json args = Json::object(),
                                  const ExecuteOptions& options = {}) override;
  Result<bool> close_session(std::string_view session_id) override;
  // Executor::execute_many over the pool: chunks (ExecuteOptions::batch_chunk items each) go to
  // as many workers at once as the pool has, from the calling thread and the execute_async
  // threads. Items with invalid arguments fail alone (invalid_request) and are not sent. Every
  // chunk is one call for the circuit breaker, the retry budget and the quarantine; the request
  // counters count items. See docs/design.md "Batches".
  std::vector<Result<Json>> execute_many(std::string_view command, std::vector<Json> args,
                                         const ExecuteOptions& options = {}) override;
  // "pool" ("bridge" for the pool of one inside a Bridge).
  std::string_view kind() const override;

  // Runs `command` once on every worker in service (waiting for busy ones up to `timeout`).
  struct BroadcastResult {
    std::map<std::string, Result<Json>> results;  // worker id -> its reply
    std::size_t succeeded = 0;
    std::size_t failed = 0;
  };
  BroadcastResult broadcast(std::string_view command, Json args = Json::object(),
                            milliseconds timeout = milliseconds(10'000));
  // The same on an internal thread; the future never throws. The async threads are as many as
  // workers can serve at once (size + max_overflow + 1); further calls queue behind them.
  std::future<Result<Json>> execute_async(std::string command, Json args = Json::object(),
                                          ExecuteOptions options = {});
  std::future<Result<Json>> execute_in_session_async(std::string session_id, std::string command,
                                                     Json args = Json::object(),
                                                     ExecuteOptions options = {});

  // Waits until at least `count` workers (0: configured size) are ready.
  Result<void> wait_ready(milliseconds timeout, std::size_t count = 0);

  // Replaces every worker, `batch` at a time, with workers started from `new_config`'s python,
  // python_args, handlers, python_path, env, version_tag and init_commands (other settings
  // stay). An idle worker is retired at once, a busy one when its request completes, so no
  // request fails; at least size - batch workers stay in service. Returns once every worker runs
  // the new generation, or the first initialization error of a new worker (the pool then goes
  // back to the previous generation for further starts). Counters are not reset.
  Result<void> rolling_restart(const PoolConfig& new_config, std::size_t batch = 1,
                               milliseconds timeout = milliseconds(120'000));

  // Stops accepting work, lets requests in flight finish within `grace`, ends every worker
  // (shutdown command + EOF, then SIGTERM, then SIGKILL on one shared deadline) and reaps them.
  // Idempotent; later calls fail with a resource error.
  void shutdown(std::optional<milliseconds> grace = std::nullopt);

  PoolStats stats() const;
  // The pool's circuit breaker ("pool:<name>"), for inspection, reset() and force_open(); null
  // when resilience or the breaker is disabled.
  std::shared_ptr<CircuitBreaker> breaker() const;
  std::vector<WorkerInfo> workers() const;
  std::vector<CommandSpec> commands() const;  // from the workers' handshake
  EventBus& events();
  const PoolConfig& config() const;

  struct Impl;

 private:
  friend class Bridge;  // a Bridge is a pool of one (bridge.h)
  explicit Pool(std::unique_ptr<Impl> impl);
  static Result<std::unique_ptr<Pool>> start_as(PoolConfig config, std::string kind);
  std::future<Result<Json>> submit_async(std::optional<std::string> session, std::string command,
                                         Json args, ExecuteOptions options);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bridgepool
