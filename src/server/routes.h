// The API's route table: which paths exist and which methods each accepts. The HTTP wiring
// answers 404 for a path not listed and 405 with an `Allow` header for a listed path asked with
// another method, and requires the bearer token (when one is set) where `needs_token` says.
//
// Token policy: a configured token guards everything that runs code or changes state — execute,
// broadcast, closing a session, the admin endpoints (every POST and DELETE). Reading (status,
// metrics, health, the dashboard page) stays open, so probes and scrapers need no secret.
// Pure; any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace bridgepool::server {

struct RouteMatch {
  std::string allow;  // "GET" or "POST" (HEAD is answered like GET where GET is allowed)
  bool method_allowed = false;
  bool needs_token = false;
};

// nullopt: no such path (404).
std::optional<RouteMatch> match_route(std::string_view method, std::string_view path);

}  // namespace bridgepool::server
