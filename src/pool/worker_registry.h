// WorkerRegistry: the workers in service and who holds them — the idle stack, the degraded list,
// the borrowed count, the per-worker bookkeeping (Tracking), and the callers waiting for a
// worker (FIFO, with deadlines and a bound; callers waiting for one particular worker first).
//
// This is the pool's hot path: checkout() and check_in() are one short critical section each
// when a worker is idle. It holds no policy of its own: whether a worker may go back into
// service after a request is decided by the caller's function, run under the lock with the
// worker's Tracking; whether to start another worker for a waiting caller, and whether to fail
// fast while starts keep failing, by the Hooks (the pool's Capacity).
//
// Worker life in the registry:
//   admit -> idle <-> borrowed (checkout / check_in, take_idle) -> degraded <-> borrowed (probes)
//   remove (any time; a borrowed worker stays borrowed until its holder calls release)
//
// Lock order: mu_ is taken first; Hooks (Capacity) and the score function given to
// take_least_loaded (SessionAffinity) are called under it and must only take leaf locks. A
// Worker's own mutex may be taken under mu_. Nothing calls back into the registry under mu_.
// Thread-safety: every method from any thread. Waiters are woken after mu_ is released, so the
// woken thread does not block on mu_ at once.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bridgepool/clock.h"
#include "bridgepool/error.h"
#include "pool/checkout_queue.h"
#include "pool/health_tracker.h"
#include "pool/recycle_policy.h"
#include "worker/worker.h"

namespace bridgepool {

using WorkerPtr = std::shared_ptr<Worker>;

// Bookkeeping for one worker in service.
struct Tracking {
  HealthTracker health;
  std::uint64_t recycle_limit = 0;  // requests; 0 = no limit
  double rss_mb = 0;
  std::optional<RecycleReason> recycle_due = std::nullopt;  // set once a limit is reached
  std::uint64_t generation = 1;
  bool retire_when_idle = false;  // rolling restart: leave service at the next checkin
  TimePoint last_used{};          // last checkin (for retiring idle overflow workers)
};

// Why a worker coming back from a request must leave service instead.
struct Leave {
  TransitionReason reason = TransitionReason::kRecycled;
  std::string detail;
  bool recycle_reserved = false;  // Capacity::try_begin_recycle() counted it
};

struct RegistryCounts {
  std::size_t live = 0;  // in service: idle, borrowed or degraded
  std::size_t idle = 0;
  std::size_t busy = 0;  // borrowed (requests, probes, session closes)
  std::size_t degraded = 0;
  std::size_t queue_length = 0;
};

class WorkerRegistry {
 public:
  struct Hooks {
    std::function<void()> on_wait;                         // a caller is about to wait
    std::function<std::optional<Error>()> failing_starts;  // none in service: fail fast with?
    std::function<std::size_t()> starting;                 // for messages ("2 starting")
  };

  WorkerRegistry(const Clock& clock, std::size_t max_queue, Hooks hooks);

  // ---- membership ----
  // The worker joins service: handed to the oldest caller waiting for it or for any worker, or
  // put on the idle stack. `gate`, if given, runs under the registry's lock first and may refuse
  // (false: not admitted), so whatever it counts changes atomically with the admission.
  bool admit(const WorkerPtr& worker, Tracking tracking, const std::function<bool()>& gate = {});
  // The worker leaves service (false if it was not in it). Callers waiting for this worker in
  // particular fail with `gone`. A borrowed worker stays borrowed until release().
  bool remove(const WorkerPtr& worker, const Error& gone);
  WorkerPtr find(std::uint64_t number) const;  // in service, or null
  std::vector<WorkerPtr> in_service() const;

  // ---- checkout ----
  // What a waiting caller lets the thread that hands it a worker do first: check_in() runs it
  // with the worker, outside the lock, before it wakes the caller — so the caller's request is
  // on its way to the worker while the caller wakes up (a wake-up across CPUs costs ~25 µs that
  // the worker would otherwise sit idle). Must not block for long nor call into the registry;
  // the caller learns from its own state whether it ran. Not run when a new worker is admitted.
  using Handoff = std::function<void(const WorkerPtr&)>;

  // An idle worker — the most recently used, but not `avoid` when another is idle — else waits
  // in FIFO order until `deadline` (`handoff`, if given, as above). Errors: resource (closed,
  // queue full), timeout (saying how long it waited and how loaded the pool is), or the hooks'
  // failing_starts error.
  Result<WorkerPtr> checkout(TimePoint deadline, std::string_view avoid = {},
                             const Handoff* handoff = nullptr);
  // Exactly `target`, waiting while it is busy (such callers are served before the FIFO queue:
  // they cannot use any other worker). Connection error if it leaves service first.
  Result<WorkerPtr> checkout_worker(const WorkerPtr& target, TimePoint deadline,
                                    const Handoff* handoff = nullptr);
  // The idle worker with the lowest score (ties: the most recently used), or null if none idle.
  WorkerPtr take_least_loaded(const std::function<std::size_t(const Worker&)>& score);

  // ---- giving back ----
  // The borrower is done with `worker`. `decide` runs under the lock with its Tracking (not
  // called if it left service meanwhile) and says whether it must leave service (recycling,
  // rolling restart); then it stays borrowed and the caller removes it and calls release().
  // Otherwise it goes back to a waiter or the idle stack.
  std::optional<Leave> check_in(const WorkerPtr& worker,
                                const std::function<std::optional<Leave>(Tracking&)>& decide);
  // A borrowed worker that left service goes with its borrower.
  void release(const WorkerPtr& worker);
  // A borrowed worker goes out of rotation until a probe passes (if still in service).
  void to_degraded(const WorkerPtr& worker);

  // ---- background care ----
  // Takes the idle and degraded workers `pick` chooses (under the lock); they count as
  // borrowed until checked in, degraded again or released.
  std::vector<WorkerPtr> take_idle(
      const std::function<bool(const WorkerPtr&, Tracking&, bool degraded)>& pick);
  // Runs `fn` on the worker's Tracking under the lock; false if it is not in service.
  bool with_tracking(const std::string& worker_id, const std::function<void(Tracking&)>& fn);
  bool read_tracking(const std::string& worker_id,
                     const std::function<void(const Tracking&)>& fn) const;
  void for_each_tracking(const std::function<void(const std::string& id, Tracking&)>& fn);

  // ---- shutdown and waiting ----
  // From now on checkouts fail with `refusal`; every waiting caller fails with it now.
  void close(const Error& refusal);
  // Fails every waiting caller with `error` if no worker is in service (starts keep failing).
  void fail_waiters_if_none_live(const Error& error);
  // Shutdown: every idle and degraded worker leaves service; returns them.
  std::vector<WorkerPtr> take_all_unused();
  // Waits until `done(counts)` holds (true) or the deadline passes (false). `done` runs under
  // the lock and may only take leaf locks.
  bool wait(const std::function<bool(const RegistryCounts&)>& done, TimePoint deadline);
  // Wakes wait()ers after a change elsewhere (e.g. a failed start in Capacity).
  void notify();
  RegistryCounts counts() const;

 private:
  struct Waiter {
    std::condition_variable cv;
    WorkerPtr worker;
    std::optional<Error> error;
    const Handoff* handoff = nullptr;  // the caller's, alive while it waits
    bool handing_off = false;          // given a worker; its handoff is running elsewhere
  };
  using WaiterPtr = std::shared_ptr<Waiter>;
  struct Slot {
    WorkerPtr worker;
    Tracking tracking;
  };

  // mu_ held: hands `worker` (in service, ready, not counted borrowed) to the next waiter
  // (counting it borrowed; marked handing_off if `with_handoff` and it has a handoff) or puts it
  // on the idle stack; returns the waiter to notify.
  [[nodiscard]] WaiterPtr give_back_locked(const WorkerPtr& worker, bool with_handoff);
  Result<WorkerPtr> wait_locked(std::unique_lock<std::mutex>& lock, const WaiterPtr& waiter,
                                TimePoint deadline);
  // check_in() after give_back_locked, mu_ released: runs the waiter's handoff (if it was marked
  // handing_off then), then wakes it.
  void hand_over(const WaiterPtr& waiter, const WorkerPtr& worker, bool handing_off);
  RegistryCounts counts_locked() const;
  std::string describe_load_locked() const;
  Error refusal(ErrorCategory category, std::string message) const;

  const Clock& clock_;
  const Hooks hooks_;

  mutable std::mutex mu_;
  std::condition_variable state_cv_;  // wait(): membership or borrowed count changed
  std::unordered_map<std::string, Slot> live_;
  std::vector<WorkerPtr> idle_;  // LIFO: the most recently used stays hot
  std::vector<WorkerPtr> degraded_;
  std::size_t borrowed_ = 0;
  CheckoutQueue queue_;
  std::unordered_map<CheckoutQueue::Ticket, WaiterPtr> waiters_;
  std::unordered_map<std::string, std::deque<WaiterPtr>> targeted_;
  std::optional<Error> closed_;
};

}  // namespace bridgepool
