#include "bridgepool/binary.h"

#include <array>

#include <fmt/format.h>

#include "wire/attachment_codec.h"

namespace bridgepool {
namespace {

tl::unexpected<Error> not_an_array(std::string why) {
  Error e(ErrorCategory::kInvalidRequest, "not an array value: " + why);
  e.context.operation = "array_view";
  return tl::unexpected(std::move(e));
}

// Bytes per element of a numpy dtype string of fixed-size items: byte order ('<', '>', '|',
// '='), kind, size digits, and for datetimes a unit in brackets ("<M8[ns]"). 0 if not one.
std::size_t itemsize_of(std::string_view dtype) {
  if (dtype.size() < 3 || std::string_view("<>|=").find(dtype[0]) == std::string_view::npos) {
    return 0;
  }
  const char kind = dtype[1];
  if (std::string_view("biufcmMSUV").find(kind) == std::string_view::npos) return 0;
  std::size_t size = 0;
  std::size_t i = 2;
  for (; i < dtype.size() && dtype[i] >= '0' && dtype[i] <= '9' && size < (1u << 20); ++i) {
    size = size * 10 + static_cast<std::size_t>(dtype[i] - '0');
  }
  const std::string_view rest = dtype.substr(i);
  if (i == 2 || size == 0 || size >= (1u << 20)) return 0;
  const bool datetime = kind == 'm' || kind == 'M';
  if (!rest.empty() && !(datetime && rest.front() == '[' && rest.back() == ']')) return 0;
  return kind == 'U' ? size * 4 : size;  // numpy's "<U4" holds 4 UCS-4 characters
}

constexpr std::string_view kBase64Key = "$base64";
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64(std::span<const std::uint8_t> in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const std::uint32_t n = (in[i] << 16) | (in[i + 1] << 8) | in[i + 2];
    for (int shift = 18; shift >= 0; shift -= 6) out += kAlphabet[(n >> shift) & 63];
  }
  if (const std::size_t left = in.size() - i; left > 0) {
    const std::uint32_t n = (in[i] << 16) | (left == 2 ? in[i + 1] << 8 : 0);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += left == 2 ? kAlphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::vector<std::uint8_t>> unbase64(std::string_view text) {
  static const std::array<int, 256> kValue = [] {
    std::array<int, 256> value{};
    value.fill(-1);
    for (int i = 0; i < 64; ++i) value[static_cast<unsigned char>(kAlphabet[i])] = i;
    return value;
  }();
  if (text.size() % 4 != 0) return std::nullopt;
  std::vector<std::uint8_t> out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    const std::size_t pad = last ? (text[i + 3] == '=') + (text[i + 2] == '=') : 0;
    if (pad == 1 && text[i + 2] == '=') return std::nullopt;  // "x=y=" is not padding
    std::uint32_t n = 0;
    for (std::size_t k = 0; k < 4 - pad; ++k) {
      const int v = kValue[static_cast<unsigned char>(text[i + k])];
      if (v < 0) return std::nullopt;
      n |= static_cast<std::uint32_t>(v) << (18 - 6 * k);
    }
    out.push_back(static_cast<std::uint8_t>(n >> 16));
    if (pad < 2) out.push_back(static_cast<std::uint8_t>(n >> 8));
    if (pad < 1) out.push_back(static_cast<std::uint8_t>(n));
  }
  return out;
}

// Applies `f` to every value of `value`, depth first, without recursion.
template <typename F>
bool visit_all(Json& value, F&& f) {
  std::vector<Json*> stack{&value};
  while (!stack.empty()) {
    Json* v = stack.back();
    stack.pop_back();
    if (!f(*v)) return false;
    if (v->is_object() || v->is_array()) {
      for (Json& child : *v) stack.push_back(&child);
    }
  }
  return true;
}

}  // namespace

std::string to_json_text(const Json& value) {
  constexpr auto kReplace = Json::error_handler_t::replace;
  if (!wire::contains_binary(value)) return value.dump(-1, ' ', false, kReplace);
  Json copy = value;
  visit_all(copy, [](Json& v) {
    if (v.is_binary()) v = Json{{kBase64Key, base64(v.get_binary())}};
    return true;
  });
  return copy.dump(-1, ' ', false, kReplace);
}

Result<Json> from_base64_objects(Json value) {
  std::string problem;
  visit_all(value, [&](Json& v) {
    if (!v.is_object() || v.size() != 1 || v.begin().key() != kBase64Key) return true;
    const Json& text = v.begin().value();
    auto decoded = text.is_string() ? unbase64(text.get_ref<const std::string&>()) : std::nullopt;
    if (!decoded) {
      problem = "a {\"$base64\": ...} value is not a string of standard padded base64";
      return false;
    }
    v = Json::binary(std::move(*decoded));
    return true;
  });
  if (!problem.empty()) {
    Error e(ErrorCategory::kInvalidRequest, std::move(problem));
    e.context.operation = "execute";
    return tl::unexpected(std::move(e));
  }
  return value;
}

Json bytes(std::vector<std::uint8_t> data) { return Json::binary(std::move(data)); }

Json bytes(std::span<const std::byte> data) {
  const auto* first = reinterpret_cast<const std::uint8_t*>(data.data());
  return Json::binary(std::vector<std::uint8_t>(first, first + data.size()));
}

std::optional<std::span<const std::byte>> bytes_view(const Json& value) {
  if (!value.is_binary()) return std::nullopt;
  return std::as_bytes(std::span(value.get_binary().data(), value.get_binary().size()));
}

Json ndarray(std::vector<std::uint8_t> data, std::string dtype, std::vector<std::size_t> shape) {
  return Json{{"dtype", std::move(dtype)},
              {"shape", std::move(shape)},
              {"data", Json::binary(std::move(data))}};
}

Result<ArrayView> array_view(const Json& value) {
  if (!value.is_object()) return not_an_array(fmt::format("a {}", value.type_name()));
  auto dtype = value.find("dtype");
  auto shape = value.find("shape");
  auto data = value.find("data");
  if (dtype == value.end() || shape == value.end() || data == value.end() || value.size() != 3) {
    return not_an_array("an array object has exactly the keys dtype, shape and data");
  }
  if (!dtype->is_string()) return not_an_array("dtype is not a string");
  ArrayView view;
  view.dtype = dtype->get<std::string>();
  view.itemsize = itemsize_of(view.dtype);
  if (view.itemsize == 0) {
    return not_an_array(fmt::format("dtype \"{}\" is not a fixed-size numpy dtype string",
                                    view.dtype.substr(0, 40)));
  }
  if (!shape->is_array()) return not_an_array("shape is not a list");
  std::size_t elements = 1;
  for (const Json& n : *shape) {
    // Parsed JSON holds non-negative integers as unsigned, Json{...} built in C++ as signed.
    if (!n.is_number_integer() || (!n.is_number_unsigned() && n.get<std::int64_t>() < 0)) {
      return not_an_array("shape holds a non-integer or negative size");
    }
    const auto dim = n.get<std::uint64_t>();
    if (dim != 0 && elements > SIZE_MAX / dim) return not_an_array("shape overflows");
    elements *= dim;
    view.shape.push_back(dim);
  }
  auto bytes = bytes_view(*data);
  if (!bytes) return not_an_array("data is not a binary value");
  if (elements > SIZE_MAX / view.itemsize || bytes->size() != elements * view.itemsize) {
    return not_an_array(fmt::format("{} bytes of data for {} elements of {} bytes", bytes->size(),
                                    elements, view.itemsize));
  }
  view.data = *bytes;
  return view;
}

}  // namespace bridgepool
