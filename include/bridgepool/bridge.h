// Bridge: single-bridge mode (SPEC §5) — the Executor API over exactly one Python worker, the
// simplest deployment and the second link of the fallback chain (pool -> bridge -> mock);
// connect() (connect.h) picks it when no pool runs in this process.
//
//   auto bridge = bridgepool::Bridge::start(config);   // spawns w1, waits for its handshake
//   auto reply = (*bridge)->execute("echo", {{"x", 1}});
//
// A Bridge is a pool of one: the same worker supervisor, request path, recovery policy, retry
// engine, sessions and statistics as a Pool, with this policy on top of the given PoolConfig:
// size 1, no overflow, started eagerly, start() waits for its one worker, and spawned (never
// forked from a zygote: for one worker a template process would only be a second process that
// never serves, and as the fallback behind a pool the bridge re-imports the handlers on every
// restart instead of reusing the pool's loaded state). So everything a Pool
// guarantees holds here too — a crashed, hung or misbehaving worker is noticed at once and
// replaced in the background (calls wait for the replacement up to their checkout timeout, or
// fail fast with the start error while starts keep failing, paced by the respawn backoff);
// strict sessions fail with session_lost once their worker is gone; a second caller waits for
// the call in flight (FIFO) up to its checkout timeout. Its kind() and CallReport::adapter say
// "bridge".
// Thread-safety: every public method may be called from any thread. Nothing throws.
#pragma once

#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bridgepool/config.h"
#include "bridgepool/error.h"
#include "bridgepool/executor.h"
#include "bridgepool/pool.h"

namespace bridgepool {

class Bridge final : public Executor {
 public:
  // Spawns the worker and waits for its handshake and init commands (up to startup_timeout).
  // Errors: invalid_request for a bad config; initialization (with the Python traceback in
  // `python` / context.cause when the handlers failed to import) when the worker cannot start.
  static Result<std::unique_ptr<Bridge>> start(PoolConfig config);
  ~Bridge() override;  // shutdown() if not done
  Bridge(const Bridge&) = delete;
  Bridge& operator=(const Bridge&) = delete;

  Result<Json> execute(std::string_view command, Json args = Json::object(),
                       const ExecuteOptions& options = {}) override;
  Result<Json> execute_in_session(std::string_view session_id, std::string_view command,
                                  Json args = Json::object(),
                                  const ExecuteOptions& options = {}) override;
  Result<bool> close_session(std::string_view session_id) override;
  // Chunks of the items, one after another on the bridge's worker (Pool::execute_many).
  std::vector<Result<Json>> execute_many(std::string_view command, std::vector<Json> args,
                                         const ExecuteOptions& options = {}) override;
  std::string_view kind() const override { return "bridge"; }
  std::future<Result<Json>> execute_async(std::string command, Json args = Json::object(),
                                          ExecuteOptions options = {});
  std::future<Result<Json>> execute_in_session_async(std::string session_id, std::string command,
                                                     Json args = Json::object(),
                                                     ExecuteOptions options = {});

  // As Pool::shutdown. Idempotent; later calls fail with a resource error.
  void shutdown(std::optional<milliseconds> grace = std::nullopt);

  PoolStats stats() const;  // the same table as a pool's
  // Its circuit breaker ("bridge:<name>"), for inspection, reset() and force_open(); null when
  // resilience or the breaker is disabled. In a FallbackChain, mark the bridge's adapter
  // guards_itself so the chain does not wrap it in a second breaker.
  std::shared_ptr<CircuitBreaker> breaker() const;
  std::vector<WorkerInfo> workers() const;  // its worker (and a replacement being started)
  EventBus& events();
  const PoolConfig& config() const;

 private:
  explicit Bridge(std::unique_ptr<Pool> pool);
  std::unique_ptr<Pool> pool_;
};

}  // namespace bridgepool
