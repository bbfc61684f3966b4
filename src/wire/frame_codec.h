// Frame codec: the length-prefixed framing of SPEC §2 (4-byte big-endian length + payload).
// Protocol 2: a header whose top bit is set declares an attachment frame (attachment_codec.h) of
// the length in its low 31 bits.
//
// Pure: no I/O. The worker channel reads bytes from a pipe into a FrameDecoder and pops complete
// frames; it writes frames built by append_frame. A declared length above the configured maximum
// is a communication error raised as soon as the 4 header bytes are seen — the decoder never
// allocates the declared size up front (it grows with the bytes actually received).
// Thread-safety: a FrameDecoder is owned by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "bridgepool/error.h"

namespace bridgepool::wire {

inline constexpr std::size_t kFrameHeaderSize = 4;
inline constexpr std::size_t kDefaultMaxFrameSize = std::size_t{64} * 1024 * 1024;  // 64 MiB

// Appends header + payload to `out`. Returns a communication error (and leaves `out` unchanged)
// when payload.size() > max_frame_size.
Result<void> append_frame(std::string& out, std::string_view payload,
                          std::size_t max_frame_size = kDefaultMaxFrameSize);

// Reads the big-endian length from 4 bytes (the attachments flag masked off).
std::uint32_t decode_length(const unsigned char header[kFrameHeaderSize]);

// A frame popped from a FrameDecoder: a view of its buffer, valid until the decoder's next call.
struct Frame {
  std::string_view payload;
  bool has_attachments = false;  // an attachment frame (attachment_codec.h)
};

class FrameDecoder {
 public:
  explicit FrameDecoder(std::size_t max_frame_size = kDefaultMaxFrameSize);

  // Copies bytes received from the stream into the internal buffer.
  void feed(std::string_view bytes);

  // Zero-copy alternative to feed(): a writable region of at least `min_size` bytes at the end
  // of the buffer; after read(2) into it, call commit(n) with the number of bytes written. Once
  // a megabyte of a large frame is in, the buffer grows once to hold all of it (plus min_size),
  // so a 64 MiB frame is not copied again and again by doubling.
  char* prepare(std::size_t min_size);
  void commit(std::size_t n);

  // Pops the next complete frame (a view: no copy). nullopt: more bytes needed. Error
  // (communication): the declared length exceeds the maximum; the decoder is then poisoned and
  // keeps returning it.
  Result<std::optional<Frame>> next();

  // Bytes still missing of the frame being received (0 when no header is buffered yet).
  std::size_t missing() const;

  // True when some bytes of an incomplete frame are buffered (EOF now means a truncated frame).
  bool has_partial() const;
  std::size_t buffered() const;
  void reset();

 private:
  std::size_t max_frame_size_;
  std::string buffer_;
  std::size_t read_pos_ = 0;   // start of unconsumed bytes in buffer_
  std::size_t write_pos_ = 0;  // end of valid bytes in buffer_
  std::optional<Error> poisoned_;
};

}  // namespace bridgepool::wire
