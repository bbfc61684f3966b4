#include "pool/checkout_queue.h"

#include <algorithm>

namespace bridgepool {

std::optional<CheckoutQueue::Ticket> CheckoutQueue::push(TimePoint deadline) {
  if (waiters_.size() >= max_waiters_) return std::nullopt;
  Ticket t = next_ticket_++;
  waiters_.push_back(Waiter{t, deadline});
  return t;
}

std::optional<CheckoutQueue::Ticket> CheckoutQueue::pop_next(TimePoint now,
                                                             std::vector<Ticket>* expired) {
  while (!waiters_.empty()) {
    Waiter w = waiters_.front();
    waiters_.pop_front();
    if (w.deadline > now) return w.ticket;
    if (expired) expired->push_back(w.ticket);
  }
  return std::nullopt;
}

bool CheckoutQueue::remove(Ticket ticket) {
  auto it = std::find_if(waiters_.begin(), waiters_.end(),
                         [&](const Waiter& w) { return w.ticket == ticket; });
  if (it == waiters_.end()) return false;
  waiters_.erase(it);
  return true;
}

std::vector<CheckoutQueue::Ticket> CheckoutQueue::expire(TimePoint now) {
  std::vector<Ticket> out;
  std::erase_if(waiters_, [&](const Waiter& w) {
    if (w.deadline > now) return false;
    out.push_back(w.ticket);
    return true;
  });
  return out;
}

std::vector<CheckoutQueue::Ticket> CheckoutQueue::drain() {
  std::vector<Ticket> out;
  for (const auto& w : waiters_) out.push_back(w.ticket);
  waiters_.clear();
  return out;
}

}  // namespace bridgepool
