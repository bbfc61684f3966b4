// Error: category names round-trip, and the one-line and logging forms show what they promise.
#include "bridgepool/error.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace bridgepool {
namespace {

using std::chrono::microseconds;

// One line of the logging block: the key, padded to the value column, then the value.
std::string line(std::string key, std::string_view value) {
  key += ':';
  key.resize(15, ' ');
  return key + std::string(value);
}

const std::vector<std::pair<ErrorCategory, std::string>> kCategoryNames = {
    {ErrorCategory::kInitialization, "initialization"},
    {ErrorCategory::kConnection, "connection"},
    {ErrorCategory::kCommunication, "communication"},
    {ErrorCategory::kTimeout, "timeout"},
    {ErrorCategory::kResource, "resource"},
    {ErrorCategory::kHealthCheck, "health_check"},
    {ErrorCategory::kSession, "session"},
    {ErrorCategory::kPython, "python"},
    {ErrorCategory::kCircuitOpen, "circuit_open"},
    {ErrorCategory::kSystem, "system"},
    {ErrorCategory::kInvalidRequest, "invalid_request"},
};

TEST(ErrorCategoryTest, NamesAreStableLowerSnake) {
  for (const auto& [category, name] : kCategoryNames) {
    EXPECT_EQ(category_name(category), name);
  }
}

TEST(ErrorCategoryTest, FromNameRoundTrips) {
  for (const auto& [category, name] : kCategoryNames) {
    ASSERT_TRUE(category_from_name(name).has_value()) << name;
    EXPECT_EQ(*category_from_name(name), category) << name;
  }
}

TEST(ErrorCategoryTest, FromNameRejectsUnknownAndWrongCase) {
  EXPECT_FALSE(category_from_name("").has_value());
  EXPECT_FALSE(category_from_name("Connection").has_value());
  EXPECT_FALSE(category_from_name("circuit-open").has_value());
  EXPECT_FALSE(category_from_name("kTimeout").has_value());
}

TEST(ErrorTest, MakeErrorCarriesCategoryAndMessage) {
  Result<int> result = make_error(ErrorCategory::kTimeout, "waited 5000 ms");
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().category, ErrorCategory::kTimeout);
  EXPECT_EQ(result.error().message, "waited 5000 ms");
  EXPECT_EQ(result.error().context.attempt, 1);
  EXPECT_FALSE(result.error().python.has_value());
}

TEST(ErrorTest, ToStringWithoutContextHasNoBrackets) {
  Error error(ErrorCategory::kResource, "queue full (100 waiting)");
  EXPECT_EQ(error.to_string(), "resource: queue full (100 waiting)");
}

TEST(ErrorTest, ToStringListsOnlyNonEmptyFieldsInOrder) {
  Error error(ErrorCategory::kConnection, "worker w3 exited during request (signal 9)");
  error.context.command = "echo";
  error.context.worker_id = "w3";
  error.context.attempt = 2;
  error.context.elapsed = microseconds(1500);
  error.context.cause = "EPIPE";
  EXPECT_EQ(error.to_string(),
            "connection: worker w3 exited during request (signal 9) "
            "[command=echo worker=w3 attempt=2 elapsed_us=1500 cause=EPIPE]");
}

TEST(ErrorTest, ToStringWithEveryField) {
  Error error(ErrorCategory::kSession, "session_lost");
  error.context.operation = "execute";  // operation and pool are in the logging block only
  error.context.pool_name = "main";
  error.context.command = "execute_program";
  error.context.worker_id = "w1";
  error.context.session_id = "s-42";
  error.context.attempt = 3;
  error.context.elapsed = microseconds(10);
  error.context.queue_wait = microseconds(7);
  error.context.cause = "worker removed";
  EXPECT_EQ(error.to_string(),
            "session: session_lost [command=execute_program worker=w1 session=s-42 attempt=3 "
            "elapsed_us=10 queue_wait_us=7 cause=worker removed]");
}

TEST(ErrorTest, ToStringOmitsFirstAttemptAndZeroTimes) {
  Error error(ErrorCategory::kTimeout, "late");
  error.context.session_id = "s";
  error.context.attempt = 1;
  EXPECT_EQ(error.to_string(), "timeout: late [session=s]");
}

TEST(ErrorTest, FormatForLoggingShowsEveryContextField) {
  Error error(ErrorCategory::kTimeout, "no reply within 60000 ms");
  error.context.operation = "execute";
  error.context.command = "sleep";
  error.context.worker_id = "w2";
  error.context.pool_name = "default";
  error.context.queue_wait = microseconds(12);
  const std::string block = error.format_for_logging();
  EXPECT_NE(block.find(line("error", "timeout")), std::string::npos) << block;
  EXPECT_NE(block.find(line("message", "no reply within 60000 ms")), std::string::npos) << block;
  EXPECT_NE(block.find(line("operation", "execute")), std::string::npos) << block;
  EXPECT_NE(block.find(line("command", "sleep")), std::string::npos) << block;
  EXPECT_NE(block.find(line("session", "-")), std::string::npos) << block;
  EXPECT_NE(block.find(line("worker", "w2")), std::string::npos) << block;
  EXPECT_NE(block.find(line("pool", "default")), std::string::npos) << block;
  EXPECT_NE(block.find(line("attempt", "1")), std::string::npos) << block;
  EXPECT_NE(block.find(line("elapsed_us", "0")), std::string::npos) << block;
  EXPECT_NE(block.find(line("queue_wait_us", "12")), std::string::npos) << block;
  EXPECT_NE(block.find(line("cause", "-")), std::string::npos) << block;
  EXPECT_NE(block.find(line("severity", "major")), std::string::npos) << block;
  EXPECT_NE(block.find(line("strategy", "abandon")), std::string::npos) << block;
  EXPECT_NE(block.find(line("adapter", "-")), std::string::npos) << block;
  EXPECT_EQ(block.find("python_type"), std::string::npos) << block;
  EXPECT_EQ(block.find("traceback"), std::string::npos) << block;
  EXPECT_GE(std::count(block.begin(), block.end(), '\n'), 13);
}

TEST(ErrorTest, FormatForLoggingIncludesPythonDetails) {
  Error error(ErrorCategory::kPython, "ValueError: bad input");
  error.python = PythonError{"ValueError",
                             "Traceback (most recent call last):\n  File \"h.py\", line 3\n"
                             "ValueError: bad input\n",
                             false};
  const std::string block = error.format_for_logging();
  EXPECT_NE(block.find(line("python_type", "ValueError")), std::string::npos) << block;
  EXPECT_NE(block.find(line("retryable", "false")), std::string::npos) << block;
  EXPECT_NE(block.find("traceback:\n    Traceback (most recent call last):\n"
                       "      File \"h.py\", line 3\n    ValueError: bad input"),
            std::string::npos)
      << block;
  EXPECT_NE(block.back(), '\n');
}

TEST(ErrorTest, FormatForLoggingPythonWithoutTracebackOrRetryable) {
  Error error(ErrorCategory::kPython, "KeyError: 'x'");
  error.python = PythonError{"KeyError", "", std::nullopt};
  const std::string block = error.format_for_logging();
  EXPECT_NE(block.find(line("python_type", "KeyError")), std::string::npos) << block;
  EXPECT_NE(block.find(line("retryable", "unknown")), std::string::npos) << block;
  EXPECT_EQ(block.find("traceback"), std::string::npos) << block;
}

TEST(ErrorTest, SeverityAndStrategyNamesRoundTrip) {
  for (auto s : {ErrorSeverity::kWarning, ErrorSeverity::kMinor, ErrorSeverity::kMajor,
                 ErrorSeverity::kCritical}) {
    EXPECT_EQ(severity_from_name(severity_name(s)), s);
  }
  for (auto s :
       {RecoveryStrategy::kImmediateRetry, RecoveryStrategy::kBackoffRetry,
        RecoveryStrategy::kCircuitBreak, RecoveryStrategy::kFailover, RecoveryStrategy::kAbandon}) {
    EXPECT_EQ(strategy_from_name(strategy_name(s)), s);
  }
  EXPECT_EQ(strategy_name(RecoveryStrategy::kImmediateRetry), "immediate_retry");
  EXPECT_EQ(severity_name(ErrorSeverity::kCritical), "critical");
  EXPECT_FALSE(severity_from_name("fatal").has_value());
  EXPECT_FALSE(strategy_from_name("retry").has_value());
}

TEST(ErrorTest, AttemptBudgetsFollowSpec) {
  EXPECT_EQ(attempt_budget(RecoveryStrategy::kImmediateRetry), 3u);
  EXPECT_EQ(attempt_budget(RecoveryStrategy::kBackoffRetry), 5u);
  EXPECT_EQ(attempt_budget(RecoveryStrategy::kFailover), 2u);
  EXPECT_EQ(attempt_budget(RecoveryStrategy::kCircuitBreak), 1u);
  EXPECT_EQ(attempt_budget(RecoveryStrategy::kAbandon), 1u);
  EXPECT_TRUE(allows_retry(RecoveryStrategy::kBackoffRetry));
  EXPECT_FALSE(allows_retry(RecoveryStrategy::kFailover));
}

}  // namespace
}  // namespace bridgepool
