#include "base/clock_wait.h"

#include <algorithm>
#include <thread>

namespace bridgepool {

Duration real_wait(const Clock& clock, TimePoint deadline) {
  Duration left = std::max(Duration::zero(), deadline - clock.now());
  if (auto slice = clock.wait_slice()) left = std::min(left, *slice);
  return left;
}

bool wait_until(const Clock& clock, std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                TimePoint deadline) {
  if (!clock.wait_slice()) {
    // The real clock: TimePoint is a steady_clock time point, so the cv can wait for it itself.
    return cv.wait_until(lock, deadline) == std::cv_status::no_timeout || clock.now() < deadline;
  }
  if (clock.now() >= deadline) return false;
  cv.wait_for(lock, real_wait(clock, deadline));
  return clock.now() < deadline;
}

void sleep_until(const Clock& clock, TimePoint deadline) {
  for (Duration left = real_wait(clock, deadline); left > Duration::zero();
       left = real_wait(clock, deadline)) {
    std::this_thread::sleep_for(left);
  }
}

}  // namespace bridgepool
