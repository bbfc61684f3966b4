// Pool: a pool of long-lived Python worker processes (SPEC §5). The library's main entry point.
//
//   auto pool = bridgepool::Pool::start(config);        // spawns workers concurrently
//   auto reply = (*pool)->execute("echo", {{"x", 1}});  // Result<Json>
//
// Every public method is thread-safe. execute() does the request I/O on the calling thread (no
// hand-off to a pool thread); background work — exit detection, handshakes, output capture,
// respawning — runs on the pool's own monitor thread. Nothing throws: failures are Error values
// whose category says what happened (see error.h). The pool ignores SIGPIPE process-wide if it
// is at its default (a write to a dead worker must be an EPIPE error, not a dead host).
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

namespace bridgepool {


struct TransitionInfo {
  std::string from, to, reason;
  double time_in_previous_ms = 0;
  std::int64_t wall_time_ms = 0;  // Unix epoch
};

struct WorkerInfo {
  std::string id;
  pid_t pid = 0;
  std::string state;   // initializing | ready | busy | degraded | terminating | terminated
  std::string health;  // healthy | unhealthy | unknown
  std::uint64_t requests = 0;
  std::uint64_t python_errors = 0;
  std::uint64_t failures = 0;
  double uptime_s = 0;
  std::string handlers_version;
  std::uint64_t generation = 0;  // spawn generation (1 at start, +1 per rolling_restart)
  std::string current_session;   // session of the request in flight ("" when idle or sessionless)
  std::vector<TransitionInfo> history;
};

struct PoolStats {
  std::string name;
  std::size_t size = 0;      // configured
  std::size_t live = 0;      // ready or busy workers
  std::size_t idle = 0;
  std::size_t busy = 0;
  std::size_t starting = 0;  // spawning, handshaking or waiting out a backoff
  std::size_t queue_length = 0;
  std::uint64_t started = 0;        // workers that completed a handshake
  std::uint64_t replaced = 0;       // replacements started for removed workers
  std::uint64_t init_failures = 0;
  std::uint64_t exits = 0;          // worker processes reaped
  std::uint64_t requests = 0;       // execute() calls that passed validation
  std::uint64_t ok = 0;
  std::map<std::string, std::uint64_t> errors;  // category -> count
  std::uint64_t rerouted = 0;       // requests moved to another worker before delivery
  std::uint64_t discarded_workers = 0;  // dead/unusable workers caught at checkout
  std::size_t degraded = 0;
  std::uint64_t health_checks = 0;         // probes sent
  std::uint64_t health_check_failures = 0; // probes that failed (counted apart from requests)
  std::uint64_t recycled = 0;
  std::uint64_t generation = 1;          // current spawn generation
  std::uint64_t overflow_retired = 0;
  // Session affinity.
  std::size_t sessions = 0;             // bindings, including lost ones not yet closed/expired
  std::uint64_t session_hits = 0;       // calls routed to their bound worker
  std::uint64_t session_misses = 0;     // first calls of new sessions
  std::uint64_t session_rebinds = 0;    // hint mode: moved off a removed worker
  std::uint64_t session_expirations = 0;
  std::uint64_t session_losses = 0;     // bindings dropped because their worker was removed
  std::uint64_t session_lost_calls = 0; // calls failed with session_lost
  std::string last_init_error;
  // Resilience layer (resilience.h).
  std::uint64_t retries = 0;             // attempts after the first, whatever the cause
  std::uint64_t retries_denied = 0;      // retries refused by the retry budget
  std::uint64_t circuit_rejected = 0;    // calls the pool's breaker refused (no worker touched)
  std::uint64_t quarantine_refused = 0;  // calls refused because their request is quarantined
  std::string breaker_state;             // "closed", "open", "half_open"; "" without a breaker
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
  ~Pool();  // shutdown(config.shutdown_grace) if not done
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
  std::string_view kind() const override { return "pool"; }

  // Runs `command` once on every worker in service (waiting for busy ones up to `timeout`).
  struct BroadcastResult {
    std::map<std::string, Result<Json>> results;  // worker id -> its reply
    std::size_t succeeded = 0;
    std::size_t failed = 0;
  };
  BroadcastResult broadcast(std::string_view command, Json args = Json::object(),
                            milliseconds timeout = milliseconds(10'000));
  // The same on an internal thread; the future never throws.
  std::future<Result<Json>> execute_async(std::string command, Json args = Json::object(),
                                          ExecuteOptions options = {});

  // Waits until at least `count` workers (0: configured size) are ready.
  Result<void> wait_ready(milliseconds timeout, std::size_t count = 0);

  // Replaces every worker, `batch` at a time, with workers started from `new_config`'s python,
  // python_args, handlers, python_path, env, version_tag and init_commands (other settings
  // stay). An idle worker is retired at once, a busy one when its request completes, so no
  // request fails; at least size - batch workers stay in service. Returns once every worker runs
  // the new generation, or the first initialization error of a new worker (the pool then goes
  // back to the previous generation for further starts). Counters are not reset.
  Result<void> rolling_restart(PoolConfig new_config, std::size_t batch = 1,
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
  explicit Pool(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bridgepool
