// MockExecutor: the commands of the Python runtime and of examples/handlers.py, answered in C++.
// What each command returns is in include/bridgepool/mock_executor.h; here, each handler mirrors
// its Python original line by line (same argument defaults, same checks in the same order, same
// exception types and texts), using a few helpers that reproduce Python's view of JSON values:
// type names, repr()/str(), int(), float repr and json.dumps(sort_keys=True, compact).
#include "bridgepool/mock_executor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include "pool/request_validation.h"
#include "resilience/error_classifier.h"

namespace bridgepool {
namespace {

// Deep enough for any real request; keeps the recursive helpers below off the end of the stack.
constexpr int kMaxDepth = 500;

// ---------------------------------------------------------------------------------------------
// A Python exception raised by a handler, before it becomes an Error (see python_error()).

struct Raised {
  std::string type;
  std::string message;
  std::optional<bool> retryable;
  bool by_runtime = false;  // sent by the runtime itself (UnknownCommand): no traceback
};

template <typename T>
using PyResult = tl::expected<T, Raised>;

tl::unexpected<Raised> raise(std::string type, std::string message,
                             std::optional<bool> retryable = std::nullopt) {
  return tl::unexpected(Raised{std::move(type), std::move(message), retryable, false});
}

// The Error the pool makes of an `ok: false` reply (Worker::python_error): the runtime's own
// complaints about the request are invalid_request, everything else user code raised is python.
Error python_error(const Raised& raised) {
  ErrorCategory category = ErrorCategory::kPython;
  if (raised.type == "UnknownCommand" || raised.type == "InvalidArguments") {
    category = ErrorCategory::kInvalidRequest;
  }
  Error e(category, fmt::format("{}: {}", raised.type, raised.message));
  // A raised exception has a traceback; no Python frame ran here, so it is only the last line,
  // which is what traceback.format_exception gives for an exception without frames.
  std::string traceback =
      raised.by_runtime ? std::string() : fmt::format("{}: {}\n", raised.type, raised.message);
  e.python = PythonError{raised.type, std::move(traceback), raised.retryable};
  return e;
}

tl::unexpected<Error> py_raise(const Raised& raised) {
  return tl::unexpected(python_error(raised));
}

tl::unexpected<Error> py_raise(std::string type, std::string message,
                               std::optional<bool> retryable = std::nullopt) {
  return py_raise(Raised{std::move(type), std::move(message), retryable, false});
}

// ---------------------------------------------------------------------------------------------
// Python's view of JSON values

std::string_view py_type(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null:
      return "NoneType";
    case Json::value_t::boolean:
      return "bool";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "int";
    case Json::value_t::number_float:
      return "float";
    case Json::value_t::string:
      return "str";
    case Json::value_t::array:
      return "list";
    case Json::value_t::object:
      return "dict";
    default:
      return "bytes";
  }
}

// repr(float): the shortest digits that round-trip, in fixed notation for 1e-4 <= |x| < 1e16
// (always with a fraction: "1.0"), else in exponent notation with at least two exponent digits
// ("1e+16", "1.5e-05"). json.dumps writes floats the same way.
void append_py_float(std::string& out, double d) {
  if (std::isnan(d)) {
    out += "nan";
    return;
  }
  if (std::isinf(d)) {
    out += d < 0 ? "-inf" : "inf";
    return;
  }
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<std::size_t>(end - buf));  // "-1.2345e+06"
  if (!sci.empty() && sci.front() == '-') {
    out += '-';
    sci.remove_prefix(1);
  }
  const std::size_t e_at = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e_at)) {
    if (c != '.') digits += c;
  }
  int exp = 0;
  std::string_view exp_text = sci.substr(e_at + 1);
  if (!exp_text.empty() && exp_text.front() == '+') exp_text.remove_prefix(1);
  std::from_chars(exp_text.data(), exp_text.data() + exp_text.size(), exp);
  const auto n = static_cast<int>(digits.size());
  if (exp < -4 || exp >= 16) {
    out += digits[0];
    if (n > 1) out.append(".").append(digits, 1);
    out += fmt::format("e{}{:02d}", exp < 0 ? '-' : '+', std::abs(exp));
  } else if (exp >= 0) {
    if (n <= exp + 1) {
      out.append(digits).append(static_cast<std::size_t>(exp + 1 - n), '0').append(".0");
    } else {
      out.append(digits, 0, static_cast<std::size_t>(exp + 1))
          .append(".")
          .append(digits, static_cast<std::size_t>(exp + 1));
    }
  } else {
    out.append("0.").append(static_cast<std::size_t>(-exp - 1), '0').append(digits);
  }
}

// Decodes the UTF-8 sequence at s[i]; returns its length, or 0 if it is not valid UTF-8.
std::size_t decode_utf8(std::string_view s, std::size_t i, std::uint32_t& cp) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  std::size_t len = b0 >= 0xf0 ? 4 : b0 >= 0xe0 ? 3 : b0 >= 0xc0 ? 2 : 0;
  if (len == 0 || i + len > s.size() || b0 >= 0xf8) return 0;
  cp = b0 & (0x7f >> len);
  for (std::size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if ((b & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3f);
  }
  return len;
}

// repr(str): single quotes unless the text holds ' and no ", backslash escapes for the quote,
// backslash, \n \r \t and other control characters. Non-ASCII characters are kept except the
// few common non-printable ones (C1 controls, NBSP, soft hyphen, zero-width and line
// separators), which Python escapes too; the rest of Python's Unicode printability table is not
// reproduced.
void append_py_repr_string(std::string& out, std::string_view s) {
  const bool single = s.find('\'') != std::string_view::npos;
  const bool dbl = s.find('"') != std::string_view::npos;
  const char quote = single && !dbl ? '"' : '\'';
  out += quote;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c == quote || c == '\\') {
        out += '\\';
        out += static_cast<char>(c);
      } else if (c == '\n') {
        out += "\\n";
      } else if (c == '\r') {
        out += "\\r";
      } else if (c == '\t') {
        out += "\\t";
      } else if (c < 0x20 || c == 0x7f) {
        out += fmt::format("\\x{:02x}", c);
      } else {
        out += static_cast<char>(c);
      }
      ++i;
      continue;
    }
    std::uint32_t cp = 0;
    const std::size_t len = decode_utf8(s, i, cp);
    if (len == 0) {
      out += fmt::format("\\x{:02x}", c);
      ++i;
    } else {
      if (cp <= 0xa0 || cp == 0xad) {
        out += fmt::format("\\x{:02x}", cp);
      } else if ((cp >= 0x200b && cp <= 0x200f) || cp == 0x2028 || cp == 0x2029 || cp == 0xfeff) {
        out += fmt::format("\\u{:04x}", cp);
      } else {
        out.append(s.substr(i, len));
      }
      i += len;
    }
  }
  out += quote;
}

void append_py_repr(std::string& out, const Json& v, int depth = 0) {
  if (depth > kMaxDepth) {
    out += "...";
    return;
  }
  switch (v.type()) {
    case Json::value_t::null:
      out += "None";
      return;
    case Json::value_t::boolean:
      out += v.get<bool>() ? "True" : "False";
      return;
    case Json::value_t::number_integer:
      out += std::to_string(v.get<std::int64_t>());
      return;
    case Json::value_t::number_unsigned:
      out += std::to_string(v.get<std::uint64_t>());
      return;
    case Json::value_t::number_float:
      append_py_float(out, v.get<double>());
      return;
    case Json::value_t::string:
      append_py_repr_string(out, v.get_ref<const std::string&>());
      return;
    case Json::value_t::array: {
      out += '[';
      bool first = true;
      for (const Json& item : v) {
        if (!first) out += ", ";
        first = false;
        append_py_repr(out, item, depth + 1);
      }
      out += ']';
      return;
    }
    case Json::value_t::object: {
      out += '{';
      bool first = true;
      for (const auto& [key, item] : v.items()) {
        if (!first) out += ", ";
        first = false;
        append_py_repr_string(out, key);
        out += ": ";
        append_py_repr(out, item, depth + 1);
      }
      out += '}';
      return;
    }
    default:
      out += "b''";
      return;
  }
}

std::string py_repr(const Json& v) {
  std::string out;
  append_py_repr(out, v);
  return out;
}

// str(x) of a decoded JSON value: the text itself for a string, else repr(x).
std::string py_str(const Json& v) { return v.is_string() ? v.get<std::string>() : py_repr(v); }

// json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False). nlohmann keeps object
// keys in a std::map, whose byte order is the code point order Python sorts by.
PyResult<void> append_py_json(std::string& out, const Json& v, int depth = 0) {
  if (depth > kMaxDepth) {
    return raise("RecursionError", "maximum recursion depth exceeded while encoding a JSON object");
  }
  switch (v.type()) {
    case Json::value_t::null:
      out += "null";
      break;
    case Json::value_t::boolean:
      out += v.get<bool>() ? "true" : "false";
      break;
    case Json::value_t::number_integer:
      out += std::to_string(v.get<std::int64_t>());
      break;
    case Json::value_t::number_unsigned:
      out += std::to_string(v.get<std::uint64_t>());
      break;
    case Json::value_t::number_float:
      append_py_float(out, v.get<double>());
      break;
    case Json::value_t::string: {
      out += '"';
      for (char ch : v.get_ref<const std::string&>()) {
        const auto c = static_cast<unsigned char>(ch);
        switch (c) {
          case '"':
            out += "\\\"";
            break;
          case '\\':
            out += "\\\\";
            break;
          case '\n':
            out += "\\n";
            break;
          case '\r':
            out += "\\r";
            break;
          case '\t':
            out += "\\t";
            break;
          case '\b':
            out += "\\b";
            break;
          case '\f':
            out += "\\f";
            break;
          default:
            if (c < 0x20) {
              out += fmt::format("\\u{:04x}", c);
            } else {
              out += ch;
            }
        }
      }
      out += '"';
      break;
    }
    case Json::value_t::array: {
      out += '[';
      for (std::size_t i = 0; i < v.size(); ++i) {
        if (i) out += ',';
        if (auto ok = append_py_json(out, v[i], depth + 1); !ok) return ok;
      }
      out += ']';
      break;
    }
    case Json::value_t::object: {
      out += '{';
      bool first = true;
      for (const auto& [key, item] : v.items()) {
        if (!first) out += ',';
        first = false;
        if (auto ok = append_py_json(out, Json(key), depth + 1); !ok) return ok;
        out += ':';
        if (auto ok = append_py_json(out, item, depth + 1); !ok) return ok;
      }
      out += '}';
      break;
    }
    default:
      out += "null";
      break;
  }
  return {};
}

std::int64_t saturate(long double x) {
  constexpr auto lo = std::numeric_limits<std::int64_t>::min();
  constexpr auto hi = std::numeric_limits<std::int64_t>::max();
  if (x <= static_cast<long double>(lo)) return lo;
  if (x >= static_cast<long double>(hi)) return hi;
  return static_cast<std::int64_t>(x);
}

constexpr std::string_view kPyWhitespace = " \t\n\v\f\r\x1c\x1d\x1e\x1f";

std::string_view py_strip(std::string_view s) {
  const auto first = s.find_first_not_of(kPyWhitespace);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(kPyWhitespace) - first + 1);
}

// int(text) in base 10: optional whitespace and sign, digits with single underscores between
// them. Beyond the int64 range the value saturates (Python's ints do not).
std::optional<std::int64_t> parse_py_int(std::string_view text) {
  std::string_view s = py_strip(text);
  bool negative = false;
  if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  if (s.empty() || s.front() == '_' || s.back() == '_') return std::nullopt;
  long double value = 0;
  char previous = 0;
  for (char c : s) {
    if (c == '_') {
      if (previous == '_') return std::nullopt;
    } else if (c >= '0' && c <= '9') {
      value = value * 10 + (c - '0');
    } else {
      return std::nullopt;
    }
    previous = c;
  }
  return saturate(negative ? -value : value);
}

// int(v) for a decoded JSON value, with Python's errors.
PyResult<std::int64_t> py_int(const Json& v) {
  switch (v.type()) {
    case Json::value_t::boolean:
      return v.get<bool>() ? 1 : 0;
    case Json::value_t::number_integer:
      return v.get<std::int64_t>();
    case Json::value_t::number_unsigned:
      return saturate(v.get<std::uint64_t>());
    case Json::value_t::number_float: {
      const double d = v.get<double>();
      if (std::isnan(d)) return raise("ValueError", "cannot convert float NaN to integer");
      if (std::isinf(d)) return raise("OverflowError", "cannot convert float infinity to integer");
      return saturate(std::trunc(d));
    }
    case Json::value_t::string:
      if (auto n = parse_py_int(v.get_ref<const std::string&>())) return *n;
      return raise("ValueError", "invalid literal for int() with base 10: " + py_repr(v));
    default:
      return raise("TypeError", fmt::format("int() argument must be a string, a bytes-like "
                                            "object or a real number, not '{}'",
                                            py_type(v)));
  }
}

// args.get(key): nullptr when absent (a present null is a Json null, as in Python).
const Json* arg(const Json& args, const char* key) {
  auto it = args.find(key);
  return it == args.end() ? nullptr : &*it;
}

// int(args.get(key, fallback))
PyResult<std::int64_t> int_arg(const Json& args, const char* key, std::int64_t fallback) {
  const Json* v = arg(args, key);
  return v ? py_int(*v) : fallback;
}

// Python's truthiness of a JSON value (`x or {}`).
bool py_truthy(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null:
      return false;
    case Json::value_t::boolean:
      return v.get<bool>();
    case Json::value_t::number_integer:
      return v.get<std::int64_t>() != 0;
    case Json::value_t::number_unsigned:
      return v.get<std::uint64_t>() != 0;
    case Json::value_t::number_float:
      return v.get<double>() != 0.0;
    case Json::value_t::string:
      return !v.get_ref<const std::string&>().empty();
    default:
      return !v.empty();
  }
}

// A dict lookup with a JSON value as the key: lists and dicts are unhashable.
PyResult<void> check_hashable(const Json& key) {
  if (key.is_array() || key.is_object()) {
    return raise("TypeError", fmt::format("unhashable type: '{}'", py_type(key)));
  }
  return {};
}

// ---------------------------------------------------------------------------------------------
// SHA-256 (FIPS 180-4), for mock_language_model's digest.

std::string sha256_hex(std::string_view data) {
  static constexpr std::array<std::uint32_t, 64> k = {
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
      0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
      0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
      0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
      0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
      0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
      0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
      0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
      0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
      0xc67178f2};
  std::array<std::uint32_t, 8> h = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::string msg(data);
  const std::uint64_t bits = static_cast<std::uint64_t>(data.size()) * 8;
  msg += static_cast<char>(0x80);
  while (msg.size() % 64 != 56) msg += '\0';
  for (int i = 7; i >= 0; --i) msg += static_cast<char>((bits >> (8 * i)) & 0xff);
  auto rotr = [](std::uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };
  for (std::size_t block = 0; block < msg.size(); block += 64) {
    std::array<std::uint32_t, 64> w{};
    for (int i = 0; i < 16; ++i) {
      for (int b = 0; b < 4; ++b) {
        w[i] = (w[i] << 8) | static_cast<unsigned char>(msg[block + 4 * i + b]);
      }
    }
    for (int i = 16; i < 64; ++i) {
      const std::uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const std::uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    auto [a, b, c, d, e, f, g, hh] = h;
    for (int i = 0; i < 64; ++i) {
      const std::uint32_t t1 =
          hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
      const std::uint32_t t2 =
          (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      hh = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    const std::array<std::uint32_t, 8> add = {a, b, c, d, e, f, g, hh};
    for (int i = 0; i < 8; ++i) h[i] += add[i];
  }
  std::string hex;
  for (std::uint32_t word : h) hex += fmt::format("{:08x}", word);
  return hex;
}

// ---------------------------------------------------------------------------------------------
// examples/handlers.py: signatures and the mock language model

// str.isidentifier(), with every non-ASCII character taken as a letter (approximation).
bool is_identifier(std::string_view s) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

std::vector<std::string_view> split(std::string_view s, std::string_view sep) {
  std::vector<std::string_view> parts;
  for (std::size_t start = 0;;) {
    const std::size_t at = s.find(sep, start);
    parts.push_back(s.substr(start, at == std::string_view::npos ? at : at - start));
    if (at == std::string_view::npos) return parts;
    start = at + sep.size();
  }
}

PyResult<std::vector<std::string>> parse_fields(std::string_view text, std::string_view side,
                                                const Json& signature) {
  std::vector<std::string> fields;
  for (std::string_view part : split(text, ",")) fields.emplace_back(py_strip(part));
  if (std::any_of(fields.begin(), fields.end(), [](const auto& f) { return !is_identifier(f); })) {
    return raise("ValueError",
                 fmt::format("bad {} fields in signature {}: expected 'in1, in2 -> out1, out2'",
                             side, py_repr(signature)));
  }
  std::vector<std::string> sorted = fields;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    return raise("ValueError",
                 fmt::format("duplicate {} field in signature {}", side, py_repr(signature)));
  }
  return fields;
}

struct Signature {
  std::vector<std::string> inputs, outputs;
};

PyResult<Signature> parse_signature(const Json& signature) {
  if (!signature.is_string() || split(signature.get_ref<const std::string&>(), "->").size() != 2) {
    return raise("ValueError",
                 "signature must look like 'in1, in2 -> out1', got " + py_repr(signature));
  }
  auto sides = split(signature.get_ref<const std::string&>(), "->");
  auto inputs = parse_fields(sides[0], "input", signature);
  if (!inputs) return tl::unexpected(inputs.error());
  auto outputs = parse_fields(sides[1], "output", signature);
  if (!outputs) return tl::unexpected(outputs.error());
  return Signature{std::move(*inputs), std::move(*outputs)};
}

// Each output is "mock-<field>-" + the first 12 hex digits of the SHA-256 of the inputs as
// compact, key-sorted JSON.
PyResult<Json> mock_language_model(const Json& inputs, const std::vector<std::string>& outputs) {
  std::string canonical;
  if (auto ok = append_py_json(canonical, inputs); !ok) return tl::unexpected(ok.error());
  const std::string digest = sha256_hex(canonical).substr(0, 12);
  Json result = Json::object();
  for (const auto& field : outputs) result[field] = fmt::format("mock-{}-{}", field, digest);
  return result;
}

// Builtin exception classes of Python 3.11 that subclass Exception, by the name
// getattr(builtins, name) finds (EnvironmentError and IOError are OSError).
const std::unordered_map<std::string_view, std::string_view>& exception_classes() {
  static const auto* table = [] {
    auto* t = new std::unordered_map<std::string_view, std::string_view>;
    for (std::string_view name : {"ArithmeticError",
                                  "AssertionError",
                                  "AttributeError",
                                  "BlockingIOError",
                                  "BrokenPipeError",
                                  "BufferError",
                                  "BytesWarning",
                                  "ChildProcessError",
                                  "ConnectionAbortedError",
                                  "ConnectionError",
                                  "ConnectionRefusedError",
                                  "ConnectionResetError",
                                  "DeprecationWarning",
                                  "EOFError",
                                  "EncodingWarning",
                                  "Exception",
                                  "ExceptionGroup",
                                  "FileExistsError",
                                  "FileNotFoundError",
                                  "FloatingPointError",
                                  "FutureWarning",
                                  "ImportError",
                                  "ImportWarning",
                                  "IndentationError",
                                  "IndexError",
                                  "InterruptedError",
                                  "IsADirectoryError",
                                  "KeyError",
                                  "LookupError",
                                  "MemoryError",
                                  "ModuleNotFoundError",
                                  "NameError",
                                  "NotADirectoryError",
                                  "NotImplementedError",
                                  "OSError",
                                  "OverflowError",
                                  "PendingDeprecationWarning",
                                  "PermissionError",
                                  "ProcessLookupError",
                                  "RecursionError",
                                  "ReferenceError",
                                  "ResourceWarning",
                                  "RuntimeError",
                                  "RuntimeWarning",
                                  "StopAsyncIteration",
                                  "StopIteration",
                                  "SyntaxError",
                                  "SyntaxWarning",
                                  "SystemError",
                                  "TabError",
                                  "TimeoutError",
                                  "TypeError",
                                  "UnboundLocalError",
                                  "UnicodeDecodeError",
                                  "UnicodeEncodeError",
                                  "UnicodeError",
                                  "UnicodeTranslateError",
                                  "UnicodeWarning",
                                  "UserWarning",
                                  "ValueError",
                                  "Warning",
                                  "ZeroDivisionError"}) {
      (*t)[name] = name;
    }
    (*t)["EnvironmentError"] = "OSError";
    (*t)["IOError"] = "OSError";
    return t;
  }();
  return *table;
}

// Classes whose constructor refuses a single argument: `cls(message)` raises TypeError instead.
std::optional<std::string_view> constructor_error(std::string_view cls) {
  if (cls == "ExceptionGroup")
    return "BaseExceptionGroup.__new__() takes exactly 2 arguments (1 given)";
  if (cls == "UnicodeDecodeError" || cls == "UnicodeEncodeError") {
    return "function takes exactly 5 arguments (1 given)";
  }
  if (cls == "UnicodeTranslateError") return "function takes exactly 4 arguments (1 given)";
  return std::nullopt;
}

// Signals a worker process survives: 0 (a probe), SIGINT (the runtime ignores it), SIGPIPE and
// SIGXFSZ (ignored by Python), and those whose default action is to ignore or continue.
bool survives_signal(std::int64_t sig) {
  switch (sig) {
    case 0:
    case 2:
    case 13:
    case 17:
    case 18:
    case 23:
    case 25:
    case 28:
      return true;
    default:
      return false;
  }
}

bool stops_process(std::int64_t sig) { return sig >= 19 && sig <= 22; }  // STOP TSTP TTIN TTOU

// sum(i * i % 7 for i in range(n)): the residues repeat every 7 (0 1 4 2 2 4 1, sum 14).
std::int64_t compute_value(std::int64_t n) {
  if (n <= 0) return 0;
  static constexpr std::array<std::int64_t, 7> prefix = {0, 0, 1, 5, 7, 9, 13};
  return (n / 7) * 14 + prefix[static_cast<std::size_t>(n % 7)];
}

struct Program {
  std::string signature;
  std::vector<std::string> inputs, outputs;
};

struct SessionState {
  bool has_state = false;  // a non-built-in command ran in it (the runtime's session dict exists)
  std::map<std::string, Program> programs;  // sorted: list_programs returns sorted(programs)
  std::int64_t program_counter = 0;
};

}  // namespace

// ---------------------------------------------------------------------------------------------

struct MockExecutor::Impl {
  struct Call {
    const Json& args;
    std::optional<std::string_view> session;
    const ExecuteOptions& options;
    std::uint64_t served_before;  // requests answered before this one
  };
  struct Command {
    bool idempotent = false;
    bool builtin = false;
    std::function<Result<Json>(const Call&)> run;
  };

  Impl(MockExecutorConfig cfg, const Clock& c)
      : config(std::move(cfg)), clock(c), started_at(c.now()) {
    register_commands();
  }

  const MockExecutorConfig config;
  const Clock& clock;
  const TimePoint started_at;

  mutable std::mutex mu;  // guards everything below; never held while a handler runs
  std::map<std::string, Command> commands;
  std::map<std::string, std::uint64_t> calls;  // per command (get_stats)
  std::unordered_map<std::string, SessionState> sessions;
  Json settings = Json::object();  // configure / get_config
  std::uint64_t requests_served = 0;
  std::uint64_t errors = 0;

  void register_commands();
  void add(std::string name, bool idempotent, bool builtin,
           std::function<Result<Json>(const Call&)> run);
  Result<Json> run(std::optional<std::string_view> session, std::string_view command,
                   const Json& args, const ExecuteOptions& options);
  Result<Json> dispatch(const Command& command, std::string_view name, const Call& call);
  Result<Json> finish(Result<Json> result, std::string_view command,
                      std::optional<std::string_view> session, bool idempotent,
                      const ExecuteOptions& options, TimePoint started) const;
  std::string available_commands() const;  // mu held
  double uptime_s() const;
  Error process_gone(std::string_view how) const;
  Error no_reply(std::string_view command, std::string_view why) const;

  // The runtime's built-ins.
  Result<Json> health_check(const Call& call);
  Result<Json> get_stats(const Call& call);
  Result<Json> list_commands(const Call& call);
  Result<Json> close_session_command(const Call& call);
  // examples/handlers.py
  Result<Json> sleep(const Call& call);
  Result<Json> fail(const Call& call);
  Result<Json> crash(const Call& call);
  Result<Json> compute(const Call& call);
  Result<Json> whoami(const Call& call);
  Result<Json> spam(const Call& call);
  Result<Json> stream(const Call& call);
  Result<Json> configure(const Call& call);
  Result<Json> get_config(const Call& call);
  Result<Json> create_program(const Call& call);
  Result<Json> execute_program(const Call& call);
  Result<Json> list_programs(const Call& call);
  Result<Json> delete_program(const Call& call);

  // _programs(ctx): the session's programs, or ValueError outside a session. mu held.
  PyResult<SessionState*> session_programs(const Call& call);
};

void MockExecutor::Impl::add(std::string name, bool idempotent, bool builtin,
                             std::function<Result<Json>(const Call&)> run) {
  calls.try_emplace(name, 0);
  commands[std::move(name)] = Command{idempotent, builtin, std::move(run)};
}

void MockExecutor::Impl::register_commands() {
  using Member = Result<Json> (Impl::*)(const Call&);
  auto bind = [this](Member m) { return [this, m](const Call& c) { return (this->*m)(c); }; };
  auto constant = [](Json value) { return [value](const Call&) -> Result<Json> { return value; }; };
  // Built-ins (bridgepool_worker/builtin_commands.py); idempotency as registry.BUILTIN_COMMANDS.
  add("ping", true, true, constant("pong"));
  add("health_check", true, true, bind(&Impl::health_check));
  add("get_stats", true, true, bind(&Impl::get_stats));
  add("list_commands", true, true, bind(&Impl::list_commands));
  add("close_session", true, true, bind(&Impl::close_session_command));
  add("shutdown", false, true, constant(Json{{"shutting_down", true}}));
  // examples/handlers.py, with the idempotent flags of its @command decorators.
  add("echo", true, false, [](const Call& c) -> Result<Json> { return c.args; });
  add("sleep", true, false, bind(&Impl::sleep));
  add("fail", false, false, bind(&Impl::fail));
  add("crash", false, false, bind(&Impl::crash));
  add("compute", true, false, bind(&Impl::compute));
  add("whoami", true, false, bind(&Impl::whoami));
  add("spam", false, false, bind(&Impl::spam));
  add("stream", false, false, bind(&Impl::stream));
  add("configure", false, false, bind(&Impl::configure));
  add("get_config", true, false, bind(&Impl::get_config));
  add("create_program", false, false, bind(&Impl::create_program));
  add("execute_program", false, false, bind(&Impl::execute_program));
  add("list_programs", true, false, bind(&Impl::list_programs));
  add("delete_program", false, false, bind(&Impl::delete_program));
}

// ---- the call path ----

Result<Json> MockExecutor::Impl::run(std::optional<std::string_view> session,
                                     std::string_view command, const Json& args,
                                     const ExecuteOptions& options) {
  const TimePoint started = clock.now();
  if (auto valid = validate_request(session, command, args); !valid) {
    Error& e = valid.error();
    if (session) e.context.session_id = std::string(*session);
    e.context.adapter = "mock";
    classify_error(e, ClassifyInput{});
    if (options.report) *options.report = CallReport{"mock", "", 0, {}};
    return tl::unexpected(std::move(e));
  }
  Command cmd;
  std::uint64_t served_before = 0;
  {
    std::lock_guard lock(mu);
    served_before = requests_served;
    auto it = commands.find(std::string(command));
    if (it == commands.end()) {
      ++requests_served;
      ++errors;
      Raised unknown{"UnknownCommand",
                     fmt::format("unknown command {}; available commands: {}",
                                 py_repr(Json(std::string(command))), available_commands()),
                     false, true};
      return finish(tl::unexpected(python_error(unknown)), command, session, false, options,
                    started);
    }
    cmd = it->second;
    ++calls[it->first];
    if (session) {
      SessionState& state = sessions[std::string(*session)];
      if (!cmd.builtin) state.has_state = true;
    }
  }
  Result<Json> result = dispatch(cmd, command, Call{args, session, options, served_before});
  {
    std::lock_guard lock(mu);
    ++requests_served;
    if (!result) ++errors;
  }
  return finish(std::move(result), command, session, cmd.idempotent, options, started);
}

Result<Json> MockExecutor::Impl::dispatch(const Command& command, std::string_view name,
                                          const Call& call) {
  // Registered handlers are user code; the boundary turns their exceptions into an Error.
  try {
    return command.run(call);
  } catch (const std::exception& ex) {
    return make_error(ErrorCategory::kSystem,
                      fmt::format("mock handler for '{}' threw: {}", name, ex.what()));
  } catch (...) {
    return make_error(ErrorCategory::kSystem,
                      fmt::format("mock handler for '{}' threw a non-exception", name));
  }
}

Result<Json> MockExecutor::Impl::finish(Result<Json> result, std::string_view command,
                                        std::optional<std::string_view> session, bool idempotent,
                                        const ExecuteOptions& options, TimePoint started) const {
  if (options.report) *options.report = CallReport{"mock", config.worker_id, 1, {}};
  if (result) return result;
  Error& e = result.error();
  e.context.command = std::string(command);
  if (e.context.operation.empty()) e.context.operation = "execute";
  if (e.context.worker_id.empty()) e.context.worker_id = config.worker_id;
  if (session) e.context.session_id = std::string(*session);
  e.context.adapter = "mock";
  e.context.elapsed = std::chrono::duration_cast<std::chrono::microseconds>(clock.now() - started);
  // As the bridge classifies its replies: a request that reached a "worker" may have run.
  const bool may_have_run =
      e.category == ErrorCategory::kConnection || e.category == ErrorCategory::kCommunication ||
      e.category == ErrorCategory::kPython || e.category == ErrorCategory::kTimeout;
  classify_error(e, ClassifyInput{1, false, may_have_run, idempotent});
  return result;
}

std::string MockExecutor::Impl::available_commands() const {
  std::string names;
  for (const auto& [name, command] : commands) {
    if (!names.empty()) names += ", ";
    names += name;
  }
  return names;
}

double MockExecutor::Impl::uptime_s() const {
  const std::chrono::duration<double> up = clock.now() - started_at;
  return std::round(up.count() * 1e6) / 1e6;  // round(..., 6) like uptime_since()
}

// The connection error of a worker that exited during the request (Worker::exited_outcome).
Error MockExecutor::Impl::process_gone(std::string_view how) const {
  Error e(ErrorCategory::kConnection,
          fmt::format("worker {} (pid 0) exited during request ({}; simulated: the mock adapter "
                      "runs no process and cannot crash)",
                      config.worker_id, how));
  e.context.cause = fmt::format("simulated {}", how);
  return e;
}

// The timeout error of a worker that did not answer in time (Worker::call).
Error MockExecutor::Impl::no_reply(std::string_view command, std::string_view why) const {
  Error e(ErrorCategory::kTimeout,
          fmt::format("worker {} (pid 0) did not reply to '{}' before the deadline ({})",
                      config.worker_id, command, why));
  return e;
}

// ---- built-ins ----

Result<Json> MockExecutor::Impl::health_check(const Call& call) {
  return Json{{"status", "healthy"},
              {"pid", 0},
              {"worker_id", config.worker_id},
              {"uptime_s", uptime_s()},
              {"requests_served", call.served_before},
              {"rss_mb", 0.0},
              {"detail", Json::array()}};
}

Result<Json> MockExecutor::Impl::get_stats(const Call& call) {
  std::lock_guard lock(mu);
  const auto with_state = std::count_if(sessions.begin(), sessions.end(),
                                        [](const auto& s) { return s.second.has_state; });
  return Json{{"pid", 0},
              {"worker_id", config.worker_id},
              {"uptime_s", uptime_s()},
              {"requests_served", call.served_before},
              {"errors", errors},
              {"sessions", with_state},
              {"rss_mb", 0.0},
              {"commands", Json(calls)},
              {"handlers_version",
               config.handlers_version ? Json(*config.handlers_version) : Json(nullptr)}};
}

Result<Json> MockExecutor::Impl::list_commands(const Call&) {
  std::lock_guard lock(mu);
  Json list = Json::array();
  for (const auto& [name, command] : commands) {
    list.push_back(
        Json{{"name", name}, {"idempotent", command.idempotent}, {"builtin", command.builtin}});
  }
  return Json{{"commands", std::move(list)}};
}

Result<Json> MockExecutor::Impl::close_session_command(const Call& call) {
  Json session_id = nullptr;
  if (const Json* given = arg(call.args, "session_id"); given && !given->is_null()) {
    session_id = *given;
  } else if (call.session) {
    session_id = std::string(*call.session);
  }
  if (!session_id.is_null() && !session_id.is_string()) {
    return py_raise("InvalidArguments",
                    fmt::format("session_id must be a string, got {}", py_type(session_id)), false);
  }
  bool closed = false;
  if (session_id.is_string()) {
    std::lock_guard lock(mu);
    auto it = sessions.find(session_id.get<std::string>());
    // Only a session with state is closed, as in the runtime; one that only ran built-ins
    // stays known to close_session() on the executor.
    if (it != sessions.end() && it->second.has_state) {
      closed = true;
      sessions.erase(it);
    }
  }
  return Json{{"closed", closed}, {"session_id", session_id}};
}

// ---- examples/handlers.py ----

Result<Json> MockExecutor::Impl::sleep(const Call& call) {
  const Json* given = arg(call.args, "ms");
  const Json ms = given ? *given : Json(0);
  if (!ms.is_number() && !ms.is_boolean()) {  // ms / 1000.0
    return py_raise("TypeError", fmt::format("unsupported operand type(s) for /: '{}' and 'float'",
                                             py_type(ms)));
  }
  const double millis = ms.is_boolean() ? (ms.get<bool>() ? 1.0 : 0.0) : ms.get<double>();
  if (millis < 0) {
    return py_raise("ValueError", "sleep length must be non-negative");
  }
  const milliseconds timeout = call.options.timeout.value_or(config.request_timeout);
  if (millis >= static_cast<double>(timeout.count())) {
    return tl::unexpected(
        no_reply("sleep", fmt::format("simulated: a {} ms sleep outlasts the {} ms timeout",
                                      py_str(ms), timeout.count())));
  }
  const auto real = std::min<double>(millis, static_cast<double>(config.max_sleep.count()));
  if (real > 0) std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(real));
  return Json{{"slept_ms", ms}};
}

Result<Json> MockExecutor::Impl::fail(const Call& call) {
  const Json* type = arg(call.args, "type");
  const std::string wanted = type ? py_str(*type) : "RuntimeError";
  const auto& classes = exception_classes();
  auto it = classes.find(wanted);
  const std::string_view cls = it == classes.end() ? "RuntimeError" : it->second;
  if (auto refused = constructor_error(cls)) {
    return py_raise("TypeError", std::string(*refused));
  }
  const Json* message = arg(call.args, "message");
  const Json* retryable = arg(call.args, "retryable");
  std::optional<bool> marked;
  if (retryable && retryable->is_boolean() && retryable->get<bool>()) marked = true;
  return py_raise(std::string(cls), message ? py_str(*message) : std::string("requested failure"),
                  marked);
}

Result<Json> MockExecutor::Impl::crash(const Call& call) {
  if (const Json* sig = arg(call.args, "signal"); sig && !sig->is_null()) {
    auto n = py_int(*sig);
    if (!n) return py_raise(n.error());
    if (*n < 0 || *n > 64) {  // os.kill rejects it
      return py_raise("OSError", "[Errno 22] Invalid argument");
    }
    if (survives_signal(*n)) return Json{{"survived_signal", *n}};
    if (stops_process(*n)) {
      return tl::unexpected(
          no_reply("crash", fmt::format("simulated: signal {} would stop a real worker", *n)));
    }
    const char* name = sigabbrev_np(static_cast<int>(*n));
    return tl::unexpected(
        process_gone(fmt::format("killed by signal {} (SIG{})", *n, name ? name : "?")));
  }
  auto code = int_arg(call.args, "code", 1);
  if (!code) return py_raise(code.error());
  if (*code < std::numeric_limits<int>::min() || *code > std::numeric_limits<int>::max()) {
    return py_raise("OverflowError", "Python int too large to convert to C int");
  }
  return tl::unexpected(process_gone(fmt::format("exit code {}", *code & 0xff)));
}

Result<Json> MockExecutor::Impl::compute(const Call& call) {
  auto n = int_arg(call.args, "n", 100'000);
  if (!n) return py_raise(n.error());
  return Json{{"n", *n}, {"value", compute_value(*n)}};
}

Result<Json> MockExecutor::Impl::whoami(const Call& call) {
  return Json{{"pid", 0},
              {"worker_id", config.worker_id},
              {"requests_served", call.served_before},
              {"handlers_version",
               config.handlers_version ? Json(*config.handlers_version) : Json(nullptr)}};
}

Result<Json> MockExecutor::Impl::spam(const Call& call) {
  auto lines = int_arg(call.args, "lines", 100);
  if (!lines) return py_raise(lines.error());
  auto width = int_arg(call.args, "width", 80);  // evaluated (and checked) like the original
  if (!width) return py_raise(width.error());
  return Json{{"printed", *lines}};
}

Result<Json> MockExecutor::Impl::stream(const Call& call) {
  auto count = int_arg(call.args, "count", 3);
  if (!count) return py_raise(count.error());
  if (call.options.on_chunk) {
    for (std::int64_t i = 0; i < *count; ++i) call.options.on_chunk(Json{{"i", i}});
  }
  return Json{{"count", *count}};
}

Result<Json> MockExecutor::Impl::configure(const Call& call) {
  std::lock_guard lock(mu);
  for (const auto& [key, value] : call.args.items()) settings[key] = value;  // dict.update
  return Json{{"config", settings}};
}

Result<Json> MockExecutor::Impl::get_config(const Call&) {
  std::lock_guard lock(mu);
  return Json{{"config", settings}};
}

PyResult<SessionState*> MockExecutor::Impl::session_programs(const Call& call) {
  if (!call.session) return raise("ValueError", "programs need a session");
  return &sessions[std::string(*call.session)];
}

Result<Json> MockExecutor::Impl::create_program(const Call& call) {
  std::lock_guard lock(mu);
  auto state = session_programs(call);
  if (!state) return py_raise(state.error());
  const Json* given_signature = arg(call.args, "signature");
  const Json signature = given_signature ? *given_signature : Json(nullptr);
  auto parsed = parse_signature(signature);
  if (!parsed) return py_raise(parsed.error());
  auto& programs = (*state)->programs;
  std::string program_id;
  const Json* given_id = arg(call.args, "program_id");
  if (!given_id || given_id->is_null()) {
    std::int64_t counter = (*state)->program_counter;
    do {  // "prog-1", "prog-2", ... per session, skipping ids chosen by callers
      program_id = fmt::format("prog-{}", ++counter);
    } while (programs.count(program_id) != 0);
    (*state)->program_counter = counter;
  } else if (!given_id->is_string() || given_id->get_ref<const std::string&>().empty()) {
    return py_raise("ValueError", fmt::format("program_id must be a non-empty string, got {}",
                                              py_repr(*given_id)));
  } else {
    program_id = given_id->get<std::string>();
  }
  programs[program_id] = Program{signature.get<std::string>(), parsed->inputs, parsed->outputs};
  return Json{{"program_id", program_id}, {"inputs", parsed->inputs}, {"outputs", parsed->outputs}};
}

Result<Json> MockExecutor::Impl::execute_program(const Call& call) {
  Program program;
  const Json* given_id = arg(call.args, "program_id");
  const Json program_id = given_id ? *given_id : Json(nullptr);
  {
    std::lock_guard lock(mu);
    auto state = session_programs(call);
    if (!state) return py_raise(state.error());
    if (auto ok = check_hashable(program_id); !ok) return py_raise(ok.error());
    const auto& programs = (*state)->programs;
    auto it =
        program_id.is_string() ? programs.find(program_id.get<std::string>()) : programs.end();
    if (it == programs.end()) {
      return py_raise("KeyError", "program not found: " + py_str(program_id));
    }
    program = it->second;
  }
  const Json* given_inputs = arg(call.args, "inputs");
  const Json given = given_inputs && py_truthy(*given_inputs) ? *given_inputs : Json::object();
  if (!given.is_object()) {
    return py_raise("ValueError", "inputs must be an object");
  }
  std::vector<std::string> missing;
  Json inputs = Json::object();
  for (const auto& field : program.inputs) {
    auto it = given.find(field);
    if (it == given.end()) {
      missing.push_back(field);
    } else {
      inputs[field] = *it;  // extra fields are ignored
    }
  }
  if (!missing.empty()) {
    return py_raise("ValueError", fmt::format("missing input field(s) for {}: {}",
                                              py_str(program_id), fmt::join(missing, ", ")));
  }
  auto outputs = mock_language_model(inputs, program.outputs);
  if (!outputs) return py_raise(outputs.error());
  return Json{{"program_id", program_id}, {"outputs", std::move(*outputs)}};
}

Result<Json> MockExecutor::Impl::list_programs(const Call& call) {
  std::lock_guard lock(mu);
  auto state = session_programs(call);
  if (!state) return py_raise(state.error());
  Json ids = Json::array();
  for (const auto& [id, program] : (*state)->programs) ids.push_back(id);
  return Json{{"programs", std::move(ids)}};
}

Result<Json> MockExecutor::Impl::delete_program(const Call& call) {
  std::lock_guard lock(mu);
  auto state = session_programs(call);
  if (!state) return py_raise(state.error());
  const Json* given_id = arg(call.args, "program_id");
  if (given_id) {
    if (auto ok = check_hashable(*given_id); !ok) return py_raise(ok.error());
  }
  const bool deleted = given_id && given_id->is_string() &&
                       (*state)->programs.erase(given_id->get<std::string>()) > 0;
  return Json{{"deleted", deleted}};
}

// ---------------------------------------------------------------------------------------------
// Public API

MockExecutor::MockExecutor(MockExecutorConfig config, const Clock& clock)
    : impl_(std::make_unique<Impl>(std::move(config), clock)) {}

MockExecutor::~MockExecutor() = default;

Result<Json> MockExecutor::execute(std::string_view command, Json args,
                                   const ExecuteOptions& options) {
  return impl_->run(std::nullopt, command, args, options);
}

Result<Json> MockExecutor::execute_in_session(std::string_view session_id, std::string_view command,
                                              Json args, const ExecuteOptions& options) {
  return impl_->run(session_id, command, args, options);
}

Result<bool> MockExecutor::close_session(std::string_view session_id) {
  if (session_id.empty()) {
    Error e(ErrorCategory::kInvalidRequest, "session id is empty");
    e.context.operation = "close_session";
    e.context.adapter = "mock";
    classify_error(e, ClassifyInput{});
    return tl::unexpected(std::move(e));
  }
  std::lock_guard lock(impl_->mu);
  return impl_->sessions.erase(std::string(session_id)) > 0;
}

void MockExecutor::add_handler(std::string command, Handler handler, bool idempotent) {
  auto run = [handler = std::move(handler)](const Impl::Call& call) -> Result<Json> {
    return handler(call.args, call.session.value_or(std::string_view()));
  };
  std::lock_guard lock(impl_->mu);
  impl_->add(std::move(command), idempotent, false, std::move(run));
}

std::vector<std::string> MockExecutor::commands() const {
  std::lock_guard lock(impl_->mu);
  std::vector<std::string> names;
  for (const auto& [name, command] : impl_->commands) names.push_back(name);
  return names;
}

}  // namespace bridgepool
