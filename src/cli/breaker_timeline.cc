#include "cli/breaker_timeline.h"

#include <algorithm>

namespace bridgepool::cli {

BreakerTimeline breaker_timeline(std::vector<BreakerObservation> observations, Duration fault_start,
                                 Duration fault_end) {
  std::sort(
      observations.begin(), observations.end(),
      [](const BreakerObservation& a, const BreakerObservation& b) { return a.after < b.after; });
  BreakerTimeline t;
  bool seen_not_closed = false;
  for (const auto& o : observations) {
    if (o.refused) ++(o.at < fault_start ? t.refused_before_fault : t.refused);
    if (o.after < fault_start) continue;
    bool open_now = o.refused || !o.closed;
    if (open_now && !t.opened_after) t.opened_after = o.after - fault_start;
    if (open_now) seen_not_closed = true;
    if (!open_now && seen_not_closed && o.after >= fault_end && !t.closed_after) {
      t.closed_after = o.after - fault_end;
    }
  }
  return t;
}

}  // namespace bridgepool::cli
