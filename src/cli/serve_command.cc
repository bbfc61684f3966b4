#include "cli/serve_command.h"

#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "bridgepool/pool.h"
#include "cli/bench_command.h"
#include "cli/signal_watch.h"
#include "cli/stop_flag.h"
#include "server/http_service.h"
#include "server/listen_address.h"
#include "server/service_telemetry.h"

namespace bridgepool::cli {
namespace {

using server::ServeConfig;

std::shared_ptr<Logger> make_logger(const ServeConfig& c) {
  return std::make_shared<Logger>(level_from_name(c.log_level), c.log_format == "json"
                                                                    ? Logger::Format::kJsonLines
                                                                    : Logger::Format::kText);
}

PoolConfig pool_config(const ServeConfig& c, std::shared_ptr<Logger> logger) {
  PoolConfig p = server::to_pool_config(c);
  p.name = "default";
  p.logger = std::move(logger);
  return p;
}

// What the signal callbacks reach: set once the pool and the service exist.
struct Running {
  StopFlag stop;
  std::mutex mutex;
  server::HttpService* service = nullptr;
  std::vector<std::thread> reloads;  // SIGHUP rolling restarts, joined before exit
};

void on_hangup(Running& run, const std::shared_ptr<Logger>& logger) {
  std::lock_guard lock(run.mutex);
  if (run.service == nullptr || run.stop.stop_requested()) return;
  logger->log(LogLevel::kInfo, "serve", "SIGHUP: reloading the configuration, rolling restart");
  run.reloads.emplace_back([service = run.service, logger] {
    auto done = service->rolling_restart();
    logger->log(done ? LogLevel::kInfo : LogLevel::kError, "serve",
                done ? std::string("rolling restart complete")
                     : "rolling restart failed: " + done.error().to_string());
  });
}

// Serves on a second thread while this one waits for a stop; then drains within the grace.
int serve_until_stopped(Running& run, Pool& pool, server::HttpService& service,
                        const ServeConfig& config, const std::shared_ptr<Logger>& logger) {
  std::atomic<bool> finished{false};
  std::thread serving([&] {
    service.serve();
    finished = true;
    run.stop.notify();
  });
  run.stop.wait([&] { return finished.load(); });
  logger->log(LogLevel::kInfo, "serve",
              fmt::format("stopping: {} request(s) in flight", service.in_flight()));
  service.stop();
  // serve() returns once every connection thread is done, i.e. the requests in flight ended.
  // Past the grace, the pool's shutdown fails the stragglers so that their threads end too.
  auto deadline = std::chrono::steady_clock::now() + milliseconds(config.shutdown_grace_ms);
  while (!finished && std::chrono::steady_clock::now() < deadline) {
    run.stop.sleep_until(std::min(deadline, std::chrono::steady_clock::now() + milliseconds(10)));
  }
  if (!finished) {
    logger->log(LogLevel::kWarn, "serve", "grace over: ending requests still in flight");
    pool.shutdown(milliseconds(0));
  }
  serving.join();
  return 0;
}

server::ServiceOptions service_options(const ServeConfig& config,
                                       const server::ConfigSources& sources,
                                       const std::shared_ptr<Logger>& logger) {
  server::ServiceOptions options;
  options.token = config.token;
  options.max_body_bytes = config.max_body_bytes;
  options.read_timeout = milliseconds(config.read_timeout_ms);
  options.http_threads = config.http_threads != 0
                             ? config.http_threads
                             : server::default_http_threads(config.workers, config.max_overflow);
  options.min_ready = config.min_ready;
  options.logger = logger;
  // SIGHUP and the rolling-restart endpoint re-read every source.
  options.reload = [sources, logger]() -> Result<PoolConfig> {
    auto reloaded = server::load_serve_config(sources, server::bridgepool_environment());
    if (!reloaded) return make_error(ErrorCategory::kInvalidRequest, reloaded.error());
    return pool_config(*reloaded, logger);
  };
  return options;
}

// Binds, prints the listening line, serves until a signal, then ends the pool.
int serve_pool(Running& run, Pool& pool, const ServeConfig& config,
               const server::ConfigSources& sources, const std::shared_ptr<Logger>& logger) {
  server::ServiceTelemetry telemetry(pool, logger, SteadyClock::instance());
  server::HttpService service(pool, service_options(config, sources, logger), telemetry.hooks());
  auto bound = service.bind(*server::parse_listen_address(config.listen));
  if (!bound) {
    std::fprintf(stderr, "bridgepool serve: %s\n", bound.error().message.c_str());
    return 1;
  }
  std::printf("bridgepool serve: listening on http://%s\n", bound->to_string().c_str());
  std::fflush(stdout);
  {
    std::lock_guard lock(run.mutex);
    run.service = &service;
  }
  int status = serve_until_stopped(run, pool, service, config, logger);
  pool.shutdown();
  std::lock_guard lock(run.mutex);
  run.service = nullptr;
  for (auto& t : run.reloads) t.join();
  return status;
}

}  // namespace

void add_serve_flags(CLI::App& app, std::vector<server::TextSetting>& flags) {
  for (const auto& key : server::serve_keys()) {
    std::string flag = key.flag_name();
    std::string name(key.name);
    std::string help =
        fmt::format("{} (env {}, default {})", key.help, key.env_name(), server::default_text(key));
    if (key.type == server::KeyType::kBool) {
      app.add_flag_function(
          flag,
          [&flags, name, flag](std::int64_t) {
            flags.push_back({name, "true", flag});
          },
          help);
    } else if (key.type == server::KeyType::kStringList) {
      // Repeated or comma-separated: --handlers a.py --handlers b.py, or --handlers a.py,b.py.
      app.add_option_function<std::vector<std::string>>(
             flag,
             [&flags, name, flag](const std::vector<std::string>& v) {
               flags.push_back({name, fmt::format("{}", fmt::join(v, ",")), flag});
             },
             help)
          ->delimiter(',');
    } else {
      app.add_option_function<std::string>(
             flag,
             [&flags, name, flag](const std::string& v) {
               flags.push_back({name, v, flag});
             },
             help)
          ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
          ->type_name(key.type == server::KeyType::kUint ? "UINT" : "TEXT");
    }
  }
}

int run_serve(const server::ConfigSources& sources) {
  auto config = server::load_serve_config(sources, server::bridgepool_environment());
  if (!config) {
    std::fprintf(stderr, "bridgepool serve: %s\n", config.error().c_str());
    return kExitUsage;
  }
  auto logger = make_logger(*config);
  Running run;
  auto watch = SignalWatch::start([&](int signo) { run.stop.request(signo); },
                                  [](int signo) {
                                    kill_child_process_groups();
                                    std::_Exit(kExitSignalBase + signo);
                                  },
                                  [&](int) { on_hangup(run, logger); });
  if (!watch) {
    std::fprintf(stderr, "bridgepool serve: %s\n", watch.error().to_string().c_str());
    return 1;
  }
  auto pool = Pool::start(pool_config(*config, logger));
  if (!pool) {
    std::fprintf(stderr, "bridgepool serve: the pool could not start: %s\n",
                 pool.error().to_string().c_str());
    return 1;
  }
  if (run.stop.stop_requested()) return 0;  // a signal during the start: nothing to drain

  return serve_pool(run, **pool, *config, sources, logger);
}

}  // namespace bridgepool::cli
