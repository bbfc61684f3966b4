// RespawnBackoff: how long to wait before starting a worker again after start-up failures (pure).
//
// The first replacement after a worker died in service starts at once (capacity matters more than
// caution). Each consecutive *start-up* failure (spawn error, import error, no handshake) doubles
// the delay from `initial` up to `max`: with the defaults 100 ms, 200 ms, 400 ms ... 10 s, so a
// broken handler module costs ~12 spawns in the first minute instead of a spawn storm. A worker
// that completes its handshake resets the count.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace bridgepool {

struct RespawnBackoff {
  std::chrono::milliseconds initial{100};
  std::chrono::milliseconds max{10'000};

  std::chrono::milliseconds delay(std::uint32_t consecutive_failures) const {
    if (consecutive_failures == 0) return std::chrono::milliseconds(0);
    std::uint32_t doublings = std::min<std::uint32_t>(consecutive_failures - 1, 30);
    auto d = initial * (std::int64_t{1} << doublings);
    return std::min<std::chrono::milliseconds>(d, max);
  }
};

}  // namespace bridgepool
