// PoisonQuarantine: refuses, for a cooldown, a request (command + arguments) whose recent attempts
// keep killing workers, instead of letting it take the pool down one worker at a time — while a
// command that usually succeeds and only occasionally crashes keeps being served. Pure logic (no
// I/O, time from an injected Clock); the pool asks admit() before sending an attempt and reports
// how the attempt ended with record_kill() (the worker died or was killed: crash, timeout kill)
// or record_survived(). Its refusal is an invalid_request Error (see "Why invalid_request").
//
// Fingerprint. A 64-bit hash of the command name and the canonical JSON of the arguments
// (nlohmann's dump sorts object keys), so {"a":1,"b":2} and {"b":2,"a":1} are one request.
//
// The rule. Only fingerprints that killed a worker are tracked; from their first kill on, every
// outcome is recorded. For a tracked fingerprint, look at its last `window` (16) attempts, ignoring
// those older than `memory` (60 s): with k kills among n counted attempts it is quarantined when
//
//     k >= kill_threshold (3)   and   2·k >= n + c
//
// where c is a credit of assumed successes. c = 0 for a fingerprint never seen surviving, so an
// always-crashing request goes K → K → K (3 of 3: quarantined) on its 3rd kill, and "3 of its last
// 5" (K S K S K: 6 >= 5) trips too. A fingerprint that *survived an attempt within
// `memory` before its first kill* starts with c = window − 1 = 15 (the oldest slots of its window
// are taken to be those successes; the credit shrinks as real outcomes fill the window, c =
// min(15, window − n), and lapses after `memory`). It then needs half of a full window: 8 kills of
// its last 16 attempts — consecutive kills trip it on the 8th.
//
// Why the credit. Without it no rule could tell a command that crashes 1.5% of the time from one
// that always crashes: both can show "K K K" right after tracking starts (the first with
// probability 1.5%² per kill — at 1000 req/s, 15 kills/s, a quarantine every ~5 minutes). What
// tells them apart is the successes *before* the first kill, which are not tracked (the common
// path must stay cheap). So successes of untracked fingerprints go to a small lossy survivor table:
// 16,384 slots, slot = hash bits, value = the fingerprint's other 44 bits + the second it last
// survived (one relaxed atomic store per success). A slot overwritten by another fingerprint
// only makes that fingerprint "never seen surviving" again — stricter, never looser.
//
// The numbers, for p = 1.5% crashes with identical arguments at 1000 req/s (3.6 M attempts/hour):
//  - After tracking starts (a survivor: its last success was ~1 ms before the kill), a kill trips
//    the rule only if 7 of the 15 attempts before it were kills too:
//        P = p · P(Binomial(15, p) >= 7) = 0.015 · 6435 · 0.015^7 · 0.985^8 ≈ 1.5e-11 per attempt,
//    i.e. 3.6e6 · 1.5e-11 ≈ 5e-5 per hour: about once in two years of non-stop traffic (union
//    bound). For comparison: p = 5% → 0.6/hour, p = 10% → ~110/hour (those are no longer
//    "occasional"); a window of 10 would give 0.3/hour even at 1.5%.
//  - The unlucky start: its survivor slot was overwritten in the ~1 ms between its last success
//    and the kill (another of R successful fingerprints/s landing in the same slot: R·0.001/16384,
//    6e-4 at R = 10,000/s) *and* one of its next 3 attempts is a kill (1 − 0.985^3 ≈ 4.4%):
//    ≈ 3e-5 per fresh start. A fresh start happens once: the entry then stays tracked as long as
//    the command kills within `memory` (at 15 kills/s, forever).
//  - An always-crashing request never survives, has no credit, and is refused after its 3rd kill.
//    A request that used to succeed and now always crashes is refused after its 8th kill.
//
// Why 3 kills, not 2. Requests with arguments never seen before get no credit, so with crashes
// independent of the arguments at rate p (and retries, max_attempts 3) a fresh request is refused
// when it kills k workers in a row: p^k of them. k = 2 refused 1e-4 of the requests at 1% and 4e-4
// at 2% (6–34 per 60,000 in the SLA runs of docs/benchmarks.md: 99.99% out of reach); k = 3 gives
// 1e-6 and 8e-6. The price is one more worker killed by a real poison request: ~5 ms with the
// fork-server start method, the interpreter's start time with spawn (issue #10).
//
// Cooldown and probe. A quarantined fingerprint is refused for `cooldown` (30 s). The first
// admit() after that is a probe; others are refused while it runs (a probe whose outcome is not
// recorded within `memory` is presumed lost and another one is admitted). The probe's outcome is
// the first one recorded after it was admitted: a kill quarantines the fingerprint again with the
// cooldown doubled (30 s, 60 s, 120 s, ... capped at `max_cooldown`, 10 min); a survival releases
// it — its history is cleared (the entry dropped) and it counts as having survived. Outcomes of
// attempts admitted before the quarantine that finish during the cooldown are recorded in the
// window but change nothing.
//
// Memory. At most `max_fingerprints` (10,000) entries; an entry is dropped when it survives with
// no kill left within `memory` (it becomes a survivor in the table), and when a new one needs
// room, the least recently seen (admit or outcome) entry of its shard goes, quarantined entries
// last. Entries live in up to 16 shards (each with its own mutex and max_fingerprints/shards
// entries; one shard per 64 entries of capacity, so small configurations have exact LRU). An
// entry holds the last `window` outcomes (time + worker id): ~0.7 KiB at window 16, ~7 MiB for a
// full table, plus 128 KiB of survivor table.
//
// Cost of the common path (a fingerprint that never killed anything): admit() = one relaxed load
// of its shard's size while no entry lives in that shard, else one lock + hash lookup;
// record_survived() = the same plus one relaxed store into the survivor table. The fingerprint
// itself costs a JSON dump of the arguments, so a caller may skip it while tracking_any() is
// false — but then the survivor table learns nothing and a command's first kill after a quiet
// spell gets no credit (the 4.4% "unlucky start" above, once per quiet spell). Asking
// wants_fingerprint() instead keeps the dump off 15 of 16 such requests and still refreshes the
// table: a command at 1000 req/s is sampled ~60 times a second, so its first kill finds its mark.
//
// Why invalid_request. The request itself is what kills workers, so the caller must not resend it
// anywhere now: the classifier's strategy for invalid_request is abandon. A resource or
// circuit_open error would be classified failover/retry: the fallback chain would hand the poison
// request to the single bridge (killing its worker too), and as a service-level failure it would
// count towards opening the pool's breaker, refusing every other caller because of one bad
// request. The message says when it will be accepted again.
//
// Thread-safety: every method may be called from any thread concurrently. Nothing throws.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "bridgepool/clock.h"
#include "bridgepool/error.h"
#include "bridgepool/resilience.h"

namespace bridgepool {

class PoisonQuarantine {
 public:
  explicit PoisonQuarantine(QuarantineConfig config = {},
                            const Clock& clock = SteadyClock::instance());
  ~PoisonQuarantine();
  PoisonQuarantine(const PoisonQuarantine&) = delete;
  PoisonQuarantine& operator=(const PoisonQuarantine&) = delete;

  // The request's fingerprint: a hash of `command` and the canonical JSON of `args`. Equal for
  // equal requests (object key order does not matter), in this process. Pure; any thread.
  static std::uint64_t fingerprint(std::string_view command, const nlohmann::json& args);

  // Before sending an attempt. Ok, or an invalid_request Error when the fingerprint is
  // quarantined (message: "request quarantined: command 'X' with these arguments killed N of
  // its last M attempts (workers w1, w2); refused for another S s"). After a cooldown, the first
  // call returns ok for the probe attempt. Any thread.
  Result<void> admit(std::uint64_t fp, std::string_view command);

  // True while any fingerprint is tracked (lock-free). While false, admit() admits everything.
  bool tracking_any() const { return tracked_.load(std::memory_order_relaxed) != 0; }
  // Whether to fingerprint this request and report it (admit, then record_*): true while
  // tracking_any(), else for one call in 16 per thread, so that survivals keep reaching the
  // survivor table (see "Cost of the common path"). Any thread; lock-free.
  bool wants_fingerprint() const;

  // The attempt ended with its worker dying or being killed (crash, timeout kill). Any thread.
  void record_kill(std::uint64_t fp, std::string_view worker_id);
  // The attempt finished without killing its worker (a Python exception included). Any thread.
  void record_survived(std::uint64_t fp);

  struct Counters {
    std::uint64_t refused = 0;      // admit() calls that returned an error
    std::uint64_t quarantined = 0;  // quarantines begun (a relapse after a probe counts again)
    std::uint64_t released = 0;     // quarantines ended by a surviving probe
    std::size_t tracked = 0;        // entries held now
  };
  // A snapshot (the fields are read one by one). Any thread.
  Counters counters() const;

  const QuarantineConfig& config() const { return config_; }

 private:
  struct Entry;
  struct Shard;

  Shard& shard_for(std::uint64_t fp) const;
  Entry& find_or_track(Shard& shard, std::uint64_t fp, TimePoint now);
  void evict_one(Shard& shard, TimePoint now);
  void quarantine(Entry& entry, TimePoint now);
  void release(Shard& shard, std::uint64_t fp, TimePoint now);
  bool survived_recently(std::uint64_t fp, TimePoint now) const;
  void mark_survivor(std::uint64_t fp, TimePoint now);
  tl::unexpected<Error> refusal(const Entry& entry, std::uint64_t fp, std::string_view command,
                                TimePoint now) const;

  QuarantineConfig config_;
  const Clock& clock_;
  std::size_t shard_capacity_ = 0;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> survivors_;
  std::atomic<std::size_t> tracked_{0};  // entries in all shards
  std::atomic<std::uint64_t> refused_{0}, quarantined_{0}, released_{0};
};

}  // namespace bridgepool
