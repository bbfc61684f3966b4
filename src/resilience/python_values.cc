// Python's view of JSON values: see python_values.h. Each function reproduces what the named
// Python builtin does to a decoded JSON value, down to its error texts.
#include "resilience/python_values.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <utility>

namespace bridgepool::internal {
namespace {

// Deep enough for any real request; keeps the recursive helpers below off the end of the stack.
constexpr int kMaxDepth = 500;

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

std::int64_t saturate(long double x) {
  constexpr auto lo = std::numeric_limits<std::int64_t>::min();
  constexpr auto hi = std::numeric_limits<std::int64_t>::max();
  if (x <= static_cast<long double>(lo)) return lo;
  if (x >= static_cast<long double>(hi)) return hi;
  return static_cast<std::int64_t>(x);
}

constexpr std::string_view kPyWhitespace = " \t\n\v\f\r\x1c\x1d\x1e\x1f";

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

}  // namespace

// ---------------------------------------------------------------------------------------------
// Python exceptions

tl::unexpected<Raised> raise(std::string type, std::string message, std::optional<bool> retryable) {
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
                               std::optional<bool> retryable) {
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

std::string py_repr(const Json& v) {
  std::string out;
  append_py_repr(out, v);
  return out;
}

// str(x) of a decoded JSON value: the text itself for a string, else repr(x).
std::string py_str(const Json& v) { return v.is_string() ? v.get<std::string>() : py_repr(v); }

// json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False). nlohmann keeps object
// keys in a std::map, whose byte order is the code point order Python sorts by.
PyResult<void> append_py_json(std::string& out, const Json& v, int depth) {
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

std::string_view py_strip(std::string_view s) {
  const auto first = s.find_first_not_of(kPyWhitespace);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(kPyWhitespace) - first + 1);
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

}  // namespace bridgepool::internal
