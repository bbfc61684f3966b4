// The error reporter and structured logs against a real pool: failed calls of the `fail` command
// (examples/handlers.py) raise the error_rate alert and successful calls clear it (errors / all
// requests), with time driven by a ManualClock given to the reporter only; the log lines of the
// request path carry the pool, worker, session and wire request id; worker output that is not
// UTF-8 is logged tagged with its worker and still gives valid JSON lines.
#include "bridgepool/error_reporter.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "bridgepool/event_names.h"
#include "test_support.h"

namespace bridgepool {
namespace {

using testing::data_path;
using testing::LogCapture;
using testing::start_pool;
using testing::test_config;
using testing::wait_until;

TEST(ErrorReporterPool, FailedCallsRaiseTheErrorRateAlertAndSuccessfulCallsClearIt) {
  auto config = test_config(2);
  config.events = std::make_shared<EventBus>();
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  ManualClock clock;
  ErrorReporterConfig rc;
  rc.error_rate_min_requests = 10;
  rc.error_rate = AlertThreshold{true,        AlertSeverity::kCritical, 0.5, 0.2,
                                 Duration(0), std::chrono::seconds(30)};
  ErrorReporter reporter(rc, clock);
  reporter.attach(config.events);
  std::vector<Alert> delivered;
  reporter.add_sink([&](const Alert& a) { delivered.push_back(a); });

  for (int i = 0; i < 10; ++i) {
    auto reply = pool->execute("fail", {{"type", "ValueError"}});
    ASSERT_FALSE(reply);
    ASSERT_EQ(reply.error().category, ErrorCategory::kPython);
  }
  // pool.request is emitted on the calling thread before execute() returns.
  auto changed = reporter.tick(pool->stats());
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].rule, AlertRule::kErrorRate);
  EXPECT_DOUBLE_EQ(changed[0].value, 1.0);  // 10 errors / 10 requests

  for (int i = 0; i < 15; ++i) ASSERT_TRUE(pool->execute("echo", {{"i", i}}));
  EXPECT_TRUE(reporter.tick(pool->stats()).empty());  // 10 / 25 = 0.4: between clear and raise
  for (int i = 0; i < 25; ++i) ASSERT_TRUE(pool->execute("echo", {{"i", i}}));
  EXPECT_TRUE(reporter.tick(pool->stats()).empty());  // 10 / 50 = 0.2 <= clear: hold begins
  clock.advance(std::chrono::seconds(30));
  changed = reporter.tick(pool->stats());
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].state, Alert::State::kCleared);
  EXPECT_DOUBLE_EQ(changed[0].value, 0.2);
  EXPECT_EQ(delivered.size(), 2u);
  EXPECT_TRUE(reporter.active_alerts().empty());

  const WindowSummary minute = reporter.summaries().at(0);
  EXPECT_EQ(minute.requests, 50u);
  EXPECT_EQ(minute.errors, 10u);
  EXPECT_EQ(minute.by_category, (std::map<std::string, std::uint64_t>{{"python", 10}}));
}

// Counts the events of `bus` that tell a worker left service, by reason.
class LeaveCounter {
 public:
  explicit LeaveCounter(std::shared_ptr<EventBus> bus) : bus_(std::move(bus)) {
    id_ = bus_->attach(std::string(event_name(EventId::kWorkerTransition)), [this](const Event& e) {
      if (e.metadata.at("to") != "terminating") return;
      std::lock_guard lock(mu_);
      ++by_reason_[e.metadata.at("reason")];
    });
  }
  ~LeaveCounter() { bus_->detach(id_); }  // the pool, shut down later, still emits
  std::size_t count(const std::string& reason) const {
    std::lock_guard lock(mu_);
    auto it = by_reason_.find(reason);
    return it == by_reason_.end() ? 0 : it->second;
  }

 private:
  std::shared_ptr<EventBus> bus_;
  EventBus::HandlerId id_ = 0;
  mutable std::mutex mu_;
  std::map<std::string, std::size_t> by_reason_;
};

TEST(ErrorReporterPool, KilledWorkersRaiseCrashLoopButARollingRestartDoesNot) {
  auto config = test_config(5);
  config.events = std::make_shared<EventBus>();
  config.respawn_backoff_initial = std::chrono::milliseconds(10);
  config.respawn_backoff_max = std::chrono::milliseconds(50);
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  ManualClock clock;
  ErrorReporter reporter(ErrorReporterConfig{}, clock);
  reporter.attach(config.events);
  LeaveCounter left(config.events);

  // Five planned exits (crash_loop's raise threshold): none is a loss.
  ASSERT_TRUE(pool->rolling_restart(config, 5));
  ASSERT_EQ(left.count("replaced"), 5u);
  EXPECT_TRUE(reporter.tick(pool->stats()).empty());

  for (std::size_t killed = 1; killed <= 5; ++killed) {
    ASSERT_EQ(::kill(pool->workers().at(0).pid, SIGKILL), 0);
    ASSERT_TRUE(wait_until([&] { return left.count("exited") == killed; }));
    ASSERT_TRUE(wait_until([&] { return pool->stats().live == 5; }));
  }
  const auto changed = reporter.tick(pool->stats());
  ASSERT_EQ(changed.size(), 1u);
  EXPECT_EQ(changed[0].rule, AlertRule::kCrashLoop);
  EXPECT_DOUBLE_EQ(changed[0].value, 5);
}

TEST(ErrorReporterPool, RequestPathLogLinesCarryPoolWorkerSessionAndRequestIds) {
  LogCapture capture;
  auto config = test_config(1);
  config.logger = capture.logger(LogLevel::kDebug);
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  const std::string worker = pool->workers().at(0).id;
  ASSERT_TRUE(pool->execute("echo", {{"x", 1}}));
  ASSERT_FALSE(pool->execute_in_session("s-7", "fail", {{"message", "boom"}}));
  auto calls = [&](std::string_view command) {
    std::vector<LogRecord> out;
    for (const auto& r : capture.records()) {
      if (r.message.rfind(fmt::format("call '{}' ended", command), 0) == 0) out.push_back(r);
    }
    return out;
  };
  const auto echo = calls("echo");
  const auto fail = calls("fail");
  ASSERT_EQ(echo.size(), 1u);
  ASSERT_EQ(fail.size(), 1u);
  EXPECT_EQ(echo[0].level, LogLevel::kDebug);
  EXPECT_EQ(echo[0].pool, "test");
  EXPECT_EQ(echo[0].worker_id, worker);
  EXPECT_TRUE(echo[0].session_id.empty());
  EXPECT_EQ(fail[0].level, LogLevel::kInfo);
  EXPECT_EQ(fail[0].worker_id, worker);
  EXPECT_EQ(fail[0].session_id, "s-7");
  // Wire ids count the requests this worker was sent (health probes and pings included), so
  // the later call has the larger id.
  EXPECT_GT(echo[0].request_id, 0u);
  EXPECT_GT(fail[0].request_id, echo[0].request_id);
  EXPECT_NE(fail[0].message.find("boom"), std::string::npos);
  const auto j = nlohmann::json::parse(Logger::format_json(fail[0]));
  EXPECT_EQ(j["request_id"], fail[0].request_id);
  EXPECT_EQ(j["session_id"], "s-7");
  EXPECT_EQ(j["pool"], "test");
}

TEST(ErrorReporterPool, WorkerOutputThatIsNotUtf8IsTaggedAndGivesValidJsonLines) {
  LogCapture capture;
  auto config = test_config(1, {data_path("raw_output.py")});
  config.logger = capture.logger(LogLevel::kInfo);
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  const std::string worker = pool->workers().at(0).id;
  ASSERT_TRUE(pool->execute("raw_output", {{"lines", 3}}));
  auto raw_lines = [&] {
    std::vector<LogRecord> out;
    for (const auto& r : capture.records()) {
      if (r.component == "worker.stdout" && r.message.rfind("raw ", 0) == 0) out.push_back(r);
    }
    return out;
  };
  ASSERT_TRUE(wait_until([&] { return raw_lines().size() == 3; }));
  for (const LogRecord& r : raw_lines()) {
    EXPECT_EQ(r.worker_id, worker);
    EXPECT_EQ(r.pool, "test");
    EXPECT_EQ(r.message, "raw \xff\xfe \xc3( end");
    nlohmann::json j;
    ASSERT_NO_THROW(j = nlohmann::json::parse(Logger::format_json(r)));
    EXPECT_EQ(j["worker_id"], worker);
    EXPECT_EQ(j["message"], "raw \xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd( end");
  }
}

}  // namespace
}  // namespace bridgepool
