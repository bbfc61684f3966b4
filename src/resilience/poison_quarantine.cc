// PoisonQuarantine: the rule, its arithmetic and the memory bounds are described in the header.
#include "resilience/poison_quarantine.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include <fmt/format.h>

#include "wire/json_writer.h"

namespace bridgepool {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr std::uint32_t kMaxWindow = 64;
constexpr std::size_t kMaxShards = 16;
constexpr std::size_t kEntriesPerShard = 64;  // below 16 × 64 entries, fewer shards (exact LRU)
constexpr std::size_t kSurvivorSlots = std::size_t{1} << 14;  // 128 KiB of atomics
// A survivor slot holds the fingerprint's bits 20..63 and, in bits 0..19, the second (mod 2^20,
// ~12 days) of its last survival. The slot index is bits 0..13, so 58 bits of the fingerprint
// are compared in all.
constexpr std::uint64_t kSurvivorTimeBits = 20;
constexpr std::uint64_t kSurvivorTimeMask = (std::uint64_t{1} << kSurvivorTimeBits) - 1;
constexpr std::size_t kMaxWorkersListed = 8;       // in the refusal message
constexpr std::uint32_t kSurvivalSampleMask = 15;  // wants_fingerprint(): 1 call in 16

std::uint64_t mix64(std::uint64_t x) {  // splitmix64's finalizer: every input bit moves ~half
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// 8 bytes per step; quality comes from the final mix64. Not a cryptographic hash: fingerprints
// are compared within one process, and a collision only makes two requests share a history.
std::uint64_t hash_bytes(std::string_view bytes, std::uint64_t h) {
  constexpr std::uint64_t kMulA = 0x9e3779b97f4a7c15ULL;
  constexpr std::uint64_t kMulB = 0xc2b2ae3d27d4eb4fULL;
  const char* p = bytes.data();
  std::size_t left = bytes.size();
  for (; left >= 8; p += 8, left -= 8) {
    std::uint64_t block;
    std::memcpy(&block, p, 8);
    h = std::rotl(h ^ (block * kMulB), 31) * kMulA;
  }
  std::uint64_t tail = 0;
  std::memcpy(&tail, p, left);
  h = std::rotl(h ^ ((tail ^ (std::uint64_t{left} << 56)) * kMulB), 31) * kMulA;
  return h;
}

std::uint64_t whole_seconds(TimePoint t) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<seconds>(t.time_since_epoch()).count());
}

struct Outcome {
  TimePoint at{};
  bool killed = false;
  std::string worker;  // of a kill
};

enum class Phase { kTracking, kQuarantined, kProbing };

// What the counted part of a window holds (attempts within `memory`).
struct Tally {
  std::uint32_t kills = 0;
  std::uint32_t attempts = 0;
  std::vector<std::string> workers;  // of the kills, oldest first, each once
};

}  // namespace

struct PoisonQuarantine::Entry {
  std::vector<Outcome> ring;  // the last `window` outcomes: ring[recorded % window] is next
  std::uint64_t recorded = 0;
  std::uint32_t credit = 0;  // assumed successes of a survivor (header: "the credit")
  TimePoint credit_until{};
  TimePoint last_seen{};  // last admit or outcome: the LRU key
  Phase phase = Phase::kTracking;
  TimePoint until{};              // kQuarantined: end of the cooldown
  TimePoint probe_at{};           // kProbing: when the probe was admitted
  Duration cooldown{0};           // the cooldown applied last
  std::uint32_t quarantines = 0;  // in a row (a surviving probe drops the entry)
  std::string summary;  // "killed N of its last M attempts (workers ...)", at the last quarantine

  void push(Outcome outcome) {
    ring[recorded % ring.size()] = std::move(outcome);
    ++recorded;
  }

  Tally tally(TimePoint since) const {
    Tally t;
    const std::uint64_t count = std::min<std::uint64_t>(recorded, ring.size());
    for (std::uint64_t i = recorded - count; i < recorded; ++i) {
      const Outcome& o = ring[i % ring.size()];
      if (o.at < since) continue;
      ++t.attempts;
      if (!o.killed) continue;
      ++t.kills;
      if (std::find(t.workers.begin(), t.workers.end(), o.worker) == t.workers.end()) {
        t.workers.push_back(o.worker.empty() ? "?" : o.worker);
      }
    }
    return t;
  }

  // Holds its place against eviction: refusing now, or waiting for its probe's outcome.
  bool holding(TimePoint now, Duration probe_timeout) const {
    return (phase == Phase::kQuarantined && now < until) ||
           (phase == Phase::kProbing && now - probe_at < probe_timeout);
  }
};

struct alignas(64) PoisonQuarantine::Shard {
  std::mutex mu;
  std::unordered_map<std::uint64_t, Entry> entries;  // guarded by mu
  std::atomic<std::size_t> size{0};  // entries.size(), for the lock-free "nothing here" check
};

PoisonQuarantine::PoisonQuarantine(QuarantineConfig config, const Clock& clock)
    : config_(config), clock_(clock) {
  config_.window = std::clamp<std::uint32_t>(config_.window, 1, kMaxWindow);
  config_.kill_threshold = std::max<std::uint32_t>(config_.kill_threshold, 1);
  config_.max_fingerprints = std::max<std::size_t>(config_.max_fingerprints, 1);
  config_.cooldown = std::max(config_.cooldown, milliseconds(0));
  config_.max_cooldown = std::max(config_.max_cooldown, config_.cooldown);
  const std::size_t shard_count =
      std::clamp<std::size_t>(config_.max_fingerprints / kEntriesPerShard, 1, kMaxShards);
  shard_capacity_ = config_.max_fingerprints / shard_count;  // total <= max_fingerprints
  shards_.reserve(shard_count);
  for (std::size_t i = 0; i < shard_count; ++i) shards_.push_back(std::make_unique<Shard>());
  survivors_ = std::make_unique<std::atomic<std::uint64_t>[]>(kSurvivorSlots);
}

PoisonQuarantine::~PoisonQuarantine() = default;

std::uint64_t PoisonQuarantine::fingerprint(std::string_view command, const nlohmann::json& args) {
  // The request's own JSON writer (keys in nlohmann's sorted order, so canonical; invalid UTF-8
  // replaced), several times faster than dump(); binary values are written as markers and their
  // bytes hashed where they are — dump() would spell a 64 MiB buffer as ~200 MiB of numbers.
  std::string canonical;
  std::vector<wire::Bytes> binaries;
  wire::append_json(canonical, args, &binaries);
  std::uint64_t h = hash_bytes(command, 0x62726964676570ULL);  // "bridgep"
  h = hash_bytes(canonical, h ^ command.size());
  for (wire::Bytes bytes : binaries) {
    h = hash_bytes(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
                   h ^ bytes.size());
  }
  return mix64(h ^ canonical.size());
}

bool PoisonQuarantine::wants_fingerprint() const {
  if (!config_.enabled) return false;
  if (tracking_any()) return true;
  thread_local std::uint32_t calls = 0;  // per thread: no shared counter on the hot path
  return (++calls & kSurvivalSampleMask) == 0;
}

PoisonQuarantine::Shard& PoisonQuarantine::shard_for(std::uint64_t fp) const {
  return *shards_[(fp >> 32) % shards_.size()];  // the survivor slot uses the low bits
}

Result<void> PoisonQuarantine::admit(std::uint64_t fp, std::string_view command) {
  if (!config_.enabled) return {};
  Shard& shard = shard_for(fp);
  if (shard.size.load(std::memory_order_relaxed) == 0) return {};  // the common path
  const TimePoint now = clock_.now();
  std::lock_guard lock(shard.mu);
  auto it = shard.entries.find(fp);
  if (it == shard.entries.end()) return {};
  Entry& e = it->second;
  e.last_seen = now;
  switch (e.phase) {
    case Phase::kTracking:
      return {};
    case Phase::kQuarantined:
      if (now < e.until) break;
      e.phase = Phase::kProbing;
      e.probe_at = now;
      return {};
    case Phase::kProbing:
      if (now - e.probe_at < config_.memory) break;
      e.probe_at = now;  // the last probe's outcome never came: presumed lost
      return {};
  }
  refused_.fetch_add(1, std::memory_order_relaxed);
  return refusal(e, fp, command, now);
}

void PoisonQuarantine::record_kill(std::uint64_t fp, std::string_view worker_id) {
  if (!config_.enabled) return;
  const TimePoint now = clock_.now();
  Shard& shard = shard_for(fp);
  std::lock_guard lock(shard.mu);
  Entry& e = find_or_track(shard, fp, now);
  e.last_seen = now;
  e.push(Outcome{now, true, std::string(worker_id)});
  switch (e.phase) {
    case Phase::kTracking: {
      const Tally t = e.tally(now - config_.memory);
      const std::uint32_t credit =
          now < e.credit_until ? std::min(e.credit, config_.window - t.attempts) : 0;
      if (t.kills >= config_.kill_threshold && 2 * t.kills >= t.attempts + credit) {
        quarantine(e, now);
      }
      break;
    }
    case Phase::kProbing:  // the probe killed its worker too
      quarantine(e, now);
      break;
    case Phase::kQuarantined:  // an attempt admitted before the quarantine: already counted for
      break;
  }
}

void PoisonQuarantine::record_survived(std::uint64_t fp) {
  if (!config_.enabled) return;
  const TimePoint now = clock_.now();
  Shard& shard = shard_for(fp);
  if (shard.size.load(std::memory_order_relaxed) == 0) {
    mark_survivor(fp, now);  // the common path
    return;
  }
  std::lock_guard lock(shard.mu);
  auto it = shard.entries.find(fp);
  if (it == shard.entries.end()) {
    mark_survivor(fp, now);
    return;
  }
  Entry& e = it->second;
  e.last_seen = now;
  e.push(Outcome{now, false, {}});
  switch (e.phase) {
    case Phase::kProbing:
      release(shard, fp, now);
      released_.fetch_add(1, std::memory_order_relaxed);
      break;
    case Phase::kTracking:
      // No kill left within memory: nothing to hold against it any more.
      if (e.tally(now - config_.memory).kills == 0) release(shard, fp, now);
      break;
    case Phase::kQuarantined:
      break;
  }
}

PoisonQuarantine::Counters PoisonQuarantine::counters() const {
  Counters c;
  c.refused = refused_.load(std::memory_order_relaxed);
  c.quarantined = quarantined_.load(std::memory_order_relaxed);
  c.released = released_.load(std::memory_order_relaxed);
  c.tracked = tracked_.load(std::memory_order_relaxed);
  return c;
}

PoisonQuarantine::Entry& PoisonQuarantine::find_or_track(Shard& shard, std::uint64_t fp,
                                                         TimePoint now) {
  if (auto it = shard.entries.find(fp); it != shard.entries.end()) return it->second;
  if (shard.entries.size() >= shard_capacity_) evict_one(shard, now);
  Entry& e = shard.entries[fp];
  e.ring.resize(config_.window);
  if (survived_recently(fp, now)) {
    e.credit = config_.window - 1;
    e.credit_until = now + config_.memory;
  }
  shard.size.store(shard.entries.size(), std::memory_order_relaxed);
  tracked_.fetch_add(1, std::memory_order_relaxed);
  return e;
}

void PoisonQuarantine::evict_one(Shard& shard, TimePoint now) {
  // Linear scan: it runs only when a worker died *and* the shard is full, which costs far more.
  auto victim = shard.entries.end();
  for (auto it = shard.entries.begin(); it != shard.entries.end(); ++it) {
    if (victim == shard.entries.end()) {
      victim = it;
      continue;
    }
    const bool held = it->second.holding(now, config_.memory);
    const bool victim_held = victim->second.holding(now, config_.memory);
    if (held != victim_held ? !held : it->second.last_seen < victim->second.last_seen) victim = it;
  }
  if (victim == shard.entries.end()) return;
  shard.entries.erase(victim);
  shard.size.store(shard.entries.size(), std::memory_order_relaxed);
  tracked_.fetch_sub(1, std::memory_order_relaxed);
}

void PoisonQuarantine::quarantine(Entry& e, TimePoint now) {
  ++e.quarantines;
  e.cooldown = e.quarantines == 1 ? Duration(config_.cooldown)
                                  : std::min(Duration(config_.max_cooldown), e.cooldown * 2);
  e.until = now + e.cooldown;
  e.phase = Phase::kQuarantined;
  const Tally t = e.tally(now - config_.memory);
  std::string workers;
  for (std::size_t i = 0; i < t.workers.size() && i < kMaxWorkersListed; ++i) {
    workers += (i ? ", " : "") + t.workers[i];
  }
  if (t.workers.size() > kMaxWorkersListed) {
    workers += fmt::format(" and {} more", t.workers.size() - kMaxWorkersListed);
  }
  e.summary =
      fmt::format("killed {} of its last {} attempts (workers {})", t.kills, t.attempts, workers);
  quarantined_.fetch_add(1, std::memory_order_relaxed);
}

void PoisonQuarantine::release(Shard& shard, std::uint64_t fp, TimePoint now) {
  if (shard.entries.erase(fp) != 0) tracked_.fetch_sub(1, std::memory_order_relaxed);
  shard.size.store(shard.entries.size(), std::memory_order_relaxed);
  mark_survivor(fp, now);
}

bool PoisonQuarantine::survived_recently(std::uint64_t fp, TimePoint now) const {
  const std::uint64_t slot = survivors_[fp % kSurvivorSlots].load(std::memory_order_relaxed);
  if (slot == 0 || (slot & ~kSurvivorTimeMask) != (fp & ~kSurvivorTimeMask)) return false;
  const std::uint64_t age = (whole_seconds(now) - (slot & kSurvivorTimeMask)) & kSurvivorTimeMask;
  // Whole seconds: `memory` rounded up, so a survival exactly `memory` ago still counts.
  const auto memory_s =
      static_cast<std::uint64_t>(std::chrono::ceil<seconds>(config_.memory).count());
  return age <= std::max<std::uint64_t>(memory_s, 1);
}

void PoisonQuarantine::mark_survivor(std::uint64_t fp, TimePoint now) {
  const std::uint64_t value = (fp & ~kSurvivorTimeMask) | (whole_seconds(now) & kSurvivorTimeMask);
  survivors_[fp % kSurvivorSlots].store(value, std::memory_order_relaxed);
}

tl::unexpected<Error> PoisonQuarantine::refusal(const Entry& e, std::uint64_t fp,
                                                std::string_view command, TimePoint now) const {
  std::string relapses;
  if (e.quarantines > 1) {
    relapses = fmt::format("; its probe after each of the last {} cooldowns killed a worker too",
                           e.quarantines - 1);
  }
  std::string when;
  if (e.phase == Phase::kQuarantined) {
    const auto left = std::chrono::ceil<seconds>(e.until - now).count();
    when = fmt::format("refused for another {} s", std::max<std::int64_t>(left, 1));
  } else {
    when = "a probe attempt is in flight: refused until it survives";
  }
  Error error(ErrorCategory::kInvalidRequest,
              fmt::format("request quarantined: command '{}' with these arguments {}{}; {}",
                          command, e.summary, relapses, when));
  error.context.operation = "quarantine";
  error.context.command = std::string(command);
  error.context.cause = fmt::format(
      "poison quarantine of fingerprint {:016x}: cooldown {} s (doubles per relapse, max {} s)", fp,
      std::chrono::duration_cast<seconds>(e.cooldown).count(),
      std::chrono::duration_cast<seconds>(config_.max_cooldown).count());
  return tl::unexpected(std::move(error));
}

}  // namespace bridgepool
