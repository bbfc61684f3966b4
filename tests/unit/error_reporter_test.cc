// ErrorReporter with a ManualClock and an EventBus: error rate arithmetic over windows, each rule
// driven by events or samples, sinks (a throwing one included), alert events, status JSON and
// configuration errors (error_reporter.h). No sleeps: time moves only with clock.advance().
#include "bridgepool/error_reporter.h"

#include <thread>

#include <gtest/gtest.h>

#include "bridgepool/event_names.h"

namespace bridgepool {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;

struct ReporterFixture {
  explicit ReporterFixture(ErrorReporterConfig config = {})
      : reporter((config.logger = logger, std::move(config)), clock) {
    reporter.attach(bus);
    reporter.add_sink([this](const Alert& a) { delivered.push_back(a); });
  }

  // A call's end as the pool reports it to the bus's observers.
  void request(const std::string& result, const std::string& severity = "major") {
    CallObservation call;
    call.pool = "p";
    call.command = "fail";
    call.result = result;
    if (result != "ok") call.severity = severity;
    bus->observe(call);
  }
  void requests(int ok, int failed, const std::string& category = "python") {
    for (int i = 0; i < ok; ++i) request("ok");
    for (int i = 0; i < failed; ++i) request(category);
  }

  ManualClock clock;
  std::shared_ptr<EventBus> bus = std::make_shared<EventBus>();
  std::vector<LogRecord> logged;
  std::shared_ptr<Logger> logger = std::make_shared<Logger>(
      LogLevel::kDebug, [this](const LogRecord& r) { logged.push_back(r); });
  ErrorReporter reporter;
  std::vector<Alert> delivered;
};

// The one alert an evaluation changed (a default Alert, and a failure, if not exactly one).
Alert only(const std::vector<Alert>& changed) {
  EXPECT_EQ(changed.size(), 1u);
  return changed.size() == 1 ? changed[0] : Alert{};
}

PoolStats stats(std::uint64_t size = 4) {
  PoolStats s;
  s.name = "p";
  s.size = size;
  return s;
}

TEST(ErrorReporter, ErrorRateIsErrorsOverAllRequestsOfEachWindow) {
  ReporterFixture f;
  f.requests(30, 10);  // at t0
  f.clock.advance(minutes(2));
  f.requests(50, 10, "timeout");  // at t0 + 2 min
  auto windows = f.reporter.summaries();
  ASSERT_EQ(windows.size(), 3u);
  EXPECT_EQ(windows[0].window, minutes(1));
  EXPECT_EQ(windows[0].requests, 60u);
  EXPECT_EQ(windows[0].errors, 10u);
  EXPECT_DOUBLE_EQ(windows[0].error_rate, 10.0 / 60.0);
  EXPECT_EQ(windows[1].requests, 100u);
  EXPECT_EQ(windows[1].errors, 20u);
  EXPECT_DOUBLE_EQ(windows[1].error_rate, 0.2);  // 20 / 100, not 20 / 20
  EXPECT_EQ(windows[1].by_category,
            (std::map<std::string, std::uint64_t>{{"python", 10}, {"timeout", 10}}));
  EXPECT_EQ(windows[1].by_severity, (std::map<std::string, std::uint64_t>{{"major", 20}}));
  f.clock.advance(minutes(14));  // t0 + 16 min: the first batch left even the 15 min window
  windows = f.reporter.summaries();
  EXPECT_EQ(windows[0].requests, 0u);
  EXPECT_DOUBLE_EQ(windows[0].error_rate, 0.0);
  EXPECT_EQ(windows[2].requests, 60u);
}

TEST(ErrorReporter, ErrorRateAlertRaisesAndClearsWithHysteresis) {
  ReporterFixture f;
  f.requests(19, 19);  // 50 % of 38 requests (at least error_rate_min_requests = 20)
  const Alert raised = only(f.reporter.evaluate());
  EXPECT_EQ(raised.rule, AlertRule::kErrorRate);
  EXPECT_DOUBLE_EQ(raised.value, 0.5);
  // The rate falls to 7 % (between clear 5 % and raise 10 %): it stays raised.
  f.clock.advance(seconds(10));
  f.requests(234, 0);  // 19 / 272 = 0.0699
  EXPECT_TRUE(f.reporter.evaluate().empty());
  EXPECT_EQ(f.reporter.active_alerts().size(), 1u);
  // Below 5 %: cleared only once that held for clear_hold (2 min).
  f.requests(200, 0);  // 19 / 472 = 0.040
  EXPECT_TRUE(f.reporter.evaluate().empty());
  f.clock.advance(seconds(119));
  EXPECT_TRUE(f.reporter.evaluate().empty());
  f.clock.advance(seconds(1));
  EXPECT_EQ(only(f.reporter.evaluate()).state, Alert::State::kCleared);
  EXPECT_TRUE(f.reporter.active_alerts().empty());
  EXPECT_EQ(f.delivered.size(), 2u);
}

TEST(ErrorReporter, TooFewRequestsCountAsNoErrorRate) {
  ReporterFixture f;
  f.requests(0, 19);  // 100 % of 19 requests, below error_rate_min_requests (20)
  EXPECT_TRUE(f.reporter.evaluate().empty());
  f.requests(0, 1);
  EXPECT_EQ(f.reporter.evaluate().size(), 1u);
}

TEST(ErrorReporter, AnErrorRateOscillatingAroundTheThresholdDoesNotFlap) {
  ReporterFixture f;
  int changes = 0;
  // Every 10 s, 100 requests with alternately 12 and 8 errors: the 5 min rate hovers near 10 %.
  for (int i = 0; i < 60; ++i) {
    f.requests(i % 2 ? 92 : 88, i % 2 ? 8 : 12);
    changes += static_cast<int>(f.reporter.evaluate().size());
    f.clock.advance(seconds(10));
  }
  EXPECT_EQ(changes, 1);
  EXPECT_EQ(f.reporter.active_alerts().size(), 1u);
}

TEST(ErrorReporter, BreakerOpenFromEventsAndSamples) {
  ReporterFixture f;
  Event e;
  e.name = std::string(event_name(EventId::kBreakerTransition));
  e.metadata = {{"breaker", "p"}, {"from", "closed"}, {"to", "open"}};
  f.bus->emit(e);
  f.clock.advance(seconds(29));
  EXPECT_TRUE(f.reporter.evaluate().empty());
  f.clock.advance(seconds(1));
  // Open for 30 s (this sample has no breaker state: the event's time counts).
  const Alert raised = only(f.reporter.tick(stats()));
  EXPECT_EQ(raised.rule, AlertRule::kBreakerOpen);
  EXPECT_DOUBLE_EQ(raised.value, 30);
  PoolStats s = stats();
  s.breaker_state = "half_open";  // probing is not closed: still raised
  f.clock.advance(seconds(5));
  EXPECT_TRUE(f.reporter.tick(s).empty());
  s.breaker_state = "closed";
  EXPECT_TRUE(f.reporter.tick(s).empty());  // closed, but not yet for clear_hold (1 min)
  f.clock.advance(minutes(1));
  EXPECT_EQ(only(f.reporter.tick(s)).state, Alert::State::kCleared);
}

Event worker_event(EventId id, std::map<std::string, std::string> metadata) {
  Event e;
  e.name = std::string(event_name(id));
  e.metadata = std::move(metadata);
  e.metadata["worker_id"] = "w1";
  return e;
}

TEST(ErrorReporter, CrashLoopCountsUnplannedExitsAndFailedStarts) {
  ReporterFixture f;
  auto transition = [&](WorkerState from, WorkerState to, TransitionReason reason) {
    f.bus->observe(TransitionObservation{"p", "w1", from, to, reason, 1.0});
  };
  const Event init_failed = worker_event(EventId::kWorkerInitFailed, {{"error", "ImportError"}});
  // Planned exits are not losses: recycling, a rolling restart, shutdown, a timeout, and the
  // exit of a worker already terminating.
  for (TransitionReason reason : {TransitionReason::kRecycled, TransitionReason::kReplaced,
                                  TransitionReason::kShutdown, TransitionReason::kTimeout}) {
    transition(WorkerState::kReady, WorkerState::kTerminating, reason);
  }
  transition(WorkerState::kTerminating, WorkerState::kTerminated, TransitionReason::kExited);
  f.bus->emit(worker_event(EventId::kWorkerExited, {{"status", "exit code 0"}}));
  for (int i = 0; i < 4; ++i) {
    if (i % 2) {
      transition(WorkerState::kBusy, WorkerState::kTerminating, TransitionReason::kExited);
    } else {
      f.bus->emit(init_failed);
    }
  }
  EXPECT_TRUE(f.reporter.evaluate().empty());  // 4 < 5
  f.clock.advance(seconds(30));
  f.reporter.record_worker_loss();  // the same input without a bus
  const Alert raised = only(f.reporter.evaluate());
  EXPECT_EQ(raised.rule, AlertRule::kCrashLoop);
  EXPECT_DOUBLE_EQ(raised.value, 5);
  // Nothing more: after crash_loop_window (5 min) the count is 0 <= 1, then clear_hold (5 min).
  f.clock.advance(minutes(5));
  EXPECT_TRUE(f.reporter.evaluate().empty());
  f.clock.advance(minutes(5));
  EXPECT_EQ(only(f.reporter.evaluate()).state, Alert::State::kCleared);
}

TEST(ErrorReporter, QueueSaturationNeedsTheQueueHeldAboveTwiceTheSize) {
  ReporterFixture f;
  PoolStats s = stats(4);
  s.queue_length = 8;  // 2 x size
  EXPECT_TRUE(f.reporter.tick(s).empty());
  f.clock.advance(seconds(30));
  const Alert raised = only(f.reporter.tick(s));
  EXPECT_EQ(raised.rule, AlertRule::kQueueSaturation);
  EXPECT_DOUBLE_EQ(raised.value, 2);
  s.queue_length = 5;  // 1.25 x: between clear and raise
  f.clock.advance(minutes(5));
  EXPECT_TRUE(f.reporter.tick(s).empty());
  s.queue_length = 4;
  EXPECT_TRUE(f.reporter.tick(s).empty());
  f.clock.advance(minutes(1));
  EXPECT_EQ(f.reporter.tick(s).size(), 1u);
  EXPECT_TRUE(f.reporter.active_alerts().empty());
}

TEST(ErrorReporter, ReplacementStormCountsReplacementsOfTheLastMinute) {
  ReporterFixture f;
  PoolStats s = stats();
  f.reporter.tick(s);
  for (int i = 1; i <= 9; ++i) {
    f.clock.advance(seconds(5));
    s.replaced = static_cast<std::uint64_t>(i);
    EXPECT_TRUE(f.reporter.tick(s).empty());
  }
  f.clock.advance(seconds(5));
  s.replaced = 10;
  EXPECT_EQ(only(f.reporter.tick(s)).rule, AlertRule::kReplacementStorm);
  f.clock.advance(minutes(1));
  EXPECT_TRUE(f.reporter.tick(s).empty());  // 0 replacements, for clear_hold (2 min)
  f.clock.advance(minutes(2));
  EXPECT_EQ(f.reporter.tick(s).size(), 1u);
}

TEST(ErrorReporter, AThrowingSinkIsLoggedAndTheOthersStillRun) {
  ReporterFixture f;
  int after = 0;
  f.reporter.add_sink([](const Alert&) { throw std::runtime_error("webhook down"); });
  f.reporter.add_sink([&](const Alert&) { ++after; });
  f.requests(0, 20);
  auto changed = f.reporter.evaluate();
  EXPECT_EQ(changed.size(), 1u);
  EXPECT_EQ(f.delivered.size(), 1u);
  EXPECT_EQ(after, 1);
  ASSERT_EQ(f.logged.size(), 1u);
  EXPECT_EQ(f.logged[0].level, LogLevel::kError);
  EXPECT_NE(f.logged[0].message.find("webhook down"), std::string::npos);
}

TEST(ErrorReporter, LogSinkWritesOneLinePerAlertAtItsLevel) {
  ReporterFixture f;
  f.reporter.add_sink(ErrorReporter::log_sink(f.logger));
  f.requests(0, 20);
  f.reporter.evaluate();
  f.clock.advance(minutes(5));
  f.reporter.evaluate();  // the window is empty now: 0 <= clear ...
  f.clock.advance(minutes(2));
  f.reporter.evaluate();  // ... held for clear_hold
  ASSERT_EQ(f.logged.size(), 2u);
  EXPECT_EQ(f.logged[0].level, LogLevel::kError);  // critical
  EXPECT_EQ(f.logged[0].component, "alerts");
  EXPECT_EQ(f.logged[0].message,
            "error_rate raised: errors / requests over error_rate_window = 1 >= 0.1");
  EXPECT_EQ(f.logged[1].level, LogLevel::kInfo);
}

TEST(ErrorReporter, AlertsAreEmittedOnTheAttachedBus) {
  ReporterFixture f;
  std::vector<Event> events;
  f.bus->attach("alert.", [&](const Event& e) { events.push_back(e); });
  f.requests(10, 10);
  f.reporter.evaluate();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].name, "alert.raised");
  EXPECT_EQ(events[0].metadata.at("rule"), "error_rate");
  EXPECT_EQ(events[0].metadata.at("severity"), "critical");
  EXPECT_DOUBLE_EQ(events[0].measurements.at("value"), 0.5);
  EXPECT_DOUBLE_EQ(events[0].measurements.at("threshold"), 0.10);
  EXPECT_EQ(events[0].time, f.clock.wall_now());
}

TEST(ErrorReporter, DetachedReporterCountsNothing) {
  ReporterFixture f;
  f.reporter.detach();
  f.requests(5, 5);
  EXPECT_EQ(f.reporter.summaries()[0].requests, 0u);
  EXPECT_EQ(f.bus->handler_count(), 0u);
  f.reporter.attach(f.bus);
  f.requests(1, 1);
  EXPECT_EQ(f.reporter.summaries()[0].requests, 2u);
}

TEST(ErrorReporter, StatusJsonHasActiveAlertsAndWindowSummaries) {
  ReporterFixture f;
  f.requests(15, 5, "timeout");
  f.reporter.evaluate();
  const Json status = f.reporter.status_json();
  ASSERT_EQ(status["alerts"].size(), 1u);
  EXPECT_EQ(status["alerts"][0]["rule"], "error_rate");
  EXPECT_EQ(status["alerts"][0]["state"], "raised");
  EXPECT_EQ(status["alerts"][0]["since"], "2026-01-01T01:00:00.000Z");  // ManualClock origin + 1 h
  EXPECT_DOUBLE_EQ(status["alerts"][0]["value"].get<double>(), 0.25);
  ASSERT_EQ(status["windows"].size(), 3u);
  EXPECT_EQ(status["windows"][0]["window_s"], 60);
  EXPECT_EQ(status["windows"][0]["requests"], 20);
  EXPECT_EQ(status["windows"][0]["errors"], 5);
  EXPECT_EQ(status["windows"][0]["by_category_severity"]["timeout"]["major"], 5);
}

TEST(ErrorReporter, EventsFromManyThreadsAreAllCountedWhileEvaluationsRun) {
  ReporterFixture f;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 5000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&f] {
      for (int i = 0; i < kPerThread; ++i) f.request(i % 4 == 0 ? "timeout" : "ok", "critical");
    });
  }
  for (int i = 0; i < 200; ++i) {
    f.reporter.evaluate();
    (void)f.reporter.status_json();
  }
  for (auto& t : threads) t.join();
  const WindowSummary minute = f.reporter.summaries()[0];
  EXPECT_EQ(minute.requests, std::uint64_t{kThreads * kPerThread});
  EXPECT_EQ(minute.errors, std::uint64_t{kThreads * kPerThread / 4});
  EXPECT_EQ(minute.by_category_severity.at("timeout").at("critical"), minute.errors);
  f.reporter.evaluate();
  EXPECT_EQ(only(f.reporter.active_alerts()).rule, AlertRule::kErrorRate);  // 25 %
  EXPECT_EQ(f.delivered.size(), 1u);  // raised once, by whichever evaluation saw it first
}

TEST(ErrorReporter, InvalidConfigurationsAreRefusedWithTheField) {
  struct Case {
    const char* what;
    std::function<void(ErrorReporterConfig&)> change;
    const char* message_part;
  };
  const std::vector<Case> cases = {
      {"no window", [](auto& c) { c.windows.clear(); }, "at least one window"},
      {"zero bucket", [](auto& c) { c.bucket_width = Duration(0); }, "bucket_width"},
      {"fractional window", [](auto& c) { c.windows = {std::chrono::milliseconds(1500)}; },
       "whole number"},
      {"too many buckets", [](auto& c) { c.windows = {std::chrono::hours(2)}; }, "buckets"},
      {"rule window too long", [](auto& c) { c.error_rate_window = minutes(30); },
       "error_rate_window"},
      {"clear not below raise", [](auto& c) { c.crash_loop.clear = 5; }, "crash_loop"},
      {"negative hold", [](auto& c) { c.queue_saturation.clear_hold = seconds(-1); },
       "queue_saturation"},
  };
  EXPECT_TRUE(validate(ErrorReporterConfig{}));
  for (const auto& c : cases) {
    ErrorReporterConfig config;
    c.change(config);
    auto result = validate(config);
    ASSERT_FALSE(result) << c.what;
    EXPECT_EQ(result.error().category, ErrorCategory::kInvalidRequest) << c.what;
    EXPECT_NE(result.error().message.find(c.message_part), std::string::npos)
        << c.what << ": " << result.error().message;
  }
  ErrorReporterConfig disabled;
  disabled.crash_loop = AlertThreshold{false, AlertSeverity::kWarning, 1, 5, {}, {}};
  EXPECT_TRUE(validate(disabled));  // a disabled rule's thresholds are not checked
}

TEST(ErrorReporterDeathTest, AnInvalidConfigAbortsTheConstructorWithTheReason) {
  ErrorReporterConfig config;
  config.windows.clear();
  ManualClock clock;
  EXPECT_DEATH({ ErrorReporter reporter(config, clock); }, "at least one window");
}

}  // namespace
}  // namespace bridgepool
