// Streaming results of POST /v1/execute: which format a request asked for, and the framing.
//
//   NDJSON (application/x-ndjson): `"stream": true` in the body or `Accept: application/x-ndjson`.
//     One JSON object per line: {"chunk": <value>} for each chunk the command yields, then the
//     final line, the same object a non-streaming call returns ({"ok":true,"result":...} or
//     {"ok":false,"error":{...}}).
//   SSE (text/event-stream): `Accept: text/event-stream`. `event: chunk` per chunk, then
//     `event: result` or `event: error`; every `data:` is one line of JSON.
// The HTTP status of a stream is 200 once it has begun (headers go out before the command
// ends); a failure during the stream is its last line. Errors found before (bad body) keep
// their own status. Pure; any thread.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace bridgepool::server {

enum class StreamMode { kNone, kNdjson, kSse };

// SSE wins over NDJSON when the Accept header names it; `stream` alone means NDJSON.
StreamMode stream_mode(bool body_asks_stream, std::string_view accept_header);
std::string_view content_type(StreamMode mode);  // "" for kNone

// A chunk frame and the final frame (its event is "result" or "error" from the body's "ok").
std::string chunk_frame(StreamMode mode, const nlohmann::json& chunk);
std::string final_frame(StreamMode mode, const nlohmann::json& body);

}  // namespace bridgepool::server
