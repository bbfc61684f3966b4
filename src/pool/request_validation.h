// Request validation shared by the Pool and the Bridge: a malformed request is rejected with an
// invalid_request error before any worker is touched (SPEC §11.4). Pure; thread-safe.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

#include "bridgepool/error.h"

namespace bridgepool {

inline constexpr std::size_t kMaxCommandLength = 256;
inline constexpr std::size_t kMaxSessionIdLength = 256;

// Command: 1..256 bytes, no NUL; args: a JSON object; session (if given): 1..256 bytes.
Result<void> validate_request(std::optional<std::string_view> session, std::string_view command,
                              const nlohmann::json& args);

}  // namespace bridgepool
