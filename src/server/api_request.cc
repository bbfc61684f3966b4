#include "server/api_request.h"

#include <set>

#include <fmt/format.h>

#include "bridgepool/binary.h"
#include "pool/request_validation.h"

namespace bridgepool::server {
namespace {

using Json = nlohmann::json;

struct TooDeep {};

tl::unexpected<Error> invalid(std::string message) {
  return make_error(ErrorCategory::kInvalidRequest, std::move(message));
}

std::string_view json_type(const Json& v) { return v.type_name(); }

// Checks that `body` is an object with only `allowed` fields and a string `command`.
Result<void> check_envelope(const Json& body, const std::set<std::string>& allowed) {
  if (!body.is_object()) {
    return invalid(fmt::format("the body must be a JSON object, got {}", json_type(body)));
  }
  for (const auto& [key, value] : body.items()) {
    if (!allowed.count(key)) return invalid(fmt::format("unknown field '{}'", key));
  }
  if (!body.contains("command")) return invalid("missing field 'command'");
  if (!body["command"].is_string()) {
    return invalid(fmt::format("'command' must be a string, got {}", json_type(body["command"])));
  }
  if (body.contains("args") && !body["args"].is_object() && !body["args"].is_null()) {
    return invalid(fmt::format("'args' must be an object, got {}", json_type(body["args"])));
  }
  return {};
}

Result<std::optional<std::chrono::milliseconds>> timeout_of(const Json& body) {
  if (!body.contains("timeout_ms") || body["timeout_ms"].is_null()) {
    return std::optional<std::chrono::milliseconds>{};
  }
  const Json& t = body["timeout_ms"];
  if (!t.is_number_unsigned() || t.get<std::uint64_t>() == 0 ||
      t.get<std::uint64_t>() > 86'400'000) {
    return invalid(
        fmt::format("'timeout_ms' must be an integer from 1 to 86400000, got {}", t.dump()));
  }
  return std::optional(std::chrono::milliseconds(t.get<std::uint64_t>()));
}

Result<std::optional<bool>> bool_field(const Json& body, const char* name) {
  if (!body.contains(name) || body[name].is_null()) return std::optional<bool>{};
  if (!body[name].is_boolean()) {
    return invalid(fmt::format("'{}' must be a boolean, got {}", name, json_type(body[name])));
  }
  return std::optional(body[name].get<bool>());
}

// The args, with {"$base64": ...} objects as binary values (bridgepool/binary.h).
Result<Json> args_of(const Json& body) {
  if (!body.contains("args") || !body["args"].is_object()) return Json::object();
  return from_base64_objects(body["args"]);
}

}  // namespace

Result<Json> parse_json_body(std::string_view body, std::size_t max_depth) {
  // The callback sees every value's depth as the parser goes; throwing stops it there, before
  // anything deeper is built (a deep value would also be destroyed recursively).
  auto limit = [max_depth](int depth, Json::parse_event_t event, Json&) {
    if ((event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start) &&
        static_cast<std::size_t>(depth) >= max_depth) {
      throw TooDeep{};
    }
    return true;
  };
  try {
    return Json::parse(body.begin(), body.end(), limit);
  } catch (const TooDeep&) {
    return invalid(fmt::format("the body is nested more than {} levels deep", max_depth));
  } catch (const Json::parse_error& e) {
    return invalid(fmt::format("the body is not valid JSON: {}", e.what()));
  }
}

Result<ExecuteRequest> parse_execute_request(std::string_view text) {
  auto body = parse_json_body(text, kMaxArgsDepth + 1);
  if (!body) return tl::unexpected(body.error());
  static const std::set<std::string> allowed = {"command",    "args",       "session_id",
                                                "timeout_ms", "idempotent", "stream"};
  if (auto ok = check_envelope(*body, allowed); !ok) return tl::unexpected(ok.error());
  ExecuteRequest r;
  r.command = (*body)["command"].get<std::string>();
  auto args = args_of(*body);
  if (!args) return tl::unexpected(args.error());
  r.args = std::move(*args);
  if (body->contains("session_id") && !(*body)["session_id"].is_null()) {
    if (!(*body)["session_id"].is_string()) {
      return invalid(
          fmt::format("'session_id' must be a string, got {}", json_type((*body)["session_id"])));
    }
    r.session_id = (*body)["session_id"].get<std::string>();
  }
  auto timeout = timeout_of(*body);
  if (!timeout) return tl::unexpected(timeout.error());
  r.timeout = *timeout;
  auto idempotent = bool_field(*body, "idempotent");
  if (!idempotent) return tl::unexpected(idempotent.error());
  r.idempotent = *idempotent;
  auto stream = bool_field(*body, "stream");
  if (!stream) return tl::unexpected(stream.error());
  r.stream = stream->value_or(false);
  return r;
}

Result<BroadcastRequest> parse_broadcast_request(std::string_view text) {
  auto body = parse_json_body(text, kMaxArgsDepth + 1);
  if (!body) return tl::unexpected(body.error());
  static const std::set<std::string> allowed = {"command", "args", "timeout_ms"};
  if (auto ok = check_envelope(*body, allowed); !ok) return tl::unexpected(ok.error());
  BroadcastRequest r;
  r.command = (*body)["command"].get<std::string>();
  auto args = args_of(*body);
  if (!args) return tl::unexpected(args.error());
  r.args = std::move(*args);
  auto timeout = timeout_of(*body);
  if (!timeout) return tl::unexpected(timeout.error());
  r.timeout = *timeout;
  return r;
}

}  // namespace bridgepool::server
