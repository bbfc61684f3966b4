// RequestCounts: what the error reporter keeps per time bucket about calls that ended — how
// many, how many failed, and the failures by (error category, severity). Fixed-size arrays, so a
// bucket's memory does not depend on its input; a failure whose category or severity name is
// unknown counts in `errors` only (so errors >= the sum of by_kind).
// Thread-safety: plain data.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "bridgepool/error.h"

namespace bridgepool::internal {

inline constexpr std::size_t kCategoryCount =
    static_cast<std::size_t>(ErrorCategory::kInvalidRequest) + 1;
inline constexpr std::size_t kSeverityCount =
    static_cast<std::size_t>(ErrorSeverity::kCritical) + 1;

struct RequestCounts {
  std::uint64_t requests = 0;
  std::uint64_t errors = 0;
  std::array<std::array<std::uint64_t, kSeverityCount>, kCategoryCount> by_kind{};

  // One call that ended with `result` ("ok" or an error category name) and, for a failure,
  // `severity` (a severity name; empty or unknown: not broken down).
  static RequestCounts one(std::string_view result, std::string_view severity) {
    RequestCounts c;
    c.requests = 1;
    if (result == "ok") return c;
    c.errors = 1;
    auto category = category_from_name(result);
    auto level = severity_from_name(severity);
    if (category && level) {
      c.by_kind[static_cast<std::size_t>(*category)][static_cast<std::size_t>(*level)] = 1;
    }
    return c;
  }

  RequestCounts& operator+=(const RequestCounts& other) {
    requests += other.requests;
    errors += other.errors;
    for (std::size_t c = 0; c < kCategoryCount; ++c) {
      for (std::size_t s = 0; s < kSeverityCount; ++s) by_kind[c][s] += other.by_kind[c][s];
    }
    return *this;
  }

  // errors / requests; 0 without requests.
  double error_rate() const {
    return requests == 0 ? 0.0 : static_cast<double>(errors) / static_cast<double>(requests);
  }
};

}  // namespace bridgepool::internal
