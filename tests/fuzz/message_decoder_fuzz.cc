// Fuzz target for the message codec. decode_worker_message() gets arbitrary bytes and must return
// a message or a communication error — never throw, crash or quote more than a short excerpt.
// The same bytes, used as a command name and session id, must encode into a request that parses
// back to the same strings (invalid UTF-8 aside, which is replaced). Read as an attachment frame
// (protocol 2), they must decode or fail the same way; and whatever the simdjson fast path
// (json_reader.h) accepts must read exactly as nlohmann's parser reads it.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "wire/json_reader.h"
#include "wire/message_codec.h"

namespace {

using bridgepool::wire::Json;

void check(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "message_decoder_fuzz: invariant broken: %s\n", what);
    std::abort();
  }
}

void check_decode(std::string_view payload, bool attachments) {
  auto decoded = bridgepool::wire::decode_worker_frame(payload, attachments);
  if (!decoded) {
    check(decoded.error().category == bridgepool::ErrorCategory::kCommunication, "category");
    // Fixed text + the longest reason + a 120-character excerpt stays well under this.
    check(decoded.error().message.size() < 400, "error message too long");
    return;
  }
  using Kind = bridgepool::wire::WorkerMessage::Kind;
  const auto& message = *decoded;
  if (message.kind == Kind::kInitFailed || (message.kind == Kind::kReply && !message.ok)) {
    check(message.error.has_value(), "error reply without error details");
  }
}

void check_fast_parse(std::string_view text) {
  auto fast = bridgepool::wire::parse_json_fast(text, 1023);
  if (!fast) return;
  const Json reference = Json::parse(text, nullptr, false);
  check(!reference.is_discarded(), "the fast path accepted what nlohmann refuses");
  check(*fast == reference && fast->dump() == reference.dump(), "the fast path read differently");
}

bool is_valid_utf8(const std::string& text) {
  try {
    (void)Json(text).dump();
    return true;
  } catch (const Json::type_error&) {
    return false;
  }
}

void check_encode(std::string_view bytes) {
  const std::size_t half = bytes.size() / 2;
  bridgepool::wire::Request request;
  request.id = bytes.size();
  request.command = std::string(bytes.substr(0, half));
  if (half % 2 == 0) request.session_id = std::string(bytes.substr(half));
  if (half % 3 == 0) request.deadline_ms = -static_cast<std::int64_t>(half);

  const Json parsed = Json::parse(bridgepool::wire::encode_request(request), nullptr, false);
  check(!parsed.is_discarded(), "encoded request is not valid JSON");
  check(parsed.at("id").get<std::uint64_t>() == request.id, "id");
  if (is_valid_utf8(request.command)) {
    check(parsed.at("command").get<std::string>() == request.command, "command");
  }
  if (request.session_id && is_valid_utf8(*request.session_id)) {
    check(parsed.at("session_id").get<std::string>() == *request.session_id, "session_id");
  }
  check(parsed.at("session_id").is_null() == !request.session_id, "session_id null");
  check(parsed.at("deadline_ms").is_null() == !request.deadline_ms, "deadline_ms null");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  check_decode(bytes, false);
  check_decode(bytes, true);
  check_fast_parse(bytes);
  check_encode(bytes);
  return 0;
}
