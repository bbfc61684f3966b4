// HysteresisGate: the raise/clear decision of one alert rule, apart from what the rule measures.
//
// Inactive, the gate opens (raises) once value >= raise has held at every update for raise_hold;
// active, it closes (clears) once value <= clear has held for clear_hold. A value between clear
// and raise changes nothing, and any update that breaks the condition restarts its hold. Example,
// raise 0.10, clear 0.05, holds 0: 0.12 raises; 0.09, 0.11, 0.06 keep it raised (no flapping
// around 0.10); 0.05 clears. "Held" is judged at the updates only (the reporter's evaluations),
// with the time the caller passes. A NaN value never satisfies either condition.
// Thread-safety: none; the owner locks.
#pragma once

#include <optional>

#include "bridgepool/clock.h"
#include "bridgepool/error_reporter.h"

namespace bridgepool::internal {

class HysteresisGate {
 public:
  enum class Change { kNone, kRaised, kCleared };

  explicit HysteresisGate(const AlertThreshold& threshold) : threshold_(threshold) {}

  // Feeds the value measured at `now`; returns whether the gate raised or cleared.
  Change update(double value, TimePoint now);
  bool active() const { return active_; }

 private:
  AlertThreshold threshold_;
  bool active_ = false;
  std::optional<TimePoint> pending_since_;  // since when the condition for a change has held
};

}  // namespace bridgepool::internal
