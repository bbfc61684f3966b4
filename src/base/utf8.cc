#include "base/utf8.h"

#include <cstdint>
#include <cstring>

namespace bridgepool {

std::size_t invalid_utf8_at(std::string_view text) {
  const auto* begin = reinterpret_cast<const unsigned char*>(text.data());
  const unsigned char* p = begin;
  const unsigned char* end = begin + text.size();
  while (p < end) {
    // Fast path: eight ASCII bytes at once (no byte has its high bit set).
    if (end - p >= 8) {
      std::uint64_t chunk;
      std::memcpy(&chunk, p, sizeof chunk);
      if ((chunk & 0x8080808080808080ULL) == 0) {
        p += 8;
        continue;
      }
    }
    const unsigned char lead = *p;
    if (lead < 0x80) {
      ++p;
      continue;
    }
    std::ptrdiff_t length;
    unsigned char low = 0x80, high = 0xBF;  // allowed range of the second byte
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      if (lead == 0xE0) low = 0xA0;   // E0 80..9F would be overlong
      if (lead == 0xED) high = 0x9F;  // ED A0..BF are the UTF-16 surrogates
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      if (lead == 0xF0) low = 0x90;   // overlong
      if (lead == 0xF4) high = 0x8F;  // above U+10FFFF
    } else {
      return static_cast<std::size_t>(p - begin);  // continuation byte, C0/C1, or F5..FF
    }
    const auto at = static_cast<std::size_t>(p - begin);
    if (end - p < length || p[1] < low || p[1] > high) return at;
    for (std::ptrdiff_t k = 2; k < length; ++k) {
      if ((p[k] & 0xC0) != 0x80) return at;
    }
    p += length;
  }
  return std::string_view::npos;
}

}  // namespace bridgepool
