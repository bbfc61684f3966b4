// UTF-8 validation (RFC 3629): well-formed sequences only — no overlong forms, no surrogates
// (U+D800..U+DFFF), nothing above U+10FFFF. Requests are checked before they are sent, because
// the JSON encoder would otherwise replace invalid bytes with U+FFFD, silently turning two
// different session ids into one. ASCII is checked eight bytes at a time.
// Thread-safety: pure.
#pragma once

#include <cstddef>
#include <string_view>

namespace bridgepool {

// Offset of the first byte that does not start a well-formed sequence, or npos if all is valid.
std::size_t invalid_utf8_at(std::string_view text);
inline bool is_valid_utf8(std::string_view text) {
  return invalid_utf8_at(text) == std::string_view::npos;
}
// The longest prefix of `text` that is valid UTF-8 (all of it, usually): safe to log or send.
inline std::string_view valid_utf8_prefix(std::string_view text) {
  return text.substr(0, invalid_utf8_at(text));
}

}  // namespace bridgepool
