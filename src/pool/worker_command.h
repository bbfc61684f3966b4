// How a Python worker is started: its argv and environment, built from a PoolConfig.
//
// Shared by the pool's monitor (pool_monitor.cc) and the single bridge (bridge.cc) so both start
// the exact same runtime the exact same way; the Spawner (process/spawner.h) then executes the
// SpawnSpec. Pure functions of their inputs plus, for the environment, the host's environ.
// Thread-safety: build_worker_env reads `environ`, so call it once at start-up (the pool and the
// bridge both do), not concurrently with setenv(); worker_spawn_spec may be called from any thread.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "bridgepool/config.h"
#include "process/spawner.h"

namespace bridgepool {

// The host's environment with PYTHONPATH (config.python_path first), PYTHONUNBUFFERED=1 and
// BRIDGEPOOL_PARENT_PID added, then config.env on top; sorted "KEY=value" entries.
std::vector<std::string> build_worker_env(const PoolConfig& config);

// `python [python_args] -m bridgepool_worker --handlers h... --parent-pid <parent>
// --max-frame-bytes <n> [--version-tag t] --worker-id <id>` with `env` as the complete
// environment. `parent` is the pid the worker expects as its parent (it exits at once if it is
// not). With StartMethod::kForkServer, template_args covers all but the last two (the id): the
// part a fork server shares (SpawnSpec); the caller sets the generation.
SpawnSpec worker_spawn_spec(const PoolConfig& config, std::string_view worker_id, pid_t parent,
                            std::vector<std::string> env);

}  // namespace bridgepool
