// connect: "give me something that runs Python" (SPEC §5). Returns the running pool of a given
// name if this process registered one, else a freshly started single Bridge (bridge.h), else a
// clear initialization error saying that neither is available and why.
//
//   bridgepool::register_pool("default", pool);            // opt-in, by the pool's owner
//   auto executor = bridgepool::connect({});                // the pool, or a bridge
//   auto reply = (*executor)->execute("ping");
//   (*executor)->kind();                                    // "pool" or "bridge"
//
// The registry is process-wide and opt-in: Pool::start does not register anything, so two
// libraries in one process never find each other's pools by accident. It holds weak
// references: it never keeps a pool alive, and a pool whose last owner released it simply stops
// being found. An owner should unregister a pool before shutting it down, since a pool that is
// shut down but still alive would be found and would refuse work.
// Thread-safety: every function may be called from any thread (one registry mutex, held only to
// look up or change an entry — never while a bridge starts).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "bridgepool/config.h"
#include "bridgepool/error.h"
#include "bridgepool/executor.h"

namespace bridgepool {

struct ConnectOptions {
  std::string pool_name = "default";
  bool allow_bridge = true;  // false: only a registered pool will do
  PoolConfig bridge_config;  // for the single bridge when no pool runs (its `size` is ignored)
};

// Registers `pool` under `name`, replacing any earlier entry of that name. A null pool is the
// same as unregister_pool(name).
void register_pool(std::string name, std::shared_ptr<Executor> pool);
// Removes the entry. Returns whether one was registered (and still alive).
bool unregister_pool(std::string_view name);
// The live pool registered under `name`, or null.
std::shared_ptr<Executor> find_pool(std::string_view name);

// The registered pool named options.pool_name if it is alive; else, when allowed, a single
// Bridge started with options.bridge_config (the caller owns it; it shuts down when the last
// reference goes). Error (initialization): "no running pool named 'default' in this process,
// and a single bridge could not start: <the bridge's error>" — with the bridge error's
// traceback (`python`), worker and cause carried over — or, with allow_bridge = false, "... and
// starting a single bridge is not allowed (allow_bridge = false)".
Result<std::shared_ptr<Executor>> connect(const ConnectOptions& options = {});

}  // namespace bridgepool
