// CheckoutQueue: the FIFO of callers waiting for a worker, with deadlines and a bound (pure).
//
// The pool keeps one, under its mutex. A waiter is a ticket with a deadline; when a worker comes
// back, pop_next(now) gives the oldest waiter whose deadline has not passed (expired ones are
// dropped on the way: they are timing out and must not be handed a worker). push() refuses when
// max_waiters are already queued, so the pool can fail fast with a resource error (backpressure)
// instead of letting latency grow without bound. Time is passed in, so tests use a ManualClock.
// Thread-safety: none; the pool's mutex guards it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "bridgepool/clock.h"

namespace bridgepool {

class CheckoutQueue {
 public:
  using Ticket = std::uint64_t;

  explicit CheckoutQueue(std::size_t max_waiters) : max_waiters_(max_waiters) {}

  // Queues a waiter. Returns nullopt when the queue is full.
  std::optional<Ticket> push(TimePoint deadline);
  // Oldest waiter still within its deadline; expired waiters before it are removed and listed in
  // `expired` (if given).
  std::optional<Ticket> pop_next(TimePoint now, std::vector<Ticket>* expired = nullptr);
  // Removes a waiter (it timed out or was served elsewhere). False if it was not queued.
  bool remove(Ticket ticket);
  // Removes and returns every waiter whose deadline is <= now.
  std::vector<Ticket> expire(TimePoint now);
  // Removes and returns all waiters (shutdown).
  std::vector<Ticket> drain();

  std::size_t size() const { return waiters_.size(); }
  bool empty() const { return waiters_.empty(); }
  std::size_t max_waiters() const { return max_waiters_; }

 private:
  struct Waiter {
    Ticket ticket;
    TimePoint deadline;
  };
  std::size_t max_waiters_;
  std::deque<Waiter> waiters_;
  Ticket next_ticket_ = 1;
};

}  // namespace bridgepool
