#include "bridgepool/connect.h"

#include <map>
#include <mutex>

#include <fmt/format.h>

#include "bridgepool/bridge.h"

namespace bridgepool {
namespace {

struct Registry {
  std::mutex mu;
  std::map<std::string, std::weak_ptr<Executor>, std::less<>> pools;
};

// Constructed on first use and never destroyed: a pool unregistering from a static destructor
// at exit must not find the registry already gone.
Registry& registry() {
  static Registry* r = new Registry();
  return *r;
}

Error neither_available(const std::string& pool_name, std::string why) {
  Error e(ErrorCategory::kInitialization,
          fmt::format("no running pool named '{}' in this process, and {}", pool_name, why));
  e.context.operation = "connect";
  e.context.pool_name = pool_name;
  return e;
}

}  // namespace

void register_pool(std::string name, std::shared_ptr<Executor> pool) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  if (!pool) {
    r.pools.erase(name);
    return;
  }
  r.pools.insert_or_assign(std::move(name), std::weak_ptr<Executor>(pool));
}

bool unregister_pool(std::string_view name) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  auto it = r.pools.find(name);
  if (it == r.pools.end()) return false;
  bool alive = !it->second.expired();
  r.pools.erase(it);
  return alive;
}

std::shared_ptr<Executor> find_pool(std::string_view name) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  auto it = r.pools.find(name);
  if (it == r.pools.end()) return nullptr;
  auto pool = it->second.lock();
  if (!pool) r.pools.erase(it);  // its owner let it go: forget the stale entry
  return pool;
}

Result<std::shared_ptr<Executor>> connect(const ConnectOptions& options) {
  if (auto pool = find_pool(options.pool_name)) return pool;
  if (!options.allow_bridge) {
    return tl::unexpected(neither_available(
        options.pool_name, "starting a single bridge is not allowed (allow_bridge = false)"));
  }
  // Outside the registry lock: starting a bridge takes a Python start-up (tens of ms or more).
  auto bridge = Bridge::start(options.bridge_config);
  if (bridge) return std::shared_ptr<Executor>(std::move(*bridge));
  const Error& cause = bridge.error();
  Error e = neither_available(options.pool_name,
                              fmt::format("a single bridge could not start: {}", cause.message));
  e.python = cause.python;
  e.context.worker_id = cause.context.worker_id;
  e.context.cause = cause.context.cause.empty()
                        ? fmt::format("bridge error category: {}", category_name(cause.category))
                        : cause.context.cause;
  return tl::unexpected(std::move(e));
}

}  // namespace bridgepool
