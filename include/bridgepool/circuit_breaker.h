// CircuitBreaker: stop sending calls to a target that is failing as a whole (SPEC §6).
//
// One breaker guards one named target (a pool, a command, an adapter of a fallback chain); a
// BreakerRegistry hands out breakers by name so every caller of a target shares one. A caller asks
// acquire() before the call and, if admitted, reports the outcome with record(). The breaker never
// runs the call itself: its state lives behind one short mutex that is held only inside acquire()
// and record(), never around the call (SPEC §11 items 2 and 14).
//
//   closed --(failures reach the threshold)--> open --(open_timeout since it opened)--> half_open
//   half_open --(success_threshold trial successes)--> closed
//   half_open --(any trial failure)--> open (a new open period, timed from that failure)
//   any --reset()--> closed          any --force_open()--> open, with no timeout, until reset()
//
// When does it open? In kConsecutive mode after `failure_threshold` failures in a row (a success
// starts the count again): with the default 5, the 5th failure in a row opens it. In the two rate
// modes when, after a success or failure is recorded, the window holds at least `minimum_calls`
// calls and failures/calls >= `failure_rate_threshold`. With 20 minimum calls and 0.5, even 19
// failures out of 19 calls keep it closed (no verdict below 20 calls); with 20 calls, 10 failures
// open it (10/20 = 0.5) and 9 do not (9/20 = 0.45). kCount looks at the last `window_size`
// recorded calls; kTime at the calls recorded in the last `window_duration`, kept in 10 buckets
// of window_duration/10, so a call leaves the window between 0.9·D and 1·D after it was recorded
// (D = 10 s: a failure at 12.3 s sits in bucket [12 s, 13 s) and counts until 22.0 s).
// Every transition clears the window and the consecutive count.
//
// Open rejects at once with a kCircuitOpen error. The open period is timed from the moment it
// opened, never from the last failure: failures that land while it is open (calls admitted
// before it opened) do not push the half-open time back. After open_timeout the next acquire()
// moves it to half-open, which admits at most `half_open_max_calls` trial calls in that period
// (in flight plus completed; a kIgnored outcome gives its slot back), so a recovering target is
// not stampeded. `success_threshold` trial successes close it; any trial failure reopens it.
//
// Every permit carries the epoch of the state period it was admitted in (each transition, reset
// and force_open starts a new period). An outcome recorded with a permit of an earlier period
// only updates the counters: a slow call admitted while closed must not close a breaker that has
// since opened, nor use up a half-open slot. Every admitted permit must be recorded exactly once
// (kIgnored if the call was not made): a lost trial permit holds its half-open slot until reset().
//
// Every transition emits `breaker.transition` on the EventBus (if one is given) with metadata
// breaker/from/to/reason and measurements failure_rate, consecutive_failures (as they were just
// before the transition) and epoch (of the new period). Events are emitted after the mutex is
// released, so handlers may call back into the breaker; concurrent transitions may reach a handler
// out of order, and the epoch orders them.
//
// Thread-safety: every method of CircuitBreaker and BreakerRegistry may be called from any thread.
// The Clock and the EventBus must outlive the breakers that use them.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "bridgepool/clock.h"
#include "bridgepool/error.h"
#include "bridgepool/event_bus.h"

namespace bridgepool {

enum class CircuitState { kClosed, kOpen, kHalfOpen };
std::string_view circuit_state_name(CircuitState state);  // "closed", "open", "half_open"

// What decides that a closed breaker opens (see the arithmetic above).
enum class BreakerWindow { kConsecutive, kCount, kTime };
std::string_view breaker_window_name(BreakerWindow window);  // "consecutive", "count", "time"

struct CircuitBreakerConfig {
  BreakerWindow window = BreakerWindow::kConsecutive;
  std::uint32_t failure_threshold = 5;  // kConsecutive: consecutive failures that open it
  double failure_rate_threshold = 0.5;  // kCount/kTime: open when failures/calls >= this
  std::uint32_t window_size = 100;      // kCount: the last N recorded calls
  std::chrono::milliseconds window_duration{10'000};  // kTime: calls recorded in the last D
  std::uint32_t minimum_calls = 20;                // rate windows: no verdict below this many calls
  std::chrono::milliseconds open_timeout{60'000};  // open -> half-open, timed from opening
  std::uint32_t half_open_max_calls = 3;           // trial calls admitted while half-open
  std::uint32_t success_threshold = 3;             // successful trials that close it

  // Ok, or a kInvalidRequest error naming the first bad field: thresholds and counts must be at
  // least 1, failure_rate_threshold in (0, 1], durations positive, window_size at most
  // kMaxWindowSize, success_threshold <= half_open_max_calls (a larger one could never be met), and
  // in kCount mode minimum_calls <= window_size (a smaller window could never reach a verdict).
  Result<void> validate() const;

  // The count window keeps one byte per call: 1 Mi calls = 1 MiB per breaker at most.
  static constexpr std::uint32_t kMaxWindowSize = 1u << 20;
  // kTime keeps this many buckets of window_duration / kTimeBuckets each.
  static constexpr std::uint32_t kTimeBuckets = 10;
};

// The outcome of an admitted call. kIgnored is neither a success nor a failure (e.g. the request
// was malformed, or the call was never made); it frees a half-open slot.
enum class BreakerOutcome { kSuccess, kFailure, kIgnored };
std::string_view breaker_outcome_name(BreakerOutcome outcome);  // "success", "failure", "ignored"

// Totals since construction (reset() does not clear them). Every admitted permit is recorded
// once, so admitted == successes + failures + ignored + permits still outstanding. opened,
// half_opened and closed count transitions into that state (force_open of an open breaker is not
// one; reset of a closed breaker is not one).
struct BreakerCounters {
  std::uint64_t admitted = 0, rejected = 0, successes = 0, failures = 0, ignored = 0, opened = 0,
                half_opened = 0, closed = 0;
};

struct BreakerSnapshot {
  std::string name;
  CircuitState state;  // as state() reports it
  bool forced_open;
  BreakerCounters counters;
  std::uint32_t consecutive_failures;  // in the current period
  double failure_rate;                 // rate modes: failures/calls in the window (0 if empty)
  std::uint32_t calls_in_window;       // rate modes: calls the window holds now
  std::uint32_t half_open_in_flight;   // trial permits admitted and not yet recorded
  std::chrono::milliseconds open_remaining;  // until it half-opens; 0 unless open (and if forced)
};

class CircuitBreaker {
 public:
  // Small and copyable; identifies the state period it was admitted in. A default Permit belongs
  // to no period, so recording it only counts the outcome.
  struct Permit {
    std::uint64_t epoch = 0;
    bool trial = false;  // admitted while half-open
  };

  // `config` should have passed validate(); out-of-range fields are clamped to the nearest valid
  // value (half_open_max_calls 0 -> 1, success_threshold 5 with 3 trial calls -> 3) so the breaker
  // still works. config() returns the clamped values.
  explicit CircuitBreaker(std::string name, CircuitBreakerConfig config = {},
                          const Clock& clock = SteadyClock::instance(),
                          std::shared_ptr<EventBus> events = nullptr);
  ~CircuitBreaker();
  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;

  // Admits a call (a Permit to pass to record()) or refuses it at once with an Error of category
  // kCircuitOpen (context.operation "breaker", message naming the breaker and how long until it
  // half-opens). Moves open -> half-open when open_timeout has passed since it opened. Any thread.
  Result<Permit> acquire();
  // Records the outcome of an admitted call. A permit from an earlier state period (epoch) only
  // updates counters, never the state. Any thread.
  void record(const Permit& permit, BreakerOutcome outcome);

  // What acquire() would see now: an open breaker past its timeout reads kHalfOpen. Any thread.
  CircuitState state() const;
  // -> closed, windows cleared, forced flag cleared, a new period begins. Any thread.
  void reset();
  // -> open and stays open (no timeout) until reset(); a new period begins. Any thread.
  void force_open();
  // A consistent copy of the state, counters and window, taken under the mutex. Any thread.
  BreakerSnapshot snapshot() const;

  const std::string& name() const { return name_; }
  const CircuitBreakerConfig& config() const { return config_; }

 private:
  class OutcomeWindow;  // the kCount / kTime window, defined in circuit_breaker.cc
  struct Transition;    // one transition to publish once the mutex is released
  using Transitions = std::vector<Transition>;

  CircuitState effective_state_locked(TimePoint now) const;
  std::chrono::milliseconds open_remaining_locked(TimePoint now) const;
  void expire_open_locked(TimePoint now, Transitions& out);
  void transition_locked(CircuitState to, std::string_view reason, TimePoint now, Transitions& out);
  void record_closed_locked(BreakerOutcome outcome, TimePoint now, Transitions& out);
  void record_trial_locked(BreakerOutcome outcome, TimePoint now, Transitions& out);
  Error rejection_locked(TimePoint now) const;
  void publish(const Transitions& transitions) const;

  const std::string name_;
  const CircuitBreakerConfig config_;
  const Clock& clock_;
  const std::shared_ptr<EventBus> events_;

  mutable std::mutex mu_;  // guards everything below; never held around a call or an emit
  CircuitState state_ = CircuitState::kClosed;  // stored; open past its timeout is still kOpen
  bool forced_open_ = false;
  std::uint64_t epoch_ = 1;  // current state period; Permit{} (epoch 0) is never current
  TimePoint opened_at_{};    // when the current open period began
  std::uint32_t consecutive_failures_ = 0;
  std::uint32_t trials_in_flight_ = 0;  // half-open: admitted, not yet recorded
  std::uint32_t trial_successes_ = 0;   // half-open: in flight + successes <= half_open_max_calls
  BreakerCounters counters_;
  std::unique_ptr<OutcomeWindow> window_;  // null in kConsecutive mode
};

// Breakers by name, shared by every caller of a target. Any thread.
class BreakerRegistry {
 public:
  explicit BreakerRegistry(const Clock& clock = SteadyClock::instance(),
                           std::shared_ptr<EventBus> events = nullptr);

  // The existing breaker of that name, or a new one with `config` (ignored if it exists). Never
  // null. Any thread.
  std::shared_ptr<CircuitBreaker> get_or_create(std::string_view name,
                                                const CircuitBreakerConfig& config = {});
  // The breaker of that name, or nullptr if none. Any thread.
  std::shared_ptr<CircuitBreaker> find(std::string_view name) const;
  // One snapshot per breaker, sorted by name. Any thread.
  std::vector<BreakerSnapshot> snapshots() const;
  // reset() on every breaker (outside the registry's mutex). Any thread.
  void reset_all();
  std::size_t size() const;

 private:
  std::vector<std::shared_ptr<CircuitBreaker>> all() const;

  const Clock& clock_;
  const std::shared_ptr<EventBus> events_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<CircuitBreaker>, std::less<>> breakers_;
};

}  // namespace bridgepool
