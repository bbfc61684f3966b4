// `bridgepool serve`: the HTTP API (src/server/http_service.h) over one pool, configured from
// defaults < TOML file (--config) < BRIDGEPOOL_* environment < flags (server/serve_config.h;
// reference in docs/serve.md).
//
// Prints exactly one line to stdout once it accepts connections —
// `bridgepool serve: listening on http://HOST:PORT` — and logs to stderr. Signals (signal_watch.h):
// SIGTERM/SIGINT stop accepting, let requests in flight finish within shutdown_grace_ms (then
// the pool's shutdown ends the stragglers), end the workers, exit 0; a second one exits at once
// (130/143) after SIGKILLing the workers' process groups. SIGHUP re-reads the configuration (file,
// environment, flags) and rolls the workers over to it one at a time; no request fails.
#pragma once

#include <vector>

#include "server/serve_config_load.h"

namespace CLI {
class App;
}  // namespace CLI

namespace bridgepool::cli {

// Exit statuses of `bridgepool serve`.
inline constexpr const char* kServeExitHelp =
    "Exit status:\n"
    "  0        stopped by SIGTERM/SIGINT after draining\n"
    "  1        could not listen, or the pool could not start\n"
    "  2        invalid command line or configuration (the message names the source)\n"
    "  130/143  a second SIGINT/SIGTERM: exited at once";

// Registers one flag per configuration key on `app`, each appending to `flags` in order.
void add_serve_flags(CLI::App& app, std::vector<server::TextSetting>& flags);

// Runs the server. Call it from main() while the process has one thread (signal_watch.h).
int run_serve(const server::ConfigSources& sources);

}  // namespace bridgepool::cli
