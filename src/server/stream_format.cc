#include "server/stream_format.h"

#include "bridgepool/binary.h"

namespace bridgepool::server {

using Json = nlohmann::json;

StreamMode stream_mode(bool body_asks_stream, std::string_view accept) {
  if (accept.find("text/event-stream") != std::string_view::npos) return StreamMode::kSse;
  if (body_asks_stream || accept.find("application/x-ndjson") != std::string_view::npos) {
    return StreamMode::kNdjson;
  }
  return StreamMode::kNone;
}

std::string_view content_type(StreamMode mode) {
  switch (mode) {
    case StreamMode::kNdjson:
      return "application/x-ndjson";
    case StreamMode::kSse:
      return "text/event-stream";
    case StreamMode::kNone:
      break;
  }
  return "";
}

namespace {

// dump() escapes control characters, so the JSON text has no raw newline: one line of data.
std::string frame(StreamMode mode, std::string_view event, const Json& value) {
  if (mode == StreamMode::kSse) {
    return "event: " + std::string(event) + "\ndata: " + to_json_text(value) + "\n\n";
  }
  return to_json_text(value) + "\n";
}

}  // namespace

std::string chunk_frame(StreamMode mode, const Json& chunk) {
  return mode == StreamMode::kSse ? frame(mode, "chunk", chunk)
                                  : frame(mode, "chunk", Json{{"chunk", chunk}});
}

std::string final_frame(StreamMode mode, const Json& body) {
  bool ok = body.value("ok", false);
  return frame(mode, ok ? "result" : "error", body);
}

}  // namespace bridgepool::server
