#include "server/bearer_auth.h"

#include <cstdint>

namespace bridgepool::server {

bool constant_time_equal(std::string_view a, std::string_view b) {
  // A length difference is folded in too; bytes past the shorter string compare against 0.
  std::uint8_t diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < b.size(); ++i) {
    std::uint8_t x = i < a.size() ? static_cast<std::uint8_t>(a[i]) : 0;
    diff |= static_cast<std::uint8_t>(x ^ static_cast<std::uint8_t>(b[i]));
  }
  return diff == 0;
}

bool authorized(std::string_view authorization, std::string_view token) {
  if (token.empty()) return true;
  constexpr std::string_view kScheme = "Bearer ";
  if (authorization.size() < kScheme.size()) return false;
  // The scheme is case-insensitive (RFC 7235); compare it folded to lower case.
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    char c = authorization[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    char k = kScheme[i];
    if (k >= 'A' && k <= 'Z') k = static_cast<char>(k - 'A' + 'a');
    if (c != k) return false;
  }
  return constant_time_equal(authorization.substr(kScheme.size()), token);
}

}  // namespace bridgepool::server
