// bridgepool/binary.h: binary values and arrays as a caller builds and reads them, base64 for
// the JSON-only clients (HTTP, the command line), and the validation rules for binary args.
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "bridgepool/binary.h"
#include "pool/request_validation.h"

namespace bridgepool {
namespace {

TEST(BinaryValues, BytesMoveInAndAreViewedWithoutACopy) {
  std::vector<std::uint8_t> data = {1, 2, 3};
  const std::uint8_t* where = data.data();
  Json value = bytes(std::move(data));
  auto view = bytes_view(value);
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(reinterpret_cast<const std::uint8_t*>(view->data()), where);
  EXPECT_EQ(view->size(), 3u);
  EXPECT_FALSE(bytes_view(Json("text")).has_value());
  const std::byte raw[2] = {std::byte{9}, std::byte{8}};
  EXPECT_EQ(bytes_view(bytes(std::span<const std::byte>(raw)))->size(), 2u);
}

TEST(BinaryValues, ATypedArrayCarriesItsDtypeShapeAndBytes) {
  const std::vector<double> values = {1.5, 2.5, 3.5, 4.5, 5.5, 6.5};
  Json array = ndarray(std::span<const double>(values), {2, 3});
  EXPECT_EQ(array["dtype"], "<f8");
  EXPECT_EQ(array["shape"], Json::array({2, 3}));
  auto view = array_view(array);
  ASSERT_TRUE(view.has_value()) << view.error().message;
  EXPECT_EQ(view->itemsize, 8u);
  ASSERT_EQ(view->data.size(), 48u);
  double fifth = 0;
  std::memcpy(&fifth, view->data.data() + 4 * sizeof(double), sizeof(double));
  EXPECT_EQ(fifth, 5.5);
  const std::vector<std::int32_t> ints = {1, 2};
  EXPECT_EQ(ndarray(std::span<const std::int32_t>(ints), {2})["dtype"], "<i4");
}

TEST(BinaryValues, ArrayViewRefusesWhatIsNotAConsistentArray) {
  const Json data = Json::binary(std::vector<std::uint8_t>(16));
  const std::vector<Json> bad = {
      Json("no"),
      Json{{"dtype", "<f8"}, {"shape", {2}}},                    // no data
      Json{{"dtype", "<f8"}, {"shape", {3}}, {"data", data}},    // 16 bytes for 24
      Json{{"dtype", "<f8"}, {"shape", {-2}}, {"data", data}},   // negative size
      Json{{"dtype", "f8"}, {"shape", {2}}, {"data", data}},     // no byte order
      Json{{"dtype", "|O8"}, {"shape", {2}}, {"data", data}},    // objects
      Json{{"dtype", "<f8"}, {"shape", {2}}, {"data", "AAAA"}},  // not binary
      Json{{"dtype", "<f8"}, {"shape", {1u << 31, 1u << 31, 1u << 31}}, {"data", data}},
      Json{{"dtype", "<f8"}, {"shape", {2}}, {"data", data}, {"extra", 1}},
  };
  for (const Json& value : bad) {
    auto view = array_view(value);
    ASSERT_FALSE(view.has_value()) << value.dump();
    EXPECT_EQ(view.error().category, ErrorCategory::kInvalidRequest);
  }
  EXPECT_TRUE(array_view(Json{{"dtype", "<M8[ns]"}, {"shape", {2}}, {"data", data}}));
  EXPECT_TRUE(array_view(Json{{"dtype", "<U2"}, {"shape", {2}}, {"data", data}}));
  EXPECT_TRUE(array_view(Json{
      {"dtype", "<f8"}, {"shape", {0, 5}}, {"data", Json::binary(std::vector<std::uint8_t>())}}));
}

TEST(BinaryValues, Base64RoundTripsEveryLengthAndRefusesWhatIsNotBase64) {
  for (std::size_t n = 0; n < 10; ++n) {
    std::vector<std::uint8_t> data(n);
    for (std::size_t i = 0; i < n; ++i) data[i] = static_cast<std::uint8_t>(250 + i);
    const std::string text = to_json_text(Json{{"b", Json::binary(data)}});
    auto back = from_base64_objects(Json::parse(text));
    ASSERT_TRUE(back.has_value()) << text;
    ASSERT_TRUE((*back)["b"].is_binary()) << text;
    EXPECT_EQ((*back)["b"].get_binary(), data) << text;
  }
  EXPECT_EQ(to_json_text(Json{{"b", Json::binary({'M', 'a', 'n'})}}),
            R"({"b":{"$base64":"TWFu"}})");
  for (const char* bad : {"TWF", "TW=u", "T===", "TWFu!AAA", "====", "TQ=A"}) {
    auto refused = from_base64_objects(Json{{"b", {{"$base64", bad}}}});
    ASSERT_FALSE(refused.has_value()) << bad;
    EXPECT_EQ(refused.error().category, ErrorCategory::kInvalidRequest);
  }
  EXPECT_FALSE(from_base64_objects(Json{{"b", {{"$base64", 12}}}}).has_value());
  // Two keys: an ordinary object.
  auto kept = from_base64_objects(Json{{"b", {{"$base64", "x"}, {"y", 1}}}});
  ASSERT_TRUE(kept.has_value());
  EXPECT_TRUE((*kept)["b"].is_object());
  EXPECT_EQ(to_json_text(Json{{"s", "\xff"}}), "{\"s\":\"\xef\xbf\xbd\"}");  // replaced
}

TEST(BinaryValues, ValidationCountsBinaryValuesAndReservesTheMarker) {
  Json many = Json::array();
  for (int i = 0; i < 4097; ++i) many.push_back(Json::binary({}));
  auto too_many = validate_request(std::nullopt, "echo", Json{{"l", many}});
  ASSERT_FALSE(too_many.has_value());
  EXPECT_NE(too_many.error().message.find("more than 4096 binary values"), std::string::npos);
  many.erase(many.begin());
  EXPECT_TRUE(validate_request(std::nullopt, "echo", Json{{"l", many}}).has_value());

  auto marker = validate_request(std::nullopt, "echo", Json{{"a", {{"$attachment", 0}}}});
  ASSERT_FALSE(marker.has_value());
  EXPECT_NE(marker.error().message.find("reserves"), std::string::npos);
  EXPECT_TRUE(validate_request(std::nullopt, "echo", Json{{"a", {{"$attachment", 0}, {"b", 1}}}}));

  auto in_batch = validate_request(std::nullopt, "echo", Json{{"a", Json::binary({1})}},
                                   BinaryValues::kRefused);
  ASSERT_FALSE(in_batch.has_value());
  EXPECT_NE(in_batch.error().message.find("execute_many"), std::string::npos);
}

}  // namespace
}  // namespace bridgepool
