// SpareSet: a pool's warm spares (PoolConfig::spare_workers) — workers that completed their
// handshake and init commands and are kept aside, never handed to a caller — and which starts
// in flight are for spares. Membership here is what makes a worker a spare: the one that takes a
// spare out (promotion, exit, failed probe, recycling, old generation, shutdown) owns what
// follows, exactly once, as WorkerRegistry::remove() does for workers in service.
//
// A spare being probed stays a member (its exit must still be noticed) but is neither promoted
// nor taken by take_if() until its probe ends: nothing else may write to its pipe meanwhile.
// Capacity counts spares (the authority for starting decisions); this holds the workers.
// Thread-safety: every method from any thread; one mutex, a leaf (no callback runs under it
// except the caller's `pick` / `fn`, which must only touch the Tracking given).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "pool/worker_registry.h"

namespace bridgepool {

class SpareSet {
 public:
  struct Entry {
    WorkerPtr worker;
    Tracking tracking;
  };

  // The start with this worker number is a spare's.
  void note_start(std::uint64_t number);
  // The start of `number` ended (ready or failed): true if it was a spare's (forgotten now).
  bool end_start(std::uint64_t number);

  // A started spare joins the set.
  void add(const WorkerPtr& worker, Tracking tracking);
  // Takes the spare of `generation` kept longest (not one being probed); nullopt if none.
  std::optional<Entry> take_for_promotion(std::uint64_t generation);
  // Takes `worker` out of the set (false if it is not a spare, or no longer).
  bool remove(const WorkerPtr& worker);
  // Takes out the spares (not being probed) `pick` chooses.
  std::vector<WorkerPtr> take_if(const std::function<bool(const Tracking&)>& pick);

  // Marks the spares (not being probed) `pick` chooses as being probed and returns them.
  std::vector<WorkerPtr> begin_probes(const std::function<bool(Tracking&)>& pick);
  // A probe ended: runs `fn` on the spare's Tracking and makes it promotable again. False if it
  // left the set meanwhile.
  bool end_probe(const WorkerPtr& worker, const std::function<void(Tracking&)>& fn);

  // Runs `fn` on the Tracking of spare `worker_id`; false if it is not a spare.
  bool with_tracking(const std::string& worker_id, const std::function<void(Tracking&)>& fn);
  bool read_tracking(const std::string& worker_id,
                     const std::function<void(const Tracking&)>& fn) const;
  std::vector<WorkerPtr> workers() const;
  std::size_t size() const;

 private:
  struct Member {
    Entry entry;
    bool probing = false;
  };

  // mu_ held: the member holding `worker_id` in `members` (members_, const or not), or end().
  template <typename Members>
  static auto find_locked(Members& members, const std::string& worker_id) {
    return std::find_if(members.begin(), members.end(),
                        [&](const Member& m) { return m.entry.worker->id() == worker_id; });
  }

  mutable std::mutex mu_;
  std::vector<Member> members_;  // in the order they became ready
  std::unordered_set<std::uint64_t> starting_;
};

}  // namespace bridgepool
