// `bridgepool status [--url URL] [--json]`: GET /v1/status from a running server,
// printed as a worker table (status_table.h) or, with --json, as the document itself.
// Exit status: 0, or kExitUnreachable (call_exit.h) when no server answers.
#pragma once

#include <string>

namespace bridgepool::cli {

struct StatusOptions {
  std::string url;  // "": $BRIDGEPOOL_URL, else http://127.0.0.1:8765
  bool json = false;
  int timeout_ms = 5'000;
};

int run_status(const StatusOptions& options);

}  // namespace bridgepool::cli
