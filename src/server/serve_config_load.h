// Loading a ServeConfig from its real sources: the TOML file (read from disk), the process
// environment and the command-line settings, merged in that order over the defaults
// (serve_config.h), then the token file read and the whole validated. `bridgepool serve` calls it
// at start and again on SIGHUP / the rolling-restart endpoint (the file is re-read each time).
// Thread-safety: reads the environment (any thread, as long as nobody calls setenv meanwhile).
#pragma once

#include <map>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "server/serve_config.h"

namespace bridgepool::server {

struct ConfigSources {
  std::string file;                // "": no file
  std::vector<TextSetting> flags;  // in command-line order
};

// The BRIDGEPOOL_* variables of this process.
std::map<std::string, std::string> bridgepool_environment();

// Defaults < file < environment < flags; then token_file (when set and token is empty: the
// file's content without trailing whitespace) and validate(). Errors name their source.
tl::expected<ServeConfig, std::string> load_serve_config(
    const ConfigSources& sources, const std::map<std::string, std::string>& env);

}  // namespace bridgepool::server
