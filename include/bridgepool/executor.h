// Executor: what every way of running a Python command offers — a Pool, a single Bridge, the
// MockExecutor and a FallbackChain of them all implement it, so callers and the fallback chain
// can treat them alike.
// Thread-safety: implementations are thread-safe unless they say otherwise.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "bridgepool/error.h"
#include "bridgepool/retry.h"

namespace bridgepool {

using Json = nlohmann::json;
using std::chrono::milliseconds;

// What served a call: the one way a caller learns it (pass one in ExecuteOptions::report). Filled
// by the executor on success and on failure; a FallbackChain fills it from the adapter that
// answered (or whose error it returns) and adds adapters_tried. Error::context.adapter only
// names, for logs, the executor an error came from.
struct CallReport {
  std::string adapter;         // "pool", "bridge" or "mock": the executor that produced the answer
  std::string worker_id;       // the worker of the last attempt, if any
  std::uint32_t attempts = 0;  // attempts made on that executor, the first included
  std::vector<std::string> adapters_tried;  // fallback chains: adapters called, in order
  std::chrono::microseconds queue_wait{0};  // pools: waiting for a free worker, all attempts
};

struct ExecuteOptions {
  std::optional<milliseconds> timeout;           // request deadline (default: request_timeout)
  std::optional<milliseconds> checkout_timeout;  // wait for a worker (default: checkout_timeout)
  std::function<void(const Json&)> on_chunk;     // progress chunks of streaming commands
  // Retry policy for this call instead of the executor's default; RetryPolicy::none() = no retry.
  std::optional<RetryPolicy> retry;
  // Fallback chains only: the adapters to try, in order, by name (empty: the chain's default).
  std::vector<std::string> adapters;
  // Fallback chains only: let the mock adapter answer (with canned data) if all else fails.
  std::optional<bool> allow_mock;
  // If set, filled with what served the call (also on failure).
  CallReport* report = nullptr;
  // Pools and bridges: check the worker in with `close` after this call (SPEC §4) — it is
  // removed and replaced once the reply is in, e.g. after a call that left process-wide state
  // the caller knows must not be shared. The reply is returned as usual. In a session, the
  // session's state goes with the worker (strict mode: its next call fails with session_lost).
  bool close_worker = false;
  // execute_many on a pool or bridge: items per chunk (one request to one worker); 0 lets the
  // pool choose (an even share for each worker idle when the call starts, at most 512 items).
  std::size_t batch_chunk = 0;
};

class Executor {
 public:
  virtual ~Executor() = default;
  // Runs `command` with `args` (a JSON object). Blocks the calling thread.
  virtual Result<Json> execute(std::string_view command, Json args = Json::object(),
                               const ExecuteOptions& options = {}) = 0;
  // The same, inside a session whose state lives in one worker.
  virtual Result<Json> execute_in_session(std::string_view session_id, std::string_view command,
                                          Json args = Json::object(),
                                          const ExecuteOptions& options = {}) = 0;
  // Runs `command` once per element of `args` (each a JSON object, null read as {}) and
  // returns one Result per element, in order: a failing item fails alone. Pools and bridges
  // send the items to their workers in chunks, one request per chunk, over several workers at
  // once; a worker lost mid-chunk costs only the items it had not answered, which are retried
  // when the command is idempotent. `options.timeout` bounds the whole call. This default runs
  // execute() for each item in turn.
  virtual std::vector<Result<Json>> execute_many(std::string_view command, std::vector<Json> args,
                                                 const ExecuteOptions& options = {}) {
    std::vector<Result<Json>> results;
    results.reserve(args.size());
    for (Json& item : args) results.push_back(execute(command, std::move(item), options));
    return results;
  }
  // Forgets a session (and tells its worker to drop the session's state). True if it existed.
  virtual Result<bool> close_session(std::string_view session_id) = 0;
  // "pool", "bridge", "mock" or "chain" (a FallbackChain): which kind of executor this is.
  virtual std::string_view kind() const = 0;
};

}  // namespace bridgepool
