// The HTTP client side of `bridgepool call` and `bridgepool status`: one request to a running
// `bridgepool serve` (httplib::Client), its JSON reply parsed. Thread-safety: no shared state.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>
#include <tl/expected.hpp>

namespace bridgepool::cli {

inline constexpr const char* kDefaultUrl = "http://127.0.0.1:8765";

// $BRIDGEPOOL_URL if set, else kDefaultUrl: where `call` and `status` look without --url.
std::string default_url();

// "" if `url` is one the client can use (http://HOST[:PORT], no path), else why not.
std::string url_problem(const std::string& url);

struct ApiReply {
  int status = 0;
  nlohmann::json body;
};

// GET (body nullopt) or POST (JSON body) `path` on `url`; `token` adds a bearer header. Errors
// (a message): no connection, timeout, a reply that is not JSON.
tl::expected<ApiReply, std::string> api_call(const std::string& url, const std::string& path,
                                             const std::optional<nlohmann::json>& body,
                                             const std::string& token,
                                             std::chrono::milliseconds timeout);

// True when GET /healthz on `url` answers 200 within `timeout`.
bool server_reachable(const std::string& url, std::chrono::milliseconds timeout);

}  // namespace bridgepool::cli
