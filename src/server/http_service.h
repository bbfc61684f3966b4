// HttpService: the HTTP/1.1 API of `bridgepool serve` over one Pool (routes in routes.h, bodies
// in api_request.h, errors in api_error.h, status in status_document.h, streams in
// stream_format.h). The command (src/cli/serve_command.cc) owns the pool, the signals and the
// configuration; tests run the service in-process on port 0.
//
// Threads: cpp-httplib serves each connection on one of `http_threads` threads (a connection
// holds its thread while open; further connections wait in its queue). A request reaches the
// pool — and holds a worker — only after its headers and whole body were read and the body was
// validated, so a slow client holds an HTTP thread at most, never a worker; a client idle for
// read_timeout while sending is dropped. Sizing: max(8, 4 x (workers + max_overflow)) threads
// leaves most threads free for other clients while every worker is busy.
// Besides those, one ticker thread calls ServiceHooks::every_second.
// Thread-safety: serve() on one thread; stop(), rolling_restart() and in_flight() from any.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "bridgepool/clock.h"
#include "bridgepool/logging.h"
#include "bridgepool/pool.h"
#include "server/listen_address.h"
#include "server/series_sampler.h"

namespace httplib {
class Server;
struct Request;
struct Response;
class ContentReader;
}  // namespace httplib

namespace bridgepool::server {

struct ExecuteRequest;  // api_request.h

// What the service shows of the pool's telemetry: `bridgepool serve` plugs in a
// ServiceTelemetry (service_telemetry.h: the metrics registry and the error reporter); tests may
// plug in anything. Each may be empty.
struct ServiceHooks {
  std::function<std::string()> metrics_text;  // GET /metrics (empty: 501)
  std::function<nlohmann::json()> alerts;     // /v1/status "alerts" (empty: [])
  std::function<void()> every_second;         // called once a second on the ticker thread
};

struct ServiceOptions {
  std::string token;  // "" : no token required anywhere
  std::size_t max_body_bytes = 1 << 20;
  std::chrono::milliseconds read_timeout{5'000};
  std::size_t http_threads = 8;
  std::size_t min_ready = 1;
  std::string version = "0.1.0";
  // The configuration a rolling restart moves to (admin endpoint, SIGHUP); empty: the pool's own.
  std::function<Result<PoolConfig>()> reload;
  std::shared_ptr<Logger> logger;      // null: warnings to stderr
  std::shared_ptr<const Clock> clock;  // null: the steady clock
};

// http_threads for a pool of `workers` + `max_overflow` (see the header comment).
std::size_t default_http_threads(std::size_t workers, std::size_t max_overflow);

class HttpService {
 public:
  HttpService(Pool& pool, ServiceOptions options, ServiceHooks hooks = {});
  ~HttpService();  // stop(), and detaches from the pool's events
  HttpService(const HttpService&) = delete;
  HttpService& operator=(const HttpService&) = delete;

  // Binds `address` (port 0: the kernel picks). Returns the bound address.
  Result<ListenAddress> bind(const ListenAddress& address);
  // Serves until stop(); returns once every connection thread has finished, i.e. after the
  // requests in flight completed. Call after bind().
  void serve();
  // Stops accepting connections; serve() returns once requests in flight are done. Idempotent.
  void stop();
  // Replaces every worker with one started from options.reload() (or the pool's own config),
  // one at a time, so no request fails. A call while one is running fails with a resource error.
  Result<void> rolling_restart();
  // Requests being handled now.
  std::size_t in_flight() const { return in_flight_.load(); }

 private:
  using Req = httplib::Request;
  using Res = httplib::Response;
  void install_routes();
  void dispatch(const Req& req, Res& res);
  // Reads a request's body into req.body (false: an error response was sent).
  bool read_body(const Req& req, Res& res, const httplib::ContentReader& reader);
  void route_request(const Req& req, Res& res);
  nlohmann::json status_json();
  // Runs one execute request; chunks of a streaming command go to `on_chunk` if set. Returns the
  // HTTP status and the body (the final frame of a stream).
  std::pair<int, nlohmann::json> run_execute(const ExecuteRequest& request,
                                             std::function<void(const nlohmann::json&)> on_chunk);
  void handle_dashboard(const Req& req, Res& res);
  void handle_healthz(const Req& req, Res& res);
  void on_error(const Req& req, Res& res);
  void handle_status(const Req& req, Res& res);
  void handle_execute(const Req& req, Res& res);
  void handle_broadcast(const Req& req, Res& res);
  void handle_close_session(const Req& req, Res& res);
  void handle_metrics(const Req& req, Res& res);
  void handle_readyz(const Req& req, Res& res);
  void handle_rolling_restart(const Req& req, Res& res);
  void handle_breaker_reset(const Req& req, Res& res);
  void tick();

  Pool& pool_;
  ServiceOptions options_;
  ServiceHooks hooks_;
  std::shared_ptr<const Clock> clock_;
  TimePoint started_;
  std::string listen_;
  // Shared with the EventBus observer that feeds it: a call observed on another thread while the
  // service is destroyed still writes to a live sampler.
  std::shared_ptr<SeriesSampler> series_;
  std::uint64_t series_observer_ = 0;  // EventBus observer feeding series_
  std::unique_ptr<httplib::Server> http_;
  std::atomic<std::size_t> in_flight_{0};
  std::atomic<bool> restarting_{false};
  std::mutex serve_mutex_;
  bool stop_requested_ = false;  // guarded by serve_mutex_
  bool serving_ = false;         // guarded by serve_mutex_
  std::atomic<bool> served_{false};
  std::mutex ticker_mutex_;
  std::condition_variable ticker_wake_;
  bool stopping_ = false;
  std::thread ticker_;
};

}  // namespace bridgepool::server
