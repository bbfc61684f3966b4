#include "wire/json_writer.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "base/utf8.h"

namespace bridgepool::wire {
namespace {

constexpr std::uint64_t kOnes = ~std::uint64_t{0} / 255;  // 0x0101...01
constexpr std::uint64_t kHighs = kOnes * 0x80;            // 0x8080...80

// SWAR tests over eight bytes: exact as to whether any byte qualifies.
constexpr std::uint64_t has_zero_byte(std::uint64_t x) { return (x - kOnes) & ~x & kHighs; }
constexpr std::uint64_t has_byte_below_0x20(std::uint64_t x) {
  return (x - kOnes * 0x20) & ~x & kHighs;
}
bool needs_escape(std::uint64_t x) {
  return (has_byte_below_0x20(x) | has_zero_byte(x ^ (kOnes * '"')) |
          has_zero_byte(x ^ (kOnes * '\\'))) != 0;
}

void append_escape(std::string& out, unsigned char c) {
  switch (c) {
    case '"':
      out += "\\\"";
      return;
    case '\\':
      out += "\\\\";
      return;
    case '\b':
      out += "\\b";
      return;
    case '\f':
      out += "\\f";
      return;
    case '\n':
      out += "\\n";
      return;
    case '\r':
      out += "\\r";
      return;
    case '\t':
      out += "\\t";
      return;
    default: {
      static constexpr char kHex[] = "0123456789abcdef";
      const char escaped[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
      out.append(escaped, sizeof escaped);
    }
  }
}

void append_dump(std::string& out, const Json& value) {
  nlohmann::detail::serializer<Json> serializer(nlohmann::detail::output_adapter<char>(out), ' ',
                                                Json::error_handler_t::replace);
  serializer.dump(value, /*pretty_print=*/false, /*ensure_ascii=*/false, /*indent_step=*/0);
}

void append_double(std::string& out, double value) {
  if (!std::isfinite(value)) {  // not JSON; dump() writes null (validation refuses these)
    out += "null";
    return;
  }
  char digits[32];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, end);
  // "1" would read back as an integer: dump() writes 1.0.
  if (std::string_view(digits, end - digits).find_first_of(".e") == std::string_view::npos) {
    out += ".0";
  }
}

template <typename Integer>
void append_digits(std::string& out, Integer value) {
  char digits[24];  // 20 digits for 2^64 - 1, plus a sign
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, end);
}

}  // namespace

void append_integer(std::string& out, std::int64_t value) { append_digits(out, value); }
void append_integer(std::string& out, std::uint64_t value) { append_digits(out, value); }

void append_json_string(std::string& out, std::string_view text) {
  if (invalid_utf8_at(text) != std::string_view::npos) {
    append_dump(out, Json(text));  // replaces the invalid bytes
    return;
  }
  out.reserve(out.size() + text.size() + 2);
  out += '"';
  const char* p = text.data();
  const std::size_t n = text.size();
  std::size_t run = 0;  // start of the bytes not yet copied
  std::size_t i = 0;
  while (i < n) {
    if (n - i >= 8) {
      std::uint64_t chunk;
      std::memcpy(&chunk, p + i, sizeof chunk);
      if (!needs_escape(chunk)) {
        i += 8;
        continue;
      }
    }
    const auto c = static_cast<unsigned char>(p[i]);
    if (c < 0x20 || c == '"' || c == '\\') {
      out.append(p + run, i - run);
      append_escape(out, c);
      run = i + 1;
    }
    ++i;
  }
  out.append(p + run, n - run);
  out += '"';
}

void append_json(std::string& out, const Json& value, std::vector<Bytes>* attachments) {
  switch (value.type()) {
    case Json::value_t::object: {
      out += '{';
      bool first = true;
      for (const auto& [key, child] : value.items()) {
        if (!first) out += ',';
        first = false;
        append_json_string(out, key);
        out += ':';
        append_json(out, child, attachments);
      }
      out += '}';
      return;
    }
    case Json::value_t::array: {
      out += '[';
      bool first = true;
      for (const Json& child : value) {
        if (!first) out += ',';
        first = false;
        append_json(out, child, attachments);
      }
      out += ']';
      return;
    }
    case Json::value_t::string:
      append_json_string(out, value.get_ref<const std::string&>());
      return;
    case Json::value_t::boolean:
      out += value.get<bool>() ? "true" : "false";
      return;
    case Json::value_t::number_integer:
      append_integer(out, value.get<std::int64_t>());
      return;
    case Json::value_t::number_unsigned:
      append_integer(out, value.get<std::uint64_t>());
      return;
    case Json::value_t::number_float:
      append_double(out, value.get<double>());
      return;
    case Json::value_t::binary:
      if (attachments != nullptr) {
        const Json::binary_t& bytes = value.get_binary();
        out += "{\"$attachment\":";
        append_integer(out, std::uint64_t{attachments->size()});
        out += '}';
        attachments->emplace_back(bytes.data(), bytes.size());
        return;
      }
      append_dump(out, value);
      return;
    case Json::value_t::null:
    case Json::value_t::discarded:
      out += "null";
      return;
  }
}

}  // namespace bridgepool::wire
