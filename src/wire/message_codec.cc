// Message codec: JSON requests out, worker messages in (SPEC §2).
//
// Requests are on the hot path of every round trip, so they are written as text directly into
// the caller's buffer instead of building a json object and dumping it. Decoding parses with a
// depth-limited DOM builder and then checks the shape field by field, turning every surprise into
// a communication error; nothing here throws.
#include "wire/message_codec.h"

#include <charconv>
#include <exception>
#include <utility>

#include <fmt/format.h>

#include "wire/json_reader.h"
#include "wire/json_writer.h"

namespace bridgepool::wire {
namespace {

// --- decoding: parsing -----------------------------------------------------------------------

// JSON nested deeper than this is rejected. Python's json module cannot produce much more than
// ~1000 levels (its recursion limit), so a legitimate worker never hits it; garbage that does
// would later blow the stack of whoever copies or dumps the value recursively.
constexpr std::size_t kMaxNestingDepth = 1024;

// Longest excerpt of an offending payload quoted in an error message.
constexpr std::size_t kMaxExcerpt = 120;

// nlohmann's own DOM builder, with a depth limit and the parse error kept instead of thrown.
class DepthLimitedDomBuilder {
 public:
  explicit DepthLimitedDomBuilder(Json& root) : dom_(root, /*allow_exceptions=*/false) {}

  bool null() { return dom_.null(); }
  bool boolean(bool value) { return dom_.boolean(value); }
  bool number_integer(Json::number_integer_t value) { return dom_.number_integer(value); }
  bool number_unsigned(Json::number_unsigned_t value) { return dom_.number_unsigned(value); }
  bool number_float(Json::number_float_t value, const Json::string_t& text) {
    return dom_.number_float(value, text);
  }
  bool string(Json::string_t& value) { return dom_.string(value); }
  bool binary(Json::binary_t& value) { return dom_.binary(value); }
  bool key(Json::string_t& value) { return dom_.key(value); }
  bool start_object(std::size_t n) { return enter() && dom_.start_object(n); }
  bool start_array(std::size_t n) { return enter() && dom_.start_array(n); }
  bool end_object() { return leave() && dom_.end_object(); }
  bool end_array() { return leave() && dom_.end_array(); }

  template <class Exception>
  bool parse_error(std::size_t position, const std::string& token, const Exception& ex) {
    problem_ = fmt::format("invalid JSON at byte {}", position);
    return dom_.parse_error(position, token, ex);
  }

  // Set when parsing stopped early; empty after a successful parse.
  const std::string& problem() const { return problem_; }

 private:
  bool enter() {
    if (++depth_ <= kMaxNestingDepth) return true;
    problem_ = fmt::format("JSON nested deeper than {} levels", kMaxNestingDepth);
    return false;
  }
  bool leave() {
    --depth_;
    return true;
  }

  nlohmann::detail::json_sax_dom_parser<Json> dom_;
  std::size_t depth_ = 0;
  std::string problem_;
};

// At most kMaxExcerpt characters of the payload, printable ASCII only (other bytes as \xNN), so
// the excerpt is safe in a log line and as a JSON string even when the payload is binary junk.
std::string excerpt(std::string_view payload) {
  std::string out;
  std::size_t cut = 0;  // longest prefix that still leaves room for "..."
  bool truncated = false;
  for (char c : payload) {
    if (out.size() > kMaxExcerpt) {
      truncated = true;
      break;
    }
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7F) {
      out += c;
    } else {
      fmt::format_to(std::back_inserter(out), "\\x{:02x}", byte);
    }
    if (out.size() <= kMaxExcerpt - 3) cut = out.size();
  }
  if (truncated || out.size() > kMaxExcerpt) {
    out.resize(cut);
    out += "...";
  }
  return out;
}

// Mutable access for moving values out of the parsed message; nullptr when the key is absent.
Json* find(Json& object, const char* key) {
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

// A shape error found while decoding. The payload excerpt is added once, at the top.
struct Malformed {
  std::string what;
};

using Checked = tl::expected<void, Malformed>;

Malformed malformed(std::string what) { return Malformed{std::move(what)}; }

// --- decoding: fields ------------------------------------------------------------------------

tl::expected<std::uint64_t, Malformed> read_id(Json& message) {
  const Json* id = find(message, "id");
  if (id == nullptr) return tl::unexpected(malformed("missing \"id\""));
  // nlohmann stores non-negative integers as unsigned and negative ones as signed.
  if (id->is_number_unsigned()) return id->get<std::uint64_t>();
  return tl::unexpected(malformed("\"id\" must be a non-negative integer"));
}

tl::expected<std::string, Malformed> read_string(Json& object, const char* key,
                                                 std::string_view where) {
  Json* value = find(object, key);
  if (value == nullptr || !value->is_string()) {
    return tl::unexpected(malformed(fmt::format("{} needs a string \"{}\"", where, key)));
  }
  return std::move(value->get_ref<std::string&>());
}

tl::expected<std::int64_t, Malformed> read_integer(Json& object, const char* key,
                                                   std::string_view where) {
  const Json* value = find(object, key);
  if (value != nullptr && value->is_number_integer()) {
    // An unsigned value above INT64_MAX is not a pid or a version; reject rather than wrap.
    if (value->is_number_unsigned() && value->get<std::uint64_t>() > INT64_MAX) {
      return tl::unexpected(malformed(fmt::format("{} \"{}\" is out of range", where, key)));
    }
    return value->get<std::int64_t>();
  }
  return tl::unexpected(malformed(fmt::format("{} needs an integer \"{}\"", where, key)));
}

// {"type": str, "message": str, "traceback": str|null, "retryable": bool|null}
tl::expected<ReplyError, Malformed> read_reply_error(Json& message) {
  Json* error = find(message, "error");
  if (error == nullptr || !error->is_object()) {
    return tl::unexpected(malformed("\"error\" must be an object"));
  }
  ReplyError out;
  auto type = read_string(*error, "type", "\"error\"");
  if (!type) return tl::unexpected(type.error());
  out.type = std::move(*type);
  auto text = read_string(*error, "message", "\"error\"");
  if (!text) return tl::unexpected(text.error());
  out.message = std::move(*text);

  if (Json* traceback = find(*error, "traceback"); traceback != nullptr && !traceback->is_null()) {
    if (!traceback->is_string()) {
      return tl::unexpected(malformed("\"error.traceback\" must be a string or null"));
    }
    out.traceback = std::move(traceback->get_ref<std::string&>());
  }
  if (Json* retryable = find(*error, "retryable"); retryable != nullptr && !retryable->is_null()) {
    if (!retryable->is_boolean()) {
      return tl::unexpected(malformed("\"error.retryable\" must be a bool or null"));
    }
    out.retryable = retryable->get<bool>();
  }
  return out;
}

Checked read_commands(Json& message, std::vector<CommandInfo>& out) {
  Json* commands = find(message, "commands");
  if (commands == nullptr || !commands->is_array()) {
    return tl::unexpected(malformed("\"ready\" needs a \"commands\" array"));
  }
  out.reserve(commands->size());
  for (Json& entry : *commands) {
    if (entry.is_string()) {
      out.push_back({std::move(entry.get_ref<std::string&>()), false});
      continue;
    }
    if (!entry.is_object()) {
      return tl::unexpected(malformed("\"commands\" entries must be strings or objects"));
    }
    auto name = read_string(entry, "name", "a \"commands\" entry");
    if (!name) return tl::unexpected(name.error());
    const Json* idempotent = find(entry, "idempotent");
    if (idempotent != nullptr && !idempotent->is_boolean()) {
      return tl::unexpected(malformed("\"idempotent\" must be a bool"));
    }
    out.push_back({std::move(*name), idempotent != nullptr && idempotent->get<bool>()});
  }
  return {};
}

// --- decoding: message kinds -----------------------------------------------------------------

Checked read_handshake(Json& message, Handshake& out) {
  auto protocol = read_integer(message, "protocol", "\"ready\"");
  if (!protocol) return tl::unexpected(protocol.error());
  if (*protocol < INT32_MIN || *protocol > INT32_MAX) {
    return tl::unexpected(malformed("\"ready\" \"protocol\" is out of range"));
  }
  out.protocol = static_cast<int>(*protocol);
  auto pid = read_integer(message, "pid", "\"ready\"");
  if (!pid) return tl::unexpected(pid.error());
  out.pid = *pid;
  auto worker_id = read_string(message, "worker_id", "\"ready\"");
  if (!worker_id) return tl::unexpected(worker_id.error());
  out.worker_id = std::move(*worker_id);
  if (auto commands = read_commands(message, out.commands); !commands) return commands;

  for (auto& [key, value] : message.items()) {
    if (key == "id" || key == "event" || key == "protocol" || key == "pid" || key == "worker_id" ||
        key == "commands") {
      continue;
    }
    out.extra[key] = std::move(value);
  }
  return {};
}

Checked read_event(Json& message, const Json& event, WorkerMessage& out) {
  if (!event.is_string()) return tl::unexpected(malformed("\"event\" must be a string"));
  const std::string& name = event.get_ref<const std::string&>();
  if (name == "ready") {
    out.kind = WorkerMessage::Kind::kReady;
    return read_handshake(message, out.handshake);
  }
  if (name == "init_failed") {
    out.kind = WorkerMessage::Kind::kInitFailed;
    auto error = read_reply_error(message);
    if (!error) return tl::unexpected(error.error());
    out.error = std::move(*error);
    return {};
  }
  return tl::unexpected(malformed(fmt::format("unknown event \"{}\"", excerpt(name))));
}

Checked read_reply(Json& message, const Json& ok, WorkerMessage& out) {
  if (!ok.is_boolean()) return tl::unexpected(malformed("\"ok\" must be a bool"));
  out.kind = WorkerMessage::Kind::kReply;
  out.ok = ok.get<bool>();
  if (const Json* mark = find(message, "worker_unhealthy"); mark && !mark->is_null()) {
    if (!mark->is_string()) {
      return tl::unexpected(malformed("\"worker_unhealthy\" must be a string or null"));
    }
    out.unhealthy = mark->get<std::string>();
  }
  if (out.ok) {
    // An absent result reads as null: a handler that returns None may leave it out.
    if (Json* result = find(message, "result")) out.result = std::move(*result);
    return {};
  }
  auto error = read_reply_error(message);
  if (!error) return tl::unexpected(error.error());
  out.error = std::move(*error);
  return {};
}

Checked read_message(Json& message, WorkerMessage& out) {
  if (!message.is_object()) {
    return tl::unexpected(
        malformed(fmt::format("expected a JSON object, got {}", message.type_name())));
  }
  auto id = read_id(message);
  if (!id) return tl::unexpected(id.error());
  out.id = *id;

  if (const Json* event = find(message, "event")) return read_event(message, *event, out);
  if (const Json* ok = find(message, "ok")) return read_reply(message, *ok, out);
  if (Json* chunk = find(message, "chunk")) {
    out.kind = WorkerMessage::Kind::kChunk;
    out.chunk = std::move(*chunk);
    return {};
  }
  return tl::unexpected(malformed("message has none of \"ok\", \"chunk\", \"event\""));
}

Error communication_error(std::string_view what, std::string_view payload) {
  return Error(ErrorCategory::kCommunication,
               fmt::format("malformed worker message: {} (payload: {})", what, excerpt(payload)));
}

// `,"command":...,"args":...,"session_id":...,"deadline_ms":` — everything but the id and the
// deadline's value.
void append_request_middle(std::string& out, const Request& request,
                           std::vector<Bytes>* attachments) {
  out += ",\"command\":";
  append_json_string(out, request.command);
  out += ",\"args\":";
  // A default-constructed Json means "no arguments": {}.
  append_args_json(out, request.args, attachments);
  out += ",\"session_id\":";
  if (request.session_id) {
    append_json_string(out, *request.session_id);
  } else {
    out += "null";
  }
  out += ",\"deadline_ms\":";
}

void append_request_head(std::string& out, std::uint64_t id) {
  out += "{\"id\":";
  append_integer(out, id);
}

void append_request_tail(std::string& out, std::optional<std::int64_t> deadline_ms) {
  if (deadline_ms) {
    append_integer(out, *deadline_ms);
  } else {
    out += "null";
  }
  out += '}';
}

}  // namespace

void append_request_json(std::string& out, const Request& request) {
  append_request_head(out, request.id);
  append_request_middle(out, request, nullptr);
  append_request_tail(out, request.deadline_ms);
}

PreparedRequest prepare_request(const Request& request) {
  PreparedRequest p;
  append_request_middle(p.middle, request, &p.attachments);
  p.command = request.command;
  p.session_id = request.session_id;
  return p;
}

std::size_t payload_bytes(const PreparedRequest& request) {
  std::size_t bytes = request.middle.size();
  for (Bytes attachment : request.attachments) bytes += attachment.size();
  return bytes;
}

std::string request_head(std::uint64_t id) {
  std::string out;
  append_request_head(out, id);
  return out;
}

std::string request_tail(std::optional<std::int64_t> deadline_ms) {
  std::string out;
  append_request_tail(out, deadline_ms);
  return out;
}

std::string encode_request(const Request& request) {
  std::string out;
  append_request_json(out, request);
  return out;
}

Result<WorkerMessage> decode_worker_message(std::string_view payload) {
  try {
    Json root;
    // simdjson first (json_reader.h); whatever it refuses, and anything at the depth limit,
    // nlohmann's parser decides and explains.
    if (auto fast = parse_json_fast(payload, kMaxNestingDepth - 1)) {
      root = std::move(*fast);
    } else {
      DepthLimitedDomBuilder builder(root);
      if (!Json::sax_parse(payload.begin(), payload.end(), &builder)) {
        std::string_view problem = builder.problem();
        return tl::unexpected(
            communication_error(problem.empty() ? "invalid JSON" : problem, payload));
      }
    }
    WorkerMessage message;
    if (auto checked = read_message(root, message); !checked) {
      return tl::unexpected(communication_error(checked.error().what, payload));
    }
    return message;
  } catch (const std::exception& e) {
    // Not expected (every access above is type-checked), but a worker must never be able to
    // throw through the pool: an exception here is one more kind of malformed message.
    return tl::unexpected(communication_error(e.what(), payload));
  }
}

Result<WorkerMessage> decode_worker_frame(std::string_view payload, bool has_attachments) {
  if (!has_attachments) return decode_worker_message(payload);
  auto frame = split_attachment_frame(payload);
  if (!frame) return tl::unexpected(frame.error());
  auto message = decode_worker_message(frame->json);
  if (!message) return message;
  Json* carrier = nullptr;
  if (message->kind == WorkerMessage::Kind::kReply && message->ok) carrier = &message->result;
  if (message->kind == WorkerMessage::Kind::kChunk) carrier = &message->chunk;
  if (carrier != nullptr) {
    if (auto resolved = resolve_attachments(*carrier, frame->buffers); !resolved) {
      return tl::unexpected(resolved.error());
    }
  }
  return message;
}

void append_args_json(std::string& out, const Json& args, std::vector<Bytes>* attachments) {
  if (args.is_null()) {
    out += "{}";
  } else {
    append_json(out, args, attachments);
  }
}

std::size_t batch_request_overhead(std::string_view command) {
  // {"id":<20 digits>,"command":<the name, escaped: at most 6 bytes per byte>,"batch":[],
  // "session_id":null,"deadline_ms":<20 digits>}
  return 128 + 6 * command.size();
}

PreparedRequest prepare_batch_request(std::string_view command,
                                      std::span<const std::string_view> items) {
  PreparedRequest p;
  std::size_t size = batch_request_overhead(command);
  for (std::string_view item : items) size += item.size() + 1;
  p.middle.reserve(size);
  p.middle = ",\"command\":";
  append_json_string(p.middle, command);
  p.middle += ",\"batch\":[";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) p.middle += ',';
    p.middle += items[i];
  }
  p.middle += "],\"session_id\":null,\"deadline_ms\":";
  p.command = std::string(command);
  return p;
}

Result<BatchPart> decode_batch_part(Json part, std::size_t count) {
  auto bad = [&](std::string_view what) {
    return tl::unexpected(
        Error(ErrorCategory::kCommunication,
              fmt::format("malformed batch reply: {} (part: {})", what,
                          excerpt(part.dump(-1, ' ', false, Json::error_handler_t::replace)))));
  };
  if (!part.is_object()) return bad("a part must be an object");
  Json* from = find(part, "from");
  Json* results = find(part, "results");
  Json* errors = find(part, "errors");
  if (from == nullptr || !from->is_number_unsigned()) return bad("\"from\" must be an index");
  if (results == nullptr || !results->is_array()) return bad("\"results\" must be an array");
  if (errors == nullptr || !errors->is_array()) return bad("\"errors\" must be an array");
  BatchPart out;
  out.from = from->get<std::size_t>();
  if (out.from > count || results->size() > count - out.from) {
    return bad(fmt::format("items {}..{} are outside the batch of {}", out.from,
                           out.from + results->size(), count));
  }
  for (Json& entry : *errors) {
    if (!entry.is_array() || entry.size() != 2 || !entry[0].is_number_unsigned()) {
      return bad("an \"errors\" entry must be [index, error]");
    }
    const auto index = entry[0].get<std::size_t>();
    if (index < out.from || index - out.from >= results->size()) {
      return bad(fmt::format("error for item {} outside the part", index));
    }
    Json holder = Json::object();
    holder["error"] = std::move(entry[1]);
    auto error = read_reply_error(holder);
    if (!error) return bad(error.error().what);
    out.errors.push_back({index, std::move(*error)});
  }
  out.results.reserve(results->size());
  for (Json& r : *results) out.results.push_back(std::move(r));
  return out;
}

}  // namespace bridgepool::wire
