#include "pool/spare_set.h"

#include <algorithm>

namespace bridgepool {

void SpareSet::note_start(std::uint64_t number) {
  std::lock_guard lock(mu_);
  starting_.insert(number);
}

bool SpareSet::end_start(std::uint64_t number) {
  std::lock_guard lock(mu_);
  return starting_.erase(number) > 0;
}

void SpareSet::add(const WorkerPtr& worker, Tracking tracking) {
  std::lock_guard lock(mu_);
  members_.push_back(Member{Entry{worker, std::move(tracking)}, false});
}

std::optional<SpareSet::Entry> SpareSet::take_for_promotion(std::uint64_t generation) {
  std::lock_guard lock(mu_);
  auto it = std::find_if(members_.begin(), members_.end(), [&](const Member& m) {
    return !m.probing && m.entry.tracking.generation == generation;
  });
  if (it == members_.end()) return std::nullopt;
  Entry out = std::move(it->entry);
  members_.erase(it);
  return out;
}

bool SpareSet::remove(const WorkerPtr& worker) {
  std::lock_guard lock(mu_);
  return std::erase_if(members_, [&](const Member& m) { return m.entry.worker == worker; }) > 0;
}

std::vector<WorkerPtr> SpareSet::take_if(const std::function<bool(const Tracking&)>& pick) {
  std::vector<WorkerPtr> taken;
  std::lock_guard lock(mu_);
  std::erase_if(members_, [&](const Member& m) {
    if (m.probing || !pick(m.entry.tracking)) return false;
    taken.push_back(m.entry.worker);
    return true;
  });
  return taken;
}

std::vector<WorkerPtr> SpareSet::begin_probes(const std::function<bool(Tracking&)>& pick) {
  std::vector<WorkerPtr> out;
  std::lock_guard lock(mu_);
  for (auto& m : members_) {
    if (m.probing || !pick(m.entry.tracking)) continue;
    m.probing = true;
    out.push_back(m.entry.worker);
  }
  return out;
}

bool SpareSet::end_probe(const WorkerPtr& worker, const std::function<void(Tracking&)>& fn) {
  std::lock_guard lock(mu_);
  for (auto& m : members_) {
    if (m.entry.worker != worker) continue;
    m.probing = false;
    fn(m.entry.tracking);
    return true;
  }
  return false;
}

bool SpareSet::with_tracking(const std::string& worker_id,
                             const std::function<void(Tracking&)>& fn) {
  std::lock_guard lock(mu_);
  auto it = find_locked(members_, worker_id);
  if (it == members_.end()) return false;
  fn(it->entry.tracking);
  return true;
}

bool SpareSet::read_tracking(const std::string& worker_id,
                             const std::function<void(const Tracking&)>& fn) const {
  std::lock_guard lock(mu_);
  auto it = find_locked(members_, worker_id);
  if (it == members_.end()) return false;
  fn(it->entry.tracking);
  return true;
}

std::vector<WorkerPtr> SpareSet::workers() const {
  std::lock_guard lock(mu_);
  std::vector<WorkerPtr> out;
  out.reserve(members_.size());
  for (const auto& m : members_) out.push_back(m.entry.worker);
  return out;
}

std::size_t SpareSet::size() const {
  std::lock_guard lock(mu_);
  return members_.size();
}

}  // namespace bridgepool
