// `bridgepool call COMMAND [ARGS_JSON] [--session S] [--url URL] [--timeout-ms T] [--token T]`:
// runs one command and prints its result as JSON on stdout.
//
// With --url it asks that server (POST /v1/execute). Without, it asks the default server
// ($BRIDGEPOOL_URL, else http://127.0.0.1:8765) if one answers /healthz within 300 ms, and
// otherwise starts a single Bridge
// (--python, --handlers) for this one call. Errors go to stderr as "category: message" (and a
// Python traceback when there is one); the exit status says the category (call_exit.h).
// The token comes from --token or BRIDGEPOOL_TOKEN.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace bridgepool::cli {

struct CallOptions {
  std::string command;
  std::string args_json = "{}";
  std::string session;
  std::string url;  // "": the default server if reachable, else a local bridge
  int timeout_ms = 60'000;
  std::string token;
  std::string python;                 // local bridge only
  std::vector<std::string> handlers;  // local bridge only
};

int run_call(const CallOptions& options);

}  // namespace bridgepool::cli
