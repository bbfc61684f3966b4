#include "server/serve_config_load.h"

#include <fstream>
#include <sstream>

#include <fmt/format.h>

extern char** environ;

namespace bridgepool::server {
namespace {

tl::expected<std::string, std::string> read_file(const std::string& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return tl::unexpected(fmt::format("cannot read {} '{}'", what, path));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

tl::expected<void, std::string> read_token_file(ServeConfig& config, const SourceMap& sources) {
  if (config.token_file.empty() || !config.token.empty()) return {};
  auto text = read_file(config.token_file, "token_file");
  if (!text) return tl::unexpected(fmt::format("{}: {}", sources.at("token_file"), text.error()));
  while (!text->empty() && std::isspace(static_cast<unsigned char>(text->back()))) text->pop_back();
  if (text->empty()) {
    return tl::unexpected(
        fmt::format("{}: token_file '{}' is empty", sources.at("token_file"), config.token_file));
  }
  config.token = *text;
  return {};
}

}  // namespace

std::map<std::string, std::string> bridgepool_environment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    auto eq = entry.find('=');
    if (eq == std::string_view::npos || entry.rfind("BRIDGEPOOL_", 0) != 0) continue;
    env.emplace(std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1)));
  }
  return env;
}

tl::expected<ServeConfig, std::string> load_serve_config(
    const ConfigSources& sources, const std::map<std::string, std::string>& env) {
  ServeConfig config;
  SourceMap where;
  if (!sources.file.empty()) {
    auto text = read_file(sources.file, "config file");
    if (!text) return tl::unexpected(fmt::format("--config: {}", text.error()));
    if (auto ok = apply_toml(config, where, *text, sources.file); !ok) {
      return tl::unexpected(ok.error());
    }
  }
  if (auto ok = apply_env(config, where, env); !ok) return tl::unexpected(ok.error());
  if (auto ok = apply_text(config, where, sources.flags); !ok) return tl::unexpected(ok.error());
  if (auto ok = read_token_file(config, where); !ok) return tl::unexpected(ok.error());
  if (auto ok = validate(config, where); !ok) return tl::unexpected(ok.error());
  return config;
}

}  // namespace bridgepool::server
