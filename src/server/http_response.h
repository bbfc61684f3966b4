// Small helpers the endpoint code shares for writing httplib responses. Internal to src/server.
// Pure apart from the Response they fill; any thread.
#pragma once

#include <httplib.h>

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace bridgepool::server {

// Sets `status` and `body` as application/json. Invalid UTF-8 in strings (never expected: the
// pool validates what it returns) is replaced rather than thrown.
void send_json(httplib::Response& res, int status, const nlohmann::json& body);

// `text` with bytes outside printable ASCII as \xNN, cut to `max` characters: safe to echo a
// client's path or value back in a message or a log line.
std::string printable(std::string_view text, std::size_t max = 120);

}  // namespace bridgepool::server
