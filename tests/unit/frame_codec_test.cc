// FrameDecoder / append_frame: framing under every way bytes can arrive from a pipe, and the
// size limit enforced on both sides without allocating what a header merely declares.
#include "wire/frame_codec.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace bridgepool::wire {
namespace {

std::string frame(std::string_view payload, std::size_t max = kDefaultMaxFrameSize) {
  std::string out;
  EXPECT_TRUE(append_frame(out, payload, max).has_value());
  return out;
}

std::string header(std::uint32_t length) {
  const char bytes[4] = {static_cast<char>(length >> 24), static_cast<char>(length >> 16),
                         static_cast<char>(length >> 8), static_cast<char>(length)};
  return std::string(bytes, 4);
}

// Pops one frame that must be complete.
std::string pop(FrameDecoder& decoder) {
  auto next = decoder.next();
  EXPECT_TRUE(next.has_value()) << next.error().to_string();
  if (!next.has_value() || !next->has_value()) {
    ADD_FAILURE() << "no complete frame";
    return "";
  }
  return std::string((*next)->payload);
}

void expect_needs_more(FrameDecoder& decoder) {
  auto next = decoder.next();
  ASSERT_TRUE(next.has_value()) << next.error().to_string();
  EXPECT_FALSE(next->has_value());
}

TEST(FrameCodecTest, HeaderIsBigEndianLength) {
  std::string out = frame("hello");
  ASSERT_EQ(out.size(), 9u);
  EXPECT_EQ(out.substr(0, 4), std::string("\0\0\0\5", 4));
  EXPECT_EQ(out.substr(4), "hello");
  const unsigned char bytes[4] = {0x01, 0x02, 0x03, 0x04};
  EXPECT_EQ(decode_length(bytes), 0x01020304u);
  // Protocol 2: the top bit flags an attachment frame and is not part of the length.
  const unsigned char max_bytes[4] = {0xFF, 0xFF, 0xFF, 0xFF};
  EXPECT_EQ(decode_length(max_bytes), 0x7FFFFFFFu);
}

TEST(FrameCodecTest, AppendFrameAppendsToExistingBuffer) {
  std::string out = "xy";
  ASSERT_TRUE(append_frame(out, "ab").has_value());
  EXPECT_EQ(out, std::string("xy\0\0\0\2ab", 8));
}

TEST(FrameCodecTest, RoundTrip) {
  FrameDecoder decoder;
  const std::string payload = R"({"id":1,"ok":true,"result":"\u00e9"})";
  decoder.feed(frame(payload));
  EXPECT_EQ(pop(decoder), payload);
  expect_needs_more(decoder);
  EXPECT_EQ(decoder.buffered(), 0u);
  EXPECT_FALSE(decoder.has_partial());
}

TEST(FrameCodecTest, BinaryPayloadWithNulBytesRoundTrips) {
  FrameDecoder decoder;
  const std::string payload("a\0b\xff\0", 5);
  decoder.feed(frame(payload));
  EXPECT_EQ(pop(decoder), payload);
}

TEST(FrameCodecTest, ManyFramesInOneFeed) {
  std::string stream;
  for (int i = 0; i < 100; ++i) stream += frame("frame-" + std::to_string(i));
  FrameDecoder decoder;
  decoder.feed(stream);
  EXPECT_FALSE(decoder.has_partial());  // only complete frames are buffered
  for (int i = 0; i < 100; ++i) EXPECT_EQ(pop(decoder), "frame-" + std::to_string(i));
  expect_needs_more(decoder);
  EXPECT_EQ(decoder.buffered(), 0u);
}

TEST(FrameCodecTest, ByteByByteFeeding) {
  const std::vector<std::string> payloads = {"first", "", "third payload", std::string(300, 'z')};
  std::string stream;
  for (const auto& p : payloads) stream += frame(p);

  FrameDecoder decoder;
  std::vector<std::string> received;
  for (char byte : stream) {
    decoder.feed(std::string_view(&byte, 1));
    auto next = decoder.next();
    ASSERT_TRUE(next.has_value());
    if (next->has_value()) received.emplace_back((*next)->payload);
  }
  EXPECT_EQ(received, payloads);
  EXPECT_FALSE(decoder.has_partial());
}

TEST(FrameCodecTest, HeaderSplitAcrossFeeds) {
  const std::string wire = frame("split");
  FrameDecoder decoder;
  decoder.feed(wire.substr(0, 2));
  expect_needs_more(decoder);
  EXPECT_TRUE(decoder.has_partial());
  decoder.feed(wire.substr(2, 1));
  expect_needs_more(decoder);
  decoder.feed(wire.substr(3, 3));  // last header byte + 2 payload bytes
  expect_needs_more(decoder);
  EXPECT_EQ(decoder.buffered(), 6u);
  decoder.feed(wire.substr(6));
  EXPECT_EQ(pop(decoder), "split");
}

TEST(FrameCodecTest, ZeroLengthPayload) {
  std::string out = frame("");
  EXPECT_EQ(out, std::string(4, '\0'));
  FrameDecoder decoder;
  decoder.feed(out);
  auto next = decoder.next();
  ASSERT_TRUE(next.has_value());
  ASSERT_TRUE(next->has_value());
  EXPECT_EQ((*next)->payload, "");
  EXPECT_FALSE((*next)->has_attachments);
  EXPECT_EQ(decoder.buffered(), 0u);
}

TEST(FrameCodecTest, EncodeAllowsExactlyMaxAndRejectsMaxPlusOne) {
  std::string out;
  ASSERT_TRUE(append_frame(out, std::string(16, 'a'), 16).has_value());
  EXPECT_EQ(out.size(), 20u);

  std::string rejected = "keep";
  auto result = append_frame(rejected, std::string(17, 'a'), 16);
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().category, ErrorCategory::kCommunication);
  EXPECT_NE(result.error().message.find("17 bytes"), std::string::npos) << result.error().message;
  EXPECT_NE(result.error().message.find("16 bytes"), std::string::npos) << result.error().message;
  EXPECT_EQ(rejected, "keep");  // unchanged on failure
}

TEST(FrameCodecTest, DecodeAllowsExactlyMax) {
  FrameDecoder decoder(16);
  decoder.feed(header(16) + std::string(16, 'b'));
  EXPECT_EQ(pop(decoder), std::string(16, 'b'));
}

TEST(FrameCodecTest, DecodeRejectsMaxPlusOneFromHeaderAlone) {
  FrameDecoder decoder(16);
  decoder.feed(header(17));  // no payload yet: the header alone is enough to reject
  auto next = decoder.next();
  ASSERT_FALSE(next.has_value());
  EXPECT_EQ(next.error().category, ErrorCategory::kCommunication);
  EXPECT_NE(next.error().message.find("17 bytes"), std::string::npos) << next.error().message;
  EXPECT_NE(next.error().message.find("maximum frame size of 16 bytes"), std::string::npos)
      << next.error().message;
}

TEST(FrameCodecTest, HugeDeclaredLengthFailsWithoutAllocatingAndStaysPoisoned) {
  FrameDecoder decoder;  // 64 MiB maximum
  decoder.feed(header(0xFFFFFFFFu) + "garbage");
  auto next = decoder.next();
  ASSERT_FALSE(next.has_value());
  EXPECT_EQ(next.error().category, ErrorCategory::kCommunication);
  EXPECT_NE(next.error().message.find("2147483647 bytes"), std::string::npos)
      << next.error().message;
  EXPECT_EQ(decoder.buffered(), 11u);

  // Poisoned: even a valid frame behind it is never delivered.
  decoder.feed(frame("valid"));
  for (int i = 0; i < 3; ++i) {
    auto again = decoder.next();
    ASSERT_FALSE(again.has_value());
    EXPECT_EQ(again.error().category, ErrorCategory::kCommunication);
    EXPECT_EQ(again.error().message, next.error().message);
  }
  EXPECT_LT(decoder.buffered(), 64u);
}

TEST(FrameCodecTest, TheFlagBitMarksAnAttachmentFrameOfTheLowBitsLength) {
  FrameDecoder decoder;
  decoder.feed(header(0x80000003u) + "abc" + frame("plain"));
  auto first = decoder.next();
  ASSERT_TRUE(first.has_value() && first->has_value());
  EXPECT_TRUE((*first)->has_attachments);
  EXPECT_EQ((*first)->payload, "abc");
  auto second = decoder.next();
  ASSERT_TRUE(second.has_value() && second->has_value());
  EXPECT_FALSE((*second)->has_attachments);
  EXPECT_EQ((*second)->payload, "plain");
}

TEST(FrameCodecTest, ALargeFrameGrowsTheBufferOnceNotByDoubling) {
  // 8 MiB arriving 64 KiB at a time: after the first megabyte the buffer is sized for the whole
  // frame, so the pointer prepare() returns never moves again (a move would mean a copy).
  const std::size_t size = std::size_t{8} << 20;
  FrameDecoder decoder;
  const std::string head = header(static_cast<std::uint32_t>(size));
  std::memcpy(decoder.prepare(head.size()), head.data(), head.size());
  decoder.commit(head.size());
  const char* base = nullptr;
  std::size_t moves = 0;
  for (std::size_t sent = 0; sent < size;) {
    const std::size_t n = std::min<std::size_t>(64 * 1024, size - sent);
    char* dest = decoder.prepare(64 * 1024);
    if (sent >= (std::size_t{2} << 20)) {
      if (base != nullptr && dest - sent != base) ++moves;
      base = dest - sent;
    }
    std::memset(dest, 'z', n);
    decoder.commit(n);
    sent += n;
  }
  EXPECT_EQ(moves, 0u);
  auto next = decoder.next();
  ASSERT_TRUE(next.has_value() && next->has_value());
  EXPECT_EQ((*next)->payload.size(), size);
}

TEST(FrameCodecTest, HasPartialAfterTruncatedFrame) {
  FrameDecoder decoder;
  std::string wire = frame("complete") + frame("truncated");
  decoder.feed(wire.substr(0, wire.size() - 3));
  EXPECT_TRUE(decoder.has_partial());  // one complete frame, then an incomplete one
  EXPECT_EQ(pop(decoder), "complete");
  EXPECT_TRUE(decoder.has_partial());
  expect_needs_more(decoder);
  EXPECT_EQ(decoder.buffered(), 4u + 9u - 3u);
  decoder.feed(wire.substr(wire.size() - 3));
  EXPECT_EQ(pop(decoder), "truncated");
  EXPECT_FALSE(decoder.has_partial());
}

TEST(FrameCodecTest, PrepareCommitPath) {
  const std::string wire = frame("via prepare") + frame("second");
  FrameDecoder decoder;
  // Simulate read(2) calls of 5 bytes into the decoder's own buffer.
  for (std::size_t pos = 0; pos < wire.size(); pos += 5) {
    const std::size_t n = std::min<std::size_t>(5, wire.size() - pos);
    char* dest = decoder.prepare(64);
    ASSERT_NE(dest, nullptr);
    std::memcpy(dest, wire.data() + pos, n);
    decoder.commit(n);
  }
  EXPECT_EQ(decoder.buffered(), wire.size());
  EXPECT_EQ(pop(decoder), "via prepare");
  EXPECT_EQ(pop(decoder), "second");
  expect_needs_more(decoder);
}

TEST(FrameCodecTest, PrepareGivesAtLeastTheRequestedRoomAfterConsumedFrames) {
  FrameDecoder decoder;
  for (int round = 0; round < 50; ++round) {
    const std::string wire = frame(std::string(static_cast<std::size_t>(round) * 37, 'q'));
    char* dest = decoder.prepare(wire.size());
    std::memcpy(dest, wire.data(), wire.size());
    decoder.commit(wire.size());
    EXPECT_EQ(pop(decoder).size(), static_cast<std::size_t>(round) * 37);
  }
  EXPECT_EQ(decoder.buffered(), 0u);
}

TEST(FrameCodecTest, CommitZeroAddsNothing) {
  FrameDecoder decoder;
  decoder.prepare(16);
  decoder.commit(0);
  EXPECT_EQ(decoder.buffered(), 0u);
  EXPECT_FALSE(decoder.has_partial());
}

TEST(FrameCodecTest, ResetClearsBytesAndPoison) {
  FrameDecoder decoder(16);
  decoder.feed(header(100));
  ASSERT_FALSE(decoder.next().has_value());
  decoder.reset();
  EXPECT_EQ(decoder.buffered(), 0u);
  EXPECT_FALSE(decoder.has_partial());
  expect_needs_more(decoder);
  decoder.feed(frame("fresh"));
  EXPECT_EQ(pop(decoder), "fresh");
}

TEST(FrameCodecTest, ResetDropsPartialFrame) {
  FrameDecoder decoder;
  decoder.feed(frame("abandoned").substr(0, 6));
  ASSERT_TRUE(decoder.has_partial());
  decoder.reset();
  EXPECT_FALSE(decoder.has_partial());
  decoder.feed(frame("next"));
  EXPECT_EQ(pop(decoder), "next");
}

}  // namespace
}  // namespace bridgepool::wire
