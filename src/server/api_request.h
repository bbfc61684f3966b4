// The bodies of POST /v1/execute and POST /v1/broadcast: parsed and checked before any worker is
// touched, so a malformed request costs a 400 and holds nothing.
//
//   execute    {command: string, args?: object, session_id?: string, timeout_ms?: integer > 0,
//               idempotent?: bool, stream?: bool}
//   broadcast  {command: string, args?: object, timeout_ms?: integer > 0}
//
// In args, an object whose only key is "$base64" is a binary value (bridgepool/binary.h: sent to
// the worker as an attachment; results carry binary values back the same way).
// Unknown fields are refused (a typo such as "sesion_id" must not silently run sessionless).
// The JSON text itself is parsed with a depth limit (kMaxArgsDepth + 1 for the envelope) that
// stops the parser as soon as it is exceeded, so 100,000 '[' never build a deep value; invalid
// UTF-8 is a parse error. Everything the pool validates itself (command syntax, UTF-8 of the
// session id, NaN) is left to it: its invalid_request errors map to 400 all the same.
// Errors are Error values of category invalid_request. Pure; any thread.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "bridgepool/error.h"

namespace bridgepool::server {

struct ExecuteRequest {
  std::string command;
  nlohmann::json args = nlohmann::json::object();
  std::optional<std::string> session_id;
  std::optional<std::chrono::milliseconds> timeout;
  std::optional<bool> idempotent;  // false: no retry for this call; absent/true: pool default
  bool stream = false;             // the body asked for NDJSON chunks
};

struct BroadcastRequest {
  std::string command;
  nlohmann::json args = nlohmann::json::object();
  std::optional<std::chrono::milliseconds> timeout;
};

// Parses `body` as one JSON value nested at most `max_depth` levels.
Result<nlohmann::json> parse_json_body(std::string_view body, std::size_t max_depth);

Result<ExecuteRequest> parse_execute_request(std::string_view body);
Result<BroadcastRequest> parse_broadcast_request(std::string_view body);

}  // namespace bridgepool::server
