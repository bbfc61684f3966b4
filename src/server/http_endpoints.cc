// HttpService: the endpoints (wiring and lifecycle are in http_service.cc). Each handler runs on
// an httplib connection thread after the whole request was read; the pool call blocks that
// thread, which is why the HTTP thread pool is larger than the worker pool.
#include <httplib.h>

#include <fmt/format.h>

#include "bridgepool/circuit_breaker.h"
#include "server/api_error.h"
#include "server/api_request.h"
#include "server/dashboard_asset.h"
#include "server/http_response.h"
#include "server/http_service.h"
#include "server/status_document.h"
#include "server/stream_format.h"

namespace bridgepool::server {

using Json = nlohmann::json;

namespace {

constexpr std::string_view kSessionsPrefix = "/v1/sessions/";
constexpr std::chrono::milliseconds kDefaultBroadcastTimeout{10'000};

void send_error(httplib::Response& res, const Error& error) {
  send_json(res, http_status_for(error.category), error_body(error));
}

// Counts a request in flight for as long as it lives.
class InFlight {
 public:
  explicit InFlight(std::atomic<std::size_t>& n) : n_(n) { n_.fetch_add(1); }
  ~InFlight() { n_.fetch_sub(1); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

 private:
  std::atomic<std::size_t>& n_;
};

}  // namespace

void HttpService::route_request(const Req& req, Res& res) {
  const std::string& p = req.path;
  if (p == "/") return handle_dashboard(req, res);
  if (p == "/healthz") return handle_healthz(req, res);
  if (p == "/readyz") return handle_readyz(req, res);
  if (p == "/metrics") return handle_metrics(req, res);
  if (p == "/v1/status") return handle_status(req, res);
  if (p == "/v1/execute") return handle_execute(req, res);
  if (p == "/v1/broadcast") return handle_broadcast(req, res);
  if (p == "/v1/admin/rolling-restart") return handle_rolling_restart(req, res);
  if (p == "/v1/admin/breaker/reset") return handle_breaker_reset(req, res);
  if (p.rfind(kSessionsPrefix, 0) == 0) return handle_close_session(req, res);
}

void HttpService::handle_dashboard(const Req&, Res& res) {
  res.set_header("Content-Security-Policy", std::string(kDashboardCsp));
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Cache-Control", "no-store");
  res.set_content(std::string(kDashboardHtml), "text/html; charset=utf-8");
}

void HttpService::handle_healthz(const Req&, Res& res) { send_json(res, 200, Json{{"ok", true}}); }

void HttpService::handle_readyz(const Req&, Res& res) {
  PoolStats stats = pool_.stats();
  bool ready = is_ready(stats, options_.min_ready);
  send_json(res, ready ? 200 : 503,
            Json{{"ready", ready},
                 {"ready_workers", ready_workers(stats)},
                 {"min_ready", options_.min_ready}});
}

void HttpService::handle_metrics(const Req&, Res& res) {
  if (!hooks_.metrics_text) {
    send_json(res, 501,
              error_body("invalid_request", "this service has no metrics registry (ServiceHooks)"));
    return;
  }
  res.set_content(hooks_.metrics_text(), "text/plain; version=0.0.4; charset=utf-8");
}

Json HttpService::status_json() {
  StatusInputs in;
  in.version = options_.version;
  in.uptime_s = std::chrono::duration<double>(clock_->now() - started_).count();
  in.listen = listen_;
  in.kind = std::string(pool_.kind());
  in.stats = pool_.stats();
  in.min_ready = options_.min_ready;
  in.workers = pool_.workers();
  if (hooks_.alerts) in.alerts = hooks_.alerts();
  in.series = series_->snapshot();
  return status_document(in);
}

void HttpService::handle_status(const Req&, Res& res) { send_json(res, 200, status_json()); }

std::pair<int, Json> HttpService::run_execute(const ExecuteRequest& r,
                                              std::function<void(const Json&)> on_chunk) {
  InFlight counted(in_flight_);
  CallReport report;
  ExecuteOptions options;
  options.timeout = r.timeout;
  options.on_chunk = std::move(on_chunk);
  options.report = &report;
  if (r.idempotent == false) options.retry = RetryPolicy::none();
  auto result = r.session_id ? pool_.execute_in_session(*r.session_id, r.command, r.args, options)
                             : pool_.execute(r.command, r.args, options);
  if (!result) return {http_status_for(result.error().category), error_body(result.error())};
  return {200, Json{{"ok", true},
                    {"result", std::move(*result)},
                    {"worker", report.worker_id},
                    {"attempts", report.attempts}}};
}

void HttpService::handle_execute(const Req& req, Res& res) {
  auto parsed = parse_execute_request(req.body);
  if (!parsed) return send_error(res, parsed.error());
  StreamMode mode = stream_mode(parsed->stream, req.get_header_value("Accept"));
  if (mode == StreamMode::kNone) {
    auto [status, body] = run_execute(*parsed, nullptr);
    return send_json(res, status, body);
  }
  // The call runs when httplib asks for the body, after the 200 and the headers went out, so
  // each chunk reaches the client as the command yields it.
  auto request = std::make_shared<ExecuteRequest>(std::move(*parsed));
  res.set_header("Cache-Control", "no-store");
  res.set_chunked_content_provider(
      std::string(content_type(mode)), [this, request, mode](std::size_t, httplib::DataSink& sink) {
        auto write = [&sink](const std::string& frame) { sink.write(frame.data(), frame.size()); };
        auto [status, body] =
            run_execute(*request, [&](const Json& chunk) { write(chunk_frame(mode, chunk)); });
        write(final_frame(mode, body));
        sink.done();
        return true;
      });
}

void HttpService::handle_broadcast(const Req& req, Res& res) {
  auto parsed = parse_broadcast_request(req.body);
  if (!parsed) return send_error(res, parsed.error());
  InFlight counted(in_flight_);
  auto outcome = pool_.broadcast(parsed->command, parsed->args,
                                 parsed->timeout.value_or(kDefaultBroadcastTimeout));
  if (outcome.results.empty()) {
    return send_json(res, 503, error_body("resource", "no worker in service to broadcast to"));
  }
  // 200 when every worker succeeded; otherwise the status of the first failure (by worker id).
  int status = 200;
  Json results = Json::object();
  for (const auto& [worker, reply] : outcome.results) {
    if (reply) {
      results[worker] = Json{{"ok", true}, {"result", *reply}};
      continue;
    }
    results[worker] = error_body(reply.error());
    if (status == 200) status = http_status_for(reply.error().category);
  }
  send_json(res, status,
            Json{{"ok", outcome.failed == 0},
                 {"succeeded", outcome.succeeded},
                 {"failed", outcome.failed},
                 {"results", results}});
}

void HttpService::handle_close_session(const Req& req, Res& res) {
  std::string id = req.path.substr(kSessionsPrefix.size());
  auto closed = pool_.close_session(id);
  if (!closed) return send_error(res, closed.error());
  if (!*closed) {
    return send_json(res, 404,
                     error_body("session", fmt::format("unknown session '{}'", printable(id))));
  }
  send_json(res, 200, Json{{"ok", true}, {"closed", id}});
}

Result<void> HttpService::rolling_restart() {
  bool idle = false;
  if (!restarting_.compare_exchange_strong(idle, true)) {
    return make_error(ErrorCategory::kResource, "a rolling restart is already running");
  }
  auto config = options_.reload ? options_.reload() : Result<PoolConfig>(pool_.config());
  Result<void> done = config ? pool_.rolling_restart(*config) : tl::unexpected(config.error());
  restarting_ = false;
  return done;
}

void HttpService::handle_rolling_restart(const Req&, Res& res) {
  auto done = rolling_restart();
  if (!done) return send_error(res, done.error());
  send_json(res, 200, Json{{"ok", true}, {"generation", pool_.stats().generation}});
}

void HttpService::handle_breaker_reset(const Req&, Res& res) {
  auto breaker = pool_.breaker();
  if (!breaker) {
    return send_json(
        res, 409,
        error_body("invalid_request", "the pool has no circuit breaker (resilience is off)"));
  }
  breaker->reset();
  send_json(res, 200, Json{{"ok", true}, {"state", "closed"}});
}

}  // namespace bridgepool::server
