// HttpService: lifecycle and wiring (binding, threads, routing, the ticker). The endpoints are
// in http_endpoints.cc.
#include "server/http_service.h"

#include <httplib.h>
#include <string.h>
#include <sys/socket.h>

#include <fmt/format.h>

#include "server/api_error.h"
#include "server/bearer_auth.h"
#include "server/http_response.h"
#include "server/routes.h"

namespace bridgepool::server {

std::size_t default_http_threads(std::size_t workers, std::size_t max_overflow) {
  return std::max<std::size_t>(8, 4 * (workers + max_overflow));
}

namespace {

// Keep-alive: a connection serves up to this many requests before httplib closes it (its
// default, 5, would make a benchmark client reconnect every fifth request), and an idle one is
// closed after kKeepAliveIdle, which also bounds how long stop() waits for idle connections.
constexpr std::size_t kKeepAliveMaxRequests = 100'000;
constexpr std::time_t kKeepAliveIdleSeconds = 2;

std::shared_ptr<Logger> logger_or_default(std::shared_ptr<Logger> logger) {
  return logger ? std::move(logger) : std::make_shared<Logger>(LogLevel::kWarn);
}

// A Content-Length header's value: decimal digits only, no sign, no overflow.
std::optional<std::uint64_t> content_length(const std::string& text) {
  if (text.empty() || text.size() > 19) return std::nullopt;  // 19 digits < 2^64
  std::uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return value;
}

// Calls into the series sampler (transitions are not its business).
class SeriesFeed final : public CallObserver {
 public:
  explicit SeriesFeed(std::shared_ptr<SeriesSampler> series) : series_(std::move(series)) {}
  void on_call(const CallObservation& call) override {
    series_->record(call.duration_us, call.result == "ok");
  }
  void on_transition(const TransitionObservation&) override {}

 private:
  std::shared_ptr<SeriesSampler> series_;
};

}  // namespace

HttpService::HttpService(Pool& pool, ServiceOptions options, ServiceHooks hooks)
    : pool_(pool),
      options_(std::move(options)),
      hooks_(std::move(hooks)),
      clock_(options_.clock ? options_.clock
                            : std::shared_ptr<const Clock>(std::make_shared<SteadyClock>())),
      started_(clock_->now()),
      series_(std::make_shared<SeriesSampler>(clock_)),
      http_(std::make_unique<httplib::Server>()) {
  options_.logger = logger_or_default(options_.logger);
  // Every call's end feeds the series; as a typed observation, no Event is built per call.
  series_observer_ = pool_.events().add_observer(std::make_shared<SeriesFeed>(series_));
  install_routes();
  ticker_ = std::thread([this] { tick(); });
}

HttpService::~HttpService() {
  stop();
  {
    std::lock_guard lock(ticker_mutex_);
    stopping_ = true;
  }
  ticker_wake_.notify_all();
  if (ticker_.joinable()) ticker_.join();
  pool_.events().remove_observer(series_observer_);
}

void HttpService::install_routes() {
  auto& s = *http_;
  std::size_t threads = std::max<std::size_t>(options_.http_threads, 1);
  s.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // Small request/response pairs: without TCP_NODELAY, Nagle's algorithm holds a response's
  // last segment for the client's delayed ACK (40 ms on Linux) whenever it is written in two.
  s.set_tcp_nodelay(true);
  // httplib's default sets SO_REUSEPORT too, which lets a second server bind a port that is in
  // use and silently take half its connections. SO_REUSEADDR alone: a restarted server can bind
  // while old connections sit in TIME_WAIT, a port held by a live server is EADDRINUSE.
  s.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  s.set_keep_alive_max_count(kKeepAliveMaxRequests);
  s.set_keep_alive_timeout(kKeepAliveIdleSeconds);
  s.set_read_timeout(options_.read_timeout);
  s.set_payload_max_length(options_.max_body_bytes);
  // Every method and path comes to dispatch() once httplib has read the whole body: rejecting
  // earlier (httplib's pre-routing hook) would leave an unread body on a kept-alive connection.
  auto all = [this](const Req& req, Res& res) { dispatch(req, res); };
  // Methods with a body read it through a content reader: httplib's own reading treats a body
  // sent as application/x-www-form-urlencoded (curl -d's default) as a form and refuses it past
  // 8 KiB with a 413, whatever max_body_bytes says.
  auto with_body = [this](const Req& req, Res& res, const httplib::ContentReader& reader) {
    if (read_body(req, res, reader)) dispatch(req, res);
  };
  s.Get(".*", all).Post(".*", with_body).Put(".*", with_body).Delete(".*", all);
  s.Patch(".*", with_body);
  s.Options(".*", all);
  s.set_error_handler(httplib::Server::HandlerWithResponse([this](const Req& req, Res& res) {
    on_error(req, res);
    return httplib::Server::HandlerResponse::Handled;
  }));
  s.set_exception_handler([this](const Req& req, Res& res, std::exception_ptr) {
    send_json(res, 500, error_body("system", "internal error while handling the request"));
  });
}

bool HttpService::read_body(const Req& req, Res& res, const httplib::ContentReader& reader) {
  auto discard = [](const char*, std::size_t) { return true; };
  if (req.is_multipart_form_data()) {  // drained, so the connection stays in step
    reader([](const httplib::MultipartFormData&) { return true; }, discard);
    send_json(res, 415,
              error_body("invalid_request", "the body must be JSON, not a multipart form"));
    return false;
  }
  const bool chunked =
      req.get_header_value("Transfer-Encoding").find("chunked") != std::string::npos;
  if (!req.has_header("Content-Length") && !chunked) {
    // Without either, the body would run to the end of the connection.
    send_json(res, 411, error_body("invalid_request", "a request body needs Content-Length"));
    return false;
  }
  if (!chunked) {
    // Refused before reading: httplib would otherwise read (and discard) a declared length it
    // will not accept, however large, before answering. httplib 0.11 keeps the connection open
    // whatever the response says: bytes the client sends after it are read as the next request
    // (a body is no valid request line: 400, then closed), else it idles out (2 s).
    const auto length = content_length(req.get_header_value("Content-Length"));
    if (!length || *length > options_.max_body_bytes) {
      res.set_header("Connection", "close");
      if (!length) {
        send_json(res, 400, error_body("invalid_request", "Content-Length is not a number"));
      } else {
        res.status = 413;
        on_error(req, res);
      }
      return false;
    }
  }
  std::string body;
  const bool complete = reader([&](const char* data, std::size_t n) {
    body.append(data, n);
    return true;
  });
  if (!complete) {  // httplib set 413 (over max_body_bytes) or 400 (framing)
    on_error(req, res);
    return false;
  }
  // httplib hands handlers a const view of the Request it owns for this exchange (a mutable
  // object); the body is stored where every endpoint reads it, as httplib's own reading does.
  const_cast<Req&>(req).body = std::move(body);
  return true;
}

void HttpService::dispatch(const Req& req, Res& res) {
  auto route = match_route(req.method, req.path);
  if (!route) {
    return send_json(res, 404,
                     error_body("not_found", fmt::format("no such path: {}", printable(req.path))));
  }
  if (!route->method_allowed) {
    res.set_header("Allow", route->allow);
    return send_json(
        res, 405,
        error_body("method_not_allowed",
                   fmt::format("{} allows {} only", printable(req.path), route->allow)));
  }
  if (route->needs_token && !authorized(req.get_header_value("Authorization"), options_.token)) {
    res.set_header("WWW-Authenticate", "Bearer realm=\"bridgepool\"");
    return send_json(
        res, 401,
        error_body("unauthorized", "this endpoint needs 'Authorization: Bearer <token>'"));
  }
  route_request(req, res);
  if (res.status >= 500) {
    options_.logger->log(LogLevel::kWarn, "http",
                         fmt::format("{} {} -> {}", req.method, printable(req.path), res.status));
  } else if (options_.logger->enabled(LogLevel::kDebug)) {
    options_.logger->log(LogLevel::kDebug, "http",
                         fmt::format("{} {} -> {}", req.method, printable(req.path), res.status));
  }
}

void HttpService::on_error(const Req& req, Res& res) {
  if (!res.body.empty()) return;  // a handler's own error body
  if (res.status == 413) {
    send_json(
        res, 413,
        error_body("invalid_request", fmt::format("the body is larger than max_body_bytes ({})",
                                                  options_.max_body_bytes)));
    return;
  }
  // httplib's own refusals: a request line, header or body framing it could not read (a POST
  // without Content-Length included), a URI too long, a range it cannot serve.
  send_json(res, res.status,
            error_body("invalid_request",
                       fmt::format("HTTP {}: the request could not be read as HTTP/1.1 (request "
                                   "line, headers, Content-Length or body)",
                                   res.status)));
}

Result<ListenAddress> HttpService::bind(const ListenAddress& address) {
  int port = address.port;
  bool ok = port == 0 ? (port = http_->bind_to_any_port(address.host)) > 0
                      : http_->bind_to_port(address.host, port);
  if (!ok) {
    return make_error(
        ErrorCategory::kSystem,
        fmt::format("cannot listen on {}: {}", address.to_string(), std::strerror(errno)));
  }
  ListenAddress bound{address.host, static_cast<std::uint16_t>(port)};
  listen_ = bound.to_string();
  return bound;
}

void HttpService::serve() {
  {
    std::lock_guard lock(serve_mutex_);
    if (stop_requested_) return;
    serving_ = true;
  }
  http_->listen_after_bind();
  served_ = true;
}

void HttpService::stop() {
  {
    std::lock_guard lock(serve_mutex_);
    stop_requested_ = true;
    if (!serving_) return;  // serve() will not start
  }
  // serve() was entered; httplib's stop() only acts once listen_after_bind() has marked the
  // server running (its first step), so wait for that — or for serve() to have returned.
  while (!http_->is_running() && !served_) std::this_thread::yield();
  http_->stop();
}

void HttpService::tick() {
  std::unique_lock lock(ticker_mutex_);
  while (!stopping_) {
    ticker_wake_.wait_for(lock, std::chrono::seconds(1));
    if (stopping_) break;
    lock.unlock();
    if (hooks_.every_second) hooks_.every_second();
    lock.lock();
  }
}

}  // namespace bridgepool::server
