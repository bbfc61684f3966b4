// RecyclePolicy: when to replace a worker that works but is old or fat (SPEC §4 "Recycling"), pure.
//
// Long-lived Python processes grow (fragmented heaps, caches, leaks in user code). The pool gives
// each new worker a request limit from limit_for_new_worker(), asks check() after each request
// whether the worker is over a limit, and replaces it when it is next idle and may_recycle_now()
// allows it, so no request fails and capacity never dips below size - 1.
//
// Jitter: with max_requests 1000 and jitter 0.1 each worker gets its own limit, drawn uniformly
// from [900, 1100]. Workers started together and served evenly reach the same count together:
// without jitter all 8 of a pool would hit 1000 within a few requests of each other, and
// recycling them at once would empty the pool. Even one at a time (the rule below) they would
// form a train of 8 back-to-back recycles, each ~2 s of Python start-up at size - 1 capacity.
// Spread over ±100 requests, the recycles drift apart and interleave with normal service.
// Randomness is injected (a function returning uniform [0, 1)), so tests use a seeded engine.
// Thread-safety: immutable after construction; every method may be called from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

namespace bridgepool {

enum class RecycleReason {
  kMaxRequests,  // served its request limit
  kMaxRss,       // resident memory above max_rss_mb
};
std::string_view recycle_reason_name(RecycleReason reason);  // "max_requests", "max_rss"

// A source of uniform doubles in [0, 1). Values outside are clamped.
using UniformRandom = std::function<double()>;

struct RecycleConfig {
  std::uint64_t max_requests = 0;    // per worker, before jitter; 0 = off
  double max_requests_jitter = 0.1;  // fraction j: limits drawn from [max*(1-j), max*(1+j)]
  double max_rss_mb = 0;             // resident set size limit in MiB; 0 = off
};

class RecyclePolicy {
 public:
  explicit RecyclePolicy(const RecycleConfig& config) : config_(config) {}

  // The request limit for a worker being started: max_requests * (1 - j + 2j * u) for one draw
  // u of `random`, rounded, at least 1; 0 (no limit) when max_requests is 0. j is clamped to
  // [0, 1]; `random` is not called when max_requests or j is 0.
  std::uint64_t limit_for_new_worker(const UniformRandom& random) const;

  // Whether a worker should be recycled: kMaxRss when rss_mb > max_rss_mb (memory pressure hurts
  // the whole host, so it is reported first), else kMaxRequests when requests_served >=
  // this_workers_limit (the limit is the number it may serve), else nullopt. A limit of 0 is off.
  std::optional<RecycleReason> check(std::uint64_t requests_served, double rss_mb,
                                     std::uint64_t this_workers_limit) const;

  // Whether one more worker may be taken out for recycling now. `ready_workers`: workers in
  // service (ready or busy, healthy), the candidate included; `recycling_in_progress`: workers
  // taken out for recycling whose replacement is not ready yet. True only when none is in
  // progress and the others cover size - 1, i.e. ready_workers - 1 >= pool_size - 1. Example,
  // size 4: ready 4 -> 3 remain = size - 1, yes; ready 3 (one degraded) -> 2 < 3, no; a recycle
  // already running -> no. With size 1, size - 1 = 0: the single worker may be recycled (callers
  // wait in the checkout queue meanwhile; none fails).
  static bool may_recycle_now(std::size_t ready_workers, std::size_t pool_size,
                              std::size_t recycling_in_progress);

  const RecycleConfig& config() const { return config_; }

 private:
  RecycleConfig config_;
};

}  // namespace bridgepool
