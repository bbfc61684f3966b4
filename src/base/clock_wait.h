// Waiting against an injected Clock (bridgepool/clock.h): condition variables, sleeps and the
// timeouts of poll/epoll, for the real clock and for a test's ManualClock alike.
//
// With the real clock these are plain waits to the deadline. With a manual clock a deadline is a
// point in *its* time, which moves only when a test advances it, so a wait lasts at most
// Clock::wait_slice() of real time and then reads the clock again: a thread blocked on a manual
// deadline returns within a millisecond of the test advancing past it. Waits may return early
// (notifications, spurious wake-ups): callers loop on their condition, as with any cv.
// Thread-safety: free functions, any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "bridgepool/clock.h"

namespace bridgepool {

// Blocks until notified, a spurious wake-up, or `deadline` on `clock`. Returns false once the
// deadline has passed (the caller's timeout), true otherwise.
bool wait_until(const Clock& clock, std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                TimePoint deadline);

// Waits until `done()` holds (true) or the deadline passes (false, after one last look).
template <typename Predicate>
bool wait_until(const Clock& clock, std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                TimePoint deadline, Predicate done) {
  while (!done()) {
    if (!wait_until(clock, cv, lock, deadline)) return done();
  }
  return true;
}

// Sleeps until `deadline` on `clock` (returns at once if it has passed).
void sleep_until(const Clock& clock, TimePoint deadline);

// The real time to block in poll/epoll before looking at `clock` again on the way to `deadline`:
// deadline - now, capped by the clock's wait slice, never negative.
Duration real_wait(const Clock& clock, TimePoint deadline);

}  // namespace bridgepool
