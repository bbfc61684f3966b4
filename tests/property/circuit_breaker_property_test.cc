// CircuitBreaker against a model (SPEC §11 item 14): random command sequences — acquire, record
// an outstanding permit as success/failure/ignored, advance the clock, reset, force_open — run on
// the real breaker (ManualClock) and on a deliberately plain model written here, and after every
// step the state, the admission decision, the counters, the window, the half-open slots, the open
// time left and the events must agree.
//
// The model keeps what the breaker keeps in a ring buffer and in time buckets as plain lists: the
// count window is a deque of the last window_size outcomes, the time window every (time, outcome)
// of the period, filtered on demand by the bucket rule of the header (a call recorded in bucket
// i = t / (D/10) counts while the current bucket is below i + 10). It has no mutex and no epochs
// beyond one counter bumped on every new period.
//
// <gtest/gtest.h> must come before <rapidcheck/gtest.h> (clang-format's order keeps it there).
#include <cmath>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include "bridgepool/circuit_breaker.h"

namespace bridgepool {
namespace {

using std::chrono::milliseconds;
using Permit = CircuitBreaker::Permit;

enum class OpKind { kAcquire, kRecord, kAdvance, kReset, kForceOpen };

struct Op {
  OpKind kind = OpKind::kAcquire;
  std::size_t which = 0;  // kRecord: which outstanding permit (modulo how many there are)
  BreakerOutcome outcome = BreakerOutcome::kSuccess;
  int advance_ms = 0;
};

std::ostream& operator<<(std::ostream& os, const Op& op) {
  switch (op.kind) {
    case OpKind::kAcquire:
      return os << "acquire";
    case OpKind::kRecord:
      return os << "record#" << op.which << ":" << breaker_outcome_name(op.outcome);
    case OpKind::kAdvance:
      return os << "advance " << op.advance_ms << "ms";
    case OpKind::kReset:
      return os << "reset";
    case OpKind::kForceOpen:
      return os << "force_open";
  }
  return os;
}

// ---------------------------------------------------------------------------------------------
// The model.

struct ModelPermit {
  std::uint64_t epoch;
  bool trial;
};

class Model {
 public:
  Model(CircuitBreakerConfig config, std::int64_t start_ns) : c_(config), now_ns_(start_ns) {}

  void advance(milliseconds d) { now_ns_ += std::chrono::nanoseconds(d).count(); }

  std::optional<ModelPermit> acquire() {
    time_out_if_due();
    if (state_ == CircuitState::kClosed) {
      ++counters_.admitted;
      return ModelPermit{epoch_, false};
    }
    if (state_ == CircuitState::kHalfOpen &&
        trials_in_flight_ + trial_successes_ < c_.half_open_max_calls) {
      ++counters_.admitted;
      ++trials_in_flight_;
      return ModelPermit{epoch_, true};
    }
    ++counters_.rejected;
    return std::nullopt;
  }

  void record(ModelPermit permit, BreakerOutcome outcome) {
    if (outcome == BreakerOutcome::kSuccess) ++counters_.successes;
    if (outcome == BreakerOutcome::kFailure) ++counters_.failures;
    if (outcome == BreakerOutcome::kIgnored) ++counters_.ignored;
    time_out_if_due();
    if (permit.epoch != epoch_) return;  // stale: counted above, nothing else
    if (state_ == CircuitState::kHalfOpen) {
      --trials_in_flight_;
      if (outcome == BreakerOutcome::kSuccess && ++trial_successes_ >= c_.success_threshold) {
        go(CircuitState::kClosed, "trials_succeeded");
      } else if (outcome == BreakerOutcome::kFailure) {
        ++consecutive_;
        go(CircuitState::kOpen, "trial_failed");
      }
      return;
    }
    if (outcome == BreakerOutcome::kIgnored) return;
    const bool failed = outcome == BreakerOutcome::kFailure;
    consecutive_ = failed ? consecutive_ + 1 : 0;
    if (c_.window == BreakerWindow::kConsecutive) {
      if (consecutive_ >= c_.failure_threshold) go(CircuitState::kOpen, "failure_threshold");
      return;
    }
    last_calls_.push_back(failed);
    if (last_calls_.size() > c_.window_size) last_calls_.pop_front();
    timed_calls_.emplace_back(now_ns_, failed);
    auto [calls, failures] = window();
    if (calls >= c_.minimum_calls && rate(failures, calls) >= c_.failure_rate_threshold) {
      go(CircuitState::kOpen, "failure_rate");
    }
  }

  void reset() {
    time_out_if_due();
    forced_ = false;
    go(CircuitState::kClosed, "reset");
  }

  void force_open() {
    if (forced_) return;
    time_out_if_due();
    forced_ = true;
    go(CircuitState::kOpen, "force_open");
  }

  CircuitState visible_state() const { return timed_out() ? CircuitState::kHalfOpen : state_; }

  // (calls, failures) in the window now.
  std::pair<std::uint32_t, std::uint32_t> window() const {
    std::uint32_t calls = 0, failures = 0;
    if (c_.window == BreakerWindow::kCount) {
      for (bool f : last_calls_) {
        ++calls;
        failures += f;
      }
    } else if (c_.window == BreakerWindow::kTime) {
      const std::int64_t width = std::chrono::nanoseconds(c_.window_duration).count() / 10;
      for (const auto& [t, f] : timed_calls_) {
        if (t / width + 10 > now_ns_ / width) {
          ++calls;
          failures += f;
        }
      }
    }
    return {calls, failures};
  }

  static double rate(std::uint32_t failures, std::uint32_t calls) {
    return calls == 0 ? 0.0 : double(failures) / double(calls);
  }

  milliseconds open_remaining() const {
    if (state_ != CircuitState::kOpen || forced_) return milliseconds(0);
    const std::int64_t left = opened_at_ns_ + timeout_ns() - now_ns_;
    if (left <= 0) return milliseconds(0);
    return milliseconds((left + 999'999) / 1'000'000);
  }

  const BreakerCounters& counters() const { return counters_; }
  const std::vector<std::string>& events() const { return events_; }
  bool forced() const { return forced_; }
  std::uint32_t consecutive() const { return consecutive_; }
  std::uint32_t trials_in_flight() const { return trials_in_flight_; }

 private:
  std::int64_t timeout_ns() const { return std::chrono::nanoseconds(c_.open_timeout).count(); }

  bool timed_out() const {
    return state_ == CircuitState::kOpen && !forced_ && now_ns_ - opened_at_ns_ >= timeout_ns();
  }

  void time_out_if_due() {
    if (timed_out()) go(CircuitState::kHalfOpen, "open_timeout");
  }

  void go(CircuitState to, std::string reason) {
    if (state_ != to || reason == "force_open") {
      events_.push_back(std::string(circuit_state_name(state_)) + ">" +
                        std::string(circuit_state_name(to)) + ":" + reason);
    }
    if (state_ != to) {
      if (to == CircuitState::kOpen) ++counters_.opened;
      if (to == CircuitState::kHalfOpen) ++counters_.half_opened;
      if (to == CircuitState::kClosed) ++counters_.closed;
    }
    state_ = to;
    ++epoch_;
    if (to == CircuitState::kOpen) opened_at_ns_ = now_ns_;
    consecutive_ = 0;
    trials_in_flight_ = 0;
    trial_successes_ = 0;
    last_calls_.clear();
    timed_calls_.clear();
  }

  const CircuitBreakerConfig c_;
  std::int64_t now_ns_;
  CircuitState state_ = CircuitState::kClosed;
  bool forced_ = false;
  std::uint64_t epoch_ = 1;
  std::int64_t opened_at_ns_ = 0;
  std::uint32_t consecutive_ = 0;
  std::uint32_t trials_in_flight_ = 0;
  std::uint32_t trial_successes_ = 0;
  BreakerCounters counters_;
  std::deque<bool> last_calls_;
  std::vector<std::pair<std::int64_t, bool>> timed_calls_;
  std::vector<std::string> events_;
};

// ---------------------------------------------------------------------------------------------
// Generators and the run.

rc::Gen<Op> gen_op() {
  return rc::gen::apply(
      [](OpKind kind, std::size_t which, BreakerOutcome outcome, int ms) {
        return Op{kind, which, outcome, ms};
      },
      rc::gen::weightedElement<OpKind>({{6, OpKind::kAcquire},
                                        {6, OpKind::kRecord},
                                        {3, OpKind::kAdvance},
                                        {1, OpKind::kReset},
                                        {1, OpKind::kForceOpen}}),
      rc::gen::inRange<std::size_t>(0, 16),
      rc::gen::weightedElement<BreakerOutcome>({{3, BreakerOutcome::kSuccess},
                                                {4, BreakerOutcome::kFailure},
                                                {1, BreakerOutcome::kIgnored}}),
      // Around the 1 s open timeout and the 100 ms buckets of the 1 s time window.
      rc::gen::element(0, 1, 50, 99, 100, 101, 500, 999, 1'000, 1'001, 2'500));
}

// Small thresholds so every state is reached within a short sequence.
CircuitBreakerConfig gen_config(BreakerWindow window) {
  CircuitBreakerConfig c;
  c.window = window;
  c.open_timeout = milliseconds(1'000);
  c.window_duration = milliseconds(1'000);
  c.failure_threshold = *rc::gen::inRange<std::uint32_t>(1, 5);
  c.half_open_max_calls = *rc::gen::inRange<std::uint32_t>(1, 5);
  c.success_threshold = *rc::gen::inRange<std::uint32_t>(1, c.half_open_max_calls + 1);
  c.window_size = *rc::gen::inRange<std::uint32_t>(1, 9);
  c.minimum_calls = *rc::gen::inRange<std::uint32_t>(
      1, (window == BreakerWindow::kCount ? c.window_size : 6u) + 1);
  c.failure_rate_threshold = *rc::gen::element(0.2, 0.25, 1.0 / 3.0, 0.5, 0.6, 0.75, 1.0);
  RC_ASSERT(c.validate().has_value());
  return c;
}

std::vector<std::string> event_strings(const std::vector<Event>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) {
    out.push_back(e.metadata.at("from") + ">" + e.metadata.at("to") + ":" +
                  e.metadata.at("reason"));
  }
  return out;
}

void expect_agreement(const CircuitBreaker& breaker, const Model& model,
                      const std::vector<Event>& events) {
  RC_ASSERT(breaker.state() == model.visible_state());
  const BreakerSnapshot s = breaker.snapshot();
  RC_ASSERT(s.state == model.visible_state());
  RC_ASSERT(s.forced_open == model.forced());
  const BreakerCounters& m = model.counters();
  RC_ASSERT(s.counters.admitted == m.admitted);
  RC_ASSERT(s.counters.rejected == m.rejected);
  RC_ASSERT(s.counters.successes == m.successes);
  RC_ASSERT(s.counters.failures == m.failures);
  RC_ASSERT(s.counters.ignored == m.ignored);
  RC_ASSERT(s.counters.opened == m.opened);
  RC_ASSERT(s.counters.half_opened == m.half_opened);
  RC_ASSERT(s.counters.closed == m.closed);
  RC_ASSERT(s.consecutive_failures == model.consecutive());
  auto [calls, failures] = model.window();
  RC_ASSERT(s.calls_in_window == calls);
  RC_ASSERT(s.failure_rate == Model::rate(failures, calls));
  RC_ASSERT(s.half_open_in_flight == model.trials_in_flight());
  RC_ASSERT(s.half_open_in_flight <= breaker.config().half_open_max_calls);
  RC_ASSERT(s.open_remaining == model.open_remaining());
  RC_ASSERT(event_strings(events) == model.events());
}

void run_against_model(const CircuitBreakerConfig& config, const std::vector<Op>& ops) {
  ManualClock clock;
  auto bus = std::make_shared<EventBus>();
  std::vector<Event> events;
  bus->attach("breaker.", [&](const Event& e) { events.push_back(e); });
  CircuitBreaker breaker("model", config, clock, bus);
  Model model(config, clock.now().time_since_epoch().count());
  std::vector<std::pair<Permit, ModelPermit>> outstanding;

  for (const Op& op : ops) {
    switch (op.kind) {
      case OpKind::kAcquire: {
        auto real = breaker.acquire();
        auto expected = model.acquire();
        RC_ASSERT(real.has_value() == expected.has_value());
        if (real) {
          RC_ASSERT(real->trial == expected->trial);
          RC_ASSERT(real->epoch == expected->epoch);
          outstanding.emplace_back(*real, *expected);
        } else {
          RC_ASSERT(real.error().category == ErrorCategory::kCircuitOpen);
        }
        break;
      }
      case OpKind::kRecord: {
        if (outstanding.empty()) break;
        const std::size_t i = op.which % outstanding.size();
        breaker.record(outstanding[i].first, op.outcome);
        model.record(outstanding[i].second, op.outcome);
        outstanding.erase(outstanding.begin() + static_cast<std::ptrdiff_t>(i));
        break;
      }
      case OpKind::kAdvance:
        clock.advance(milliseconds(op.advance_ms));
        model.advance(milliseconds(op.advance_ms));
        break;
      case OpKind::kReset:
        breaker.reset();
        model.reset();
        break;
      case OpKind::kForceOpen:
        breaker.force_open();
        model.force_open();
        break;
    }
    expect_agreement(breaker, model, events);
  }
  // Every permit recorded: the counters add up.
  for (const auto& [real, expected] : outstanding) {
    breaker.record(real, BreakerOutcome::kIgnored);
    model.record(expected, BreakerOutcome::kIgnored);
  }
  expect_agreement(breaker, model, events);
  const auto c = breaker.snapshot().counters;
  RC_ASSERT(c.admitted == c.successes + c.failures + c.ignored);
}

RC_GTEST_PROP(CircuitBreakerModel, ConsecutiveModeMatchesModel, ()) {
  const auto config = gen_config(BreakerWindow::kConsecutive);
  const auto ops = *rc::gen::container<std::vector<Op>>(gen_op());
  run_against_model(config, ops);
}

RC_GTEST_PROP(CircuitBreakerModel, CountWindowMatchesModel, ()) {
  const auto config = gen_config(BreakerWindow::kCount);
  const auto ops = *rc::gen::container<std::vector<Op>>(gen_op());
  run_against_model(config, ops);
}

RC_GTEST_PROP(CircuitBreakerModel, TimeWindowMatchesModel, ()) {
  const auto config = gen_config(BreakerWindow::kTime);
  const auto ops = *rc::gen::container<std::vector<Op>>(gen_op());
  run_against_model(config, ops);
}

// Half-open never admits more than half_open_max_calls trials per period, whatever happens:
// checked on long sequences of acquires (no records) interleaved with clock moves.
RC_GTEST_PROP(CircuitBreakerModel, HalfOpenNeverAdmitsMoreThanItsSlots, ()) {
  const auto config = gen_config(BreakerWindow::kConsecutive);
  ManualClock clock;
  CircuitBreaker breaker("slots", config, clock);
  for (std::uint32_t i = 0; i < config.failure_threshold; ++i) {
    breaker.record(*breaker.acquire(), BreakerOutcome::kFailure);
  }
  RC_ASSERT(breaker.state() == CircuitState::kOpen);
  clock.advance(config.open_timeout);
  const int attempts = *rc::gen::inRange(1, 50);
  std::uint32_t trials = 0;
  for (int i = 0; i < attempts; ++i) {
    if (breaker.acquire()) ++trials;
    clock.advance(milliseconds(*rc::gen::inRange(0, 5'000)));
  }
  RC_ASSERT(trials == std::min<std::uint32_t>(attempts, config.half_open_max_calls));
  RC_ASSERT(breaker.state() == CircuitState::kHalfOpen);
}

}  // namespace
}  // namespace bridgepool
