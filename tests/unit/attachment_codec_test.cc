// Attachment frames (wire/attachment_codec.h): the layout a sender writes splits back into the
// same buffers, aligned; every way a table can lie is a communication error; markers resolve to
// binary values and a marker naming no buffer is refused; requests carry their binary values as
// views, not copies.
#include "wire/attachment_codec.h"

#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "wire/message_codec.h"

namespace bridgepool::wire {
namespace {

std::string be(std::uint64_t value, int bytes) {
  std::string out;
  for (int i = bytes - 1; i >= 0; --i) out += static_cast<char>((value >> (8 * i)) & 0xFF);
  return out;
}

// The payload a sender writes: table, JSON, padding and buffers, joined.
std::string payload_of(std::string_view json, const std::vector<std::string>& buffers) {
  std::vector<Bytes> views;
  for (const std::string& b : buffers) {
    views.emplace_back(reinterpret_cast<const std::uint8_t*>(b.data()), b.size());
  }
  AttachmentLayout layout = layout_attachments(json.size(), views);
  std::string out = layout.table + std::string(json);
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    out.append(attachment_padding(), layout.padding[i]);
    out += buffers[i];
  }
  EXPECT_EQ(out.size(), layout.payload_size);
  return out;
}

std::string as_string(Bytes bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

TEST(AttachmentCodec, ALaidOutFrameSplitsBackIntoAlignedViewsOfItself) {
  const std::vector<std::string> buffers = {"abc", "", std::string(100, 'z'), "q"};
  const std::string payload = payload_of(R"({"id":1})", buffers);
  auto frame = split_attachment_frame(payload);
  ASSERT_TRUE(frame.has_value()) << frame.error().message;
  EXPECT_EQ(frame->json, R"({"id":1})");
  ASSERT_EQ(frame->buffers.size(), buffers.size());
  for (std::size_t i = 0; i < buffers.size(); ++i) {
    EXPECT_EQ(as_string(frame->buffers[i]), buffers[i]);
    const auto offset = reinterpret_cast<const char*>(frame->buffers[i].data()) - payload.data();
    EXPECT_EQ(offset % kAttachmentAlignment, 0u) << i;  // views into the payload, aligned
  }
}

TEST(AttachmentCodec, LyingTablesAreCommunicationErrors) {
  const std::string json = "{}";
  const std::string good = payload_of(json, {"abcd"});
  const std::string tail = good.substr(16);  // JSON, padding and buffer after the table
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"no table", "abc"},
      {"count 0", be(2, 4) + be(0, 4) + json},
      {"count over the limit", be(2, 4) + be(kMaxAttachments + 1, 4) + tail},
      {"json past the end", be(1u << 30, 4) + be(1, 4) + be(4, 8) + tail},
      {"size past the end", be(2, 4) + be(1, 4) + be(5, 8) + tail},
      {"size near 2^64", be(2, 4) + be(1, 4) + be(~std::uint64_t{0}, 8) + tail},
      {"bytes after the last buffer", good + "x"},
      {"table cut short", be(2, 4) + be(3, 4) + be(1, 8)},
  };
  for (const auto& [name, payload] : cases) {
    auto frame = split_attachment_frame(payload);
    ASSERT_FALSE(frame.has_value()) << name;
    EXPECT_EQ(frame.error().category, ErrorCategory::kCommunication) << name;
    EXPECT_NE(frame.error().message.find("malformed attachment frame"), std::string::npos)
        << frame.error().message;
  }
  EXPECT_TRUE(split_attachment_frame(good).has_value());
}

TEST(AttachmentCodec, MarkersBecomeBinaryCopiesAndAMarkerNamingNoBufferIsRefused) {
  const std::string a = "first";
  const std::string b = "second";
  const std::vector<Bytes> buffers = {{reinterpret_cast<const std::uint8_t*>(a.data()), a.size()},
                                      {reinterpret_cast<const std::uint8_t*>(b.data()), b.size()}};
  Json value = Json::parse(
      R"({"x": {"$attachment": 1}, "list": [{"$attachment": 0}, {"$attachment": 1, "y": 2}]})");
  ASSERT_TRUE(resolve_attachments(value, buffers).has_value());
  ASSERT_TRUE(value["x"].is_binary());
  EXPECT_EQ(std::string(value["x"].get_binary().begin(), value["x"].get_binary().end()), b);
  EXPECT_TRUE(value["list"][0].is_binary());
  EXPECT_TRUE(value["list"][1].is_object());  // two keys: not a marker

  for (const char* bad : {R"({"$attachment": 2})", R"({"$attachment": -1})",
                          R"({"$attachment": "0"})", R"([{"$attachment": 0.0}])"}) {
    Json v = Json::parse(bad);
    auto resolved = resolve_attachments(v, buffers);
    ASSERT_FALSE(resolved.has_value()) << bad;
    EXPECT_NE(resolved.error().message.find("names no attachment"), std::string::npos);
  }
  // A worker's marker may hold anything: the error quotes a short excerpt of it.
  Json long_marker = {{"$attachment", std::string(100'000, 'x')}};
  auto refused = resolve_attachments(long_marker, buffers);
  ASSERT_FALSE(refused.has_value());
  EXPECT_LT(refused.error().message.size(), 200u);
}

TEST(AttachmentCodec, ContainsBinaryFindsThemAtAnyDepth) {
  EXPECT_FALSE(contains_binary(Json::parse(R"({"a": [1, {"b": "c"}]})")));
  Json deep = Json::object();
  deep["a"] = Json::array({1, Json::object({{"b", Json::binary({1, 2})}})});
  EXPECT_TRUE(contains_binary(deep));
  EXPECT_TRUE(contains_binary(Json::binary({})));
}

TEST(AttachmentCodec, APreparedRequestViewsItsBinaryValuesInsteadOfCopyingThem) {
  Request request;
  request.command = "echo";
  request.args = {{"data", Json::binary({1, 2, 3})}, {"n", 3}, {"more", {Json::binary({})}}};
  PreparedRequest prepared = prepare_request(request);
  ASSERT_EQ(prepared.attachments.size(), 2u);
  EXPECT_EQ(prepared.attachments[0].data(), request.args["data"].get_binary().data());
  EXPECT_EQ(prepared.attachments[0].size(), 3u);
  EXPECT_EQ(prepared.attachments[1].size(), 0u);
  // What decides whether another caller's thread may write it (the hand-off): all of it.
  EXPECT_EQ(payload_bytes(prepared), prepared.middle.size() + 3);
  const std::string json = request_head(7) + prepared.middle + request_tail(std::nullopt);
  Json sent = Json::parse(json);
  EXPECT_EQ(sent["args"]["data"], Json({{"$attachment", 0}}));
  EXPECT_EQ(sent["args"]["more"][0], Json({{"$attachment", 1}}));
  EXPECT_EQ(sent["args"]["n"], 3);

  Request plain;
  plain.command = "echo";
  plain.args = {{"x", "y"}};
  EXPECT_TRUE(prepare_request(plain).attachments.empty());
}

TEST(AttachmentCodec, AReplyFrameDecodesIntoBinaryValues) {
  const std::string payload =
      payload_of(R"({"id":3,"ok":true,"result":{"a":{"$attachment":0}}})", {"bytes!"});
  auto message = decode_worker_frame(payload, true);
  ASSERT_TRUE(message.has_value()) << message.error().message;
  ASSERT_TRUE(message->result["a"].is_binary());
  EXPECT_EQ(message->result["a"].get_binary().size(), 6u);

  const std::string chunk = payload_of(R"({"id":3,"chunk":[{"$attachment":0}]})", {"c"});
  auto chunk_message = decode_worker_frame(chunk, true);
  ASSERT_TRUE(chunk_message.has_value());
  EXPECT_TRUE(chunk_message->chunk[0].is_binary());

  const std::string lying = payload_of(R"({"id":3,"ok":true,"result":{"$attachment":1}})", {"x"});
  auto refused = decode_worker_frame(lying, true);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().category, ErrorCategory::kCommunication);
  // Without the flag, the same JSON is an ordinary object.
  auto plain = decode_worker_frame(R"({"id":3,"ok":true,"result":{"$attachment":1}})", false);
  ASSERT_TRUE(plain.has_value());
  EXPECT_TRUE(plain->result.is_object());
}

}  // namespace
}  // namespace bridgepool::wire
