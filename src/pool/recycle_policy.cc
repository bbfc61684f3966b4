// RecyclePolicy: per-worker jittered request limits, the RSS limit and the capacity rule.
#include "pool/recycle_policy.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace bridgepool {

std::string_view recycle_reason_name(RecycleReason reason) {
  switch (reason) {
    case RecycleReason::kMaxRequests:
      return "max_requests";
    case RecycleReason::kMaxRss:
      return "max_rss";
  }
  return "unknown";
}

std::uint64_t RecyclePolicy::limit_for_new_worker(const UniformRandom& random) const {
  if (config_.max_requests == 0) return 0;
  const double jitter = std::clamp(config_.max_requests_jitter, 0.0, 1.0);
  const double max = static_cast<double>(config_.max_requests);
  if (jitter == 0.0) return config_.max_requests;  // exact, even beyond double's 2^53
  const double u = std::clamp(random(), 0.0, 1.0);
  // u = 0 gives max*(1-j), u -> 1 gives max*(1+j): 1000 and 0.1 -> [900, 1100].
  const double limit = std::round(max * (1.0 - jitter + 2.0 * jitter * u));
  // Converting a double at or above 2^64 to uint64 is undefined behaviour; saturate instead.
  constexpr double kTwoTo64 = 18446744073709551616.0;
  if (limit >= kTwoTo64) return std::numeric_limits<std::uint64_t>::max();
  return std::max<std::uint64_t>(1, static_cast<std::uint64_t>(limit));
}

std::optional<RecycleReason> RecyclePolicy::check(std::uint64_t requests_served, double rss_mb,
                                                  std::uint64_t this_workers_limit) const {
  if (config_.max_rss_mb > 0 && rss_mb > config_.max_rss_mb) return RecycleReason::kMaxRss;
  if (this_workers_limit > 0 && requests_served >= this_workers_limit) {
    return RecycleReason::kMaxRequests;
  }
  return std::nullopt;
}

bool RecyclePolicy::may_recycle_now(std::size_t ready_workers, std::size_t pool_size,
                                    std::size_t recycling_in_progress) {
  if (recycling_in_progress > 0 || ready_workers == 0 || pool_size == 0) return false;
  // The candidate is one of ready_workers; the rest must cover size - 1 (both sides >= 0: the
  // zero cases returned above). Size 4: ready 4 -> 3 >= 3 yes; ready 3 -> 2 >= 3 no.
  return ready_workers - 1 >= pool_size - 1;
}

}  // namespace bridgepool
