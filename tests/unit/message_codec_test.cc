// Message codec: requests encode to the exact JSON of SPEC §2; every worker message shape decodes,
// and every malformed one is a communication error (never an exception).
#include "wire/message_codec.h"

#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace bridgepool::wire {
namespace {

// --- requests --------------------------------------------------------------------------------

TEST(RequestEncodingTest, MinimalRequestHasNullSessionAndDeadline) {
  Request request;
  request.id = 7;
  request.command = "ping";
  EXPECT_EQ(encode_request(request),
            R"({"id":7,"command":"ping","args":{},"session_id":null,"deadline_ms":null})");
  const Json parsed = Json::parse(encode_request(request));
  EXPECT_TRUE(parsed["session_id"].is_null());
  EXPECT_TRUE(parsed["deadline_ms"].is_null());
  EXPECT_TRUE(parsed["args"].is_object());
}

TEST(RequestEncodingTest, FullRequestRoundTripsThroughParse) {
  Request request;
  request.id = 18446744073709551615ull;  // the whole u64 range survives
  request.command = "execute_program";
  request.args = {{"program_id", "p1"}, {"inputs", {{"question", "2+2?"}}}, {"n", 3}};
  request.session_id = "session-42";
  request.deadline_ms = 1767225600123;
  const Json parsed = Json::parse(encode_request(request));
  EXPECT_EQ(parsed["id"].get<std::uint64_t>(), 18446744073709551615ull);
  EXPECT_EQ(parsed["command"], "execute_program");
  EXPECT_EQ(parsed["args"], request.args);
  EXPECT_EQ(parsed["session_id"], "session-42");
  EXPECT_EQ(parsed["deadline_ms"].get<std::int64_t>(), 1767225600123);
  EXPECT_EQ(parsed.size(), 5u);
}

TEST(RequestEncodingTest, UnicodeQuotesAndControlCharactersAreEscaped) {
  Request request;
  request.id = 1;
  request.command = "say \"hi\"\\ \n\t caf\xc3\xa9 \xe2\x9c\x93";
  request.session_id = "s\"\x01\xf0\x9f\x98\x80";
  const std::string text = encode_request(request);
  const Json parsed = Json::parse(text);
  EXPECT_EQ(parsed["command"].get<std::string>(), request.command);
  EXPECT_EQ(parsed["session_id"].get<std::string>(), *request.session_id);
  EXPECT_EQ(text.find('\n'), std::string::npos);  // control characters never appear raw
}

TEST(RequestEncodingTest, InvalidUtf8IsReplacedNotThrown) {
  Request request;
  request.command = "bad\xff";
  request.args = {{"k", "v\xfe"}};
  std::string text;
  ASSERT_NO_THROW(text = encode_request(request));
  const Json parsed = Json::parse(text);
  EXPECT_EQ(parsed["command"].get<std::string>(), "bad\xef\xbf\xbd");  // U+FFFD
  EXPECT_EQ(parsed["args"]["k"].get<std::string>(), "v\xef\xbf\xbd");
}

TEST(RequestEncodingTest, AppendKeepsExistingBytesAndNullArgsBecomeEmptyObject) {
  Request request;
  request.id = 3;
  request.command = "c";
  request.args = Json();  // null
  request.deadline_ms = -5;
  std::string out = "HEAD";
  append_request_json(out, request);
  EXPECT_EQ(out, R"(HEAD{"id":3,"command":"c","args":{},"session_id":null,"deadline_ms":-5})");
}

// A request prepared before its worker and send time are known: head + middle + tail is the very
// text encode_request gives once the id and deadline are set (Worker::send writes the pieces).
TEST(BatchCodecTest, ABatchRequestCarriesEachItemsTextInOrder) {
  std::string a, b;
  append_args_json(a, Json{{"x", 1}});
  append_args_json(b, Json());  // no arguments: {}
  const std::string_view items[] = {a, b};
  const PreparedRequest p = prepare_batch_request("echo", items);
  const Json whole = Json::parse(request_head(7) + p.middle + request_tail(250));
  EXPECT_EQ(whole, Json::parse(R"({"id":7,"command":"echo","batch":[{"x":1},{}],)"
                               R"("session_id":null,"deadline_ms":250})"));
  EXPECT_EQ(p.command, "echo");
  EXPECT_LE(p.middle.size() - a.size() - b.size() - 2 + 40,  // + id and deadline digits
            batch_request_overhead("echo"));
}

TEST(BatchCodecTest, APartIsDecodedWithItsErrorsByIndex) {
  auto part = decode_batch_part(
      Json::parse(R"({"from":2,"results":[{"v":2},null,3],"errors":[[3,{"type":"ValueError",)"
                  R"("message":"bad","traceback":"tb","retryable":false}]]})"),
      5);
  ASSERT_TRUE(part) << part.error().to_string();
  EXPECT_EQ(part->from, 2u);
  ASSERT_EQ(part->results.size(), 3u);
  EXPECT_EQ(part->results[0], Json({{"v", 2}}));
  ASSERT_EQ(part->errors.size(), 1u);
  EXPECT_EQ(part->errors[0].index, 3u);
  EXPECT_EQ(part->errors[0].error.type, "ValueError");
  EXPECT_EQ(part->errors[0].error.retryable, false);
}

TEST(BatchCodecTest, MalformedPartsAreCommunicationErrors) {
  const char* cases[] = {
      R"([1,2])",                                   // not an object
      R"({"results":[],"errors":[]})",              // no from
      R"({"from":-1,"results":[],"errors":[]})",    // negative from
      R"({"from":0,"results":{},"errors":[]})",     // results not an array
      R"({"from":0,"results":[1],"errors":{}})",    // errors not an array
      R"({"from":4,"results":[1,2],"errors":[]})",  // past the batch of 5
      R"({"from":6,"results":[],"errors":[]})",     // from past the batch
      R"({"from":0,"results":[1],"errors":[[1,{"type":"E","message":"m"}]]})",  // outside
      R"({"from":0,"results":[1],"errors":[[0]]})",  // not [index, error]
      R"({"from":0,"results":[1],"errors":[["0",{"type":"E","message":"m"}]]})",
      R"({"from":0,"results":[1],"errors":[[0,{"type":"E"}]]})",  // error without message
      R"({"from":0,"results":[1],"errors":[[0,"oops"]]})",        // error not an object
  };
  for (const char* text : cases) {
    auto part = decode_batch_part(Json::parse(text), 5);
    ASSERT_FALSE(part) << text;
    EXPECT_EQ(part.error().category, ErrorCategory::kCommunication) << text;
    EXPECT_NE(part.error().message.find("malformed batch reply"), std::string::npos) << text;
  }
}

TEST(PreparedRequestTest, PiecesMakeTheSameTextAsEncodeRequest) {
  std::vector<Request> cases(4);
  cases[0].command = "ping";
  cases[1].command = "execute_program";
  cases[1].args = {{"inputs", {{"q", "caf\xc3\xa9 \"x\""}}}, {"n", 3}};
  cases[1].session_id = "session-\x01-42";
  cases[2].command = "bad\xff";
  cases[2].args = Json();  // null: no arguments
  cases[3].command = "c";
  cases[3].args = {{"deep", {{"a", {1, 2, {{"b", nullptr}}}}}}};
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const PreparedRequest prepared = prepare_request(cases[i]);
    EXPECT_EQ(prepared.command, cases[i].command);
    EXPECT_EQ(prepared.session_id, cases[i].session_id);
    for (std::optional<std::int64_t> deadline :
         {std::optional<std::int64_t>(), std::optional<std::int64_t>(0),
          std::optional<std::int64_t>(-5), std::optional<std::int64_t>(1767225600123)}) {
      for (std::uint64_t id : {std::uint64_t{1}, std::uint64_t{18446744073709551615ull}}) {
        Request r = cases[i];
        r.id = id;
        r.deadline_ms = deadline;
        const std::string pieces = request_head(id) + prepared.middle + request_tail(deadline);
        EXPECT_EQ(pieces, encode_request(r)) << "case " << i;
      }
    }
  }
}

// --- replies ---------------------------------------------------------------------------------

WorkerMessage decode_ok(std::string_view text) {
  auto decoded = decode_worker_message(text);
  EXPECT_TRUE(decoded.has_value()) << decoded.error().to_string();
  return decoded.has_value() ? std::move(*decoded) : WorkerMessage{};
}

TEST(DecodeWorkerMessageTest, OkReply) {
  WorkerMessage message = decode_ok(R"({"id": 12, "ok": true, "result": {"echo": [1, 2]}})");
  EXPECT_EQ(message.kind, WorkerMessage::Kind::kReply);
  EXPECT_EQ(message.id, 12u);
  EXPECT_TRUE(message.ok);
  EXPECT_EQ(message.result, Json({{"echo", {1, 2}}}));
  EXPECT_FALSE(message.error.has_value());
}

TEST(DecodeWorkerMessageTest, OkReplyWithNullOrAbsentResult) {
  WorkerMessage with_null = decode_ok(R"({"id": 1, "ok": true, "result": null})");
  EXPECT_TRUE(with_null.ok);
  EXPECT_TRUE(with_null.result.is_null());
  WorkerMessage absent = decode_ok(R"({"id": 2, "ok": true})");
  EXPECT_TRUE(absent.ok);
  EXPECT_TRUE(absent.result.is_null());
  WorkerMessage scalar = decode_ok(R"({"id": 3, "ok": true, "result": 2.5})");
  EXPECT_EQ(scalar.result, Json(2.5));
}

TEST(DecodeWorkerMessageTest, LargestIdDecodes) {
  WorkerMessage message = decode_ok(R"({"id": 18446744073709551615, "ok": true})");
  EXPECT_EQ(message.id, 18446744073709551615ull);
}

TEST(DecodeWorkerMessageTest, ErrorReplyWithTracebackAndRetryable) {
  WorkerMessage message = decode_ok(
      R"({"id": 5, "ok": false, "error": {"type": "ValueError", "message": "bad input",
          "traceback": "Traceback...\nValueError: bad input", "retryable": true}})");
  EXPECT_EQ(message.kind, WorkerMessage::Kind::kReply);
  EXPECT_EQ(message.id, 5u);
  EXPECT_FALSE(message.ok);
  ASSERT_TRUE(message.error.has_value());
  EXPECT_EQ(message.error->type, "ValueError");
  EXPECT_EQ(message.error->message, "bad input");
  EXPECT_EQ(message.error->traceback, "Traceback...\nValueError: bad input");
  EXPECT_EQ(message.error->retryable, std::optional<bool>(true));
}

TEST(DecodeWorkerMessageTest, ErrorReplyWithNullTracebackAndRetryable) {
  WorkerMessage message = decode_ok(
      R"({"id": 6, "ok": false, "error": {"type": "KeyError", "message": "'x'",
          "traceback": null, "retryable": null}})");
  ASSERT_TRUE(message.error.has_value());
  EXPECT_EQ(message.error->type, "KeyError");
  EXPECT_EQ(message.error->traceback, "");
  EXPECT_FALSE(message.error->retryable.has_value());
}

TEST(DecodeWorkerMessageTest, ErrorReplyWithoutTracebackOrRetryable) {
  WorkerMessage message =
      decode_ok(R"({"id": 7, "ok": false, "error": {"type": "E", "message": "m"}})");
  ASSERT_TRUE(message.error.has_value());
  EXPECT_EQ(message.error->traceback, "");
  EXPECT_FALSE(message.error->retryable.has_value());
  WorkerMessage not_retryable = decode_ok(
      R"({"id": 8, "ok": false, "error": {"type": "E", "message": "m", "retryable": false}})");
  EXPECT_EQ(not_retryable.error->retryable, std::optional<bool>(false));
}

TEST(DecodeWorkerMessageTest, Chunk) {
  WorkerMessage message = decode_ok(R"({"id": 9, "chunk": {"progress": 0.5}})");
  EXPECT_EQ(message.kind, WorkerMessage::Kind::kChunk);
  EXPECT_EQ(message.id, 9u);
  EXPECT_EQ(message.chunk, Json({{"progress", 0.5}}));
  WorkerMessage null_chunk = decode_ok(R"({"id": 9, "chunk": null})");
  EXPECT_EQ(null_chunk.kind, WorkerMessage::Kind::kChunk);
  EXPECT_TRUE(null_chunk.chunk.is_null());
}

TEST(DecodeWorkerMessageTest, OkTakesPrecedenceOverChunk) {
  WorkerMessage message = decode_ok(R"({"id": 9, "chunk": 1, "ok": true, "result": 2})");
  EXPECT_EQ(message.kind, WorkerMessage::Kind::kReply);
  EXPECT_EQ(message.result, Json(2));
}

TEST(DecodeWorkerMessageTest, ReadyHandshakeWithStringAndObjectCommands) {
  WorkerMessage message = decode_ok(
      R"({"id": 0, "event": "ready", "protocol": 2, "pid": 4242, "worker_id": "w7",
          "commands": ["ping", {"name": "echo", "idempotent": true}, {"name": "create_program"}],
          "version": "0.1.0", "python": {"version": "3.11"}})");
  EXPECT_EQ(message.kind, WorkerMessage::Kind::kReady);
  EXPECT_EQ(message.id, 0u);
  const Handshake& handshake = message.handshake;
  EXPECT_EQ(handshake.protocol, kProtocolVersion);
  EXPECT_EQ(handshake.pid, 4242);
  EXPECT_EQ(handshake.worker_id, "w7");
  ASSERT_EQ(handshake.commands.size(), 3u);
  EXPECT_EQ(handshake.commands[0].name, "ping");
  EXPECT_FALSE(handshake.commands[0].idempotent);
  EXPECT_EQ(handshake.commands[1].name, "echo");
  EXPECT_TRUE(handshake.commands[1].idempotent);
  EXPECT_EQ(handshake.commands[2].name, "create_program");
  EXPECT_FALSE(handshake.commands[2].idempotent);
  EXPECT_EQ(handshake.extra, Json({{"version", "0.1.0"}, {"python", {{"version", "3.11"}}}}));
}

TEST(DecodeWorkerMessageTest, ReadyHandshakeWithNoCommandsAndNoExtra) {
  WorkerMessage message = decode_ok(
      R"({"id": 0, "event": "ready", "protocol": 2, "pid": 1, "worker_id": "w", "commands": []})");
  EXPECT_EQ(message.handshake.protocol, 2);
  EXPECT_TRUE(message.handshake.commands.empty());
  EXPECT_EQ(message.handshake.extra, Json::object());
}

TEST(DecodeWorkerMessageTest, InitFailed) {
  WorkerMessage message = decode_ok(
      R"({"id": 0, "event": "init_failed", "error": {"type": "ModuleNotFoundError",
          "message": "No module named 'handlers'", "traceback": "Traceback ..."}})");
  EXPECT_EQ(message.kind, WorkerMessage::Kind::kInitFailed);
  ASSERT_TRUE(message.error.has_value());
  EXPECT_EQ(message.error->type, "ModuleNotFoundError");
  EXPECT_EQ(message.error->message, "No module named 'handlers'");
  EXPECT_EQ(message.error->traceback, "Traceback ...");
}

// --- malformed -------------------------------------------------------------------------------

struct MalformedCase {
  const char* name;
  std::string payload;
  const char* expected_fragment;  // must appear in the error message
};

class MalformedMessageTest : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(MalformedMessageTest, IsCommunicationErrorWithExcerpt) {
  const MalformedCase& c = GetParam();
  Result<WorkerMessage> decoded = Result<WorkerMessage>(WorkerMessage{});
  ASSERT_NO_THROW(decoded = decode_worker_message(c.payload));
  ASSERT_FALSE(decoded.has_value());
  const Error& error = decoded.error();
  EXPECT_EQ(error.category, ErrorCategory::kCommunication);
  EXPECT_NE(error.message.find(c.expected_fragment), std::string::npos) << error.message;
  const std::size_t excerpt_at = error.message.find("(payload: ");
  ASSERT_NE(excerpt_at, std::string::npos) << error.message;
  // "(payload: " is 10 characters, the closing ')' one more: the excerpt itself is <= 120.
  EXPECT_LE(error.message.size() - excerpt_at - 11, 120u) << error.message;
}

const std::string kLong = R"({"id": 1, "ok": "yes", "padding": ")" + std::string(500, 'x') + "\"}";

INSTANTIATE_TEST_SUITE_P(
    AllShapes, MalformedMessageTest,
    ::testing::Values(
        MalformedCase{"InvalidJson", "not json at all", "invalid JSON"},
        MalformedCase{"TruncatedJson", R"({"id": 1, "ok": tr)", "invalid JSON"},
        MalformedCase{"TrailingGarbage", R"({"id": 1, "ok": true} extra)", "invalid JSON"},
        MalformedCase{"Empty", "", "invalid JSON"},
        MalformedCase{"BinaryJunk", std::string("\x00\xff\xfe{", 4), "invalid JSON"},
        MalformedCase{"JsonArray", R"([{"id": 1, "ok": true}])",
                      "expected a JSON object, got array"},
        MalformedCase{"JsonString", R"("hello")", "expected a JSON object, got string"},
        MalformedCase{"MissingId", R"({"ok": true, "result": 1})", "missing \"id\""},
        MalformedCase{"NegativeId", R"({"id": -1, "ok": true})", "\"id\" must be a non-negative"},
        MalformedCase{"StringId", R"({"id": "1", "ok": true})", "\"id\" must be a non-negative"},
        MalformedCase{"FloatId", R"({"id": 1.0, "ok": true})", "\"id\" must be a non-negative"},
        MalformedCase{"NullId", R"({"id": null, "ok": true})", "\"id\" must be a non-negative"},
        MalformedCase{"OkNotBool", R"({"id": 1, "ok": 1})", "\"ok\" must be a bool"},
        MalformedCase{"OkString", kLong, "\"ok\" must be a bool"},
        MalformedCase{"ErrorMissing", R"({"id": 1, "ok": false})", "\"error\" must be an object"},
        MalformedCase{"ErrorNotObject", R"({"id": 1, "ok": false, "error": "boom"})",
                      "\"error\" must be an object"},
        MalformedCase{"ErrorMissingType", R"({"id": 1, "ok": false, "error": {"message": "m"}})",
                      "string \"type\""},
        MalformedCase{"ErrorTypeNotString",
                      R"({"id": 1, "ok": false, "error": {"type": 3, "message": "m"}})",
                      "string \"type\""},
        MalformedCase{"ErrorMissingMessage", R"({"id": 1, "ok": false, "error": {"type": "E"}})",
                      "string \"message\""},
        MalformedCase{"TracebackNotString",
                      R"({"id": 1, "ok": false, "error": {"type": "E", "message": "m",
                          "traceback": 1}})",
                      "\"error.traceback\" must be a string or null"},
        MalformedCase{"RetryableNotBool",
                      R"({"id": 1, "ok": false, "error": {"type": "E", "message": "m",
                          "retryable": "yes"}})",
                      "\"error.retryable\" must be a bool or null"},
        MalformedCase{"UnknownEvent", R"({"id": 0, "event": "exploded"})",
                      "unknown event \"exploded\""},
        MalformedCase{"EventNotString", R"({"id": 0, "event": 1})", "\"event\" must be a string"},
        MalformedCase{"NoKind", R"({"id": 4, "result": 1})",
                      "none of \"ok\", \"chunk\", \"event\""},
        MalformedCase{"ReadyMissingProtocol",
                      R"({"id": 0, "event": "ready", "pid": 1, "worker_id": "w", "commands": []})",
                      "integer \"protocol\""},
        MalformedCase{"ReadyPidString",
                      R"({"id": 0, "event": "ready", "protocol": 1, "pid": "1", "worker_id": "w",
                          "commands": []})",
                      "integer \"pid\""},
        MalformedCase{"ReadyMissingWorkerId",
                      R"({"id": 0, "event": "ready", "protocol": 1, "pid": 1, "commands": []})",
                      "string \"worker_id\""},
        MalformedCase{"ReadyCommandsNotArray",
                      R"({"id": 0, "event": "ready", "protocol": 1, "pid": 1, "worker_id": "w",
                          "commands": "ping"})",
                      "\"commands\" array"},
        MalformedCase{"ReadyCommandNumber",
                      R"({"id": 0, "event": "ready", "protocol": 1, "pid": 1, "worker_id": "w",
                          "commands": [1]})",
                      "strings or objects"},
        MalformedCase{"ReadyCommandObjectWithoutName",
                      R"({"id": 0, "event": "ready", "protocol": 1, "pid": 1, "worker_id": "w",
                          "commands": [{"idempotent": true}]})",
                      "string \"name\""},
        MalformedCase{"ReadyIdempotentNotBool",
                      R"({"id": 0, "event": "ready", "protocol": 1, "pid": 1, "worker_id": "w",
                          "commands": [{"name": "a", "idempotent": 1}]})",
                      "\"idempotent\" must be a bool"},
        MalformedCase{"ReadyProtocolHuge",
                      R"({"id": 0, "event": "ready", "protocol": 99999999999, "pid": 1,
                          "worker_id": "w", "commands": []})",
                      "out of range"},
        MalformedCase{"InitFailedWithoutError", R"({"id": 0, "event": "init_failed"})",
                      "\"error\" must be an object"},
        MalformedCase{"DeeplyNested",
                      R"({"id": 1, "ok": true, "result": )" + std::string(100000, '['),
                      "nested deeper than 1024 levels"}),
    [](const ::testing::TestParamInfo<MalformedCase>& info) { return info.param.name; });

TEST(DecodeWorkerMessageTest, NestingAtTheLimitIsAccepted) {
  // 1023 arrays inside the top-level object: 1024 levels in all — more than Python's json can
  // write with its default recursion limit, so a worker never produces a reply we refuse.
  const std::string text =
      R"({"id": 1, "ok": true, "result": )" + std::string(1023, '[') + std::string(1023, ']') + "}";
  WorkerMessage message = decode_ok(text);
  EXPECT_TRUE(message.result.is_array());
}

TEST(DecodeWorkerMessageTest, ExcerptEscapesBinaryBytes) {
  auto decoded = decode_worker_message(std::string("\x01\x02zz", 4));
  ASSERT_FALSE(decoded.has_value());
  EXPECT_NE(decoded.error().message.find("(payload: \\x01\\x02zz)"), std::string::npos)
      << decoded.error().message;
}

TEST(DecodeWorkerMessageTest, LongPayloadExcerptIsTruncatedWithEllipsis) {
  auto decoded = decode_worker_message(kLong);
  ASSERT_FALSE(decoded.has_value());
  const std::string& message = decoded.error().message;
  const std::string expected_start = R"((payload: {"id": 1, "ok": "yes", "padding": "xxx)";
  EXPECT_NE(message.find(expected_start), std::string::npos) << message;
  EXPECT_EQ(message.substr(message.size() - 4), "...)") << message;
}

}  // namespace
}  // namespace bridgepool::wire
