// BreakerRegistry: breakers by name (include/bridgepool/circuit_breaker.h).
//
// The registry's mutex guards only the map; breakers are created under it (so two callers asking
// for a new name at once get the same breaker) but every call into a breaker happens after it is
// released, so a slow snapshot or an event handler never blocks a lookup.
#include <utility>

#include "bridgepool/circuit_breaker.h"

namespace bridgepool {

BreakerRegistry::BreakerRegistry(const Clock& clock, std::shared_ptr<EventBus> events)
    : clock_(clock), events_(std::move(events)) {}

std::shared_ptr<CircuitBreaker> BreakerRegistry::get_or_create(std::string_view name,
                                                               const CircuitBreakerConfig& config) {
  std::lock_guard lock(mu_);
  if (auto it = breakers_.find(name); it != breakers_.end()) return it->second;
  auto breaker = std::make_shared<CircuitBreaker>(std::string(name), config, clock_, events_);
  breakers_.emplace(std::string(name), breaker);
  return breaker;
}

std::shared_ptr<CircuitBreaker> BreakerRegistry::find(std::string_view name) const {
  std::lock_guard lock(mu_);
  auto it = breakers_.find(name);
  return it == breakers_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<CircuitBreaker>> BreakerRegistry::all() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<CircuitBreaker>> out;
  out.reserve(breakers_.size());
  for (const auto& [name, breaker] : breakers_) out.push_back(breaker);  // already sorted by name
  return out;
}

std::vector<BreakerSnapshot> BreakerRegistry::snapshots() const {
  std::vector<BreakerSnapshot> out;
  for (const auto& breaker : all()) out.push_back(breaker->snapshot());
  return out;
}

void BreakerRegistry::reset_all() {
  for (const auto& breaker : all()) breaker->reset();
}

std::size_t BreakerRegistry::size() const {
  std::lock_guard lock(mu_);
  return breakers_.size();
}

}  // namespace bridgepool
