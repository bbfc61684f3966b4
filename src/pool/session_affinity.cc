#include "pool/session_affinity.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>

namespace bridgepool {
namespace internal {

// A session id with its hash: the hash is computed once per call and serves both the shard choice
// and the shard's map.
struct HashedId {
  std::string_view id;
  std::size_t hash;
};

inline HashedId hashed(std::string_view id) { return {id, std::hash<std::string_view>{}(id)}; }

// A stored session id in 32 bytes: its hash, then up to 23 characters inline (longer ones in one
// heap block).
//
// Why this shape: an unordered_map node is {next pointer 8, key, Binding 16}; with a 32-byte key
// it is 56 bytes, which glibc malloc serves from a 64-byte chunk (56 + 8 header, rounded to 16).
// Keeping the hash in the key makes every probe of a bucket chain compare hashes before bytes and
// lets the map find bucket boundaries and rehash without hashing strings again; libstdc++ does not
// cache hashes for a noexcept hasher, so storing it here costs no more than its own cache would.
// std::string (32 bytes, 15 inline) would put "session-000123456" (17 chars) in a second 32-byte
// heap chunk. Layout of bytes_: [23] is the inline length (0..23) or kHeapTag; on the heap,
// [0..7] hold the pointer and [8..15] the length. Neither copyable nor movable: the map builds it
// in place.
class SessionKey {
 public:
  explicit SessionKey(HashedId hashed_id) : hash_(hashed_id.hash) {
    std::string_view id = hashed_id.id;
    if (id.size() <= kInlineCapacity) {
      std::memcpy(bytes_, id.data(), id.size());
      bytes_[kTagIndex] = static_cast<char>(id.size());
      return;
    }
    char* heap = new char[id.size()];
    std::memcpy(heap, id.data(), id.size());
    std::size_t size = id.size();
    std::memcpy(bytes_, &heap, sizeof heap);
    std::memcpy(bytes_ + sizeof heap, &size, sizeof size);
    bytes_[kTagIndex] = static_cast<char>(kHeapTag);
  }
  ~SessionKey() {
    if (on_heap()) delete[] heap_pointer();
  }
  SessionKey(const SessionKey&) = delete;
  SessionKey& operator=(const SessionKey&) = delete;

  std::size_t hash() const noexcept { return hash_; }
  std::string_view view() const noexcept {
    if (!on_heap()) return {bytes_, static_cast<unsigned char>(bytes_[kTagIndex])};
    std::size_t size;
    std::memcpy(&size, bytes_ + sizeof(char*), sizeof size);
    return {heap_pointer(), size};
  }

 private:
  static constexpr std::size_t kBytes = 24;
  static constexpr std::size_t kTagIndex = kBytes - 1;
  static constexpr std::size_t kInlineCapacity = kBytes - 1;
  static constexpr unsigned char kHeapTag = 0xFF;

  bool on_heap() const noexcept {
    return static_cast<unsigned char>(bytes_[kTagIndex]) == kHeapTag;
  }
  char* heap_pointer() const noexcept {
    char* p;
    std::memcpy(&p, bytes_, sizeof p);
    return p;
  }

  std::size_t hash_;
  alignas(8) char bytes_[kBytes];
};
static_assert(sizeof(SessionKey) == 32);

// Transparent hash and equality: lookups pass a HashedId, never building a key.
struct SessionKeyHash {
  using is_transparent = void;
  std::size_t operator()(const HashedId& id) const noexcept { return id.hash; }
  std::size_t operator()(const SessionKey& key) const noexcept { return key.hash(); }
};

struct SessionKeyEqual {
  using is_transparent = void;
  static HashedId parts(const HashedId& id) noexcept { return id; }
  static HashedId parts(const SessionKey& key) noexcept { return {key.view(), key.hash()}; }
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const noexcept {
    HashedId x = parts(a), y = parts(b);
    return x.hash == y.hash && x.id == y.id;
  }
};

// 16 bytes: the worker and the last use, in milliseconds since the map's origin (4 bytes spare).
struct Binding {
  WorkerKey worker;
  std::uint32_t last_use;
};

[[noreturn]] void affinity_invariant_broken(const char* what) {
  std::fprintf(stderr, "bridgepool: session affinity invariant broken: %s\n", what);
  std::abort();
}

}  // namespace internal

using internal::Binding;
using internal::SessionKey;

// One lock domain. Aligned to a cache line so two shards' mutexes never share one. The counters
// are only written under `mutex` (so a relaxed increment is uncontended) and read without it.
struct alignas(64) SessionAffinity::Shard {
  std::mutex mutex;
  std::unordered_map<SessionKey, Binding, internal::SessionKeyHash, internal::SessionKeyEqual>
      bindings;
  // Dropped workers still named by tombstones; a handful at most, so a linear scan is cheapest.
  std::vector<WorkerKey> dead;
  std::atomic<std::uint64_t> hits{0}, misses{0}, rebinds{0}, lost_calls{0};
  std::atomic<std::uint64_t> binds{0}, expirations{0}, closes{0};
  std::atomic<std::size_t> size{0};

  bool is_dead(WorkerKey worker) const {
    return std::find(dead.begin(), dead.end(), worker) != dead.end();
  }
  void publish_size() { size.store(bindings.size(), std::memory_order_relaxed); }
};

namespace {

void bump(std::atomic<std::uint64_t>& counter, std::uint64_t by = 1) {
  counter.fetch_add(by, std::memory_order_relaxed);
}

std::uint32_t clamp_ttl_millis(Duration ttl) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(ttl);
  return static_cast<std::uint32_t>(
      std::clamp<std::int64_t>(ms.count(), 1, SessionAffinity::kMaxTtl.count()));
}

}  // namespace

SessionAffinity::SessionAffinity(const Clock& clock, AffinityConfig config)
    : clock_(clock),
      origin_(clock.now()),
      ttl_millis_(clamp_ttl_millis(config.ttl)),
      mode_(config.mode),
      shard_count_(std::max<std::size_t>(config.shards, 1)),
      shards_(new Shard[shard_count_]) {}

SessionAffinity::~SessionAffinity() = default;

// Time is kept as a 32-bit count of milliseconds since origin_, which wraps every 2^32 ms = 49.7
// days; is_expired() therefore reads the age as a *signed* 32-bit difference, correct for ages
// within +-2^31 ms = 24.8 days. A negative age means a lookup stored a time later than the
// sweeper's "now" (it read the clock first, then took the lock) and counts as fresh. A binding
// idle for the ttl is removed at the next sweep, so a surviving binding's age stays below ttl +
// (time between sweeps); with the ttl capped at 10 days that leaves 14.8 days between sweeps
// before an age could pass 2^31 ms and be misread as fresh. The pool sweeps every 60 s.
SessionAffinity::Millis SessionAffinity::now_millis() const {
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now() - origin_);
  return static_cast<Millis>(static_cast<std::uint64_t>(elapsed.count()));
}

bool SessionAffinity::is_expired(Millis last_use, Millis now) const {
  auto age = static_cast<std::int32_t>(now - last_use);
  return age >= 0 && static_cast<Millis>(age) >= ttl_millis_;
}

// The map's own bucket index is hash % (a prime bucket count), i.e. mostly the low bits; the
// shard takes the high 32 bits scaled to [0, shard_count_) (multiply-shift, no division), so the
// two choices stay independent.
SessionAffinity::Shard& SessionAffinity::shard_for(std::size_t hash) const {
  std::uint64_t high = static_cast<std::uint64_t>(hash) >> 32;
  return shards_[(high * shard_count_) >> 32];
}

bool SessionAffinity::add_worker(WorkerKey worker) {
  std::lock_guard lock(workers_mutex_);
  if (dead_workers_.contains(worker)) return false;
  return live_workers_.emplace(worker, 0).second;
}

LookupResult SessionAffinity::lookup(std::string_view session_id) {
  Millis now = now_millis();
  internal::HashedId key = internal::hashed(session_id);
  Shard& shard = shard_for(key.hash);
  std::lock_guard lock(shard.mutex);
  auto it = shard.bindings.find(key);
  if (it == shard.bindings.end()) {
    bump(shard.misses);
    return {LookupOutcome::kNew, std::nullopt, 0};
  }
  Binding& binding = it->second;
  binding.last_use = now;
  if (!shard.is_dead(binding.worker)) {
    bump(shard.hits);
    return {LookupOutcome::kHit, binding.worker, 0};
  }
  if (mode_ == AffinityMode::kStrict) {
    bump(shard.lost_calls);
    return {LookupOutcome::kLost, std::nullopt, binding.worker};
  }
  bump(shard.rebinds);
  return {LookupOutcome::kRebind, std::nullopt, binding.worker};
}

BindResult SessionAffinity::bind(std::string_view session_id, WorkerKey worker) {
  Millis now = now_millis();
  internal::HashedId key = internal::hashed(session_id);
  Shard& shard = shard_for(key.hash);
  std::lock_guard lock(shard.mutex);
  auto it = shard.bindings.find(key);
  if (it != shard.bindings.end()) {
    Binding& binding = it->second;
    if (!shard.is_dead(binding.worker)) return {BindOutcome::kAlreadyBound, binding.worker};
    if (mode_ == AffinityMode::kStrict) return {BindOutcome::kSessionLost, binding.worker};
    // Hint mode: the tombstone is replaced by a binding to the new worker.
    if (shard.is_dead(worker)) return {BindOutcome::kWorkerGone, worker};
    std::lock_guard workers_lock(workers_mutex_);
    if (!acquire_live_locked(worker)) return {BindOutcome::kWorkerGone, worker};
    release_locked(binding.worker);
    binding = Binding{worker, now};
    return {BindOutcome::kBound, worker};
  }
  if (shard.is_dead(worker)) return {BindOutcome::kWorkerGone, worker};
  {
    std::lock_guard workers_lock(workers_mutex_);
    if (!acquire_live_locked(worker)) return {BindOutcome::kWorkerGone, worker};
  }
  shard.bindings.emplace(std::piecewise_construct, std::forward_as_tuple(key),
                         std::forward_as_tuple(Binding{worker, now}));
  bump(shard.binds);
  shard.publish_size();
  return {BindOutcome::kBound, worker};
}

std::optional<ClosedBinding> SessionAffinity::close(std::string_view session_id) {
  internal::HashedId key = internal::hashed(session_id);
  Shard& shard = shard_for(key.hash);
  std::lock_guard lock(shard.mutex);
  auto it = shard.bindings.find(key);
  if (it == shard.bindings.end()) return std::nullopt;
  WorkerKey worker = it->second.worker;
  bool was_live;
  {
    std::lock_guard workers_lock(workers_mutex_);
    was_live = release_locked(worker);
  }
  shard.bindings.erase(it);
  bump(shard.closes);
  shard.publish_size();
  return ClosedBinding{worker, !was_live};
}

// The worker table first (from here on bind() refuses the key and the count is final: binds
// increment it under the same mutex), then each shard's dead list, so that once this returns
// every lookup sees the tombstones. A lookup racing with it may still hit the worker; the pool
// must treat a hit on a worker it no longer has as session_lost too.
std::size_t SessionAffinity::drop_worker(WorkerKey worker) {
  std::lock_guard dead_lists_lock(dead_lists_mutex_);
  std::size_t bound;
  {
    std::lock_guard workers_lock(workers_mutex_);
    auto it = live_workers_.find(worker);
    if (it == live_workers_.end()) return 0;
    bound = it->second;
    live_workers_.erase(it);
    if (bound == 0) return 0;  // nothing names it, so no tombstone can appear
    dead_workers_.emplace(worker, bound);
  }
  for (std::size_t i = 0; i < shard_count_; ++i) {
    std::lock_guard lock(shards_[i].mutex);
    shards_[i].dead.push_back(worker);
  }
  losses_.fetch_add(bound, std::memory_order_relaxed);
  return bound;
}

std::vector<ExpiredSession> SessionAffinity::expire() {
  std::vector<ExpiredSession> out;
  for (std::size_t i = 0; i < shard_count_; ++i) expire_shard(shards_[i], out);
  forget_unreferenced_dead_workers();
  // Grouped by worker only: comparing 8-byte keys, not the ids, keeps this ~10x cheaper than a
  // full (worker, id) sort when a million sessions expire at once.
  std::stable_sort(out.begin(), out.end(), [](const ExpiredSession& a, const ExpiredSession& b) {
    return a.worker < b.worker;
  });
  return out;
}

// The worker table is updated once per shard, under the shard lock, so that drop_worker() never
// counts a binding that is already gone from the map.
void SessionAffinity::expire_shard(Shard& shard, std::vector<ExpiredSession>& out) {
  std::lock_guard lock(shard.mutex);
  Millis now = now_millis();
  std::vector<std::pair<WorkerKey, std::size_t>> released;  // a few workers per shard
  std::size_t expired = 0;
  for (auto it = shard.bindings.begin(); it != shard.bindings.end();) {
    if (!is_expired(it->second.last_use, now)) {
      ++it;
      continue;
    }
    WorkerKey worker = it->second.worker;
    if (!shard.is_dead(worker)) out.push_back({worker, std::string(it->first.view())});
    auto r = std::find_if(released.begin(), released.end(),
                          [&](const auto& p) { return p.first == worker; });
    if (r == released.end()) {
      released.emplace_back(worker, 1);
    } else {
      ++r->second;
    }
    it = shard.bindings.erase(it);
    ++expired;
  }
  if (expired == 0) return;
  {
    std::lock_guard workers_lock(workers_mutex_);
    for (auto [worker, count] : released) release_locked(worker, count);
  }
  bump(shard.expirations, expired);
  shard.publish_size();
}

// A dropped worker no binding names any more can leave the dead lists: nothing can name it again,
// since bind() refuses keys that are not live.
void SessionAffinity::forget_unreferenced_dead_workers() {
  std::lock_guard dead_lists_lock(dead_lists_mutex_);
  std::vector<WorkerKey> forgotten;
  {
    std::lock_guard workers_lock(workers_mutex_);
    for (auto it = dead_workers_.begin(); it != dead_workers_.end();) {
      if (it->second != 0) {
        ++it;
        continue;
      }
      forgotten.push_back(it->first);
      it = dead_workers_.erase(it);
    }
  }
  if (forgotten.empty()) return;
  for (std::size_t i = 0; i < shard_count_; ++i) {
    std::lock_guard lock(shards_[i].mutex);
    std::erase_if(shards_[i].dead, [&](WorkerKey w) {
      return std::find(forgotten.begin(), forgotten.end(), w) != forgotten.end();
    });
  }
}

bool SessionAffinity::acquire_live_locked(WorkerKey worker) {
  auto it = live_workers_.find(worker);
  if (it == live_workers_.end()) return false;
  ++it->second;
  return true;
}

bool SessionAffinity::release_locked(WorkerKey worker, std::size_t count) {
  if (auto it = live_workers_.find(worker); it != live_workers_.end()) {
    if (it->second < count) internal::affinity_invariant_broken("live count below zero");
    it->second -= count;
    return true;
  }
  auto it = dead_workers_.find(worker);
  if (it == dead_workers_.end() || it->second < count) {
    internal::affinity_invariant_broken("binding names an unknown worker");
  }
  it->second -= count;
  return false;
}

std::size_t SessionAffinity::size() const {
  std::size_t total = 0;
  for (std::size_t i = 0; i < shard_count_; ++i) {
    total += shards_[i].size.load(std::memory_order_relaxed);
  }
  return total;
}

std::size_t SessionAffinity::sessions_on(WorkerKey worker) const {
  std::lock_guard workers_lock(workers_mutex_);
  auto it = live_workers_.find(worker);
  return it == live_workers_.end() ? 0 : it->second;
}

std::optional<WorkerKey> SessionAffinity::least_loaded(
    std::span<const WorkerKey> candidates) const {
  std::lock_guard workers_lock(workers_mutex_);
  std::optional<WorkerKey> best;
  std::size_t best_load = 0;
  for (WorkerKey worker : candidates) {
    auto it = live_workers_.find(worker);
    if (it == live_workers_.end()) continue;
    if (!best || it->second < best_load) {
      best = worker;
      best_load = it->second;
    }
  }
  return best;
}

SessionAffinity::Counters SessionAffinity::counters() const {
  Counters c;
  auto sum = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  for (std::size_t i = 0; i < shard_count_; ++i) {
    const Shard& s = shards_[i];
    c.hits += sum(s.hits);
    c.misses += sum(s.misses);
    c.rebinds += sum(s.rebinds);
    c.lost_calls += sum(s.lost_calls);
    c.binds += sum(s.binds);
    c.expirations += sum(s.expirations);
    c.closes += sum(s.closes);
  }
  c.losses = losses_.load(std::memory_order_relaxed);
  return c;
}

}  // namespace bridgepool
