// SessionAffinity: which worker each session is bound to (SPEC §5 "Session affinity", §11.11).
//
// The pool consults it on every execute_in_session(): lookup() says where the call must go, bind()
// records the worker chosen for a new session, close() and expire() end sessions (the pool then
// tells the worker to drop that session's state), drop_worker() is called when a worker is
// removed. A session whose worker was removed is never silently moved: in strict mode (the
// default) every later call reports it lost until the client closes the session or it idles out;
// in hint mode the next call rebinds it to a new worker and is counted as a rebind.
//
// Workers are named by WorkerKey, the pool's worker number (monotonic, never reused). The pool
// registers each worker with add_worker() before binding sessions to it; bind() refuses keys that
// were never added or were dropped, so a late bind cannot resurrect a removed worker.
//
// Scale: the map is split into shards (64 by default), each a mutex and a hash map chosen by the
// session id's hash, so concurrent lookups of different sessions rarely meet on a lock, and the
// hit/miss counters live in the shards too (no shared cache line on the hot path). drop_worker()
// costs O(shards), not O(sessions): it records the key as dead and each binding to it turns into
// a tombstone lazily, when it is next looked up, closed or swept. An entry is a 64-byte malloc
// chunk plus 8-16 bytes of bucket array (ids up to 23 characters are stored inline with their hash,
// longer ones cost one more heap block); bench/session_affinity_bench.cc measures it at one million
// sessions.
//
// Thread-safety: every method may be called from any thread concurrently. Counters are read
// without taking a lock; they are exact once callers are quiescent.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bridgepool/clock.h"

namespace bridgepool {

// The pool's worker number.
using WorkerKey = std::uint64_t;

enum class AffinityMode {
  kStrict,  // a session whose worker was removed fails with session_lost until closed or expired
  kHint,    // such a session is rebound to another worker on its next call
};

struct AffinityConfig {
  // Inactivity after which expire() removes a binding. Clamped to [1 ms, kMaxTtl] (see .cc).
  Duration ttl = std::chrono::seconds(300);
  AffinityMode mode = AffinityMode::kStrict;
  // Lock shards. With 64 and 8 callers in lookup() at once, a given pair meets on a shard with
  // probability 1/64 and some pair does 37% of the time (1 - 63/64 * 62/64 * ... * 57/64), then
  // only for the length of one hash-map probe: contention stays rare. ~200 bytes each.
  std::size_t shards = 64;
};

enum class LookupOutcome {
  kHit,     // bound to a live worker: route the call to `worker`
  kNew,     // no binding: pick a worker (least loaded) and call bind()
  kLost,    // strict mode: the bound worker was removed; fail with session_lost (lost_worker)
  kRebind,  // hint mode: the bound worker was removed; pick another worker and call bind()
};

struct LookupResult {
  LookupOutcome outcome = LookupOutcome::kNew;
  std::optional<WorkerKey> worker;  // kHit: the bound worker
  WorkerKey lost_worker = 0;        // kLost / kRebind: the removed worker it was bound to
};

enum class BindOutcome {
  kBound,         // this call bound (or, in hint mode, rebound) the session to `worker`
  kAlreadyBound,  // another caller bound it first: route to `worker`, the binding won
  kWorkerGone,    // the requested worker is not registered or was dropped: pick another one
  kSessionLost,   // strict mode, session is tombstoned: fail with session_lost naming `worker`
};

struct BindResult {
  BindOutcome outcome = BindOutcome::kBound;
  WorkerKey worker = 0;  // see BindOutcome; for kWorkerGone, the key that was refused
};

struct ClosedBinding {
  WorkerKey worker = 0;  // the worker the session was bound to
  bool lost = false;     // that worker had been dropped: there is no state left to clean up
};

// A session removed by expire(), for the pool to send close_session to `worker`.
struct ExpiredSession {
  WorkerKey worker = 0;
  std::string session_id;
  friend bool operator==(const ExpiredSession&, const ExpiredSession&) = default;
};

class SessionAffinity {
 public:
  // Every counter only grows. Lookups = hits + misses + rebinds + lost_calls, and (when quiescent)
  // size() = binds - closes - expirations.
  struct Counters {
    std::uint64_t hits = 0;         // lookups answered kHit
    std::uint64_t misses = 0;       // lookups answered kNew
    std::uint64_t rebinds = 0;      // lookups answered kRebind (hint mode)
    std::uint64_t lost_calls = 0;   // lookups answered kLost (strict mode): session_lost errors
    std::uint64_t losses = 0;       // bindings whose worker was dropped (drop_worker's sum)
    std::uint64_t binds = 0;        // bindings created by bind() (rebinds replace, not create)
    std::uint64_t expirations = 0;  // bindings removed by expire(), tombstones included
    std::uint64_t closes = 0;       // bindings removed by close(), tombstones included
  };

  // Hard cap on the ttl. Last-use times are 32-bit millisecond counts; see session_affinity.cc.
  static constexpr std::chrono::milliseconds kMaxTtl = std::chrono::hours(24 * 10);

  // `clock` must outlive this object.
  SessionAffinity(const Clock& clock, AffinityConfig config);
  ~SessionAffinity();
  SessionAffinity(const SessionAffinity&) = delete;
  SessionAffinity& operator=(const SessionAffinity&) = delete;

  // Registers a worker that sessions may be bound to. False if the key is already registered or
  // is a dropped key still named by tombstones. A dropped key must never be added again (the
  // pool's keys are never reused).
  bool add_worker(WorkerKey worker);

  // Where should this session's call go? See LookupOutcome. kHit, kLost and kRebind refresh the
  // session's last use: a lost session keeps failing while the client keeps calling it, and is
  // forgotten only after it has been idle for the ttl (like any session) or is closed. A binding
  // idle for the ttl but not yet swept by expire() is still a hit.
  LookupResult lookup(std::string_view session_id);

  // Binds a session after kNew (or kRebind in hint mode). The first binder wins: a concurrent
  // second bind() of the same session gets kAlreadyBound and the winner's worker, never moving
  // the session. A bind() racing with drop_worker() of the same worker either gets kWorkerGone or
  // succeeds and is counted among that drop's losses (the next lookup reports it lost).
  BindResult bind(std::string_view session_id, WorkerKey worker);

  // Explicit close; the binding (live or tombstone) is removed. nullopt if there was none.
  std::optional<ClosedBinding> close(std::string_view session_id);

  // The worker was removed: from now on bind() refuses it and every session bound to it is lost
  // (strict) or rebound on its next call (hint). Returns how many sessions were bound to it (added
  // to `losses`); 0 for an unknown or already dropped key. Cost O(shards), independent of the
  // number of sessions.
  std::size_t drop_worker(WorkerKey worker);

  // Removes every binding idle for >= ttl (to the millisecond), tombstones included, and forgets
  // dropped workers no binding refers to any more. Returns the expired sessions of live workers,
  // grouped by worker (ascending key; ids within a group in no particular order), for the pool to
  // send close_session. O(number of bindings), holding one shard lock at a time. The pool calls
  // it every session_cleanup_interval; it must be called at least every 14 days (see kMaxTtl).
  std::vector<ExpiredSession> expire();

  // Bindings, tombstones included.
  std::size_t size() const;
  // Live bindings of a registered worker; 0 for an unknown or dropped one.
  std::size_t sessions_on(WorkerKey worker) const;
  // The candidate with the fewest live bindings (ties: the first listed); nullopt if none of
  // them is registered. For spreading new sessions.
  std::optional<WorkerKey> least_loaded(std::span<const WorkerKey> candidates) const;
  Counters counters() const;
  AffinityMode mode() const { return mode_; }

 private:
  struct Shard;
  using Millis = std::uint32_t;

  Millis now_millis() const;
  Shard& shard_for(std::size_t session_hash) const;
  bool is_expired(Millis last_use, Millis now) const;
  void expire_shard(Shard& shard, std::vector<ExpiredSession>& out);
  void forget_unreferenced_dead_workers();
  // The worker table, under workers_mutex_ (when nested, always inside a shard mutex).
  bool acquire_live_locked(WorkerKey worker);
  // Forgets `count` bindings naming `worker`; true if the worker is live (not dropped).
  bool release_locked(WorkerKey worker, std::size_t count = 1);

  const Clock& clock_;
  const TimePoint origin_;
  const Millis ttl_millis_;
  const AffinityMode mode_;
  const std::size_t shard_count_;
  std::unique_ptr<Shard[]> shards_;

  // Serialises drop_worker() with the purge in expire(), so that a key is never pushed onto the
  // shards' dead lists after the purge took it off them. Taken before any other mutex.
  std::mutex dead_lists_mutex_;
  mutable std::mutex workers_mutex_;
  // Registered workers -> their live bindings.
  std::unordered_map<WorkerKey, std::size_t> live_workers_;
  // Dropped workers -> the tombstones still naming them. A key leaves this map (and the shards'
  // dead lists) in expire() once no binding names it; keys are never reused, so afterwards any
  // unknown key is refused by bind() just the same.
  std::unordered_map<WorkerKey, std::size_t> dead_workers_;
  std::atomic<std::uint64_t> losses_{0};
};

}  // namespace bridgepool
