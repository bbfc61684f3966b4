// Frame codec: 4-byte big-endian length prefix + payload (SPEC §2).
//
// The decoder keeps one contiguous buffer with a read and a write position. Bytes are appended
// at write_pos_, frames are popped from read_pos_; the unconsumed tail is moved to the front only
// when the buffer must grow, so a steady stream of small frames costs one memcpy in and one copy
// out per frame and no allocation after warm-up.
#include "wire/frame_codec.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include <fmt/format.h>

#include "wire/attachment_codec.h"

namespace bridgepool::wire {
namespace {

// A buffer that once held a large frame gives its memory back when it drains, rather than
// pinning (say) 64 MiB per worker for the rest of the process's life. 1 MiB keeps the common
// case — many frames of a few KiB — free of reallocations.
constexpr std::size_t kRetainedBufferLimit = 1u << 20;

// First allocation: big enough for a typical reply plus its header, so small frames never grow.
constexpr std::size_t kInitialBufferSize = 4096;

Error too_large(std::size_t size, std::size_t max_frame_size, std::string_view what) {
  return Error(ErrorCategory::kCommunication,
               fmt::format("{} of {} bytes exceeds the maximum frame size of {} bytes", what, size,
                           max_frame_size));
}

}  // namespace

Result<void> append_frame(std::string& out, std::string_view payload, std::size_t max_frame_size) {
  // The header is 32 bits, so even a caller-configured maximum above 4 GiB cannot be honoured.
  if (payload.size() > max_frame_size || payload.size() > kMaxFrameLimit) {
    return tl::unexpected(too_large(payload.size(), max_frame_size, "outgoing frame"));
  }
  const auto size = static_cast<std::uint32_t>(payload.size());
  const char header[kFrameHeaderSize] = {
      static_cast<char>((size >> 24) & 0xFF), static_cast<char>((size >> 16) & 0xFF),
      static_cast<char>((size >> 8) & 0xFF), static_cast<char>(size & 0xFF)};
  out.reserve(out.size() + kFrameHeaderSize + payload.size());
  out.append(header, kFrameHeaderSize);
  out.append(payload);
  return {};
}

std::uint32_t decode_length(const unsigned char header[kFrameHeaderSize]) {
  return (static_cast<std::uint32_t>(header[0] & 0x7F) << 24) |
         (static_cast<std::uint32_t>(header[1]) << 16) |
         (static_cast<std::uint32_t>(header[2]) << 8) | static_cast<std::uint32_t>(header[3]);
}

FrameDecoder::FrameDecoder(std::size_t max_frame_size) : max_frame_size_(max_frame_size) {}

void FrameDecoder::feed(std::string_view bytes) {
  if (bytes.empty()) return;
  char* dest = prepare(bytes.size());
  std::memcpy(dest, bytes.data(), bytes.size());
  commit(bytes.size());
}

char* FrameDecoder::prepare(std::size_t min_size) {
  if (read_pos_ == write_pos_) {
    // Drained (the last popped frame's view is dead now): start over at the front, and give
    // back the memory of a large frame.
    read_pos_ = write_pos_ = 0;
    if (buffer_.size() > kRetainedBufferLimit) {
      buffer_.clear();
      buffer_.shrink_to_fit();
    }
  }
  if (buffer_.size() - write_pos_ < min_size) {
    // Compact first: after a burst of popped frames the free space is at the front.
    if (read_pos_ > 0) {
      std::memmove(buffer_.data(), buffer_.data() + read_pos_, write_pos_ - read_pos_);
      write_pos_ -= read_pos_;
      read_pos_ = 0;
    }
    if (buffer_.size() - write_pos_ < min_size) {
      // Doubling keeps appends amortised O(1); the size follows the bytes actually written (or
      // asked for), never a length declared in a header.
      std::size_t wanted =
          std::max({write_pos_ + min_size, buffer_.size() * 2, kInitialBufferSize});
      if (write_pos_ - read_pos_ >= kRetainedBufferLimit) {
        // A large frame is really arriving (a megabyte of it is here): make room for all of it
        // at once. Its header was checked against the maximum when it was first seen.
        const auto* header = reinterpret_cast<const unsigned char*>(buffer_.data());
        const std::size_t frame = kFrameHeaderSize + decode_length(header);
        if (frame <= kFrameHeaderSize + max_frame_size_) {
          wanted = std::max(wanted, std::max(frame, write_pos_) + min_size);
        }
      }
      buffer_.resize(wanted);
    }
  }
  return buffer_.data() + write_pos_;
}

void FrameDecoder::commit(std::size_t n) {
  // Committing more than prepare() made room for would publish uninitialised bytes as data.
  write_pos_ += std::min(n, buffer_.size() - write_pos_);
}

Result<std::optional<Frame>> FrameDecoder::next() {
  if (poisoned_) return tl::unexpected(*poisoned_);
  const std::size_t available = write_pos_ - read_pos_;
  if (available < kFrameHeaderSize) return std::nullopt;

  const auto* header = reinterpret_cast<const unsigned char*>(buffer_.data() + read_pos_);
  const std::uint32_t length = decode_length(header);
  if (length > max_frame_size_) {
    // Checked before any byte of the payload is awaited: a garbage header (say "HTTP" read as
    // 0x48545450 = 1.2 GB) fails now instead of making the caller wait for, or buffer, 1.2 GB.
    poisoned_ = too_large(length, max_frame_size_, "incoming frame declares a payload");
    return tl::unexpected(*poisoned_);
  }
  if (available - kFrameHeaderSize < length) return std::nullopt;

  Frame frame{std::string_view(buffer_.data() + read_pos_ + kFrameHeaderSize, length),
              (header[0] & 0x80) != 0};
  read_pos_ += kFrameHeaderSize + length;
  return frame;
}

bool FrameDecoder::has_partial() const {
  // Skip over complete frames still waiting to be popped; whatever is left is incomplete.
  std::size_t pos = read_pos_;
  while (write_pos_ - pos >= kFrameHeaderSize) {
    const auto* header = reinterpret_cast<const unsigned char*>(buffer_.data() + pos);
    const std::size_t frame_size = kFrameHeaderSize + decode_length(header);
    if (write_pos_ - pos < frame_size) break;
    pos += frame_size;
  }
  return pos != write_pos_;
}

std::size_t FrameDecoder::missing() const {
  const std::size_t available = write_pos_ - read_pos_;
  if (available < kFrameHeaderSize) return 0;
  const auto* header = reinterpret_cast<const unsigned char*>(buffer_.data() + read_pos_);
  const std::size_t frame = kFrameHeaderSize + decode_length(header);
  return frame > available ? frame - available : 0;
}

std::size_t FrameDecoder::buffered() const { return write_pos_ - read_pos_; }

void FrameDecoder::reset() {
  std::string().swap(buffer_);
  read_pos_ = write_pos_ = 0;
  poisoned_.reset();
}

}  // namespace bridgepool::wire
