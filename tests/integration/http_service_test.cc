// The HTTP API over real loopback sockets and real Python workers: every endpoint, every kind of
// bad input (each its own test), streaming, a slow client, and the series fed by real calls.
#include "server/http_service.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sstream>

#include <gtest/gtest.h>

#include "integration/metrics_check.h"
#include "integration/test_support.h"
#include "server/service_telemetry.h"

namespace bridgepool::server {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;

class HttpServiceTest : public ::testing::Test {
 protected:
  void start(ServiceOptions options = {}, PoolConfig config = testing::test_config(2)) {
    pool_ = testing::start_pool(std::move(config));
    ASSERT_NE(pool_, nullptr);
    options.logger = std::make_shared<Logger>(LogLevel::kOff);
    // What `bridgepool serve` plugs in: the metrics registry and the error reporter.
    telemetry_ =
        std::make_unique<ServiceTelemetry>(*pool_, options.logger, SteadyClock::instance());
    service_ = std::make_unique<HttpService>(*pool_, std::move(options), telemetry_->hooks());
    auto bound = service_->bind(ListenAddress{"127.0.0.1", 0});
    ASSERT_TRUE(bound) << bound.error().message;
    port_ = bound->port;
    serving_ = std::thread([this] { service_->serve(); });
  }

  void TearDown() override {
    if (service_) service_->stop();
    if (serving_.joinable()) serving_.join();
    service_.reset();
    telemetry_.reset();
    if (pool_) pool_->shutdown();
  }

  httplib::Client client() {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(std::chrono::seconds(30));
    return c;
  }

  // POST /v1/execute with `body` (raw text); returns {status, parsed body}.
  std::pair<int, Json> post(const std::string& path, const std::string& body,
                            httplib::Headers headers = {}) {
    auto res = client().Post(path.c_str(), headers, body, "application/json");
    if (!res) return {0, Json()};
    return {res->status, Json::parse(res->body, nullptr, false)};
  }

  std::pair<int, Json> get(const std::string& path) {
    auto res = client().Get(path.c_str());
    if (!res) return {0, Json()};
    return {res->status, Json::parse(res->body, nullptr, false)};
  }

  void expect_error(const std::pair<int, Json>& reply, int status, const std::string& category) {
    EXPECT_EQ(reply.first, status) << reply.second.dump();
    EXPECT_EQ(reply.second["ok"], false);
    EXPECT_EQ(reply.second["error"]["category"], category) << reply.second.dump();
  }

  std::unique_ptr<Pool> pool_;
  std::unique_ptr<ServiceTelemetry> telemetry_;
  std::unique_ptr<HttpService> service_;
  std::thread serving_;
  int port_ = 0;
};

TEST_F(HttpServiceTest, ExecuteEchoReturnsResultWorkerAndAttempts) {
  start();
  auto [status, body] = post("/v1/execute", R"({"command":"echo","args":{"x":[1,"two"]}})");
  EXPECT_EQ(status, 200);
  EXPECT_EQ(body["ok"], true);
  EXPECT_EQ(body["result"], Json({{"x", {1, "two"}}}));
  EXPECT_EQ(body["worker"].get<std::string>().substr(0, 1), "w");
  EXPECT_EQ(body["attempts"], 1);
}

TEST_F(HttpServiceTest, BinaryValuesTravelAsBase64ObjectsOverHttpAndAsAttachmentsBehind) {
  start();
  auto [status, body] =
      post("/v1/execute", R"({"command":"echo","args":{"b":{"$base64":"AAEC/w=="},"n":1}})");
  EXPECT_EQ(status, 200) << body.dump();
  EXPECT_EQ(body["result"], Json::parse(R"({"b":{"$base64":"AAEC/w=="},"n":1})"));
  expect_error(post("/v1/execute", R"({"command":"echo","args":{"b":{"$base64":"AAE"}}})"), 400,
               "invalid_request");
  expect_error(post("/v1/execute", R"({"command":"echo","args":{"b":{"$attachment":0}}})"), 400,
               "invalid_request");
}

TEST_F(HttpServiceTest, StatusFollowsTheContract) {
  start();
  post("/v1/execute", R"({"command":"echo"})");
  auto [status, s] = get("/v1/status");
  ASSERT_EQ(status, 200);
  EXPECT_EQ(s["server"]["version"], "0.1.0");
  EXPECT_EQ(s["server"]["listen"], "127.0.0.1:" + std::to_string(port_));
  EXPECT_EQ(s["pool"]["kind"], "pool");
  EXPECT_EQ(s["pool"]["ready"], true);
  EXPECT_EQ(s["pool"]["size"], 2);
  EXPECT_GE(s["pool"]["requests"].get<int>(), 1);
  ASSERT_EQ(s["workers"].size(), 2u);
  EXPECT_GT(s["workers"][0]["pid"].get<int>(), 0);
  EXPECT_GT(s["workers"][0]["rss_bytes"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(s["breaker"]["state"], "closed");
  EXPECT_EQ(s["alerts"], Json::array());
  EXPECT_EQ(s["series"]["interval_s"], 1);
}

TEST_F(HttpServiceTest, SeriesCountsCallsPerSecond) {
  auto clock = std::make_shared<ManualClock>();
  ServiceOptions options;
  options.clock = clock;
  start(options);
  for (int i = 0; i < 3; ++i) post("/v1/execute", R"({"command":"echo"})");
  post("/v1/execute", R"({"command":"fail"})");
  clock->advance(std::chrono::seconds(1));
  auto series = get("/v1/status").second["series"];
  ASSERT_EQ(series["requests_per_s"].size(), 1u) << series.dump();
  EXPECT_EQ(series["requests_per_s"][0], 4);
  EXPECT_EQ(series["errors_per_s"][0], 1);
  EXPECT_TRUE(series["p99_ms"][0].is_number());
}

TEST_F(HttpServiceTest, AlertsAndMetricsComeFromTheHooks) {
  pool_ = testing::start_pool(testing::test_config(1));
  ServiceHooks hooks;
  hooks.alerts = [] { return Json::array({{{"rule", "error_rate"}}}); };
  hooks.metrics_text = [] { return std::string("registry 1\n"); };
  ServiceOptions options;
  options.logger = std::make_shared<Logger>(LogLevel::kOff);
  service_ = std::make_unique<HttpService>(*pool_, options, hooks);
  port_ = service_->bind(ListenAddress{"127.0.0.1", 0})->port;
  serving_ = std::thread([this] { service_->serve(); });
  EXPECT_EQ(get("/v1/status").second["alerts"][0]["rule"], "error_rate");
  EXPECT_EQ(client().Get("/metrics")->body, "registry 1\n");
}

TEST_F(HttpServiceTest, EverySecondHookIsCalled) {
  pool_ = testing::start_pool(testing::test_config(1));
  std::atomic<int> ticks{0};
  ServiceHooks hooks;
  hooks.every_second = [&] { ++ticks; };
  service_ = std::make_unique<HttpService>(*pool_, ServiceOptions{}, hooks);
  EXPECT_TRUE(testing::wait_until([&] { return ticks.load() >= 1; }, milliseconds(5'000)));
}

// GET /metrics is the registry of `bridgepool serve`, parsed by the real Prometheus parser, with
// the counts of what was sent over HTTP.
TEST_F(HttpServiceTest, MetricsCountTheCallsSentOverHttp) {
  start();
  for (int i = 0; i < 5; ++i) ASSERT_EQ(post("/v1/execute", R"({"command":"echo"})").first, 200);
  std::string severity;
  for (int i = 0; i < 2; ++i) {
    auto reply = post("/v1/execute", R"({"command":"fail","args":{"message":"x"}})");
    expect_error(reply, 422, "python");
    severity = reply.second["error"]["severity"];
  }
  auto res = client().Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  using testing::expect_sample;
  const Json expectations = Json::array({
      expect_sample("bridgepool_requests_total",
                    {{"pool", "test"}, {"command", "echo"}, {"outcome", "ok"}}, 5),
      expect_sample("bridgepool_requests_total",
                    {{"pool", "test"}, {"command", "fail"}, {"outcome", "python"}}, 2),
      expect_sample("bridgepool_errors_total",
                    {{"pool", "test"}, {"category", "python"}, {"severity", severity}}, 2),
      expect_sample("bridgepool_request_duration_seconds_count",
                    {{"pool", "test"}, {"command", "echo"}}, 5),
      expect_sample("bridgepool_workers", {{"pool", "test"}, {"state", "ready"}}, 2),
      expect_sample("bridgepool_pool_size", {{"pool", "test"}}, 2),
  });
  EXPECT_EQ(testing::check_metrics(res->body, expectations), 0) << res->body;
}

// The error reporter behind /v1/status: failing calls over HTTP raise error_rate within a tick or
// two of the service's ticker (no raise hold by default), and the alert is in the status.
TEST_F(HttpServiceTest, FailingCallsRaiseTheErrorRateAlertInTheStatus) {
  start();
  for (int i = 0; i < 25; ++i)
    expect_error(post("/v1/execute", R"({"command":"fail","args":{"message":"x"}})"), 422,
                 "python");
  Json alerts;
  EXPECT_TRUE(testing::wait_until(
      [&] {
        alerts = get("/v1/status").second["alerts"];
        return alerts.is_array() && !alerts.empty();
      },
      milliseconds(10'000)));
  ASSERT_FALSE(alerts.empty());
  EXPECT_EQ(alerts[0]["rule"], "error_rate");
  EXPECT_EQ(alerts[0]["severity"], "critical");
  EXPECT_EQ(alerts[0]["value"], 1.0);
  EXPECT_TRUE(alerts[0]["since"].is_string());
}

// A service without a metrics hook says so instead of serving something else.
TEST_F(HttpServiceTest, MetricsWithoutARegistryAre501) {
  pool_ = testing::start_pool(testing::test_config(1));
  service_ = std::make_unique<HttpService>(*pool_, ServiceOptions{});
  port_ = service_->bind(ListenAddress{"127.0.0.1", 0})->port;
  serving_ = std::thread([this] { service_->serve(); });
  auto res = client().Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 501);
}

// A port held by a live service is refused to a second one (httplib's default SO_REUSEPORT would
// let both bind and split the connections between two unrelated servers).
TEST_F(HttpServiceTest, ASecondServiceCannotBindAPortInUse) {
  start();
  HttpService second(*pool_, ServiceOptions{});
  auto bound = second.bind(ListenAddress{"127.0.0.1", static_cast<std::uint16_t>(port_)});
  ASSERT_FALSE(bound);
  EXPECT_EQ(bound.error().category, ErrorCategory::kSystem);
  EXPECT_NE(bound.error().message.find("Address already in use"), std::string::npos)
      << bound.error().message;
}

TEST_F(HttpServiceTest, HealthzAndReadyz) {
  ServiceOptions options;
  options.min_ready = 2;
  start(options);
  EXPECT_EQ(get("/healthz"), (std::pair<int, Json>{200, Json{{"ok", true}}}));
  auto [status, body] = get("/readyz");
  EXPECT_EQ(status, 200);
  EXPECT_EQ(body["ready_workers"], 2);
}

TEST_F(HttpServiceTest, ReadyzIs503BelowMinReady) {
  ServiceOptions options;
  options.min_ready = 3;  // more than the pool has
  start(options);
  auto [status, body] = get("/readyz");
  EXPECT_EQ(status, 503);
  EXPECT_EQ(body["ready"], false);
}

TEST_F(HttpServiceTest, DashboardPageHasAStrictContentSecurityPolicy) {
  start();
  auto res = client().Get("/");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(res->body.find("bridgepool"), std::string::npos);
  std::string csp = res->get_header_value("Content-Security-Policy");
  EXPECT_NE(csp.find("default-src 'none'"), std::string::npos);
  EXPECT_EQ(csp.find("http"), std::string::npos) << "no remote origin: " << csp;
}

TEST_F(HttpServiceTest, PythonErrorIs422WithTypeAndTraceback) {
  start();
  auto reply = post("/v1/execute", R"({"command":"fail","args":{"type":"ValueError"}})");
  expect_error(reply, 422, "python");
  EXPECT_EQ(reply.second["error"]["type"], "ValueError");
  EXPECT_NE(reply.second["error"]["traceback"].get<std::string>().find("Traceback"),
            std::string::npos);
  EXPECT_TRUE(reply.second["error"].contains("worker"));
  EXPECT_TRUE(reply.second["error"].contains("severity"));
}

TEST_F(HttpServiceTest, MalformedJsonIs400) {
  start();
  expect_error(post("/v1/execute", R"({"command": "echo",)"), 400, "invalid_request");
}

TEST_F(HttpServiceTest, WrongTypesAre400) {
  start();
  expect_error(post("/v1/execute", R"({"command": 5})"), 400, "invalid_request");
  expect_error(post("/v1/execute", R"({"command": "echo", "args": [1]})"), 400, "invalid_request");
}

TEST_F(HttpServiceTest, UnknownCommandIs400) {
  start();
  auto reply = post("/v1/execute", R"({"command": "no_such_command"})");
  expect_error(reply, 400, "invalid_request");
  EXPECT_NE(reply.second["error"]["message"].get<std::string>().find("unknown command"),
            std::string::npos);
}

TEST_F(HttpServiceTest, InvalidUtf8Is400) {
  start();
  expect_error(post("/v1/execute", "{\"command\":\"echo\",\"args\":{\"s\":\"\xc3\x28\"}}"), 400,
               "invalid_request");
}

TEST_F(HttpServiceTest, DeepNestingIs400) {
  start();
  std::string deep =
      R"({"command":"echo","args":{"a":)" + std::string(5000, '[') + std::string(5000, ']') + "}}";
  expect_error(post("/v1/execute", deep), 400, "invalid_request");
  // 499 levels inside args (500 with args itself) still pass.
  std::string ok =
      R"({"command":"echo","args":{"a":)" + std::string(499, '[') + std::string(499, ']') + "}}";
  EXPECT_EQ(post("/v1/execute", ok).first, 200);
}

TEST_F(HttpServiceTest, NanIs400) {
  start();
  expect_error(post("/v1/execute", R"({"command":"echo","args":{"x":NaN}})"), 400,
               "invalid_request");
}

TEST_F(HttpServiceTest, OversizedBodyIs413AndNoWorkerIsUsed) {
  ServiceOptions options;
  options.max_body_bytes = 1000;
  start(options);
  std::string big = R"({"command":"echo","args":{"s":")" + std::string(2000, 'x') + "\"}}";
  expect_error(post("/v1/execute", big), 413, "invalid_request");
  EXPECT_EQ(pool_->stats().requests, 0u);
  EXPECT_EQ(post("/v1/execute", R"({"command":"echo"})").first, 200);  // the server still serves
}

TEST_F(HttpServiceTest, MissingTokenIs401) {
  ServiceOptions options;
  options.token = "s3cret";
  start(options);
  auto res = client().Post("/v1/execute", R"({"command":"echo"})", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 401);
  EXPECT_EQ(res->get_header_value("WWW-Authenticate"), "Bearer realm=\"bridgepool\"");
  EXPECT_EQ(pool_->stats().requests, 0u);
}

TEST_F(HttpServiceTest, InvalidTokenIs401AndValidTokenPasses) {
  ServiceOptions options;
  options.token = "s3cret";
  start(options);
  expect_error(post("/v1/admin/breaker/reset", "", {{"Authorization", "Bearer nope"}}), 401,
               "unauthorized");
  EXPECT_EQ(
      post("/v1/execute", R"({"command":"echo"})", {{"Authorization", "Bearer s3cret"}}).first,
      200);
  EXPECT_EQ(get("/v1/status").first, 200);  // reading needs no token
}

TEST_F(HttpServiceTest, MethodNotAllowedIs405WithAllow) {
  start();
  auto res = client().Get("/v1/execute");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 405);
  EXPECT_EQ(res->get_header_value("Allow"), "POST");
  auto put = client().Put("/v1/status", "{}", "application/json");
  ASSERT_TRUE(put);
  EXPECT_EQ(put->status, 405);
  EXPECT_EQ(put->get_header_value("Allow"), "GET");
}

TEST_F(HttpServiceTest, UnknownPathIs404Json) {
  start();
  auto [status, body] = get("/v2/nothing");
  EXPECT_EQ(status, 404);
  EXPECT_EQ(body["error"]["category"], "not_found");
}

TEST_F(HttpServiceTest, TimeoutIs504) {
  start();
  expect_error(post("/v1/execute", R"({"command":"sleep","args":{"ms":3000},"timeout_ms":100})"),
               504, "timeout");
}

TEST_F(HttpServiceTest, SessionsBindAndClose) {
  start();
  auto first = post("/v1/execute", R"({"command":"whoami","session_id":"s1"})");
  auto second = post("/v1/execute", R"({"command":"whoami","session_id":"s1"})");
  ASSERT_EQ(first.first, 200);
  EXPECT_EQ(first.second["worker"], second.second["worker"]);
  auto res = client().Delete("/v1/sessions/s1");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

TEST_F(HttpServiceTest, UnknownSessionIs404) {
  start();
  auto res = client().Delete("/v1/sessions/never-opened");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  EXPECT_EQ(Json::parse(res->body)["error"]["category"], "session");
}

TEST_F(HttpServiceTest, BroadcastReachesEveryWorker) {
  start();
  auto [status, body] = post("/v1/broadcast", R"({"command":"configure","args":{"k":1}})");
  EXPECT_EQ(status, 200);
  EXPECT_EQ(body["succeeded"], 2);
  EXPECT_EQ(body["results"].size(), 2u);
}

TEST_F(HttpServiceTest, StreamsNdjsonChunksThenTheResult) {
  start();
  auto res =
      client().Post("/v1/execute", R"({"command":"stream","args":{"count":3},"stream":true})",
                    "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/x-ndjson");
  std::vector<Json> lines;
  std::istringstream in(res->body);
  for (std::string line; std::getline(in, line);) lines.push_back(Json::parse(line));
  ASSERT_EQ(lines.size(), 4u) << res->body;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(lines[i], Json({{"chunk", {{"i", i}}}}));
  EXPECT_EQ(lines[3]["ok"], true);
  EXPECT_EQ(lines[3]["result"], Json({{"count", 3}}));
}

TEST_F(HttpServiceTest, StreamsServerSentEvents) {
  start();
  auto res = client().Post("/v1/execute", {{"Accept", "text/event-stream"}},
                           R"({"command":"stream","args":{"count":2}})", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
  EXPECT_EQ(res->body.find("event: chunk\ndata: {\"i\":0}\n\nevent: chunk\ndata: {\"i\":1}\n\n"
                           "event: result\ndata: "),
            0u)
      << res->body;
}

TEST_F(HttpServiceTest, StreamFailureIsTheLastLine) {
  start();
  auto res =
      client().Post("/v1/execute", R"({"command":"fail","stream":true})", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  auto last = Json::parse(res->body);
  EXPECT_EQ(last["error"]["category"], "python");
}

TEST_F(HttpServiceTest, AdminRollingRestartMovesToTheNextGeneration) {
  start();
  auto [status, body] = post("/v1/admin/rolling-restart", "");
  EXPECT_EQ(status, 200) << body.dump();
  EXPECT_EQ(body["generation"], 2);
  // The new generation serves when the call returns; the old workers may still be exiting for a
  // moment (listed, out of service: they report generation 0 then, their bookkeeping gone), but
  // none of generation 1 is left in service.
  for (const auto& w : pool_->workers()) {
    if (w.generation != 0) {
      EXPECT_EQ(w.generation, 2u) << w.id;
    }
  }
  EXPECT_TRUE(testing::wait_until([&] {
    for (const auto& w : pool_->workers()) {
      if (w.generation != 2u) return false;
    }
    return true;
  }));
}

TEST_F(HttpServiceTest, AdminBreakerReset) {
  start();
  auto [status, body] = post("/v1/admin/breaker/reset", "");
  EXPECT_EQ(status, 200);
  EXPECT_EQ(body["state"], "closed");
}

// A client sending its headers one byte at a time holds one HTTP thread, never a worker: the
// pool keeps serving others meanwhile, and a client that then stalls is dropped after the read
// timeout.
TEST_F(HttpServiceTest, SlowClientHoldsNoWorkerAndIsDropped) {
  ServiceOptions options;
  options.read_timeout = milliseconds(300);
  start(options, testing::test_config(1));
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port_));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  std::string head = "POST /v1/execute HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n";
  for (std::size_t i = 0; i < head.size(); ++i) {
    ASSERT_EQ(::send(fd, &head[i], 1, MSG_NOSIGNAL), 1);
    if (i % 8 == 0) {
      // Between bytes: the one worker is free and serves another client.
      EXPECT_EQ(pool_->stats().busy, 0u);
      EXPECT_EQ(post("/v1/execute", R"({"command":"echo"})").first, 200);
    }
  }
  // Now silent: the server must close the connection after the read timeout (it may answer
  // 400 first); read until the end of the stream.
  bool closed = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!closed && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10'000) != 1) break;
    char buf[512];
    closed = ::recv(fd, buf, sizeof buf, 0) <= 0;
  }
  EXPECT_TRUE(closed);
  ::close(fd);
  EXPECT_EQ(post("/v1/execute", R"({"command":"echo"})").first, 200);
}

// Bodies are JSON whatever Content-Type says: curl -d sends application/x-www-form-urlencoded,
// which httplib's own reading would refuse past 8 KiB with a 413 far below max_body_bytes.
TEST_F(HttpServiceTest, ALargeBodySentAsAFormIsReadAsJson) {
  start();
  const std::string text(100'000, 'x');
  auto res = client().Post("/v1/execute", Json{{"command", "echo"}, {"args", {{"s", text}}}}.dump(),
                           "application/x-www-form-urlencoded");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200) << res->body.substr(0, 200);
  EXPECT_EQ(Json::parse(res->body)["result"]["s"], text);
}

// A multipart form is refused with 415 after being drained, so the kept-alive connection still
// serves the next request.
TEST_F(HttpServiceTest, AMultipartBodyIs415AndTheConnectionGoesOn) {
  start();
  httplib::Client c("127.0.0.1", port_);
  c.set_keep_alive(true);
  httplib::MultipartFormDataItems items = {{"command", "echo", "", ""}};
  auto refused = c.Post("/v1/execute", items);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 415);
  EXPECT_EQ(Json::parse(refused->body)["error"]["category"], "invalid_request");
  auto next = c.Post("/v1/execute", R"({"command":"echo","args":{"x":1}})", "application/json");
  ASSERT_TRUE(next);
  EXPECT_EQ(next->status, 200);
}

// Raw HTTP over one connection: sends `request`, returns the first response (headers and a
// Content-Length body), or what arrived before the server closed or 10 s passed.
std::string raw_exchange(int port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string reply;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size())) {
    char buf[4096];
    pollfd p{fd, POLLIN, 0};
    auto complete = [&] {
      auto end = reply.find("\r\n\r\n");
      if (end == std::string::npos) return false;
      auto at = reply.find("Content-Length: ");
      if (at == std::string::npos || at > end) return true;
      return reply.size() >= end + 4 + std::stoul(reply.substr(at + 16));
    };
    while (!complete() && ::poll(&p, 1, 10'000) == 1) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      reply.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  return reply;
}

// A body with neither Content-Length nor chunked framing would run to the end of the
// connection: 411 at once instead of waiting for the read timeout.
TEST_F(HttpServiceTest, APostWithoutContentLengthIs411) {
  start();
  const std::string reply = raw_exchange(
      port_,
      "POST /v1/execute HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n{\"command\":\"echo\"}");
  EXPECT_EQ(reply.rfind("HTTP/1.1 411", 0), 0u) << reply;
}

// A declared length over max_body_bytes is refused from the headers alone, before a byte of
// the body arrives (none is sent here); so is a length that is not a number (a sign, an
// overflow).
TEST_F(HttpServiceTest, AnOversizedOrInvalidContentLengthIsRefusedBeforeTheBody) {
  ServiceOptions options;
  options.max_body_bytes = 1000;
  start(options);
  std::string reply = raw_exchange(
      port_, "POST /v1/execute HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n");
  EXPECT_EQ(reply.rfind("HTTP/1.1 413", 0), 0u) << reply;
  EXPECT_NE(reply.find("max_body_bytes (1000)"), std::string::npos) << reply;
  for (const char* length : {"-5", "99999999999999999999", "12abc"}) {
    reply = raw_exchange(port_, std::string("POST /v1/execute HTTP/1.1\r\nHost: x\r\n") +
                                    "Content-Length: " + length + "\r\n\r\nx");
    EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0u) << length << ": " << reply;
  }
}

TEST_F(HttpServiceTest, AChunkedBodyIsRead) {
  start();
  const std::string body = R"({"command":"echo","args":{"x":7}})";
  char size[16];
  std::snprintf(size, sizeof size, "%zx", body.size());
  const std::string reply =
      raw_exchange(port_,
                   "POST /v1/execute HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n" +
                       std::string(size) + "\r\n" + body + "\r\n0\r\n\r\n");
  EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << reply;
  EXPECT_NE(reply.find(R"("x":7)"), std::string::npos) << reply;
}

TEST_F(HttpServiceTest, StopDrainsARequestInFlight) {
  start();
  std::pair<int, Json> reply;
  std::thread caller(
      [&] { reply = post("/v1/execute", R"({"command":"sleep","args":{"ms":500}})"); });
  ASSERT_TRUE(testing::wait_until([&] { return pool_->stats().busy == 1; }));
  service_->stop();
  serving_.join();  // returns once the request in flight has completed
  caller.join();
  EXPECT_EQ(reply.first, 200);
  EXPECT_EQ(reply.second["result"]["slept_ms"], 500);
}

}  // namespace
}  // namespace bridgepool::server
