// RetryBudget: a pool-wide bound on retries in flight, relative to requests in flight (the Envoy
// retry budget), so a failing pool is not hit with (1 + retries) times its load.
//
// Per-request attempt limits (RetryPolicy::max_attempts) do not bound the load: with 5 attempts,
// 100 callers whose requests all fail send 500 calls to a pool that is already in trouble. The
// budget bounds the *extra* load instead: a retry may start only while
//
//   retries in flight < max(min_concurrent, floor(ratio · requests in flight))
//
// With ratio 0.2 and min_concurrent 3: 40 requests in flight -> 8 retries may run at once (the
// 9th is denied and its request returns its error); 100 -> 20; 5 -> floor(1.0) = 1, below the
// minimum, so 3. The minimum keeps retries possible at low traffic, where one failure is a large
// share of the load; the ratio takes over from 15 requests on (15 · 0.2 = 3). A request that
// retries is itself in flight (begin_request before its first attempt, end_request after its
// last), so retries in flight never exceed requests in flight for sensible ratios (<= 1).
//
// The ratio is kept in parts per million so the limit is integer arithmetic:
// floor(requests · ppm / 10^6). In doubles, 0.29 · 100 = 28.999999999999996 would floor to 28.
//
// Lock-free: two atomic counters. try_begin_retry() reads requests in flight, then increments
// retries in flight with a compare-and-swap only while it stays below the limit, so concurrent
// callers never push retries past the limit computed from the requests they read. Requests that
// begin or end during the call may be seen or missed: the limit is that of one instant within it.
// Thread-safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <utility>

namespace bridgepool {

class RetryBudget {
 public:
  // `ratio` is clamped to [0, 1] (NaN reads as 0). Defaults: 20%, at least 3.
  explicit RetryBudget(double ratio = 0.2, std::uint32_t min_concurrent = 3);
  RetryBudget(const RetryBudget&) = delete;
  RetryBudget& operator=(const RetryBudget&) = delete;

  // A request enters / leaves (after its last attempt). Pair them, or use RequestScope. Any thread.
  void begin_request() { requests_in_flight_.fetch_add(1, std::memory_order_relaxed); }
  void end_request() { decrement(requests_in_flight_); }

  // True (and one more retry in flight) if retries in flight < retry_limit(requests in flight);
  // counts the grant or denial. A granted retry must be ended with end_retry(). Any thread.
  bool try_begin_retry();
  // A granted retry's attempt ended (success or not). Any thread.
  void end_retry() { decrement(retries_in_flight_); }

  // max(min_concurrent, floor(ratio · requests_in_flight)): how many retries may be in flight
  // with that many requests in flight. Pure; any thread.
  std::uint32_t retry_limit(std::uint32_t requests_in_flight) const;

  struct Counters {
    std::uint64_t granted = 0, denied = 0;  // try_begin_retry() answers since construction
    std::uint32_t requests_in_flight = 0, retries_in_flight = 0;
  };
  // A copy of the counters (each read atomically; not a snapshot of all four at one instant).
  Counters counters() const;

  double ratio() const { return static_cast<double>(ratio_ppm_) / kPartsPerMillion; }
  std::uint32_t min_concurrent() const { return min_concurrent_; }

  // begin_request() now, end_request() when it goes out of scope.
  class RequestScope {
   public:
    explicit RequestScope(RetryBudget& budget) : budget_(&budget) { budget_->begin_request(); }
    ~RequestScope() {
      if (budget_ != nullptr) budget_->end_request();
    }
    RequestScope(RequestScope&& other) noexcept : budget_(std::exchange(other.budget_, nullptr)) {}
    RequestScope(const RequestScope&) = delete;
    RequestScope& operator=(const RequestScope&) = delete;
    RequestScope& operator=(RequestScope&&) = delete;

   private:
    RetryBudget* budget_;
  };

  // try_begin_retry() now; end_retry() when it goes out of scope, if it was granted.
  class RetryScope {
   public:
    explicit RetryScope(RetryBudget& budget)
        : budget_(budget.try_begin_retry() ? &budget : nullptr) {}
    ~RetryScope() {
      if (budget_ != nullptr) budget_->end_retry();
    }
    RetryScope(RetryScope&& other) noexcept : budget_(std::exchange(other.budget_, nullptr)) {}
    RetryScope(const RetryScope&) = delete;
    RetryScope& operator=(const RetryScope&) = delete;
    RetryScope& operator=(RetryScope&&) = delete;

    bool granted() const { return budget_ != nullptr; }
    explicit operator bool() const { return granted(); }

   private:
    RetryBudget* budget_;
  };

 private:
  static constexpr std::uint64_t kPartsPerMillion = 1'000'000;

  // Decrements, but never below 0: an unpaired end_*() is a caller bug that must not wrap the
  // counter to 4 billion (which would make the budget unlimited or refuse everything).
  static void decrement(std::atomic<std::uint32_t>& counter);

  const std::uint64_t ratio_ppm_;  // ratio · 10^6, rounded: 0.2 -> 200'000
  const std::uint32_t min_concurrent_;
  std::atomic<std::uint32_t> requests_in_flight_{0};
  std::atomic<std::uint32_t> retries_in_flight_{0};
  std::atomic<std::uint64_t> granted_{0};
  std::atomic<std::uint64_t> denied_{0};
};

}  // namespace bridgepool
