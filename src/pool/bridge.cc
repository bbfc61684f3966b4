// Single-bridge mode: a pool of one with its own policy (see include/bridgepool/bridge.h).
#include "bridgepool/bridge.h"

namespace bridgepool {

Bridge::Bridge(std::unique_ptr<Pool> pool) : pool_(std::move(pool)) {}

Bridge::~Bridge() { shutdown(); }

Result<std::unique_ptr<Bridge>> Bridge::start(PoolConfig config) {
  config.size = 1;
  config.max_overflow = 0;
  config.start_method = StartMethod::kSpawn;  // see bridge.h
  config.eager = true;
  config.min_ready = 1;
  auto pool = Pool::start_as(std::move(config), "bridge");
  if (!pool) return tl::unexpected(pool.error());
  return std::unique_ptr<Bridge>(new Bridge(std::move(*pool)));
}

Result<Json> Bridge::execute(std::string_view command, Json args, const ExecuteOptions& options) {
  return pool_->execute(command, std::move(args), options);
}

Result<Json> Bridge::execute_in_session(std::string_view session_id, std::string_view command,
                                        Json args, const ExecuteOptions& options) {
  return pool_->execute_in_session(session_id, command, std::move(args), options);
}

std::vector<Result<Json>> Bridge::execute_many(std::string_view command, std::vector<Json> args,
                                               const ExecuteOptions& options) {
  return pool_->execute_many(command, std::move(args), options);
}

Result<bool> Bridge::close_session(std::string_view session_id) {
  return pool_->close_session(session_id);
}

std::future<Result<Json>> Bridge::execute_async(std::string command, Json args,
                                                ExecuteOptions options) {
  return pool_->execute_async(std::move(command), std::move(args), std::move(options));
}

std::future<Result<Json>> Bridge::execute_in_session_async(std::string session_id,
                                                           std::string command, Json args,
                                                           ExecuteOptions options) {
  return pool_->execute_in_session_async(std::move(session_id), std::move(command), std::move(args),
                                         std::move(options));
}

void Bridge::shutdown(std::optional<milliseconds> grace) { pool_->shutdown(grace); }

PoolStats Bridge::stats() const { return pool_->stats(); }

std::shared_ptr<CircuitBreaker> Bridge::breaker() const { return pool_->breaker(); }

std::vector<WorkerInfo> Bridge::workers() const { return pool_->workers(); }

EventBus& Bridge::events() { return pool_->events(); }

const PoolConfig& Bridge::config() const { return pool_->config(); }

}  // namespace bridgepool
