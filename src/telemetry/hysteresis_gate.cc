#include "telemetry/hysteresis_gate.h"

namespace bridgepool::internal {

HysteresisGate::Change HysteresisGate::update(double value, TimePoint now) {
  const bool toward_change = active_ ? value <= threshold_.clear : value >= threshold_.raise;
  if (!toward_change) {
    pending_since_.reset();
    return Change::kNone;
  }
  if (!pending_since_) pending_since_ = now;
  const Duration hold = active_ ? threshold_.clear_hold : threshold_.raise_hold;
  if (now - *pending_since_ < hold) return Change::kNone;
  active_ = !active_;
  pending_since_.reset();
  return active_ ? Change::kRaised : Change::kCleared;
}

}  // namespace bridgepool::internal
