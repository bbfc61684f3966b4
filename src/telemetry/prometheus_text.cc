#include "telemetry/prometheus_text.h"

#include <cmath>
#include <cstdint>

#include <fmt/format.h>

#include "base/utf8.h"

namespace bridgepool::prometheus_text {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

bool name_char(char c, bool first, bool colon) {
  const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  const bool digit = c >= '0' && c <= '9';
  return alpha || (colon && c == ':') || (!first && digit);
}

bool valid_name(std::string_view name, bool colon) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!name_char(name[i], i == 0, colon)) return false;
  }
  return true;
}

// Appends `text` (made valid UTF-8) with `escape(c)` deciding each byte's spelling.
template <typename Escape>
void append_escaped(std::string& out, std::string_view text, Escape escape) {
  const std::string clean = sanitize_utf8(text);
  for (char c : clean) escape(out, c);
}

}  // namespace

bool valid_metric_name(std::string_view name) { return valid_name(name, true); }

bool valid_label_name(std::string_view name) {
  return valid_name(name, false) && name.substr(0, 2) != "__";
}

std::string sanitize_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    const std::size_t bad = invalid_utf8_at(text);
    if (bad == std::string_view::npos) {
      out.append(text);
      break;
    }
    out.append(text.substr(0, bad));
    out.append(kReplacement);
    text.remove_prefix(bad + 1);
  }
  return out;
}

void append_label_value(std::string& out, std::string_view value) {
  append_escaped(out, value, [](std::string& o, char c) {
    if (c == '\\') {
      o += "\\\\";
    } else if (c == '"') {
      o += "\\\"";
    } else if (c == '\n') {
      o += "\\n";
    } else {
      o += c;
    }
  });
}

void append_help(std::string& out, std::string_view help) {
  append_escaped(out, help, [](std::string& o, char c) {
    if (c == '\\') {
      o += "\\\\";
    } else if (c == '\n') {
      o += "\\n";
    } else {
      o += c;
    }
  });
}

void append_number(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
  } else {
    // fmt's "{}" is the shortest round-trip form ("0.005", "1e-05", "3").
    fmt::format_to(std::back_inserter(out), "{}", value);
  }
}

void append_number(std::string& out, std::uint64_t value) {
  fmt::format_to(std::back_inserter(out), "{}", value);
}

std::string format_labels(const std::vector<std::string>& names,
                          const std::vector<std::string>& values) {
  if (names.empty()) return {};
  std::string out = "{";
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ',';
    out += names[i];
    out += "=\"";
    append_label_value(out, values[i]);
    out += '"';
  }
  out += '}';
  return out;
}

std::string with_label(const std::string& labels, std::string_view name, std::string_view value) {
  std::string out = labels.empty() ? std::string("{") : labels.substr(0, labels.size() - 1) + ",";
  out.append(name);
  out += "=\"";
  append_label_value(out, value);
  out += "\"}";
  return out;
}

}  // namespace bridgepool::prometheus_text
