#include "pool/pending_closes.h"

#include <algorithm>
#include <iterator>

namespace bridgepool {

void PendingCloses::add(const std::string& worker_id, std::string session_id) {
  std::lock_guard lock(mu_);
  by_worker_[worker_id].push_back(std::move(session_id));
}

bool PendingCloses::take(const std::string& worker_id, std::string_view session_id) {
  std::lock_guard lock(mu_);
  auto it = by_worker_.find(worker_id);
  if (it == by_worker_.end()) return false;
  const auto before = it->second.size();
  std::erase(it->second, session_id);
  const bool found = it->second.size() != before;
  if (it->second.empty()) by_worker_.erase(it);
  return found;
}

std::vector<std::string> PendingCloses::take_some(const std::string& worker_id, std::size_t max) {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  auto it = by_worker_.find(worker_id);
  if (it == by_worker_.end()) return out;
  auto& queued = it->second;
  const std::size_t n = std::min(queued.size(), max);
  out.assign(std::make_move_iterator(queued.begin()), std::make_move_iterator(queued.begin() + n));
  queued.erase(queued.begin(), queued.begin() + n);
  if (queued.empty()) by_worker_.erase(it);
  return out;
}

bool PendingCloses::owes(const std::string& worker_id) const {
  std::lock_guard lock(mu_);
  return by_worker_.contains(worker_id);
}

bool PendingCloses::empty() const {
  std::lock_guard lock(mu_);
  return by_worker_.empty();
}

void PendingCloses::drop_worker(const std::string& worker_id) {
  std::lock_guard lock(mu_);
  by_worker_.erase(worker_id);
}

}  // namespace bridgepool
