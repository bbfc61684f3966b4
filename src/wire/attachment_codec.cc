#include "wire/attachment_codec.h"

#include <array>

#include <fmt/format.h>

namespace bridgepool::wire {
namespace {

constexpr std::size_t kCountsSize = 8;  // json_length + count

std::size_t aligned(std::size_t offset) {
  return (offset + kAttachmentAlignment - 1) / kAttachmentAlignment * kAttachmentAlignment;
}

void put_be(std::string& out, std::uint64_t value, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out += static_cast<char>((value >> (8 * i)) & 0xFF);
}

std::uint64_t get_be(std::string_view in, std::size_t at, int bytes) {
  std::uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value = (value << 8) | static_cast<unsigned char>(in[at + i]);
  return value;
}

Error malformed_frame(std::string what) {
  return Error(ErrorCategory::kCommunication, "malformed attachment frame: " + what);
}

}  // namespace

AttachmentLayout layout_attachments(std::size_t json_size, std::span<const Bytes> buffers) {
  AttachmentLayout layout;
  layout.table.reserve(kCountsSize + 8 * buffers.size());
  put_be(layout.table, json_size, 4);
  put_be(layout.table, buffers.size(), 4);
  for (Bytes buffer : buffers) put_be(layout.table, buffer.size(), 8);
  std::size_t offset = layout.table.size() + json_size;
  layout.padding.reserve(buffers.size());
  for (Bytes buffer : buffers) {
    const std::size_t start = aligned(offset);
    layout.padding.push_back(start - offset);
    offset = start + buffer.size();
  }
  layout.payload_size = offset;
  return layout;
}

const char* attachment_padding() {
  static constexpr std::array<char, kAttachmentAlignment> kZeros{};
  return kZeros.data();
}

Result<AttachmentFrame> split_attachment_frame(std::string_view payload) {
  const std::size_t size = payload.size();
  if (size < kCountsSize) {
    return tl::unexpected(malformed_frame(fmt::format("{} bytes hold no table", size)));
  }
  const std::uint64_t json_size = get_be(payload, 0, 4);
  const std::uint64_t count = get_be(payload, 4, 4);
  if (count < 1 || count > kMaxAttachments) {
    return tl::unexpected(malformed_frame(
        fmt::format("attachment count {} is not within [1, {}]", count, kMaxAttachments)));
  }
  const std::size_t table_end = kCountsSize + 8 * count;
  if (table_end + json_size > size) {
    return tl::unexpected(malformed_frame(fmt::format(
        "{} bytes cannot hold a table of {} sizes and {} bytes of JSON", size, count, json_size)));
  }
  AttachmentFrame frame;
  frame.json = payload.substr(table_end, json_size);
  frame.buffers.reserve(count);
  std::size_t offset = table_end + json_size;
  const auto* base = reinterpret_cast<const std::uint8_t*>(payload.data());
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint64_t length = get_be(payload, kCountsSize + 8 * i, 8);
    const std::size_t start = aligned(offset);
    // Compared without adding, so a size near 2^64 cannot wrap around.
    if (start > size || length > size - start) {
      return tl::unexpected(malformed_frame(fmt::format(
          "attachment {} of {} bytes does not fit in the {}-byte frame", i, length, size)));
    }
    frame.buffers.emplace_back(base + start, static_cast<std::size_t>(length));
    offset = start + length;
  }
  if (offset != size) {
    return tl::unexpected(
        malformed_frame(fmt::format("{} bytes follow the last attachment", size - offset)));
  }
  return frame;
}

Result<void> resolve_attachments(Json& value, std::span<const Bytes> buffers) {
  std::vector<Json*> stack{&value};
  while (!stack.empty()) {
    Json* v = stack.back();
    stack.pop_back();
    if (v->is_object()) {
      if (v->size() == 1) {
        auto marker = v->find(kAttachmentMarker);
        if (marker != v->end()) {
          const bool index = marker->is_number_unsigned() ||
                             (marker->is_number_integer() && marker->get<std::int64_t>() >= 0);
          if (!index || marker->get<std::uint64_t>() >= buffers.size()) {
            // The marker's value may be anything, a long string too: quote 60 bytes of it.
            const std::string what = v->dump(-1, ' ', false, Json::error_handler_t::replace);
            return tl::unexpected(malformed_frame(
                fmt::format("{}{} names no attachment (the frame has {})", what.substr(0, 60),
                            what.size() > 60 ? "..." : "", buffers.size())));
          }
          Bytes bytes = buffers[marker->get<std::size_t>()];
          *v = Json::binary(Json::binary_t::container_type(bytes.begin(), bytes.end()));
          continue;
        }
      }
      for (auto& [key, child] : v->items()) stack.push_back(&child);
    } else if (v->is_array()) {
      for (Json& child : *v) stack.push_back(&child);
    }
  }
  return {};
}

bool contains_binary(const Json& value, std::size_t depth) {
  // Recursive and allocation-free: a reply to an HTTP client passes here (to_json_text).
  if (value.is_binary()) return true;
  if ((!value.is_object() && !value.is_array()) || depth == 0) return false;
  for (const Json& child : value) {
    if (contains_binary(child, depth - 1)) return true;
  }
  return false;
}

}  // namespace bridgepool::wire
