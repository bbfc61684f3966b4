// LabelLimits (metrics.h): the first N distinct values of a label pass, later ones are "other".
#include <algorithm>

#include "bridgepool/metrics.h"

namespace bridgepool {

void LabelLimits::set_limit(const std::string& label_name, std::size_t max_values) {
  std::lock_guard lock(mu_);
  limits_[label_name].max_values = max_values;
}

std::string LabelLimits::admit(const std::string& label_name, const std::string& value) {
  std::lock_guard lock(mu_);
  auto limit = limits_.find(label_name);
  if (limit == limits_.end() || value == kOther) return value;  // "other" takes no slot
  if (value.size() > kMaxValueBytes) return kOther;
  auto& seen = limit->second.seen;
  auto at = std::lower_bound(seen.begin(), seen.end(), value);
  if (at != seen.end() && *at == value) return value;
  // Once admitted, a value stays admitted: its series never moves to "other" (header paragraph).
  if (seen.size() >= limit->second.max_values) return kOther;
  seen.insert(at, value);
  return value;
}

std::size_t LabelLimits::admitted(const std::string& label_name) const {
  std::lock_guard lock(mu_);
  auto limit = limits_.find(label_name);
  return limit == limits_.end() ? 0 : limit->second.seen.size();
}

}  // namespace bridgepool
