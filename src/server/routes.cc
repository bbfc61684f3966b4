#include "server/routes.h"

#include <array>

namespace bridgepool::server {
namespace {

struct Route {
  std::string_view path;  // a trailing '*' matches one non-empty path segment
  std::string_view method;
};

constexpr std::array<Route, 10> kRoutes = {{
    {"/", "GET"},
    {"/healthz", "GET"},
    {"/readyz", "GET"},
    {"/metrics", "GET"},
    {"/v1/status", "GET"},
    {"/v1/execute", "POST"},
    {"/v1/broadcast", "POST"},
    {"/v1/sessions/*", "DELETE"},
    {"/v1/admin/rolling-restart", "POST"},
    {"/v1/admin/breaker/reset", "POST"},
}};

bool path_matches(std::string_view pattern, std::string_view path) {
  if (pattern.empty() || pattern.back() != '*') return pattern == path;
  std::string_view prefix = pattern.substr(0, pattern.size() - 1);
  if (path.substr(0, prefix.size()) != prefix) return false;
  std::string_view segment = path.substr(prefix.size());
  return !segment.empty() && segment.find('/') == std::string_view::npos;
}

}  // namespace

std::optional<RouteMatch> match_route(std::string_view method, std::string_view path) {
  for (const auto& route : kRoutes) {
    if (!path_matches(route.path, path)) continue;
    bool allowed = method == route.method || (method == "HEAD" && route.method == "GET");
    bool writes = route.method == "POST" || route.method == "DELETE";
    return RouteMatch{std::string(route.method), allowed, writes};
  }
  return std::nullopt;
}

}  // namespace bridgepool::server
