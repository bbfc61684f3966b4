#include "bridgepool/config.h"

#include <unistd.h>

#include <cstdlib>
#include <thread>

#include <fmt/format.h>

#include "base/install_paths.h"

namespace bridgepool {
namespace {

std::string env_or(const char* name, std::string fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : std::move(fallback);
}

Error config_error(std::string message) {
  Error e(ErrorCategory::kInvalidRequest, "invalid pool configuration: " + std::move(message));
  e.context.operation = "configure";
  return e;
}

}  // namespace

std::string default_python() {
  // /usr/bin/python3 starts in ~10 ms; a `python3` found first in PATH may be a shim (pyenv)
  // that costs ~90 ms per start. Prefer the system interpreter unless told otherwise.
  if (::access("/usr/bin/python3", X_OK) == 0)
    return env_or("BRIDGEPOOL_PYTHON", "/usr/bin/python3");
  return env_or("BRIDGEPOOL_PYTHON", "python3");
}

std::string default_python_path() {
  return env_or("BRIDGEPOOL_PYTHONPATH", internal::runtime_dirs().python_dir);
}

std::string default_handlers() {
  return env_or("BRIDGEPOOL_HANDLERS", internal::runtime_dirs().examples_dir + "/handlers.py");
}

std::optional<StartMethod> parse_start_method(std::string_view text) {
  if (text == "spawn") return StartMethod::kSpawn;
  if (text == "fork-server" || text == "fork_server") return StartMethod::kForkServer;
  return std::nullopt;
}

std::string_view start_method_name(StartMethod method) {
  return method == StartMethod::kForkServer ? "fork-server" : "spawn";
}

Result<void> PoolConfig::resolve() {
  if (size == 0) size = std::max(1u, std::thread::hardware_concurrency());
  if (python.empty()) python = default_python();
  if (python_path.empty()) python_path = default_python_path();
  if (handlers.empty()) handlers.push_back(default_handlers());
  if (min_ready == 0 || min_ready > size) min_ready = size;
  if (size > 4096) return tl::unexpected(config_error(fmt::format("size {} > 4096", size)));
  if (spare_workers > 4096) {
    return tl::unexpected(config_error(fmt::format("spare_workers {} > 4096", spare_workers)));
  }
  if (max_queue == 0) return tl::unexpected(config_error("max_queue must be >= 1"));
  // 31 bits: the header's top bit marks an attachment frame (wire/attachment_codec.h).
  if (max_frame_bytes < 1024 || max_frame_bytes > 0x7FFFFFFFu) {
    return tl::unexpected(config_error("max_frame_bytes must be within [1 KiB, 2 GiB)"));
  }
  for (auto [name, value] : {std::pair{"init_timeout", init_timeout},
                             {"checkout_timeout", checkout_timeout},
                             {"request_timeout", request_timeout}}) {
    if (value.count() <= 0)
      return tl::unexpected(config_error(fmt::format("{} must be > 0", name)));
  }
  if (max_checkin_failures == 0)
    return tl::unexpected(config_error("max_checkin_failures must be >= 1"));
  if (max_health_failures == 0)
    return tl::unexpected(config_error("max_health_failures must be >= 1"));
  // A zero backoff would respawn a crash-looping module as fast as it can fail.
  if (respawn_backoff_initial.count() <= 0 || respawn_backoff_max < respawn_backoff_initial) {
    return tl::unexpected(config_error(
        "respawn_backoff_initial must be > 0 and respawn_backoff_max >= respawn_backoff_initial"));
  }
  if (health_recheck_interval.count() <= 0 || health_check_timeout.count() <= 0) {
    return tl::unexpected(
        config_error("health_recheck_interval and health_check_timeout must be > 0"));
  }
  if (!events) events = std::make_shared<EventBus>();
  if (!logger) logger = std::make_shared<Logger>(LogLevel::kWarn);
  return {};
}

}  // namespace bridgepool
