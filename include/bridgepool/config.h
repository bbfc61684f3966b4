// PoolConfig: everything that shapes a pool, with the defaults of SPEC §5.
//
// Plain data; Pool::start validates it (validate() below) and fills the "auto" values. Later
// layers (TOML file, environment, CLI flags) all produce one of these.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bridgepool/error.h"
#include "bridgepool/event_bus.h"
#include "bridgepool/logging.h"

namespace bridgepool {

using std::chrono::milliseconds;

struct PoolConfig {
  std::string name = "default";
  std::size_t size = 0;  // 0: number of cores

  // Python: interpreter, its own arguments, the handler modules (paths or dotted modules), the
  // directory holding the bridgepool_worker package, extra environment for the workers.
  std::string python;                    // "": $BRIDGEPOOL_PYTHON, else /usr/bin/python3, else python3
  std::vector<std::string> python_args;  // e.g. {"-X", "dev"}
  std::vector<std::string> handlers;     // empty: the shipped examples/handlers.py
  std::string python_path;               // "": $BRIDGEPOOL_PYTHONPATH, else the source tree's python/
  std::map<std::string, std::string> env;
  std::string version_tag;               // reported by workers whose handlers have no __version__

  bool eager = true;          // start every worker at pool start, concurrently
  std::size_t min_ready = 0;  // start() waits for this many ready workers (0: all of `size`)

  milliseconds init_timeout{10'000};      // spawn -> handshake
  milliseconds startup_timeout{30'000};   // Pool::start waits this long for min_ready workers
  milliseconds checkout_timeout{5'000};   // waiting for a free worker
  milliseconds request_timeout{60'000};   // one request on a worker
  milliseconds shutdown_grace{2'000};     // shutdown command / EOF -> SIGTERM
  milliseconds kill_grace{1'000};         // SIGTERM -> SIGKILL

  std::size_t max_queue = 1024;  // waiting callers beyond this fail fast (resource error)
  std::size_t max_frame_bytes = 64u * 1024u * 1024u;
  std::size_t max_checkin_failures = 3;  // checkin `error`s before the worker is removed

  milliseconds respawn_backoff_initial{100};
  milliseconds respawn_backoff_max{10'000};

  double output_lines_per_second = 200;  // per worker stream, for captured stdout/stderr

  std::shared_ptr<EventBus> events;  // created when null
  std::shared_ptr<Logger> logger;    // stderr at warn level when null

  // Checks ranges; fills size, python, python_path and handlers when left at "auto".
  Result<void> resolve();
};

std::string default_python();
std::string default_python_path();
std::string default_handlers();

}  // namespace bridgepool
