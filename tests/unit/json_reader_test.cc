// wire/json_reader.h: what the simdjson path accepts reads exactly as nlohmann's parser reads it
// (values and number types), and what it refuses — so that nlohmann decides and explains — is
// everything nlohmann would refuse plus what simdjson cannot represent.
#include "wire/json_reader.h"

#include <random>
#include <string>

#include <gtest/gtest.h>

#include "wire/message_codec.h"

namespace bridgepool::wire {
namespace {

constexpr std::size_t kDepth = 1023;

void expect_same_as_nlohmann(const std::string& text) {
  auto fast = parse_json_fast(text, kDepth);
  ASSERT_TRUE(fast.has_value()) << text;
  const Json reference = Json::parse(text);
  EXPECT_EQ(*fast, reference) << text;
  EXPECT_EQ(fast->dump(), reference.dump()) << text;  // number types and key order too
}

TEST(JsonReader, ReadsValuesAndNumberTypesAsNlohmannDoes) {
  for (const char* text :
       {"{}", "[]", "null", "true", "\"s\"", "0", "-0", "1", "-1", "1.0", "-1.5e300", "1e2",
        "18446744073709551615", "-9223372036854775808", "9223372036854775807", "0.1",
        R"({"b":[1,-2,{"c":null}],"a":"\u00e9\n\u0000x","k":{"x":1.25,"y":[[],{}]}})",
        R"({"id":3,"ok":true,"result":{"data":"héllo ✓ 😀"}})", " { \"ws\" : [ 1 , 2 ] } "}) {
    expect_same_as_nlohmann(text);
  }
  EXPECT_TRUE(parse_json_fast("1", kDepth)->is_number_unsigned());
  EXPECT_TRUE(parse_json_fast("-1", kDepth)->is_number_integer());
  EXPECT_TRUE(parse_json_fast("1.0", kDepth)->is_number_float());
}

TEST(JsonReader, RandomDocumentsReadBackEqual) {
  std::mt19937 rng(11);
  std::function<Json(int)> make = [&](int depth) -> Json {
    switch (depth > 4 ? rng() % 4 : rng() % 7) {
      case 0:
        return Json(static_cast<std::int64_t>(rng()) - (1ll << 31));
      case 1:
        return Json(static_cast<double>(rng()) / 7.0);
      case 2:
        return Json(std::string(rng() % 20, static_cast<char>('a' + rng() % 26)));
      case 3:
        return Json(rng() % 2 == 0);
      case 4: {
        Json a = Json::array();
        for (unsigned i = rng() % 5; i > 0; --i) a.push_back(make(depth + 1));
        return a;
      }
      default: {
        Json o = Json::object();
        for (unsigned i = rng() % 5; i > 0; --i)
          o["k" + std::to_string(rng() % 10)] = make(depth + 1);
        return o;
      }
    }
  };
  for (int n = 0; n < 500; ++n) expect_same_as_nlohmann(make(0).dump());
}

TEST(JsonReader, RefusesWhatNlohmannRefusesAndWhatItCannotRepresent) {
  for (const std::string& text :
       {std::string(""), std::string("{"), std::string("{} x"), std::string("[1,]"),
        std::string("\"\xff\""), std::string("\"\\ud800\""), std::string("18446744073709551616"),
        std::string("NaN"), std::string("'s'"), std::string(2000, '[') + std::string(2000, ']')}) {
    EXPECT_FALSE(parse_json_fast(text, kDepth).has_value()) << text.substr(0, 40);
  }
  // At the depth limit the fast path steps aside, so the reference parser draws the line.
  const std::string at_limit = std::string(1023, '[') + std::string(1023, ']');
  EXPECT_TRUE(parse_json_fast(at_limit, kDepth).has_value());
  const std::string past = std::string(1024, '[') + std::string(1024, ']');
  EXPECT_FALSE(parse_json_fast(past, kDepth).has_value());
}

TEST(JsonReader, ARepeatedKeyKeepsItsLastValueLikeNlohmann) {
  expect_same_as_nlohmann(R"({"a":1,"a":2})");
}

TEST(JsonReader, LargeDocumentsParseOnAParserOfTheirOwn) {
  const std::string big = Json{{"data", std::string(200 * 1024, 'x')}, {"n", 1}}.dump();
  expect_same_as_nlohmann(big);
  expect_same_as_nlohmann(R"({"small":true})");  // the thread's parser is still fine after
}

TEST(JsonReader, RepliesDecodedThroughEitherParserAgree) {
  // 1024 levels inside a reply: past the fast path, and still within the reference limit.
  const std::string deep = std::string(1022, '[') + std::string(1022, ']');
  auto msg = decode_worker_message(R"({"id":1,"ok":true,"result":)" + deep + "}");
  ASSERT_TRUE(msg.has_value()) << msg.error().message;
  auto too_deep = decode_worker_message(R"({"id":1,"ok":true,"result":)" + std::string(1100, '[') +
                                        std::string(1100, ']') + "}");
  ASSERT_FALSE(too_deep.has_value());
  EXPECT_EQ(too_deep.error().category, ErrorCategory::kCommunication);
}

}  // namespace
}  // namespace bridgepool::wire
