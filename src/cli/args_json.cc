#include "cli/args_json.h"

#include <fmt/format.h>

namespace bridgepool::cli {

std::size_t json_nesting_depth(std::string_view text, std::size_t limit) {
  std::size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      // Inside a string only an unescaped '"' matters; brackets are text.
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) return deepest;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

std::string printable_excerpt(std::string_view text, std::size_t max) {
  std::string out;
  for (char c : text) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7F) {
      out += c;
    } else {
      out += fmt::format("\\x{:02x}", byte);
    }
  }
  return out;
}

tl::expected<nlohmann::json, std::string> parse_args_object(std::string_view text,
                                                            std::string_view source) {
  if (json_nesting_depth(text, kMaxArgsDepth) > kMaxArgsDepth) {
    return tl::unexpected(fmt::format("{} is nested deeper than {} levels (input starts: {})",
                                      source, kMaxArgsDepth, printable_excerpt(text, 40)));
  }
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line 1, column 2: ...";
    // the bracketed id means nothing to a user of the command.
    std::string_view why = e.what();
    if (auto close = why.find("] "); why.starts_with("[json.exception.") && close != why.npos) {
      why.remove_prefix(close + 2);
    }
    return tl::unexpected(fmt::format("{} is not valid JSON: {} (input: {})", source,
                                      printable_excerpt(why, 200), printable_excerpt(text)));
  }
  if (!value.is_object()) {
    return tl::unexpected(fmt::format("{} must be a JSON object, got {}: {}", source,
                                      value.type_name(), printable_excerpt(text)));
  }
  auto with_binary = from_base64_objects(std::move(value));
  if (!with_binary)
    return tl::unexpected(fmt::format("{}: {}", source, with_binary.error().message));
  return std::move(*with_binary);
}

}  // namespace bridgepool::cli
