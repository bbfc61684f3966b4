#include "cli/api_client.h"

#include <httplib.h>

#include <cstdlib>

#include <fmt/format.h>

#include "bridgepool/binary.h"

namespace bridgepool::cli {

using Json = nlohmann::json;

namespace {

httplib::Client make_client(const std::string& url, std::chrono::milliseconds timeout) {
  httplib::Client client(url);
  client.set_connection_timeout(std::min(timeout, std::chrono::milliseconds(5'000)));
  client.set_read_timeout(timeout);
  client.set_write_timeout(timeout);
  return client;
}

}  // namespace

tl::expected<ApiReply, std::string> api_call(const std::string& url, const std::string& path,
                                             const std::optional<Json>& body,
                                             const std::string& token,
                                             std::chrono::milliseconds timeout) {
  if (auto problem = url_problem(url); !problem.empty())
    return tl::unexpected(fmt::format("URL '{}' {}", url, problem));
  auto client = make_client(url, timeout);
  if (!client.is_valid()) return tl::unexpected(fmt::format("'{}' is not a usable URL", url));
  httplib::Headers headers;
  if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
  // Binary values in the args go as {"$base64": ...} objects (bridgepool/binary.h).
  auto reply = body ? client.Post(path.c_str(), headers, to_json_text(*body), "application/json")
                    : client.Get(path.c_str(), headers);
  if (!reply) {
    return tl::unexpected(
        fmt::format("no reply from {}{}: {}", url, path, httplib::to_string(reply.error())));
  }
  Json parsed = Json::parse(reply->body, nullptr, false);
  if (parsed.is_discarded()) {
    return tl::unexpected(fmt::format("{}{} answered HTTP {} with a body that is not JSON", url,
                                      path, reply->status));
  }
  return ApiReply{reply->status, std::move(parsed)};
}

std::string url_problem(const std::string& url) {
  constexpr std::string_view kScheme = "http://";
  if (url.rfind(kScheme, 0) != 0) return "must start with http:// (no TLS)";
  const std::string rest = url.substr(kScheme.size());
  if (rest.empty() || rest[0] == ':' || rest[0] == '/') return "has no host";
  if (rest.find('/') != std::string::npos) return "must be http://HOST[:PORT], without a path";
  return "";
}

std::string default_url() {
  const char* env = std::getenv("BRIDGEPOOL_URL");
  return env != nullptr && *env != '\0' ? env : kDefaultUrl;
}

bool server_reachable(const std::string& url, std::chrono::milliseconds timeout) {
  if (!url_problem(url).empty()) return false;
  auto client = make_client(url, timeout);
  auto reply = client.Get("/healthz");
  return reply && reply->status == 200;
}

}  // namespace bridgepool::cli
