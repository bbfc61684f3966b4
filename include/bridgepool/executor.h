// Executor: what every way of running a Python command offers — a Pool, a single Bridge, and
// (later) the resilience layer's fallback adapters all implement it, so callers and the
// fallback chain can treat them alike.
// Thread-safety: implementations are thread-safe unless they say otherwise.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "bridgepool/error.h"

namespace bridgepool {

using Json = nlohmann::json;
using std::chrono::milliseconds;

struct ExecuteOptions {
  std::optional<milliseconds> timeout;           // request deadline (default: request_timeout)
  std::optional<milliseconds> checkout_timeout;  // wait for a worker (default: checkout_timeout)
  std::function<void(const Json&)> on_chunk;     // progress chunks of streaming commands
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
  // Forgets a session (and tells its worker to drop the session's state). True if it existed.
  virtual Result<bool> close_session(std::string_view session_id) = 0;
  // "pool" or "bridge" (later also "mock"): which kind of executor served.
  virtual std::string_view kind() const = 0;
};

}  // namespace bridgepool
