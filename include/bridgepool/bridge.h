// Bridge: single-bridge mode (SPEC §5) — the Executor API over exactly one Python worker, with
// no pool machinery: no checkout queue, no health prober, no background respawning. It is the
// simplest deployment and the second link of the fallback chain (pool → bridge → mock); connect()
// (connect.h) picks it when no pool runs in this process.
//
//   auto bridge = bridgepool::Bridge::start(config);   // spawns w1, waits for its handshake
//   auto reply = (*bridge)->execute("echo", {{"x", 1}});
//
// It uses python, python_args, handlers, python_path, env, version_tag, init_commands, the
// timeouts (init, checkout, request, shutdown/kill grace), max_frame_bytes, the respawn backoff,
// session_mode, output_lines_per_second, events and logger of PoolConfig; `size`, queueing,
// health, recycling and session expiry settings are ignored.
//
// Behaviour:
//  - Calls run one at a time on the caller's thread: a caller waits up to its checkout_timeout
//    for the call in flight, then gets a timeout error (waiters are not served in FIFO order).
//  - Every call first checks the worker (alive, nothing unexpected on its reply pipe). A dead or
//    suspect worker is replaced on that call — a spawn + handshake + init_commands bounded by
//    init_timeout, a budget separate from the request's own timeout — and counted in restarts.
//    After a *failed* start, calls fail fast with that start's error until the respawn backoff
//    (100 ms, 200 ms, ... 10 s by default) has passed, so a broken handler module is not
//    respawned on every call.
//  - A worker that dies *during* a call fails that call with a connection error (it may have run
//    the request); one that provably never read it is replaced and the request sent once more. A
//    reply that misses its deadline is a timeout error and the worker is SIGKILLed (its state is
//    unknown); the replacement starts on the next call.
//  - Sessions: there is one worker, so affinity is trivial, but a session is tied to the worker
//    process that first served it. Once that process is gone, calls in the session fail with a
//    `session` error ("session 's' was bound to worker w1, which exited; its state is lost")
//    until close_session(s) — strict mode (config.session_mode, the default); the session's
//    state is never silently recreated on a fresh process. In hint mode the session is rebound
//    to the running worker instead (counted in session_rebinds). A binding (one small map
//    entry) is kept until close_session; session_ttl is not applied by the bridge.
//  - Telemetry: events "bridge.worker.spawned", ".ready", ".init_failed", ".exited" and
//    "bridge.request" on config.events, with the bridge's name as metadata "bridge".
//
// The bridge thread. A Bridge owns one small thread (an EventLoop) that does exactly three
// things: it spawns every worker, drains the worker's stdout and stderr, and reaps it.
//  - Spawning there, not on the caller's thread, because the worker's PR_SET_PDEATHSIG fires when
//    the *thread* that forked it exits: a bridge started (or restarted — restarts happen inside
//    calls) from a short-lived thread would otherwise see its worker SIGKILLed the moment that
//    thread ended. The bridge thread lives exactly as long as the Bridge.
//  - Draining there, because an undrained pipe blocks the child at 64 KiB (SPEC §11.6) and the
//    bridge has no other thread that could read while a call is in flight. Output is logged line
//    by line with the worker id and rate-limited exactly like the pool's (components
//    "worker.stdout" / "worker.stderr"), rather than inherited by the host: a host that prints
//    results on its own stdout (the `bridgepool call` command) must never see user prints in it,
//    and the last stderr lines explain a worker that fails to start.
//  - Reaping there, as soon as the pidfd says the process exited, so no zombie outlives a crash.
// Request I/O never runs on the bridge thread: the caller does it, as in the pool.
//
// Thread-safety: every public method may be called from any thread. Nothing throws.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "bridgepool/config.h"
#include "bridgepool/error.h"
#include "bridgepool/executor.h"

namespace bridgepool {

struct BridgeInfo {
  std::string name;
  std::string worker_id;  // "w3"; empty while no worker is running (after a crash, until the
                          // next call replaces it)
  pid_t pid = 0;
  std::string state;                  // the worker's state ("ready", "busy", ...) or "none"
  std::uint64_t worker_requests = 0;  // round trips completed by the current worker
  std::uint64_t requests = 0;         // calls accepted (passed validation), all workers
  std::uint64_t ok = 0;
  std::map<std::string, std::uint64_t> errors;  // category -> count
  std::uint64_t restarts = 0;         // workers started (handshake + init commands) to replace one
  std::uint64_t init_failures = 0;    // starts that failed (spawn, import error, no handshake)
  std::size_t sessions = 0;           // session bindings held (lost ones included until closed)
  std::uint64_t session_rebinds = 0;  // hint mode: sessions moved to a restarted worker
  std::string last_init_error;
};

class Bridge final : public Executor {
 public:
  // Spawns the worker and waits for its handshake and init commands (up to init_timeout).
  // Errors: invalid_request for a bad config; initialization (with the Python traceback in
  // `python` / context.cause when the handlers failed to import) when the worker cannot start.
  static Result<std::unique_ptr<Bridge>> start(PoolConfig config);
  ~Bridge() override;  // shutdown() if not done
  Bridge(const Bridge&) = delete;
  Bridge& operator=(const Bridge&) = delete;

  // Runs `command` on the worker. Blocks the calling thread: up to checkout_timeout for a call in
  // flight, init_timeout for a restart, then the request timeout (options.timeout, default
  // request_timeout) for the round trip.
  Result<Json> execute(std::string_view command, Json args = Json::object(),
                       const ExecuteOptions& options = {}) override;
  // The same inside a session (see the session rules above).
  Result<Json> execute_in_session(std::string_view session_id, std::string_view command,
                                  Json args = Json::object(),
                                  const ExecuteOptions& options = {}) override;
  // Forgets the session and, if its worker is the running one, sends it the `close_session`
  // built-in so the state is freed. True if the bridge knew the session (a lost session
  // included: closing it is how a caller acknowledges the loss).
  Result<bool> close_session(std::string_view session_id) override;
  std::string_view kind() const override { return "bridge"; }

  // Waits up to `grace` (default shutdown_grace) for a call in flight, then ends the worker
  // (shutdown command + EOF, grace, SIGTERM, kill_grace, SIGKILL), reaps every process the
  // bridge started and stops the bridge thread. Idempotent; later calls fail with a resource
  // error.
  void shutdown(std::optional<milliseconds> grace = std::nullopt);

  // A snapshot; never waits for a call in flight.
  BridgeInfo info() const;
  const PoolConfig& config() const;

  struct Impl;

 private:
  explicit Bridge(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bridgepool
