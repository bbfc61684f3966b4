#include "server/api_error.h"

namespace bridgepool::server {

using Json = nlohmann::json;

int http_status_for(ErrorCategory category) {
  switch (category) {
    case ErrorCategory::kInvalidRequest:
      return 400;
    case ErrorCategory::kSession:
      return 404;
    case ErrorCategory::kPython:
      return 422;
    case ErrorCategory::kTimeout:
      return 504;
    case ErrorCategory::kResource:
    case ErrorCategory::kCircuitOpen:
      return 503;
    case ErrorCategory::kInitialization:
    case ErrorCategory::kConnection:
    case ErrorCategory::kCommunication:
    case ErrorCategory::kHealthCheck:
      return 502;
    case ErrorCategory::kSystem:
      return 500;
  }
  return 500;
}

Json error_body(const Error& error) {
  Json e = {{"category", category_name(error.category)},
            {"severity", severity_name(error.severity)},
            {"message", error.message}};
  if (error.python) {
    e["type"] = error.python->type;
    if (!error.python->traceback.empty()) e["traceback"] = error.python->traceback;
  }
  if (!error.context.worker_id.empty()) e["worker"] = error.context.worker_id;
  return Json{{"ok", false}, {"error", e}};
}

Json error_body(std::string_view category, std::string message) {
  return Json{{"ok", false},
              {"error", {{"category", category}, {"severity", "minor"}, {"message", message}}}};
}

}  // namespace bridgepool::server
