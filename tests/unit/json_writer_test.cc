// wire/json_writer.h: the request serializer writes what nlohmann's dump() writes (strings,
// escapes, invalid UTF-8, keys, nesting), doubles that read back as the same double and stay
// floats, and binary values as attachment markers.
#include "wire/json_writer.h"

#include <cmath>
#include <limits>
#include <random>
#include <string>

#include <gtest/gtest.h>

namespace bridgepool::wire {
namespace {

std::string written(const Json& value) {
  std::string out;
  append_json(out, value);
  return out;
}

std::string dumped(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

TEST(JsonWriter, StringsAreWrittenExactlyAsDumpWritesThem) {
  std::vector<std::string> samples = {"",
                                      "plain",
                                      "quote\" back\\slash",
                                      "\n\r\t\b\f",
                                      std::string("nul\0inside", 10),
                                      "\x1f\x7f",
                                      "héllo ✓ 😀",
                                      std::string(1000, 'x') + "\"" + std::string(7, 'y'),
                                      "\xff invalid",
                                      "ok \xe2\x82 cut",
                                      "\xed\xa0\x80 surrogate"};
  for (int c = 0; c < 256; ++c) samples.push_back("ab" + std::string(1, char(c)) + "cdefghij");
  std::mt19937 rng(7);
  for (int n = 0; n < 300; ++n) {  // random bytes around the 8-byte steps, escapes included
    std::string s(rng() % 40, ' ');
    for (char& ch : s) ch = static_cast<char>("ab\"\\\n\x01\xc3\xa9z"[rng() % 10]);
    samples.push_back(s);
  }
  for (const std::string& s : samples) {
    EXPECT_EQ(written(Json(s)), dumped(Json(s))) << testing::PrintToString(s);
    std::string key;
    append_json_string(key, s);
    EXPECT_EQ(key, dumped(Json(s)));
  }
}

TEST(JsonWriter, ContainersAndScalarsMatchDump) {
  const Json value =
      Json::parse(R"({"b": [1, -2, true, false, null, "s", {"x": {}}, []], "a": {"nested": [[[]]],)"
                  R"( "k\"ey": "v"}, "big": 18446744073709551615, "neg": -9223372036854775808})");
  EXPECT_EQ(written(value), dumped(value));
}

TEST(JsonWriter, DoublesReadBackAsTheSameFloat) {
  for (double d : {0.0, -0.0, 1.0, -1.5, 0.1, 1e-7, 1e300, 123456789.0, 5e-324,
                   std::numeric_limits<double>::max(), 1.0 / 3}) {
    const std::string text = written(Json(d));
    const Json back = Json::parse(text);
    EXPECT_TRUE(back.is_number_float()) << text;
    EXPECT_EQ(back.get<double>(), d) << text;
  }
  EXPECT_EQ(written(Json(std::nan(""))), "null");  // as dump(); validation refuses NaN anyway
}

TEST(JsonWriter, BinaryValuesBecomeMarkersOnlyWithAttachments) {
  const Json value = {{"a", Json::binary({1, 2})}, {"b", {Json::binary({}), 3}}};
  std::string out;
  std::vector<Bytes> attachments;
  append_json(out, value, &attachments);
  EXPECT_EQ(out, R"({"a":{"$attachment":0},"b":[{"$attachment":1},3]})");
  ASSERT_EQ(attachments.size(), 2u);
  EXPECT_EQ(attachments[0].data(), value["a"].get_binary().data());
  EXPECT_EQ(written(value), dumped(value));  // without: nlohmann's own form
}

}  // namespace
}  // namespace bridgepool::wire
