// Fuzz target for FrameDecoder: arbitrary bytes, delivered in arbitrary pieces, must decode to
// exactly what a straightforward reference reading of the whole stream says — same frames, same
// point of failure for an oversized header, same partial-frame state — and never crash.
//
// Input layout: byte 0 picks the maximum frame size, byte 1 seeds the piece sizes, the rest is
// the stream.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "wire/frame_codec.h"

namespace {

using bridgepool::wire::FrameDecoder;
using bridgepool::wire::kFrameHeaderSize;

void check(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "frame_decoder_fuzz: invariant broken: %s\n", what);
    std::abort();
  }
}

// What the decoder must produce for the whole stream.
struct Expected {
  std::vector<std::string> frames;
  bool oversized = false;    // stopped at a header declaring more than the maximum
  std::size_t leftover = 0;  // bytes after the last complete frame
};

Expected reference_decode(std::string_view stream, std::size_t max_frame_size) {
  Expected expected;
  std::size_t pos = 0;
  while (stream.size() - pos >= kFrameHeaderSize) {
    const auto* header = reinterpret_cast<const unsigned char*>(stream.data() + pos);
    const std::uint32_t length = bridgepool::wire::decode_length(header);
    if (length > max_frame_size) {
      expected.oversized = true;
      break;
    }
    if (stream.size() - pos - kFrameHeaderSize < length) break;
    expected.frames.emplace_back(stream.substr(pos + kFrameHeaderSize, length));
    pos += kFrameHeaderSize + length;
  }
  expected.leftover = stream.size() - pos;
  return expected;
}

// Pops every complete frame; returns false once the decoder reports an error.
bool drain(FrameDecoder& decoder, std::vector<std::string>& frames) {
  for (;;) {
    auto next = decoder.next();
    if (!next) {
      check(next.error().category == bridgepool::ErrorCategory::kCommunication, "category");
      return false;
    }
    if (!next->has_value()) return true;
    frames.emplace_back((*next)->payload);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  // 0..254 exercises the limit on tiny frames; 255 means the production default.
  const std::size_t max_frame_size =
      data[0] == 255 ? bridgepool::wire::kDefaultMaxFrameSize : std::size_t{data[0]};
  std::uint32_t rng = data[1] * 2654435761u + 1;
  const std::string_view stream(reinterpret_cast<const char*>(data + 2), size - 2);
  const Expected expected = reference_decode(stream, max_frame_size);

  FrameDecoder decoder(max_frame_size);
  std::vector<std::string> frames;
  bool failed = false;
  for (std::size_t pos = 0; pos < stream.size() && !failed;) {
    rng = rng * 1103515245u + 12345u;
    const std::size_t piece = std::min<std::size_t>(1 + (rng >> 16) % 64, stream.size() - pos);
    if (rng & 0x8000) {
      decoder.feed(stream.substr(pos, piece));
    } else {
      std::memcpy(decoder.prepare(piece), stream.data() + pos, piece);
      decoder.commit(piece);
    }
    pos += piece;
    failed = !drain(decoder, frames);
  }

  check(frames == expected.frames, "frames differ from the reference decoding");
  check(failed == expected.oversized, "oversized header not reported exactly when expected");
  if (failed) {
    check(!decoder.next().has_value(), "decoder not poisoned after an error");
  } else {
    check(decoder.buffered() == expected.leftover, "buffered() differs from the leftover");
    check(decoder.has_partial() == (expected.leftover > 0), "has_partial() wrong");
  }
  // Whatever was decoded re-encodes under the same limit.
  for (const std::string& frame : frames) {
    std::string wire;
    check(bridgepool::wire::append_frame(wire, frame, max_frame_size).has_value(), "re-encode");
    check(wire.size() == kFrameHeaderSize + frame.size(), "re-encoded size");
  }
  return 0;
}
