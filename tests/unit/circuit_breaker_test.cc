// CircuitBreaker and BreakerRegistry: every transition on a table of scripts (with the events it
// emits), then the rules one by one with a ManualClock — config validation, the open period timed
// from opening, half-open admission, stale permits, force_open/reset, both rate windows with
// minimum_calls, counters and events — and a multi-threaded test meant to run under TSan.
#include "bridgepool/circuit_breaker.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <ostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace bridgepool {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Permit = CircuitBreaker::Permit;
constexpr auto kClosed = CircuitState::kClosed;
constexpr auto kOpen = CircuitState::kOpen;
constexpr auto kHalfOpen = CircuitState::kHalfOpen;

// Collects every breaker.transition as "from>to:reason", in emission order.
class EventLog {
 public:
  explicit EventLog(std::shared_ptr<EventBus> bus) : bus_(std::move(bus)) {
    bus_->attach("breaker.", [this](const Event& e) {
      std::lock_guard lock(mu_);
      events_.push_back(e);
    });
  }
  std::vector<std::string> transitions() const {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (const auto& e : events_) {
      out.push_back(e.metadata.at("from") + ">" + e.metadata.at("to") + ":" +
                    e.metadata.at("reason"));
    }
    return out;
  }
  std::vector<Event> events() const {
    std::lock_guard lock(mu_);
    return events_;
  }

 private:
  std::shared_ptr<EventBus> bus_;
  mutable std::mutex mu_;
  std::vector<Event> events_;
};

// One breaker on a ManualClock with its events recorded.
struct BreakerFixture {
  explicit BreakerFixture(CircuitBreakerConfig config = {})
      : bus(std::make_shared<EventBus>()), log(bus), breaker("target", config, clock, bus) {}

  Permit admit() {
    auto permit = breaker.acquire();
    EXPECT_TRUE(permit.has_value()) << "refused: " << permit.error().message;
    return permit.value_or(Permit{});
  }
  void call(BreakerOutcome outcome) { breaker.record(admit(), outcome); }
  void fail(int n) {
    for (int i = 0; i < n; ++i) call(BreakerOutcome::kFailure);
  }
  void succeed(int n) {
    for (int i = 0; i < n; ++i) call(BreakerOutcome::kSuccess);
  }
  bool refused() {
    auto permit = breaker.acquire();
    if (permit) return false;
    EXPECT_EQ(permit.error().category, ErrorCategory::kCircuitOpen);
    return true;
  }

  ManualClock clock;
  std::shared_ptr<EventBus> bus;
  EventLog log;
  CircuitBreaker breaker;
};

// ---------------------------------------------------------------------------------------------
// Every transition, as scripts. One character per step:
//   S F I  acquire (must be admitted) and record success / failure / ignored at once
//   a      acquire (must be admitted) and keep the permit outstanding
//   s f i  record the oldest outstanding permit as success / failure / ignored
//   x      acquire must be refused (kCircuitOpen)
//   T      advance the clock by open_timeout (60 s);  w  advance it by 59.999 s;  m  by 1 ms
//   R      reset();  O  force_open()
// Config: the defaults (5 failures, 60 s, 3 trial calls, 3 successes).

struct ScriptRow {
  const char* name;
  const char* script;
  CircuitState state;               // state() at the end
  std::vector<std::string> events;  // "from>to:reason", in order
};

void PrintTo(const ScriptRow& row, std::ostream* os) { *os << row.name; }

// The four transitions of normal operation; the others are spelled out in the rows.
const std::string kTrip = "closed>open:failure_threshold";
const std::string kProbe = "open>half_open:open_timeout";
const std::string kRetrip = "half_open>open:trial_failed";
const std::string kHeal = "half_open>closed:trials_succeeded";

// clang-format off
const std::vector<ScriptRow> kScripts = {
  {"FourFailuresStayClosed",          "FFFF",             kClosed,   {}},
  {"FifthConsecutiveFailureOpens",    "FFFFF",            kOpen,     {kTrip}},
  {"SuccessRestartsTheCount",         "FFFFSFFFF",        kClosed,   {}},
  {"IgnoredNeitherCountsNorResets",   "FFFFIIF",          kOpen,     {kTrip}},
  {"OpenRefusesAtOnce",               "FFFFFxxx",         kOpen,     {kTrip}},
  {"OpenJustBeforeTimeout",           "FFFFFwx",          kOpen,     {kTrip}},
  {"OpenHalfOpensAtTimeout",          "FFFFFwmS",         kHalfOpen, {kTrip, kProbe}},
  {"ThreeTrialSuccessesClose",        "FFFFFTSSS",        kClosed,   {kTrip, kProbe, kHeal}},
  {"TwoTrialSuccessesStayHalfOpen",   "FFFFFTSS",         kHalfOpen, {kTrip, kProbe}},
  {"TrialFailureReopens",             "FFFFFTSF",         kOpen,     {kTrip, kProbe, kRetrip}},
  {"ReopenedIsTimedFromReopening",    "FFFFFTwFwxmS",     kHalfOpen,
   {kTrip, kProbe, kRetrip, kProbe}},
  {"HalfOpenAdmitsThreeTrials",       "FFFFFTaaaxx",      kHalfOpen, {kTrip, kProbe}},
  {"CompletedTrialsKeepTheirSlot",    "FFFFFTSaSx",       kHalfOpen, {kTrip, kProbe}},
  {"IgnoredTrialFreesItsSlot",        "FFFFFTaaaxiax",    kHalfOpen, {kTrip, kProbe}},
  {"ConcurrentTrialsSucceed",         "FFFFFTaaasss",     kClosed,   {kTrip, kProbe, kHeal}},
  {"OneOfThreeTrialsFails",           "FFFFFTaaasfs",     kOpen,     {kTrip, kProbe, kRetrip}},
  {"ClosedAgainCountsFromZero",       "FFFFFTSSSFFFF",    kClosed,   {kTrip, kProbe, kHeal}},
  {"ClosedAgainOpensAgain",           "FFFFFTSSSFFFFF",   kOpen,     {kTrip, kProbe, kHeal, kTrip}},
  {"ResetFromOpen",                   "FFFFFRS",          kClosed,   {kTrip, "open>closed:reset"}},
  {"ResetFromHalfOpen",               "FFFFFTaRSSS",      kClosed,
   {kTrip, kProbe, "half_open>closed:reset"}},
  {"ResetAfterTimeoutHalfOpensFirst", "FFFFFTR",          kClosed,
   {kTrip, kProbe, "half_open>closed:reset"}},
  {"ResetClosedIsNoTransition",       "FFFFRFFFF",        kClosed,   {}},
  {"ForceOpenFromClosed",             "SOx",              kOpen,     {"closed>open:force_open"}},
  {"ForcedOpenIgnoresTimeout",        "OTTTx",            kOpen,     {"closed>open:force_open"}},
  {"ForceOpenTwiceIsOneEvent",        "OOx",              kOpen,     {"closed>open:force_open"}},
  {"ForceOpenWhileOpen",              "FFFFFOTx",         kOpen,
   {kTrip, "open>open:force_open"}},
  {"ForceOpenFromHalfOpen",           "FFFFFTaOx",        kOpen,
   {kTrip, kProbe, "half_open>open:force_open"}},
  {"ResetEndsForcedOpen",             "OTRS",             kClosed,
   {"closed>open:force_open", "open>closed:reset"}},
  {"StaleSuccessesCannotClose",       "aaaFFFFFTsssaaax", kHalfOpen, {kTrip, kProbe}},
  {"StaleFailureCannotReopen",        "aaFFFFFTff",       kHalfOpen, {kTrip, kProbe}},
  {"StaleFailureDoesNotDelayOpen",    "aFFFFFwfmS",       kHalfOpen, {kTrip, kProbe}},
  {"StaleTrialAfterReopen",           "FFFFFTaaFTsSSS",   kClosed,
   {kTrip, kProbe, kRetrip, kProbe, kHeal}},
  {"PermitFromBeforeResetIsStale",    "aaaaRffffF",       kClosed,   {}},
};
// clang-format on

class BreakerScript : public ::testing::TestWithParam<ScriptRow> {};

TEST_P(BreakerScript, EndsInStateWithEvents) {
  const ScriptRow& row = GetParam();
  BreakerFixture f;
  std::deque<Permit> outstanding;
  auto finish = [&](BreakerOutcome outcome) {
    ASSERT_FALSE(outstanding.empty()) << "script records a permit it never took";
    f.breaker.record(outstanding.front(), outcome);
    outstanding.pop_front();
  };
  for (const char* step = row.script; *step != '\0'; ++step) {
    SCOPED_TRACE(std::string("step ") + std::to_string(step - row.script) + " '" + *step + "'");
    switch (*step) {
      case 'S':
        f.call(BreakerOutcome::kSuccess);
        break;
      case 'F':
        f.call(BreakerOutcome::kFailure);
        break;
      case 'I':
        f.call(BreakerOutcome::kIgnored);
        break;
      case 'a':
        outstanding.push_back(f.admit());
        break;
      case 's':
        finish(BreakerOutcome::kSuccess);
        break;
      case 'f':
        finish(BreakerOutcome::kFailure);
        break;
      case 'i':
        finish(BreakerOutcome::kIgnored);
        break;
      case 'x':
        EXPECT_TRUE(f.refused());
        break;
      case 'T':
        f.clock.advance(seconds(60));
        break;
      case 'w':
        f.clock.advance(milliseconds(59'999));
        break;
      case 'm':
        f.clock.advance(milliseconds(1));
        break;
      case 'R':
        f.breaker.reset();
        break;
      case 'O':
        f.breaker.force_open();
        break;
      default:
        FAIL() << "unknown step";
    }
  }
  EXPECT_EQ(f.breaker.state(), row.state);
  EXPECT_EQ(f.log.transitions(), row.events);
}

INSTANTIATE_TEST_SUITE_P(Transitions, BreakerScript, ::testing::ValuesIn(kScripts),
                         [](const auto& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------------------------------------

TEST(CircuitBreakerNames, StatesWindowsOutcomes) {
  EXPECT_EQ(circuit_state_name(kClosed), "closed");
  EXPECT_EQ(circuit_state_name(kOpen), "open");
  EXPECT_EQ(circuit_state_name(kHalfOpen), "half_open");
  EXPECT_EQ(breaker_window_name(BreakerWindow::kConsecutive), "consecutive");
  EXPECT_EQ(breaker_window_name(BreakerWindow::kCount), "count");
  EXPECT_EQ(breaker_window_name(BreakerWindow::kTime), "time");
  EXPECT_EQ(breaker_outcome_name(BreakerOutcome::kSuccess), "success");
  EXPECT_EQ(breaker_outcome_name(BreakerOutcome::kFailure), "failure");
  EXPECT_EQ(breaker_outcome_name(BreakerOutcome::kIgnored), "ignored");
}

struct ConfigRow {
  const char* name;
  std::function<void(CircuitBreakerConfig&)> change;
  const char* field;  // nullptr: valid
};

void PrintTo(const ConfigRow& row, std::ostream* os) { *os << row.name; }

using Cfg = CircuitBreakerConfig;
const std::vector<ConfigRow> kConfigs = {
    {"Defaults", [](Cfg&) {}, nullptr},
    {"CountDefaults", [](Cfg& c) { c.window = BreakerWindow::kCount; }, nullptr},
    {"TimeDefaults", [](Cfg& c) { c.window = BreakerWindow::kTime; }, nullptr},
    {"ZeroFailureThreshold", [](Cfg& c) { c.failure_threshold = 0; }, "failure_threshold"},
    {"ZeroRate", [](Cfg& c) { c.failure_rate_threshold = 0.0; }, "failure_rate_threshold"},
    {"RateAboveOne", [](Cfg& c) { c.failure_rate_threshold = 1.01; }, "failure_rate_threshold"},
    {"RateNaN", [](Cfg& c) { c.failure_rate_threshold = std::nan(""); }, "failure_rate_threshold"},
    {"RateOne", [](Cfg& c) { c.failure_rate_threshold = 1.0; }, nullptr},
    {"ZeroWindowSize", [](Cfg& c) { c.window_size = 0; }, "window_size"},
    {"HugeWindowSize", [](Cfg& c) { c.window_size = Cfg::kMaxWindowSize + 1; }, "window_size"},
    {"ZeroWindowDuration", [](Cfg& c) { c.window_duration = milliseconds(0); }, "window_duration"},
    {"ZeroMinimumCalls", [](Cfg& c) { c.minimum_calls = 0; }, "minimum_calls"},
    {"MinimumCallsAboveCountWindow",
     [](Cfg& c) {
       c.window = BreakerWindow::kCount;
       c.window_size = 10;
       c.minimum_calls = 11;
     },
     "minimum_calls"},
    {"MinimumCallsAboveSizeIrrelevantForTime",
     [](Cfg& c) {
       c.window = BreakerWindow::kTime;
       c.window_size = 10;
       c.minimum_calls = 11;
     },
     nullptr},
    {"ZeroOpenTimeout", [](Cfg& c) { c.open_timeout = milliseconds(0); }, "open_timeout"},
    {"NegativeOpenTimeout", [](Cfg& c) { c.open_timeout = milliseconds(-5); }, "open_timeout"},
    {"ZeroHalfOpenCalls",
     [](Cfg& c) {
       c.half_open_max_calls = 0;
       c.success_threshold = 0;
     },
     "half_open_max_calls"},
    {"ZeroSuccessThreshold", [](Cfg& c) { c.success_threshold = 0; }, "success_threshold"},
    {"SuccessesAboveTrials", [](Cfg& c) { c.success_threshold = 4; }, "success_threshold"},
    {"OneTrialOneSuccess",
     [](Cfg& c) {
       c.half_open_max_calls = 1;
       c.success_threshold = 1;
     },
     nullptr},
    {"BadWindowEnum", [](Cfg& c) { c.window = static_cast<BreakerWindow>(7); }, "window"},
};

class BreakerConfigValidation : public ::testing::TestWithParam<ConfigRow> {};

TEST_P(BreakerConfigValidation, NamesTheBadField) {
  CircuitBreakerConfig config;
  GetParam().change(config);
  auto result = config.validate();
  if (GetParam().field == nullptr) {
    EXPECT_TRUE(result.has_value()) << result.error().message;
    return;
  }
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().category, ErrorCategory::kInvalidRequest);
  EXPECT_NE(result.error().message.find(GetParam().field), std::string::npos)
      << result.error().message;
}

INSTANTIATE_TEST_SUITE_P(Fields, BreakerConfigValidation, ::testing::ValuesIn(kConfigs),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(CircuitBreaker, InvalidConfigIsClampedToAWorkingBreaker) {
  CircuitBreakerConfig config;
  config.failure_threshold = 0;
  config.half_open_max_calls = 0;
  config.success_threshold = 5;
  config.open_timeout = milliseconds(0);
  BreakerFixture f(config);
  EXPECT_EQ(f.breaker.config().failure_threshold, 1u);
  EXPECT_EQ(f.breaker.config().half_open_max_calls, 1u);
  EXPECT_EQ(f.breaker.config().success_threshold, 1u);
  EXPECT_EQ(f.breaker.config().open_timeout, milliseconds(1));
  EXPECT_TRUE(f.breaker.config().validate().has_value());
  f.fail(1);
  EXPECT_EQ(f.breaker.state(), kOpen);
  f.clock.advance(milliseconds(1));
  f.succeed(1);
  EXPECT_EQ(f.breaker.state(), kClosed);
}

TEST(CircuitBreaker, RejectionSaysWhichBreakerAndWhen) {
  BreakerFixture f;
  f.fail(5);
  f.clock.advance(milliseconds(59'500));
  auto refused = f.breaker.acquire();
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().category, ErrorCategory::kCircuitOpen);
  EXPECT_EQ(refused.error().context.operation, "breaker");
  EXPECT_EQ(refused.error().message, "circuit breaker 'target' is open; it half-opens in 500 ms");

  f.clock.advance(milliseconds(500));
  auto trials = {f.admit(), f.admit(), f.admit()};
  refused = f.breaker.acquire();
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().message,
            "circuit breaker 'target' is half-open and all 3 trial calls are taken; retry later");
  for (const auto& permit : trials) EXPECT_TRUE(permit.trial);

  f.breaker.force_open();
  refused = f.breaker.acquire();
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().message, "circuit breaker 'target' is forced open until reset");
}

TEST(CircuitBreaker, OpenIsTimedFromOpeningNotFromTheLastFailure) {
  BreakerFixture f;
  std::vector<Permit> slow = {f.admit(), f.admit(), f.admit()};
  f.fail(5);  // opens at t0
  for (const auto& permit : slow) {
    f.clock.advance(seconds(15));  // the slow calls fail at t0+15, +30, +45 s
    f.breaker.record(permit, BreakerOutcome::kFailure);
    EXPECT_EQ(f.breaker.state(), kOpen);
  }
  EXPECT_EQ(f.breaker.snapshot().open_remaining, seconds(15));
  f.clock.advance(seconds(15));  // t0 + 60 s
  EXPECT_EQ(f.breaker.state(), kHalfOpen);
  EXPECT_TRUE(f.admit().trial);
}

TEST(CircuitBreaker, StateAndSnapshotReadHalfOpenBeforeAnyAcquire) {
  BreakerFixture f;
  f.fail(5);
  EXPECT_EQ(f.breaker.snapshot().open_remaining, seconds(60));
  f.clock.advance(seconds(60));
  EXPECT_EQ(f.breaker.state(), kHalfOpen);
  auto s = f.breaker.snapshot();
  EXPECT_EQ(s.state, kHalfOpen);
  EXPECT_EQ(s.open_remaining, milliseconds(0));
  EXPECT_EQ(s.counters.half_opened, 0u);  // the transition itself happens on the next acquire
  EXPECT_EQ(f.log.transitions().size(), 1u);
  f.admit();
  EXPECT_EQ(f.breaker.snapshot().counters.half_opened, 1u);
  EXPECT_EQ(f.log.transitions().size(), 2u);
}

TEST(CircuitBreaker, OpenRemainingRoundsUp) {
  BreakerFixture f;
  f.fail(5);
  f.clock.advance(std::chrono::microseconds(59'998'001));
  EXPECT_EQ(f.breaker.snapshot().open_remaining, milliseconds(2));
  f.clock.advance(std::chrono::microseconds(1'998));
  EXPECT_EQ(f.breaker.snapshot().open_remaining, milliseconds(1));
  EXPECT_EQ(f.breaker.state(), kOpen);
}

TEST(CircuitBreaker, SnapshotCountsHalfOpenTrialsInFlight) {
  BreakerFixture f;
  f.fail(5);
  f.clock.advance(seconds(60));
  Permit a = f.admit();
  Permit b = f.admit();
  EXPECT_EQ(f.breaker.snapshot().half_open_in_flight, 2u);
  f.breaker.record(a, BreakerOutcome::kSuccess);
  EXPECT_EQ(f.breaker.snapshot().half_open_in_flight, 1u);
  f.breaker.record(b, BreakerOutcome::kIgnored);
  EXPECT_EQ(f.breaker.snapshot().half_open_in_flight, 0u);
  // One success, one freed slot: two more trials fit, a third does not.
  f.admit();
  f.admit();
  EXPECT_TRUE(f.refused());
  EXPECT_EQ(f.breaker.snapshot().half_open_in_flight, 2u);
}

TEST(CircuitBreaker, CountersAddUp) {
  BreakerFixture f;
  Permit outstanding = f.admit();
  f.succeed(2);
  f.call(BreakerOutcome::kIgnored);
  f.fail(5);  // opens
  EXPECT_TRUE(f.refused());
  EXPECT_TRUE(f.refused());
  f.breaker.record(outstanding, BreakerOutcome::kFailure);  // stale: counted only
  f.clock.advance(seconds(60));
  f.succeed(3);  // closes
  f.breaker.force_open();
  f.breaker.reset();

  auto s = f.breaker.snapshot();
  EXPECT_EQ(s.name, "target");
  EXPECT_EQ(s.counters.admitted, 12u);
  EXPECT_EQ(s.counters.rejected, 2u);
  EXPECT_EQ(s.counters.successes, 5u);
  EXPECT_EQ(s.counters.failures, 6u);
  EXPECT_EQ(s.counters.ignored, 1u);
  EXPECT_EQ(s.counters.admitted, s.counters.successes + s.counters.failures + s.counters.ignored);
  EXPECT_EQ(s.counters.opened, 2u);  // failure_threshold, force_open
  EXPECT_EQ(s.counters.half_opened, 1u);
  EXPECT_EQ(s.counters.closed, 2u);  // trials_succeeded, reset
  EXPECT_FALSE(s.forced_open);
  EXPECT_EQ(s.consecutive_failures, 0u);
}

TEST(CircuitBreaker, ConsecutiveFailuresInSnapshot) {
  BreakerFixture f;
  f.fail(3);
  EXPECT_EQ(f.breaker.snapshot().consecutive_failures, 3u);
  f.succeed(1);
  EXPECT_EQ(f.breaker.snapshot().consecutive_failures, 0u);
  f.fail(4);
  f.call(BreakerOutcome::kIgnored);
  EXPECT_EQ(f.breaker.snapshot().consecutive_failures, 4u);
  EXPECT_EQ(f.breaker.snapshot().failure_rate, 0.0);  // no rate window in this mode
  EXPECT_EQ(f.breaker.snapshot().calls_in_window, 0u);
}

TEST(CircuitBreaker, ForcedOpenIsReportedAndSurvivesAnyTimeout) {
  BreakerFixture f;
  f.breaker.force_open();
  f.clock.advance(std::chrono::hours(24));
  auto s = f.breaker.snapshot();
  EXPECT_EQ(s.state, kOpen);
  EXPECT_TRUE(s.forced_open);
  EXPECT_EQ(s.open_remaining, milliseconds(0));
  EXPECT_TRUE(f.refused());
  f.breaker.reset();
  EXPECT_FALSE(f.breaker.snapshot().forced_open);
  EXPECT_FALSE(f.refused());
}

TEST(CircuitBreaker, TransitionEventCarriesMetadataAndMeasurements) {
  BreakerFixture f;
  f.fail(5);
  f.clock.advance(seconds(60));
  f.fail(1);
  auto events = f.log.events();
  ASSERT_EQ(events.size(), 3u);
  const Event& opened = events[0];
  EXPECT_EQ(opened.name, "breaker.transition");
  const std::map<std::string, std::string> metadata = {
      {"breaker", "target"}, {"from", "closed"}, {"to", "open"}, {"reason", "failure_threshold"}};
  EXPECT_EQ(opened.metadata, metadata);
  EXPECT_EQ(opened.measurements.at("consecutive_failures"), 5.0);
  EXPECT_EQ(opened.measurements.at("failure_rate"), 0.0);
  EXPECT_EQ(opened.time, f.clock.wall_now() - seconds(60));
  EXPECT_EQ(events[1].metadata.at("reason"), "open_timeout");
  EXPECT_EQ(events[1].measurements.at("consecutive_failures"), 0.0);  // cleared on opening
  EXPECT_EQ(events[2].metadata.at("reason"), "trial_failed");
  EXPECT_EQ(events[2].measurements.at("consecutive_failures"), 1.0);
  // Epochs increase with each transition, so handlers can order concurrent ones.
  EXPECT_LT(events[0].measurements.at("epoch"), events[1].measurements.at("epoch"));
  EXPECT_LT(events[1].measurements.at("epoch"), events[2].measurements.at("epoch"));
}

TEST(CircuitBreaker, HandlersMayCallBackIntoTheBreaker) {
  ManualClock clock;
  auto bus = std::make_shared<EventBus>();
  CircuitBreaker breaker("target", {}, clock, bus);
  std::vector<CircuitState> seen;
  bus->attach("breaker.", [&](const Event&) {
    seen.push_back(breaker.state());
    if (breaker.state() == kOpen) breaker.reset();  // re-enters: must not deadlock
  });
  breaker.force_open();
  EXPECT_EQ(seen, (std::vector<CircuitState>{kOpen, kClosed}));
  EXPECT_EQ(breaker.state(), kClosed);
}

TEST(CircuitBreaker, WorksWithoutAnEventBus) {
  ManualClock clock;
  CircuitBreaker breaker("quiet", {}, clock);
  for (int i = 0; i < 5; ++i) breaker.record(*breaker.acquire(), BreakerOutcome::kFailure);
  EXPECT_EQ(breaker.state(), kOpen);
  EXPECT_EQ(breaker.name(), "quiet");
}

TEST(CircuitBreaker, DefaultPermitOnlyCounts) {
  BreakerFixture f;
  f.fail(4);
  f.breaker.record(Permit{}, BreakerOutcome::kFailure);
  EXPECT_EQ(f.breaker.state(), kClosed);
  EXPECT_EQ(f.breaker.snapshot().consecutive_failures, 4u);
  EXPECT_EQ(f.breaker.snapshot().counters.failures, 5u);
}

// ---------------------------------------------------------------------------------------------
// Rate windows.

CircuitBreakerConfig count_window(std::uint32_t size, std::uint32_t minimum, double rate) {
  CircuitBreakerConfig config;
  config.window = BreakerWindow::kCount;
  config.window_size = size;
  config.minimum_calls = minimum;
  config.failure_rate_threshold = rate;
  return config;
}

TEST(CircuitBreakerCountWindow, NoVerdictBelowMinimumCalls) {
  BreakerFixture f(count_window(20, 20, 0.5));
  f.fail(19);  // 19/19 failed, but only 19 calls
  EXPECT_EQ(f.breaker.state(), kClosed);
  EXPECT_EQ(f.breaker.snapshot().calls_in_window, 19u);
  EXPECT_EQ(f.breaker.snapshot().failure_rate, 1.0);
  f.succeed(1);  // 19/20 >= 0.5
  EXPECT_EQ(f.breaker.state(), kOpen);
  EXPECT_EQ(f.log.transitions(), std::vector<std::string>{"closed>open:failure_rate"});
  EXPECT_EQ(f.log.events()[0].measurements.at("failure_rate"), 0.95);
}

TEST(CircuitBreakerCountWindow, OpensExactlyAtTheThreshold) {
  BreakerFixture f(count_window(20, 20, 0.5));
  f.succeed(10);
  f.fail(9);
  f.succeed(1);  // 9/20 = 0.45
  EXPECT_EQ(f.breaker.state(), kClosed);
  EXPECT_EQ(f.breaker.snapshot().failure_rate, 0.45);
  f.fail(1);  // slides out a success: 10/20 = 0.5
  EXPECT_EQ(f.breaker.state(), kOpen);
}

TEST(CircuitBreakerCountWindow, OldOutcomesSlideOut) {
  BreakerFixture f(count_window(4, 2, 0.75));
  f.fail(2);  // 2/2: opens (minimum 2 reached, 1.0 >= 0.75)
  EXPECT_EQ(f.breaker.state(), kOpen);
  f.breaker.reset();
  EXPECT_EQ(f.breaker.snapshot().calls_in_window, 0u);  // cleared by the transition
  f.succeed(1);
  f.fail(2);     // 2/3 < 0.75
  f.succeed(1);  // 2/4
  f.fail(1);     // window F F S F: 3/4 >= 0.75
  EXPECT_EQ(f.breaker.state(), kOpen);
}

TEST(CircuitBreakerCountWindow, IgnoredOutcomesStayOutOfTheWindow) {
  BreakerFixture f(count_window(10, 3, 0.5));
  f.fail(1);
  f.call(BreakerOutcome::kIgnored);
  f.call(BreakerOutcome::kIgnored);
  EXPECT_EQ(f.breaker.snapshot().calls_in_window, 1u);
  EXPECT_EQ(f.breaker.state(), kClosed);
  f.succeed(1);
  f.fail(1);  // 2/3
  EXPECT_EQ(f.breaker.state(), kOpen);
}

TEST(CircuitBreakerCountWindow, WindowIsClearedOnEveryTransition) {
  CircuitBreakerConfig config = count_window(10, 4, 0.5);
  config.half_open_max_calls = 1;
  config.success_threshold = 1;
  BreakerFixture f(config);
  f.fail(4);
  EXPECT_EQ(f.breaker.state(), kOpen);
  EXPECT_EQ(f.breaker.snapshot().calls_in_window, 0u);
  f.clock.advance(seconds(60));
  f.succeed(1);  // the one trial closes it
  EXPECT_EQ(f.breaker.state(), kClosed);
  f.fail(3);  // 3 calls: below the minimum again
  EXPECT_EQ(f.breaker.state(), kClosed);
  f.fail(1);
  EXPECT_EQ(f.breaker.state(), kOpen);
}

CircuitBreakerConfig time_window(milliseconds duration, std::uint32_t minimum, double rate) {
  CircuitBreakerConfig config;
  config.window = BreakerWindow::kTime;
  config.window_duration = duration;
  config.minimum_calls = minimum;
  config.failure_rate_threshold = rate;
  return config;
}

TEST(CircuitBreakerTimeWindow, NoVerdictBelowMinimumCalls) {
  BreakerFixture f(time_window(seconds(10), 5, 0.5));
  f.fail(4);
  EXPECT_EQ(f.breaker.state(), kClosed);
  f.succeed(1);  // 4/5
  EXPECT_EQ(f.breaker.state(), kOpen);
  EXPECT_EQ(f.log.transitions(), std::vector<std::string>{"closed>open:failure_rate"});
}

TEST(CircuitBreakerTimeWindow, CallsLeaveAfterTheWindowInBuckets) {
  // 10 s in 10 buckets of 1 s; ManualClock starts at 3600 s, a bucket boundary.
  BreakerFixture f(time_window(seconds(10), 4, 0.5));
  f.clock.advance(milliseconds(300));
  f.fail(3);                             // at 0.3 s, bucket [0 s, 1 s): counts until 10.0 s
  f.clock.advance(milliseconds(9'699));  // 9.999 s
  EXPECT_EQ(f.breaker.snapshot().calls_in_window, 3u);
  f.clock.advance(milliseconds(1));  // 10.0 s: the bucket left the window
  EXPECT_EQ(f.breaker.snapshot().calls_in_window, 0u);
  f.fail(1);  // 1 call, below the minimum of 4
  EXPECT_EQ(f.breaker.state(), kClosed);
  EXPECT_EQ(f.breaker.snapshot().failure_rate, 1.0);
}

TEST(CircuitBreakerTimeWindow, RateOverTheLastBuckets) {
  BreakerFixture f(time_window(seconds(10), 4, 0.5));
  f.succeed(3);  // bucket 0
  f.clock.advance(seconds(5));
  f.fail(1);  // bucket 5: 1/4
  EXPECT_EQ(f.breaker.state(), kClosed);
  f.clock.advance(seconds(5));  // bucket 10: bucket 0 gone, 1/1 but below minimum
  EXPECT_EQ(f.breaker.snapshot().calls_in_window, 1u);
  f.succeed(2);  // 1/3
  EXPECT_EQ(f.breaker.state(), kClosed);
  f.fail(1);  // 2/4 = 0.5
  EXPECT_EQ(f.breaker.state(), kOpen);
}

TEST(CircuitBreakerTimeWindow, SlotsOfOldBucketsAreReused) {
  // Ten seconds later the same slot holds a different bucket; old counts must not leak in.
  BreakerFixture f(time_window(seconds(10), 3, 0.5));
  f.fail(2);  // bucket 0 (slot 0)
  f.clock.advance(seconds(10));
  f.succeed(2);  // bucket 10 (slot 0 again): 0/2
  f.fail(1);     // 1/3
  EXPECT_EQ(f.breaker.state(), kClosed);
  EXPECT_EQ(f.breaker.snapshot().calls_in_window, 3u);
}

// ---------------------------------------------------------------------------------------------
// Registry.

TEST(BreakerRegistry, OneBreakerPerName) {
  ManualClock clock;
  auto bus = std::make_shared<EventBus>();
  EventLog log(bus);
  BreakerRegistry registry(clock, bus);
  CircuitBreakerConfig config;
  config.failure_threshold = 1;
  auto a = registry.get_or_create("pool", config);
  auto again = registry.get_or_create("pool");  // default config ignored: it exists
  EXPECT_EQ(a, again);
  EXPECT_EQ(again->config().failure_threshold, 1u);
  EXPECT_EQ(registry.find("pool"), a);
  EXPECT_EQ(registry.find("nope"), nullptr);
  auto b = registry.get_or_create("bridge");
  EXPECT_NE(a, b);
  EXPECT_EQ(registry.size(), 2u);

  a->record(*a->acquire(), BreakerOutcome::kFailure);  // uses the registry's clock and bus
  EXPECT_EQ(log.transitions(), std::vector<std::string>{"closed>open:failure_threshold"});
  EXPECT_EQ(log.events()[0].metadata.at("breaker"), "pool");
}

TEST(BreakerRegistry, SnapshotsSortedByNameAndResetAll) {
  ManualClock clock;
  BreakerRegistry registry(clock);
  for (const char* name : {"zeta", "alpha", "mid"}) registry.get_or_create(name)->force_open();
  auto snaps = registry.snapshots();
  ASSERT_EQ(snaps.size(), 3u);
  EXPECT_EQ(snaps[0].name, "alpha");
  EXPECT_EQ(snaps[1].name, "mid");
  EXPECT_EQ(snaps[2].name, "zeta");
  for (const auto& s : snaps) EXPECT_EQ(s.state, kOpen);
  registry.reset_all();
  for (const auto& s : registry.snapshots()) {
    EXPECT_EQ(s.state, kClosed);
    EXPECT_FALSE(s.forced_open);
  }
}

TEST(BreakerRegistry, ConcurrentGetOrCreateYieldsOneBreaker) {
  ManualClock clock;
  BreakerRegistry registry(clock);
  std::vector<std::shared_ptr<CircuitBreaker>> got(8);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < got.size(); ++i) {
    threads.emplace_back([&, i] { got[i] = registry.get_or_create("shared"); });
  }
  for (auto& t : threads) t.join();
  for (const auto& b : got) EXPECT_EQ(b, got[0]);
  EXPECT_EQ(registry.size(), 1u);
}

// ---------------------------------------------------------------------------------------------
// Concurrency: 8 callers hammer acquire/record while another thread moves the clock and resets.
// Checked: no trial period ever has more than half_open_max_calls trial permits held at once
// (the test counts a permit from just after acquire() to just before record(), so its count
// never exceeds the breaker's own), the snapshot agrees, counters add up with what the callers
// saw, and the events, ordered by epoch, form one chain matching the transition counters.
// Run it under -fsanitize=thread.

TEST(CircuitBreakerConcurrency, HalfOpenLimitAndCountersHoldUnderContention) {
  constexpr int kCallers = 8;
  constexpr int kRounds = 200;  // clock moves; the callers run until the mover is done
  CircuitBreakerConfig config;
  config.failure_threshold = 3;
  config.open_timeout = milliseconds(5);
  config.half_open_max_calls = 2;
  config.success_threshold = 2;

  ManualClock clock;
  auto bus = std::make_shared<EventBus>();
  EventLog log(bus);
  CircuitBreaker breaker("hammered", config, clock, bus);

  std::mutex held_mu;
  std::map<std::uint64_t, std::uint32_t> held;  // trial permits held, by epoch
  std::atomic<std::uint32_t> worst_held{0};
  std::atomic<std::uint32_t> worst_snapshot{0};
  std::atomic<std::uint64_t> admitted{0}, rejected{0}, trials{0}, refused_half_open_full{0};
  std::atomic<std::uint64_t> outcomes[3] = {0, 0, 0};
  std::atomic<std::uint64_t> calls{0};
  std::atomic<bool> stop{false};

  auto caller = [&](int seed) {
    std::mt19937 rng(seed);
    std::discrete_distribution<int> pick({40, 50, 10});  // success, failure, ignored
    while (!stop.load()) {
      std::this_thread::yield();  // 8 spinning callers on 2 CPUs would starve the mover
      ++calls;
      auto permit = breaker.acquire();
      if (!permit) {
        EXPECT_EQ(permit.error().category, ErrorCategory::kCircuitOpen);
        ++rejected;
        if (permit.error().message.find("trial calls are taken") != std::string::npos) {
          ++refused_half_open_full;
        }
        continue;
      }
      ++admitted;
      if (permit->trial) {
        ++trials;
        std::lock_guard lock(held_mu);
        std::uint32_t now_held = ++held[permit->epoch];
        if (now_held > worst_held) worst_held = now_held;
      }
      const int outcome = pick(rng);
      // Hold trial permits a while so callers race for the slots; some closed-state calls are
      // slow too, so their outcomes arrive after the breaker has moved on (stale permits).
      if (permit->trial || rng() % 8 == 0) {
        std::this_thread::sleep_for(std::chrono::microseconds(permit->trial ? 50 : 10));
      }
      if (permit->trial) {
        std::lock_guard lock(held_mu);
        --held[permit->epoch];
      }
      breaker.record(*permit, static_cast<BreakerOutcome>(outcome));
      ++outcomes[outcome];
    }
  };
  auto mover = [&] {
    std::mt19937 rng(99);
    for (int round = 0; round < kRounds; ++round) {
      // Let the callers make calls at each clock reading (sleeping, not spinning, so the mover
      // is scheduled promptly on a busy machine), and at least one.
      const std::uint64_t before = calls.load();
      std::this_thread::sleep_for(std::chrono::microseconds(100));
      while (calls.load() == before) std::this_thread::yield();
      clock.advance(milliseconds(rng() % 7));
      if (round % 50 == 49) breaker.reset();
      std::uint32_t in_flight = breaker.snapshot().half_open_in_flight;
      if (in_flight > worst_snapshot) worst_snapshot = in_flight;
    }
  };

  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) callers.emplace_back(caller, i + 1);
  std::thread(mover).join();
  stop = true;
  for (auto& t : callers) t.join();

  EXPECT_LE(worst_held.load(), config.half_open_max_calls);
  EXPECT_LE(worst_snapshot.load(), config.half_open_max_calls);
  EXPECT_GT(trials.load(), 0u) << "the test never reached half-open";
  EXPECT_GT(refused_half_open_full.load(), 0u) << "callers never competed for the trial slots";

  const auto s = breaker.snapshot();
  EXPECT_EQ(s.counters.admitted, admitted.load());
  EXPECT_EQ(s.counters.rejected, rejected.load());
  EXPECT_EQ(s.counters.admitted + s.counters.rejected, calls.load());
  EXPECT_EQ(s.counters.successes, outcomes[0].load());
  EXPECT_EQ(s.counters.failures, outcomes[1].load());
  EXPECT_EQ(s.counters.ignored, outcomes[2].load());
  EXPECT_EQ(s.counters.admitted, s.counters.successes + s.counters.failures + s.counters.ignored);
  EXPECT_EQ(s.half_open_in_flight, 0u);
  EXPECT_GT(s.counters.opened, 0u);

  auto events = log.events();
  std::sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
    return a.measurements.at("epoch") < b.measurements.at("epoch");
  });
  std::uint64_t opened = 0, half_opened = 0, closed = 0;
  std::string at = "closed";
  for (const auto& e : events) {
    EXPECT_EQ(e.metadata.at("from"), at);
    at = e.metadata.at("to");
    opened += at == "open";
    half_opened += at == "half_open";
    closed += at == "closed";
  }
  // The chain ends in the stored state; an open breaker past its timeout already reads half_open.
  EXPECT_TRUE(at == circuit_state_name(s.state) || (at == "open" && s.state == kHalfOpen)) << at;
  EXPECT_EQ(opened, s.counters.opened);
  EXPECT_EQ(half_opened, s.counters.half_opened);
  EXPECT_EQ(closed, s.counters.closed);
}

}  // namespace
}  // namespace bridgepool
