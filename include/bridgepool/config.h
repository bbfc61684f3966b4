// PoolConfig: everything that shapes a pool, with the defaults of SPEC §5.
//
// Plain data; Pool::start validates it (validate() below) and fills the "auto" values. Later
// layers (TOML file, environment, CLI flags) all produce one of these.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "bridgepool/clock.h"
#include "bridgepool/error.h"
#include "bridgepool/event_bus.h"
#include "bridgepool/logging.h"
#include "bridgepool/resilience.h"

namespace bridgepool {

using std::chrono::milliseconds;

// How worker processes are started. The library's own PosixSpawner (posix_spawn with pidfds) is
// the default; the interface is internal (src/process/spawner.h) and exists so that pool logic
// can be tested with in-process fake workers. Users leave PoolConfig::spawner empty.
class Spawner;

// A command replayed on every newly started worker before it takes traffic (SPEC §11.12:
// process-wide settings must reach every worker, replacements included).
struct InitCommand {
  std::string command;
  nlohmann::json args = nlohmann::json::object();
};

// What happens to a session whose worker was removed (SPEC §5): kStrict fails its next calls
// with a `session` error naming the dead worker; kHint binds it to another worker (counted).
enum class SessionMode { kStrict, kHint };

// How a worker process comes to life (docs/lifecycle.md, "Start methods"). kSpawn: a fresh
// interpreter that imports the runtime and the handler modules itself. kForkServer: a template
// process (the zygote, one per pool generation) imports them once and every worker is os.fork()ed
// from it, ready in milliseconds however slow the imports; a handler module that starts threads
// at import makes that generation fall back to kSpawn with a warning.
enum class StartMethod { kSpawn, kForkServer };

// "spawn" / "fork-server" (the CLI's and configuration file's spelling; "fork_server" is accepted
// too). nullopt for anything else.
std::optional<StartMethod> parse_start_method(std::string_view text);
std::string_view start_method_name(StartMethod method);  // "spawn" / "fork-server"

struct PoolConfig {
  std::string name = "default";
  std::size_t size = 0;  // 0: number of cores
  // Extra workers started when every worker is busy and callers are queued; each is retired
  // after overflow_idle_timeout without work. Never more than size + max_overflow processes.
  std::size_t max_overflow = 0;
  milliseconds overflow_idle_timeout{30'000};

  // Python: interpreter, its own arguments, the handler modules (paths or dotted modules), the
  // directory holding the bridgepool_worker package, extra environment for the workers.
  std::string python;  // "": $BRIDGEPOOL_PYTHON, else /usr/bin/python3, else python3
  std::vector<std::string> python_args;  // e.g. {"-X", "dev"}
  std::vector<std::string> handlers;     // empty: the shipped examples/handlers.py
  std::string python_path;  // "": $BRIDGEPOOL_PYTHONPATH, else the source tree's python/
  std::map<std::string, std::string> env;
  std::string version_tag;  // reported by workers whose handlers have no __version__
  std::vector<InitCommand>
      init_commands;  // run in order on each new worker; a failure = init failure

  // The default since measured (docs/benchmarks.md): a killed worker is back ~8x sooner with
  // the example handlers and ~50x sooner with a 1 s import, and workers share the imported
  // modules' memory. kSpawn re-imports the handlers in every worker (docs/lifecycle.md says
  // when that is what you want).
  StartMethod start_method = StartMethod::kForkServer;
  // Warm spares: processes started, handshaken and initialized, kept aside; a worker that dies or
  // is recycled is replaced by a spare at once and the spare is replenished in the background.
  // Spares never take traffic and are counted apart in stats.
  std::size_t spare_workers = 0;

  bool eager = true;          // start every worker at pool start, concurrently
  std::size_t min_ready = 0;  // start() waits for this many ready workers (0: all of `size`)

  milliseconds init_timeout{10'000};     // spawn -> handshake
  milliseconds startup_timeout{30'000};  // Pool::start waits this long for min_ready workers
  milliseconds checkout_timeout{5'000};  // waiting for a free worker
  milliseconds request_timeout{60'000};  // one request on a worker
  milliseconds shutdown_grace{2'000};    // shutdown command / EOF -> SIGTERM
  milliseconds kill_grace{1'000};        // SIGTERM -> SIGKILL

  std::size_t max_queue = 1024;  // waiting callers beyond this fail fast (resource error)
  std::size_t max_frame_bytes = std::size_t{64} * 1024 * 1024;
  // Checkin `error`s in a row (a handler calling ctx.mark_unhealthy(reason), or raising an
  // exception with `worker_unhealthy`) before the worker is recycled; below it the worker is
  // degraded until a health probe passes. A normal reply resets the count.
  std::size_t max_checkin_failures = 3;

  // Health monitoring (SPEC §4): idle workers are probed with the `health_check` built-in every
  // interval; failures degrade them, max_health_failures in a row remove them. 0 = off.
  milliseconds health_check_interval{30'000};
  milliseconds health_check_timeout{5'000};
  std::size_t max_health_failures = 3;
  milliseconds health_recheck_interval{200};  // a degraded worker is probed again this soon

  // Recycling: replace a worker after max_requests (± jitter, so workers started together do not
  // recycle together) or when its RSS exceeds max_rss_mb; 0 = off. Replaced when next idle.
  std::uint64_t max_requests = 0;
  double max_requests_jitter = 0.1;
  double max_rss_mb = 0;

  // Session affinity: bindings idle for session_ttl are swept every session_cleanup_interval
  // (and the worker is told to drop that session's state).
  milliseconds session_ttl{300'000};
  milliseconds session_cleanup_interval{60'000};
  SessionMode session_mode = SessionMode::kStrict;

  milliseconds respawn_backoff_initial{100};
  milliseconds respawn_backoff_max{10'000};

  // Retries, the pool's circuit breaker, the retry budget and poison quarantine (resilience.h).
  ResilienceConfig resilience;

  double output_lines_per_second = 200;  // per worker stream, for captured stdout/stderr

  std::shared_ptr<EventBus> events;  // created when null
  std::shared_ptr<Logger> logger;    // stderr at warn level when null

  // Injected time, process spawning and randomness (tests drive a whole pool with a
  // ManualClock, fake workers and a seeded source). Defaults: the steady clock, posix_spawn,
  // a std::mt19937_64 seeded from std::random_device (recycling jitter).
  std::shared_ptr<const Clock> clock;
  std::shared_ptr<Spawner> spawner;
  std::function<double()> random;  // uniform [0, 1)

  // Checks ranges; fills size, python, python_path and handlers when left at "auto".
  Result<void> resolve();
};

std::string default_python();
std::string default_python_path();
std::string default_handlers();

}  // namespace bridgepool
