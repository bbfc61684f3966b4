#include "pool/request_validation.h"

#include <fmt/format.h>

namespace bridgepool {

Result<void> validate_request(std::optional<std::string_view> session, std::string_view command,
                              const nlohmann::json& args) {
  auto invalid = [&](std::string message) {
    Error e(ErrorCategory::kInvalidRequest, std::move(message));
    e.context.operation = "execute";
    e.context.command = std::string(command.substr(0, kMaxCommandLength));
    return tl::unexpected(std::move(e));
  };
  if (command.empty()) return invalid("command name is empty");
  if (command.size() > kMaxCommandLength) {
    return invalid(
        fmt::format("command name is {} bytes long (max {})", command.size(), kMaxCommandLength));
  }
  if (command.find('\0') != std::string_view::npos) return invalid("command name contains NUL");
  if (!args.is_object()) {
    return invalid(fmt::format("args must be a JSON object, got {}", args.type_name()));
  }
  if (session && session->empty()) return invalid("session id is empty");
  if (session && session->size() > kMaxSessionIdLength) {
    return invalid(
        fmt::format("session id is {} bytes long (max {})", session->size(), kMaxSessionIdLength));
  }
  return {};
}

}  // namespace bridgepool
