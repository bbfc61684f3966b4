// Message codec: the JSON messages of SPEC §2 carried inside frames.
//
// Pure: no I/O. The pool encodes requests and decodes whatever a worker sends (handshake, init
// failure, progress chunk, reply). Anything that is not valid JSON, or is JSON of the wrong shape,
// is a communication error naming what was wrong — the caller then treats the worker's stream as
// untrustworthy. Functions are thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "bridgepool/error.h"
#include "wire/attachment_codec.h"

namespace bridgepool::wire {

using Json = nlohmann::json;

// 2: attachment frames (attachment_codec.h). A worker speaking another version is refused.
inline constexpr int kProtocolVersion = 2;

struct Request {
  std::uint64_t id = 0;
  std::string command;
  Json args = Json::object();
  std::optional<std::string> session_id;
  std::optional<std::int64_t> deadline_ms;
};

// Appends the request's JSON text to `out` (no frame header). Args must be an object (a null
// Json is written as {}). Never throws: invalid UTF-8 in any string is replaced by U+FFFD.
void append_request_json(std::string& out, const Request& request);
std::string encode_request(const Request& request);

// A request encoded before it is known which worker gets it and when: the JSON text without the
// two values filled in at send time — the id (per worker) and deadline_ms (the time left then).
// The message is  {"id": <id>  + middle +  <deadline_ms>}  (middle ends with `"deadline_ms":`),
// so a sender writes it as four pieces with no copy of the middle (Worker::send). Binary values
// in the args become markers in the middle and views in `attachments` (of the Request's args,
// which must outlive this): the frame is then an attachment frame, written from those views.
struct PreparedRequest {
  std::string middle;
  std::vector<Bytes> attachments;
  std::string command;                    // for error messages
  std::optional<std::string> session_id;  // the worker's current session while it runs
};
PreparedRequest prepare_request(const Request& request);
// The bytes a prepared request puts on the wire besides its id and deadline: the JSON middle and
// every attachment (what decides whether another thread may write it: Pool's hand-off).
std::size_t payload_bytes(const PreparedRequest& request);
// The pieces around the middle: `{"id":<id>` and `<deadline_ms or null>}`.
std::string request_head(std::uint64_t id);
std::string request_tail(std::optional<std::int64_t> deadline_ms);

// A command the worker announced in its handshake.
struct CommandInfo {
  std::string name;
  bool idempotent = false;
};

// {"id": 0, "event": "ready", "protocol": 1, "pid": ..., "worker_id": ..., "commands": [...]}
// `commands` entries are either strings or {"name": ..., "idempotent": bool}.
struct Handshake {
  int protocol = 0;
  std::int64_t pid = 0;
  std::string worker_id;
  std::vector<CommandInfo> commands;
  Json extra = Json::object();  // any other fields the worker sent (e.g. "version")
};

// {"id": 0, "event": "init_failed", "error": {type, message, traceback}}: the handler module
// could not be loaded. Decoded into an initialization Error carrying the Python details.
struct ReplyError {
  std::string type;
  std::string message;
  std::string traceback;          // "" when null/absent
  std::optional<bool> retryable;  // null/absent -> nullopt
};

struct WorkerMessage {
  enum class Kind { kReady, kInitFailed, kChunk, kReply };
  Kind kind = Kind::kReply;
  std::uint64_t id = 0;
  // kReply
  bool ok = false;
  Json result;                      // when ok
  std::optional<ReplyError> error;  // when !ok, and for kInitFailed
  // "worker_unhealthy": the handler marked its worker untrustworthy (the reply itself is good).
  std::optional<std::string> unhealthy;
  // kChunk
  Json chunk;
  // kReady
  Handshake handshake;
};

// Decodes one frame payload from a worker. Communication error (with a short excerpt of the
// offending text) on invalid JSON, JSON nested deeper than 1024 levels, a non-object, a
// missing/ill-typed "id" (must be a non-negative integer), a non-bool "ok", an `ok: false` reply
// or init_failed event without a well-formed "error", a "ready" event missing protocol, pid,
// worker_id or commands, an unknown "event", or none of "ok"/"chunk"/"event". An `ok: true`
// reply without "result" has a null result. A reply may carry "worker_unhealthy" (a string or
// null; anything else is malformed). Never throws.
Result<WorkerMessage> decode_worker_message(std::string_view payload);
// The same for a frame of either kind: an attachment frame's JSON is decoded as above and its
// buffers copied into the binary values that the markers of a reply's result or a chunk stand
// for. Communication error for a malformed table or a marker naming no buffer.
Result<WorkerMessage> decode_worker_frame(std::string_view payload, bool has_attachments);

// A batch request (Pool::execute_many; python/bridgepool_worker/batch.py has the protocol):
// `"batch": [args, ...]` instead of "args", no session. `items` are the arguments' JSON texts
// (append_args_json), each encoded once however many attempts send it.
PreparedRequest prepare_batch_request(std::string_view command,
                                      std::span<const std::string_view> items);
// Appends the JSON text of one request's arguments (a null Json as {}); never throws. With
// `attachments`, binary values are written as markers and their views appended there (without,
// they must not occur: nlohmann would write them as arrays of numbers).
void append_args_json(std::string& out, const Json& args,
                      std::vector<Bytes>* attachments = nullptr);
// The bytes a batch request adds around its items' texts, besides their commas.
std::size_t batch_request_overhead(std::string_view command);

// One part of a batch's answer: a chunk frame's value, or the final reply's result.
struct BatchItemError {
  std::size_t index = 0;  // in the batch request
  ReplyError error;
};
struct BatchPart {
  std::size_t from = 0;                // the index of results[0] in the batch request
  std::vector<Json> results;           // one per item from `from` on (null where it failed)
  std::vector<BatchItemError> errors;  // the failed ones, indices within the results' range
};
// Communication error unless `part` is {"from": uint, "results": [...], "errors": [[i, error],
// ...]} with its items within the `count` items of the batch. Never throws.
Result<BatchPart> decode_batch_part(Json part, std::size_t count);

}  // namespace bridgepool::wire
