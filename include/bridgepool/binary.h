// Binary values in arguments and results: bytes and n-dimensional arrays that travel next to the
// JSON as attachments (protocol 2), never as base64 or lists of numbers.
//
// A binary value is nlohmann's Json::binary: put one anywhere in a request's args and the worker's
// handler receives a memoryview of its bytes; a handler that returns bytes, bytearray or a
// memoryview gives the caller a binary value. An array is the object
//   {"dtype": "<f8", "shape": [rows, cols], "data": <binary>}
// (numpy's dtype strings): a handler receives it as a numpy.ndarray when numpy is installed, and a
// numpy.ndarray it returns arrives in this form. Nothing is base64'd and the bytes are copied
// once into the pipe on each side; a reply's bytes are copied once more, out of the frame into
// the binary value. Limits: max_frame_bytes for the whole frame, at most 4096 binary values per
// message, none in execute_many items; an object whose only key is "$attachment" is reserved.
// Over HTTP (bridgepool serve) and in `bridgepool call`, a binary value in a result is written
// as {"$base64": "..."}.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "bridgepool/error.h"

namespace bridgepool {

using Json = nlohmann::json;

// A binary value holding `data` (moved in: no copy) or a copy of it.
Json bytes(std::vector<std::uint8_t> data);
Json bytes(std::span<const std::byte> data);
// A view of a binary value's bytes (valid while `value` lives unchanged); nullopt for any other
// value.
std::optional<std::span<const std::byte>> bytes_view(const Json& value);

// The array object above; `dtype` a numpy dtype string ("<f8", "|u1", "<i4", "|b1", ...).
Json ndarray(std::vector<std::uint8_t> data, std::string dtype, std::vector<std::size_t> shape);
// The same from typed values (copied), dtype from T: double "<f8", float "<f4", std::int64_t
// "<i8", std::int32_t "<i4", std::int16_t "<i2", std::int8_t "|i1", the unsigned ones "<u8",
// "<u4", "<u2", "|u1", bool "|b1".
template <typename T>
Json ndarray(std::span<const T> values, std::vector<std::size_t> shape);

struct ArrayView {
  std::string dtype;
  std::vector<std::size_t> shape;
  std::span<const std::byte> data;  // a view of the value's binary
  std::size_t itemsize = 0;         // bytes per element, from dtype
};
// The array `value` holds: invalid_request error unless it is an object with a dtype string
// numpy would accept for fixed-size items, a shape of non-negative integers and binary data of
// exactly product(shape) * itemsize bytes.
Result<ArrayView> array_view(const Json& value);

// For clients that speak only JSON (the HTTP service, `bridgepool call`): dump() with each binary
// value written as {"$base64": "<standard base64>"} (invalid UTF-8 replaced by U+FFFD) ...
std::string to_json_text(const Json& value);
// ... and the reverse for their arguments: each object whose only key is "$base64" becomes a
// binary value. invalid_request error if its text is not standard padded base64.
Result<Json> from_base64_objects(Json value);

namespace detail {
template <typename T>
constexpr std::string_view dtype_of() {
  if constexpr (std::is_same_v<T, double>) return "<f8";
  if constexpr (std::is_same_v<T, float>) return "<f4";
  if constexpr (std::is_same_v<T, bool>) return "|b1";
  if constexpr (std::is_same_v<T, std::int64_t>) return "<i8";
  if constexpr (std::is_same_v<T, std::int32_t>) return "<i4";
  if constexpr (std::is_same_v<T, std::int16_t>) return "<i2";
  if constexpr (std::is_same_v<T, std::int8_t>) return "|i1";
  if constexpr (std::is_same_v<T, std::uint64_t>) return "<u8";
  if constexpr (std::is_same_v<T, std::uint32_t>) return "<u4";
  if constexpr (std::is_same_v<T, std::uint16_t>) return "<u2";
  if constexpr (std::is_same_v<T, std::uint8_t>) return "|u1";
  return {};
}
}  // namespace detail

template <typename T>
Json ndarray(std::span<const T> values, std::vector<std::size_t> shape) {
  static_assert(!detail::dtype_of<T>().empty(), "no numpy dtype for this element type");
  static_assert(std::endian::native == std::endian::little, "dtype strings say little-endian");
  const auto* first = reinterpret_cast<const std::uint8_t*>(values.data());
  return ndarray(std::vector<std::uint8_t>(first, first + values.size_bytes()),
                 std::string(detail::dtype_of<T>()), std::move(shape));
}

}  // namespace bridgepool
