// RetryBudget: the limit arithmetic and the compare-and-swap admission of a retry.
#include "bridgepool/retry_budget.h"

#include <algorithm>
#include <cmath>

namespace bridgepool {
namespace {

std::uint64_t to_parts_per_million(double ratio) {
  if (std::isnan(ratio)) return 0;
  // Rounded, so 0.2 (stored as 0.20000000000000001) is exactly 200'000.
  return static_cast<std::uint64_t>(std::llround(std::clamp(ratio, 0.0, 1.0) * 1e6));
}

}  // namespace

RetryBudget::RetryBudget(double ratio, std::uint32_t min_concurrent)
    : ratio_ppm_(to_parts_per_million(ratio)), min_concurrent_(min_concurrent) {}

std::uint32_t RetryBudget::retry_limit(std::uint32_t requests_in_flight) const {
  // 40 requests at 200'000 ppm: 40 · 200'000 / 10^6 = 8. The product is below 2^32 · 10^6 < 2^52
  // and the quotient below 2^32 (ratio <= 1), so neither overflows.
  const std::uint64_t by_ratio = requests_in_flight * ratio_ppm_ / kPartsPerMillion;
  return std::max(min_concurrent_, static_cast<std::uint32_t>(by_ratio));
}

bool RetryBudget::try_begin_retry() {
  const std::uint32_t limit = retry_limit(requests_in_flight_.load(std::memory_order_relaxed));
  std::uint32_t retries = retries_in_flight_.load(std::memory_order_relaxed);
  // Increment only from a value below the limit; a failed CAS reloads `retries` and checks again,
  // so two callers racing for the last slot cannot both take it.
  while (retries < limit) {
    if (retries_in_flight_.compare_exchange_weak(retries, retries + 1, std::memory_order_relaxed)) {
      granted_.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
  }
  denied_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

void RetryBudget::decrement(std::atomic<std::uint32_t>& counter) {
  std::uint32_t value = counter.load(std::memory_order_relaxed);
  while (value > 0 && !counter.compare_exchange_weak(value, value - 1, std::memory_order_relaxed)) {
  }
}

RetryBudget::Counters RetryBudget::counters() const {
  Counters c;
  c.granted = granted_.load(std::memory_order_relaxed);
  c.denied = denied_.load(std::memory_order_relaxed);
  c.requests_in_flight = requests_in_flight_.load(std::memory_order_relaxed);
  c.retries_in_flight = retries_in_flight_.load(std::memory_order_relaxed);
  return c;
}

}  // namespace bridgepool
