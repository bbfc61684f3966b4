// CircuitBreaker: the state machine of include/bridgepool/circuit_breaker.h.
//
// Every public method takes the mutex once, works out the new state, collects the transitions it
// made and releases the mutex before publishing them, so the mutex is held for a few comparisons
// and never around a call or an event handler. Time is read once per method, before locking.
#include "bridgepool/circuit_breaker.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include <fmt/format.h>

#include "bridgepool/event_names.h"

namespace bridgepool {

namespace {

double rate_of(std::uint32_t failures, std::uint32_t calls) {
  return calls == 0 ? 0.0 : static_cast<double>(failures) / static_cast<double>(calls);
}

tl::unexpected<Error> invalid(std::string message) {
  return make_error(ErrorCategory::kInvalidRequest,
                    "circuit breaker config: " + std::move(message));
}

// validate()'s rules turned into the nearest valid value, for a constructor that cannot fail.
CircuitBreakerConfig clamped(CircuitBreakerConfig c) {
  using std::chrono::milliseconds;
  c.failure_threshold = std::max(c.failure_threshold, 1u);
  if (!(c.failure_rate_threshold > 0.0)) c.failure_rate_threshold = 1e-9;  // NaN lands here too
  c.failure_rate_threshold = std::min(c.failure_rate_threshold, 1.0);
  c.window_size = std::clamp(c.window_size, 1u, CircuitBreakerConfig::kMaxWindowSize);
  c.window_duration = std::max(c.window_duration, milliseconds(1));
  c.minimum_calls = std::max(c.minimum_calls, 1u);
  if (c.window == BreakerWindow::kCount) c.minimum_calls = std::min(c.minimum_calls, c.window_size);
  c.open_timeout = std::max(c.open_timeout, milliseconds(1));
  c.half_open_max_calls = std::max(c.half_open_max_calls, 1u);
  c.success_threshold = std::clamp(c.success_threshold, 1u, c.half_open_max_calls);
  return c;
}

}  // namespace

std::string_view circuit_state_name(CircuitState state) {
  switch (state) {
    case CircuitState::kClosed:
      return "closed";
    case CircuitState::kOpen:
      return "open";
    case CircuitState::kHalfOpen:
      return "half_open";
  }
  return "unknown";
}

std::string_view breaker_window_name(BreakerWindow window) {
  switch (window) {
    case BreakerWindow::kConsecutive:
      return "consecutive";
    case BreakerWindow::kCount:
      return "count";
    case BreakerWindow::kTime:
      return "time";
  }
  return "unknown";
}

std::string_view breaker_outcome_name(BreakerOutcome outcome) {
  switch (outcome) {
    case BreakerOutcome::kSuccess:
      return "success";
    case BreakerOutcome::kFailure:
      return "failure";
    case BreakerOutcome::kIgnored:
      return "ignored";
  }
  return "unknown";
}

Result<void> CircuitBreakerConfig::validate() const {
  if (window != BreakerWindow::kConsecutive && window != BreakerWindow::kCount &&
      window != BreakerWindow::kTime) {
    return invalid("window is not one of consecutive, count, time");
  }
  if (failure_threshold < 1) return invalid("failure_threshold must be at least 1");
  if (!(failure_rate_threshold > 0.0 && failure_rate_threshold <= 1.0)) {
    return invalid(
        fmt::format("failure_rate_threshold must be in (0, 1], got {}", failure_rate_threshold));
  }
  if (window_size < 1 || window_size > kMaxWindowSize) {
    return invalid(
        fmt::format("window_size must be in [1, {}], got {}", kMaxWindowSize, window_size));
  }
  if (window_duration.count() <= 0) return invalid("window_duration must be positive");
  if (minimum_calls < 1) return invalid("minimum_calls must be at least 1");
  if (window == BreakerWindow::kCount && minimum_calls > window_size) {
    return invalid(fmt::format(
        "minimum_calls ({}) exceeds window_size ({}): the window could never reach a verdict",
        minimum_calls, window_size));
  }
  if (open_timeout.count() <= 0) return invalid("open_timeout must be positive");
  if (half_open_max_calls < 1) return invalid("half_open_max_calls must be at least 1");
  if (success_threshold < 1) return invalid("success_threshold must be at least 1");
  if (success_threshold > half_open_max_calls) {
    return invalid(
        fmt::format("success_threshold ({}) exceeds half_open_max_calls ({}): it could never close",
                    success_threshold, half_open_max_calls));
  }
  return {};
}

// The failure-rate window: the last N calls (kCount) or the calls of the last D (kTime).
class CircuitBreaker::OutcomeWindow {
 public:
  struct Tally {
    std::uint32_t calls = 0;
    std::uint32_t failures = 0;
  };

  explicit OutcomeWindow(const CircuitBreakerConfig& config)
      : time_based_(config.window == BreakerWindow::kTime),
        bucket_width_(std::max<Duration::rep>(
            1, Duration(config.window_duration).count() / CircuitBreakerConfig::kTimeBuckets)) {
    if (!time_based_) ring_.assign(config.window_size, 0);
  }

  void add(TimePoint now, bool failed) {
    if (time_based_) {
      add_timed(now, failed);
    } else {
      add_counted(failed);
    }
  }

  void clear() {
    std::fill(ring_.begin(), ring_.end(), 0);
    next_ = 0;
    count_ = 0;
    failures_ = 0;
    buckets_.fill(Bucket{});
  }

  Tally tally(TimePoint now) const {
    if (!time_based_) return {count_, failures_};
    Tally t;
    const std::int64_t current = bucket_index(now);
    for (const auto& b : buckets_) {
      if (b.index > current - kBuckets && b.index <= current) {
        t.calls += b.calls;
        t.failures += b.failures;
      }
    }
    return t;
  }

 private:
  static constexpr std::int64_t kBuckets = CircuitBreakerConfig::kTimeBuckets;
  struct Bucket {
    std::int64_t index = -1;  // which bucket of time this slot holds; -1: none yet
    std::uint32_t calls = 0;
    std::uint32_t failures = 0;
  };

  // Buckets are aligned to the clock's epoch: bucket i covers [i·w, (i+1)·w).
  std::int64_t bucket_index(TimePoint now) const {
    return now.time_since_epoch().count() / bucket_width_;
  }

  void add_counted(bool failed) {
    // The ring holds the last window_size outcomes; the oldest one is overwritten.
    if (count_ == ring_.size()) {
      failures_ -= ring_[next_];
    } else {
      ++count_;
    }
    ring_[next_] = failed ? 1 : 0;
    failures_ += failed ? 1 : 0;
    next_ = (next_ + 1) % ring_.size();
  }

  void add_timed(TimePoint now, bool failed) {
    // Slot i % kBuckets holds bucket i; a slot still holding an older bucket is stale, reuse it.
    const std::int64_t index = bucket_index(now);
    Bucket& b = buckets_[static_cast<std::size_t>(index % kBuckets)];
    if (b.index != index) b = Bucket{index, 0, 0};
    ++b.calls;
    b.failures += failed ? 1 : 0;
  }

  const bool time_based_;
  const Duration::rep bucket_width_;  // nanoseconds
  std::vector<std::uint8_t> ring_;    // kCount: 1 = failure
  std::size_t next_ = 0;
  std::uint32_t count_ = 0;
  std::uint32_t failures_ = 0;
  std::array<Bucket, kBuckets> buckets_{};
};

struct CircuitBreaker::Transition {
  CircuitState from;
  CircuitState to;
  std::string_view reason;
  double failure_rate;
  std::uint32_t consecutive_failures;
  std::uint64_t epoch;  // of the period the transition began
  std::chrono::system_clock::time_point time;
};

CircuitBreaker::CircuitBreaker(std::string name, CircuitBreakerConfig config, const Clock& clock,
                               std::shared_ptr<EventBus> events)
    : name_(std::move(name)), config_(clamped(config)), clock_(clock), events_(std::move(events)) {
  if (config_.window != BreakerWindow::kConsecutive) {
    window_ = std::make_unique<OutcomeWindow>(config_);
  }
}

CircuitBreaker::~CircuitBreaker() = default;

Result<CircuitBreaker::Permit> CircuitBreaker::acquire() {
  const TimePoint now = clock_.now();
  Transitions transitions;
  Result<Permit> result;
  {
    std::lock_guard lock(mu_);
    expire_open_locked(now, transitions);
    if (state_ == CircuitState::kClosed) {
      ++counters_.admitted;
      result = Permit{epoch_, false};
    } else if (state_ == CircuitState::kHalfOpen &&
               trials_in_flight_ + trial_successes_ < config_.half_open_max_calls) {
      // Slots used = trials in flight + trials that succeeded (a failed trial reopens at once,
      // an ignored one gives its slot back): with 3 slots, a 4th concurrent caller is refused.
      ++counters_.admitted;
      ++trials_in_flight_;
      result = Permit{epoch_, true};
    } else {
      ++counters_.rejected;
      result = tl::unexpected<Error>(rejection_locked(now));
    }
  }
  publish(transitions);
  return result;
}

void CircuitBreaker::record(const Permit& permit, BreakerOutcome outcome) {
  const TimePoint now = clock_.now();
  Transitions transitions;
  {
    std::lock_guard lock(mu_);
    switch (outcome) {
      case BreakerOutcome::kSuccess:
        ++counters_.successes;
        break;
      case BreakerOutcome::kFailure:
        ++counters_.failures;
        break;
      case BreakerOutcome::kIgnored:
        ++counters_.ignored;
        break;
    }
    expire_open_locked(now, transitions);
    // A permit of an earlier period (admitted before the last transition) counts only above.
    if (permit.epoch == epoch_) {
      // Permits are issued only while closed or half-open, so the period is one of those two.
      if (state_ == CircuitState::kHalfOpen) {
        record_trial_locked(outcome, now, transitions);
      } else {
        record_closed_locked(outcome, now, transitions);
      }
    }
  }
  publish(transitions);
}

void CircuitBreaker::record_closed_locked(BreakerOutcome outcome, TimePoint now, Transitions& out) {
  if (outcome == BreakerOutcome::kIgnored) return;
  const bool failed = outcome == BreakerOutcome::kFailure;
  consecutive_failures_ = failed ? consecutive_failures_ + 1 : 0;
  if (!window_) {
    if (consecutive_failures_ >= config_.failure_threshold) {
      transition_locked(CircuitState::kOpen, "failure_threshold", now, out);
    }
    return;
  }
  window_->add(now, failed);
  const auto tally = window_->tally(now);
  if (tally.calls >= config_.minimum_calls &&
      rate_of(tally.failures, tally.calls) >= config_.failure_rate_threshold) {
    transition_locked(CircuitState::kOpen, "failure_rate", now, out);
  }
}

void CircuitBreaker::record_trial_locked(BreakerOutcome outcome, TimePoint now, Transitions& out) {
  --trials_in_flight_;
  switch (outcome) {
    case BreakerOutcome::kSuccess:
      if (++trial_successes_ >= config_.success_threshold) {
        transition_locked(CircuitState::kClosed, "trials_succeeded", now, out);
      }
      break;
    case BreakerOutcome::kFailure:
      ++consecutive_failures_;  // reported in the event, then cleared by the transition
      transition_locked(CircuitState::kOpen, "trial_failed", now, out);
      break;
    case BreakerOutcome::kIgnored:
      break;  // the slot is free again
  }
}

CircuitState CircuitBreaker::state() const {
  const TimePoint now = clock_.now();
  std::lock_guard lock(mu_);
  return effective_state_locked(now);
}

void CircuitBreaker::reset() {
  const TimePoint now = clock_.now();
  Transitions transitions;
  {
    std::lock_guard lock(mu_);
    expire_open_locked(now, transitions);
    forced_open_ = false;
    transition_locked(CircuitState::kClosed, "reset", now, transitions);
  }
  publish(transitions);
}

void CircuitBreaker::force_open() {
  const TimePoint now = clock_.now();
  Transitions transitions;
  {
    std::lock_guard lock(mu_);
    if (!forced_open_) {
      expire_open_locked(now, transitions);
      forced_open_ = true;
      transition_locked(CircuitState::kOpen, "force_open", now, transitions);
    }
  }
  publish(transitions);
}

BreakerSnapshot CircuitBreaker::snapshot() const {
  const TimePoint now = clock_.now();
  std::lock_guard lock(mu_);
  BreakerSnapshot s{name_,     effective_state_locked(now), forced_open_,
                    counters_, consecutive_failures_,       0.0,
                    0,         trials_in_flight_,           open_remaining_locked(now)};
  if (window_) {
    const auto tally = window_->tally(now);
    s.calls_in_window = tally.calls;
    s.failure_rate = rate_of(tally.failures, tally.calls);
  }
  return s;
}

CircuitState CircuitBreaker::effective_state_locked(TimePoint now) const {
  if (state_ == CircuitState::kOpen && !forced_open_ && now - opened_at_ >= config_.open_timeout) {
    return CircuitState::kHalfOpen;
  }
  return state_;
}

std::chrono::milliseconds CircuitBreaker::open_remaining_locked(TimePoint now) const {
  if (state_ != CircuitState::kOpen || forced_open_) return std::chrono::milliseconds(0);
  const auto remaining = opened_at_ + config_.open_timeout - now;
  // Rounded up, so "0 ms" is only ever reported once the timeout has passed.
  return std::max(std::chrono::ceil<std::chrono::milliseconds>(remaining),
                  std::chrono::milliseconds(0));
}

void CircuitBreaker::expire_open_locked(TimePoint now, Transitions& out) {
  if (state_ == CircuitState::kOpen && effective_state_locked(now) == CircuitState::kHalfOpen) {
    transition_locked(CircuitState::kHalfOpen, "open_timeout", now, out);
  }
}

// Every call starts a new period: permits of the old one become stale, the window, the
// consecutive count and the half-open slots start from zero. A transition to the same state
// (reset of a closed breaker) is not published and not counted.
void CircuitBreaker::transition_locked(CircuitState to, std::string_view reason, TimePoint now,
                                       Transitions& out) {
  const CircuitState from = state_;
  const bool forcing = reason == "force_open";
  if (from != to || forcing) {
    double rate = 0.0;
    if (window_) {
      const auto tally = window_->tally(now);
      rate = rate_of(tally.failures, tally.calls);
    }
    out.push_back(
        Transition{from, to, reason, rate, consecutive_failures_, epoch_ + 1, clock_.wall_now()});
  }
  if (from != to) {
    if (to == CircuitState::kOpen) ++counters_.opened;
    if (to == CircuitState::kHalfOpen) ++counters_.half_opened;
    if (to == CircuitState::kClosed) ++counters_.closed;
  }
  state_ = to;
  ++epoch_;
  if (to == CircuitState::kOpen) opened_at_ = now;
  consecutive_failures_ = 0;
  trials_in_flight_ = 0;
  trial_successes_ = 0;
  if (window_) window_->clear();
}

Error CircuitBreaker::rejection_locked(TimePoint now) const {
  std::string message;
  if (forced_open_) {
    message = fmt::format("circuit breaker '{}' is forced open until reset", name_);
  } else if (state_ == CircuitState::kOpen) {
    message = fmt::format("circuit breaker '{}' is open; it half-opens in {} ms", name_,
                          open_remaining_locked(now).count());
  } else {
    message = fmt::format(
        "circuit breaker '{}' is half-open and all {} trial calls are taken; retry later", name_,
        config_.half_open_max_calls);
  }
  Error error(ErrorCategory::kCircuitOpen, std::move(message));
  error.context.operation = "breaker";
  return error;
}

void CircuitBreaker::publish(const Transitions& transitions) const {
  if (transitions.empty() || !events_ || !events_->has_handlers()) return;
  for (const auto& t : transitions) {
    Event event{std::string(event_name(EventId::kBreakerTransition)),
                {{"failure_rate", t.failure_rate},
                 {"consecutive_failures", static_cast<double>(t.consecutive_failures)},
                 {"epoch", static_cast<double>(t.epoch)}},
                {{"breaker", name_},
                 {"from", std::string(circuit_state_name(t.from))},
                 {"to", std::string(circuit_state_name(t.to))},
                 {"reason", std::string(t.reason)}},
                t.time};
    events_->emit(event);
  }
}

}  // namespace bridgepool
