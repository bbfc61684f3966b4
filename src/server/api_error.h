// How an Error leaves the HTTP API: its status code and its JSON body.
//
//   invalid_request                         400  the request is wrong; fix it
//   session                                 404  the session is unknown or was lost
//   python                                  422  the handler raised; the round trip worked
//   timeout                                 504  a deadline passed (checkout or request)
//   resource, circuit_open                  503  overloaded, shutting down, or breaker open
//   initialization, connection,
//   communication, health_check             502  a worker failed under the request
//   system                                  500  an unexpected OS error
//
// Body: {"ok": false, "error": {category, severity, message, type?, traceback?, worker?}}.
// Pure; any thread.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "bridgepool/error.h"

namespace bridgepool::server {

int http_status_for(ErrorCategory category);
nlohmann::json error_body(const Error& error);
// An error body for failures the API itself detects (404 path, 405, 401, 413, 501).
nlohmann::json error_body(std::string_view category, std::string message);

}  // namespace bridgepool::server
