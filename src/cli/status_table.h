// The terminal view of `bridgepool status`: a few summary lines and one row per worker, from the
// /v1/status document (the service contract). Tolerates missing fields (shown as "-"), so an
// older or newer server still prints. Pure; any thread.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace bridgepool::cli {

std::string format_status(const nlohmann::json& status);

}  // namespace bridgepool::cli
