// The pure parts of the HTTP API: request bodies, error -> status mapping, routes and methods,
// bearer tokens, stream framing, the status document, the metrics stand-in, listen addresses.
#include <gtest/gtest.h>

#include "server/api_error.h"
#include "server/api_request.h"
#include "server/bearer_auth.h"
#include "server/listen_address.h"
#include "server/routes.h"
#include "server/status_document.h"
#include "server/stream_format.h"

namespace bridgepool::server {
namespace {

using Json = nlohmann::json;

ErrorCategory category_of(std::string_view body) {
  auto r = parse_execute_request(body);
  EXPECT_FALSE(r.has_value()) << body;
  return r ? ErrorCategory::kSystem : r.error().category;
}

std::string message_of(std::string_view body) {
  auto r = parse_execute_request(body);
  return r ? std::string() : r.error().message;
}

TEST(ApiRequest, FullExecuteBody) {
  auto r =
      parse_execute_request(R"({"command":"echo","args":{"x":1},"session_id":"s1","timeout_ms":50,)"
                            R"("idempotent":false,"stream":true})");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->command, "echo");
  EXPECT_EQ(r->args, Json({{"x", 1}}));
  EXPECT_EQ(r->session_id, "s1");
  EXPECT_EQ(r->timeout, std::chrono::milliseconds(50));
  EXPECT_EQ(r->idempotent, false);
  EXPECT_TRUE(r->stream);
}

TEST(ApiRequest, MinimalBodyHasDefaults) {
  auto r = parse_execute_request(R"({"command":"ping"})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->args, Json::object());
  EXPECT_FALSE(r->session_id);
  EXPECT_FALSE(r->timeout);
  EXPECT_FALSE(r->idempotent);
  EXPECT_FALSE(r->stream);
}

TEST(ApiRequest, MalformedJsonIsInvalidRequest) {
  EXPECT_EQ(category_of(R"({"command":)"), ErrorCategory::kInvalidRequest);
  EXPECT_NE(message_of("{").find("not valid JSON"), std::string::npos);
}

TEST(ApiRequest, InvalidUtf8IsInvalidRequest) {
  EXPECT_EQ(category_of("{\"command\":\"e\xff\"}"), ErrorCategory::kInvalidRequest);
}

TEST(ApiRequest, NanLiteralIsInvalidRequest) {
  EXPECT_EQ(category_of(R"({"command":"echo","args":{"x":NaN}})"), ErrorCategory::kInvalidRequest);
}

TEST(ApiRequest, DeepNestingStopsTheParser) {
  std::string deep = R"({"command":"echo","args":)" + std::string(100000, '[');
  EXPECT_NE(message_of(deep).find("nested more than"), std::string::npos);
}

TEST(ApiRequest, WrongTypesAreNamed) {
  EXPECT_EQ(message_of(R"([1])"), "the body must be a JSON object, got array");
  EXPECT_EQ(message_of(R"({"command":1})"), "'command' must be a string, got number");
  EXPECT_EQ(message_of(R"({"command":"e","args":[1]})"), "'args' must be an object, got array");
  EXPECT_EQ(message_of(R"({"command":"e","session_id":3})"),
            "'session_id' must be a string, got number");
  EXPECT_EQ(message_of(R"({"command":"e","stream":"yes"})"),
            "'stream' must be a boolean, got string");
  EXPECT_NE(message_of(R"({"command":"e","timeout_ms":0})").find("'timeout_ms'"),
            std::string::npos);
  EXPECT_NE(message_of(R"({"command":"e","timeout_ms":-5})").find("'timeout_ms'"),
            std::string::npos);
}

TEST(ApiRequest, MissingCommandAndUnknownFieldsAreRefused) {
  EXPECT_EQ(message_of(R"({"args":{}})"), "missing field 'command'");
  EXPECT_EQ(message_of(R"({"command":"e","sesion_id":"s"})"), "unknown field 'sesion_id'");
}

TEST(ApiRequest, BroadcastBody) {
  auto r = parse_broadcast_request(R"({"command":"configure","args":{"a":1},"timeout_ms":9})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->command, "configure");
  EXPECT_EQ(r->timeout, std::chrono::milliseconds(9));
  EXPECT_FALSE(parse_broadcast_request(R"({"command":"c","session_id":"s"})"));
}

TEST(ApiError, EveryCategoryHasItsStatus) {
  EXPECT_EQ(http_status_for(ErrorCategory::kInvalidRequest), 400);
  EXPECT_EQ(http_status_for(ErrorCategory::kSession), 404);
  EXPECT_EQ(http_status_for(ErrorCategory::kPython), 422);
  EXPECT_EQ(http_status_for(ErrorCategory::kTimeout), 504);
  EXPECT_EQ(http_status_for(ErrorCategory::kResource), 503);
  EXPECT_EQ(http_status_for(ErrorCategory::kCircuitOpen), 503);
  EXPECT_EQ(http_status_for(ErrorCategory::kInitialization), 502);
  EXPECT_EQ(http_status_for(ErrorCategory::kConnection), 502);
  EXPECT_EQ(http_status_for(ErrorCategory::kCommunication), 502);
  EXPECT_EQ(http_status_for(ErrorCategory::kHealthCheck), 502);
  EXPECT_EQ(http_status_for(ErrorCategory::kSystem), 500);
}

TEST(ApiError, BodyCarriesPythonDetailsAndWorker) {
  Error e(ErrorCategory::kPython, "ValueError: bad");
  e.python = PythonError{"ValueError", "Traceback ...", std::nullopt};
  e.context.worker_id = "w2";
  e.severity = ErrorSeverity::kMinor;
  Json b = error_body(e);
  EXPECT_EQ(b["ok"], false);
  EXPECT_EQ(b["error"], Json({{"category", "python"},
                              {"severity", "minor"},
                              {"message", "ValueError: bad"},
                              {"type", "ValueError"},
                              {"traceback", "Traceback ..."},
                              {"worker", "w2"}}));
}

TEST(ApiError, BodyLeavesOutWhatIsUnknown) {
  Json b = error_body(Error(ErrorCategory::kTimeout, "late"));
  EXPECT_FALSE(b["error"].contains("type"));
  EXPECT_FALSE(b["error"].contains("worker"));
}

TEST(Routes, KnownPathsAndMethods) {
  auto status = match_route("GET", "/v1/status");
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->method_allowed);
  EXPECT_FALSE(status->needs_token);
  auto head = match_route("HEAD", "/healthz");
  ASSERT_TRUE(head);
  EXPECT_TRUE(head->method_allowed);
  auto wrong = match_route("GET", "/v1/execute");
  ASSERT_TRUE(wrong);
  EXPECT_FALSE(wrong->method_allowed);
  EXPECT_EQ(wrong->allow, "POST");
  EXPECT_TRUE(match_route("POST", "/v1/admin/rolling-restart")->needs_token);
}

TEST(Routes, SessionPathTakesOneSegment) {
  EXPECT_TRUE(match_route("DELETE", "/v1/sessions/abc")->method_allowed);
  EXPECT_FALSE(match_route("DELETE", "/v1/sessions/"));
  EXPECT_FALSE(match_route("DELETE", "/v1/sessions/a/b"));
  EXPECT_FALSE(match_route("GET", "/nope"));
}

TEST(BearerAuth, TokenChecks) {
  EXPECT_TRUE(authorized("", ""));
  EXPECT_TRUE(authorized("Bearer s3cret", "s3cret"));
  EXPECT_TRUE(authorized("bearer s3cret", "s3cret"));
  EXPECT_FALSE(authorized("", "s3cret"));
  EXPECT_FALSE(authorized("Bearer s3cre", "s3cret"));
  EXPECT_FALSE(authorized("Bearer s3cretX", "s3cret"));
  EXPECT_FALSE(authorized("Basic s3cret", "s3cret"));
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("", "a"));
  EXPECT_FALSE(constant_time_equal("a", ""));
}

TEST(StreamFormat, ModeFromBodyAndAccept) {
  EXPECT_EQ(stream_mode(false, ""), StreamMode::kNone);
  EXPECT_EQ(stream_mode(true, ""), StreamMode::kNdjson);
  EXPECT_EQ(stream_mode(false, "application/x-ndjson"), StreamMode::kNdjson);
  EXPECT_EQ(stream_mode(true, "text/event-stream"), StreamMode::kSse);
  EXPECT_EQ(content_type(StreamMode::kSse), "text/event-stream");
}

TEST(StreamFormat, Frames) {
  EXPECT_EQ(chunk_frame(StreamMode::kNdjson, Json{{"i", 0}}), "{\"chunk\":{\"i\":0}}\n");
  EXPECT_EQ(chunk_frame(StreamMode::kSse, Json{{"i", 0}}), "event: chunk\ndata: {\"i\":0}\n\n");
  EXPECT_EQ(final_frame(StreamMode::kSse, Json{{"ok", false}}),
            "event: error\ndata: {\"ok\":false}\n\n");
  EXPECT_EQ(final_frame(StreamMode::kNdjson, Json{{"ok", true}}), "{\"ok\":true}\n");
  // A newline inside a value stays escaped: one frame, one line of data.
  EXPECT_EQ(chunk_frame(StreamMode::kSse, Json("a\nb")), "event: chunk\ndata: \"a\\nb\"\n\n");
}

TEST(StatusDocument, FollowsTheContract) {
  StatusInputs in;
  in.version = "0.1.0";
  in.listen = "127.0.0.1:1";
  in.kind = "pool";
  in.stats.name = "default";
  in.stats.idle = 1;
  in.stats.busy = 1;
  in.stats.requests = 7;
  in.stats.errors["python"] = 2;
  WorkerInfo w;
  w.id = "w1";
  w.pid = 42;
  w.state = WorkerState::kBusy;
  w.health = WorkerHealth::kHealthy;
  w.rss_bytes = 1024;
  in.workers = {w};
  Json s = status_document(in);
  EXPECT_EQ(s["pool"]["ready"], true);
  EXPECT_EQ(s["pool"]["requests"], 7);
  EXPECT_EQ(s["pool"]["quarantine_refused"], 0);
  EXPECT_EQ(s["pool"]["errors"]["python"], 2);
  EXPECT_EQ(s["workers"][0]["state"], "busy");
  EXPECT_EQ(s["workers"][0]["health"], "healthy");
  EXPECT_EQ(s["workers"][0]["rss_bytes"], 1024);
  EXPECT_EQ(s["workers"][0]["spare"], false);
  EXPECT_EQ(s["breaker"]["state"], "disabled");
  EXPECT_EQ(s["sessions"]["live"], 0);
  EXPECT_TRUE(s["alerts"].is_array());
  for (const char* key : {"server", "pool", "workers", "breaker", "sessions", "alerts", "series"}) {
    EXPECT_TRUE(s.contains(key)) << key;
  }
}

TEST(StatusDocument, ReadinessCountsIdleAndBusy) {
  PoolStats stats;
  stats.idle = 1;
  stats.degraded = 3;
  EXPECT_TRUE(is_ready(stats, 1));
  EXPECT_FALSE(is_ready(stats, 2));
  EXPECT_FALSE(is_ready(PoolStats{}, 0));  // at least one worker, whatever min_ready says
}

TEST(ListenAddress, ParsesAndClassifies) {
  auto a = parse_listen_address("127.0.0.1:8765");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->port, 8765);
  EXPECT_TRUE(a->is_loopback());
  auto v6 = parse_listen_address("[::1]:0");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_TRUE(v6->is_loopback());
  EXPECT_EQ(v6->to_string(), "[::1]:0");
  EXPECT_FALSE(parse_listen_address("0.0.0.0:1")->is_loopback());
  EXPECT_FALSE(parse_listen_address("::1:80"));
  EXPECT_FALSE(parse_listen_address(":80"));
  EXPECT_FALSE(parse_listen_address("host:"));
  EXPECT_FALSE(parse_listen_address("host:65536"));
}

}  // namespace
}  // namespace bridgepool::server
