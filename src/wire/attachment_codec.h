// Attachment frames (protocol 2): binary buffers carried next to a message's JSON, never inside
// it. A frame whose header has kAttachmentsFlag set holds
//
//   u32 json_length | u32 count | count x u64 size | JSON | pad | buffer 0 | pad | buffer 1 ...
//
// (big-endian; each buffer starts at a multiple of kAttachmentAlignment from the payload's start,
// zero padding before it; nothing after the last). In the JSON an object whose only key is
// "$attachment" stands for buffer i; in a Json value a buffer is a binary value (Json::binary).
// The Python side is python/bridgepool_worker/attachments.py (same layout, same limits).
//
// Pure: no I/O. The sender lays the frame out around views of the caller's buffers (writev writes
// them from where they are); the receiver splits a payload into views of it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "bridgepool/error.h"

namespace bridgepool::wire {

using Json = nlohmann::json;
using Bytes = std::span<const std::uint8_t>;

inline constexpr std::uint32_t kAttachmentsFlag = 0x80000000u;
// The largest payload a header can declare (31 bits), so the largest max_frame_bytes.
inline constexpr std::size_t kMaxFrameLimit = 0x7FFFFFFFu;
inline constexpr std::size_t kMaxAttachments = 4096;
inline constexpr std::size_t kAttachmentAlignment = 64;
inline constexpr std::string_view kAttachmentMarker = "$attachment";

// What a sender writes around the JSON and the buffers.
struct AttachmentLayout {
  std::string table;                 // json_length, count and the sizes
  std::vector<std::size_t> padding;  // zero bytes before buffer i
  std::size_t payload_size = 0;      // the frame's declared length (without the flag)
};
AttachmentLayout layout_attachments(std::size_t json_size, std::span<const Bytes> buffers);
// kAttachmentAlignment zero bytes, to write padding from.
const char* attachment_padding();

// A received attachment frame: views of its payload.
struct AttachmentFrame {
  std::string_view json;
  std::vector<Bytes> buffers;
};
// Communication error unless the table describes exactly `payload`: 1..kMaxAttachments buffers,
// every size within the payload, nothing after the last buffer.
Result<AttachmentFrame> split_attachment_frame(std::string_view payload);

// Replaces each marker in `value` by a binary copy of the buffer it names (an object whose only
// key is "$attachment" with an index below buffers.size()); communication error for a marker
// that names no buffer. Iterative: depth is the parser's to bound.
Result<void> resolve_attachments(Json& value, std::span<const Bytes> buffers);

// True if `value` holds a binary value (which only an attachment frame can carry) within `depth`
// levels: recursive, for values already validated (request args are at most 500 deep).
bool contains_binary(const Json& value, std::size_t depth = 1024);

}  // namespace bridgepool::wire
