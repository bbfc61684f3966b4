// ErrorClassifier: the severity and strategy matrices of SPEC §6, cell by cell, and the overrides.
#include "resilience/error_classifier.h"

#include <array>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

namespace bridgepool {
namespace {

using C = ErrorCategory;
using S = RecoveryStrategy;
using V = ErrorSeverity;

constexpr std::array<C, 11> kAllCategories = {
    C::kInitialization, C::kConnection,  C::kCommunication, C::kTimeout,
    C::kResource,       C::kHealthCheck, C::kSession,       C::kPython,
    C::kCircuitOpen,    C::kSystem,      C::kInvalidRequest};

TEST(ErrorClassifierTest, BaseSeverityByCategory) {
  const std::vector<std::pair<C, V>> table = {
      {C::kInitialization, V::kMajor},  {C::kConnection, V::kMinor},
      {C::kCommunication, V::kMinor},   {C::kTimeout, V::kMinor},
      {C::kResource, V::kMajor},        {C::kHealthCheck, V::kMinor},
      {C::kSession, V::kMajor},         {C::kPython, V::kMinor},
      {C::kCircuitOpen, V::kMajor},     {C::kSystem, V::kMajor},
      {C::kInvalidRequest, V::kWarning}};
  ASSERT_EQ(table.size(), kAllCategories.size());
  for (const auto& [category, severity] : table) {
    EXPECT_EQ(base_severity(category), severity) << category_name(category);
  }
}

TEST(ErrorClassifierTest, SeverityRaisedOneLevelFromTheThirdAttempt) {
  for (C category : kAllCategories) {
    V base = base_severity(category);
    EXPECT_EQ(classify_severity(category, {.attempt = 1}), base);
    EXPECT_EQ(classify_severity(category, {.attempt = 2}), base);
    V raised = classify_severity(category, {.attempt = 3});
    EXPECT_EQ(static_cast<int>(raised), std::min(static_cast<int>(base) + 1, 3))
        << category_name(category);
    EXPECT_EQ(classify_severity(category, {.attempt = 7}), raised);
  }
}

TEST(ErrorClassifierTest, CriticalWhenEveryWorkerIsAffectedExceptForBadRequests) {
  for (C category : kAllCategories) {
    V v = classify_severity(category, {.attempt = 1, .all_workers_affected = true});
    if (category == C::kInvalidRequest) {
      EXPECT_EQ(v, V::kWarning);
    } else {
      EXPECT_EQ(v, V::kCritical) << category_name(category);
    }
  }
}

// The whole matrix: (category, low = warning/minor, major, critical).
const std::vector<std::tuple<C, S, S, S>> kMatrix = {
    {C::kInitialization, S::kBackoffRetry, S::kFailover, S::kCircuitBreak},
    {C::kConnection, S::kImmediateRetry, S::kBackoffRetry, S::kFailover},
    {C::kCommunication, S::kImmediateRetry, S::kBackoffRetry, S::kFailover},
    {C::kTimeout, S::kBackoffRetry, S::kBackoffRetry, S::kFailover},
    {C::kResource, S::kBackoffRetry, S::kFailover, S::kCircuitBreak},
    {C::kHealthCheck, S::kImmediateRetry, S::kBackoffRetry, S::kFailover},
    {C::kSystem, S::kBackoffRetry, S::kBackoffRetry, S::kAbandon},
    {C::kCircuitOpen, S::kFailover, S::kFailover, S::kFailover},
    {C::kSession, S::kAbandon, S::kAbandon, S::kAbandon},
    {C::kPython, S::kAbandon, S::kAbandon, S::kAbandon},
    {C::kInvalidRequest, S::kAbandon, S::kAbandon, S::kAbandon},
};

TEST(ErrorClassifierTest, StrategyMatrixEveryCell) {
  ASSERT_EQ(kMatrix.size(), kAllCategories.size());
  for (const auto& [category, low, major, critical] : kMatrix) {
    EXPECT_EQ(strategy_for(category, V::kWarning, false), low) << category_name(category);
    EXPECT_EQ(strategy_for(category, V::kMinor, false), low) << category_name(category);
    EXPECT_EQ(strategy_for(category, V::kMajor, false), major) << category_name(category);
    EXPECT_EQ(strategy_for(category, V::kCritical, false), critical) << category_name(category);
  }
}

TEST(ErrorClassifierTest, PythonErrorIsAbandonedUnlessTheWorkerMarkedItRetryable) {
  for (V v : {V::kWarning, V::kMinor, V::kMajor, V::kCritical}) {
    EXPECT_EQ(strategy_for(C::kPython, v, false), S::kAbandon);
    EXPECT_EQ(strategy_for(C::kPython, v, true), S::kBackoffRetry);
  }
  Error e(C::kPython, "ValueError: no");
  e.python = PythonError{"ValueError", "", std::nullopt};
  classify_error(e, {.attempt = 1, .may_have_run = true, .idempotent = true});
  EXPECT_EQ(e.strategy, S::kAbandon);  // unknown retryability: deterministic until proven otherwise
  e.python->retryable = true;
  classify_error(e, {.attempt = 1, .may_have_run = true, .idempotent = false});
  EXPECT_EQ(e.strategy, S::kBackoffRetry);  // the worker vouched for it, idempotent or not
}

TEST(ErrorClassifierTest, CriticalBeyondTwoAttemptsIsAbandoned) {
  Error e(C::kConnection, "all workers dead");
  classify_error(e, {.attempt = 2, .all_workers_affected = true, .idempotent = true});
  EXPECT_EQ(e.severity, V::kCritical);
  EXPECT_EQ(e.strategy, S::kFailover);
  classify_error(e, {.attempt = 3, .all_workers_affected = true, .idempotent = true});
  EXPECT_EQ(e.strategy, S::kAbandon);
}

TEST(ErrorClassifierTest, RequestThatMayHaveRunIsNotRerunUnlessIdempotent) {
  Error crash(C::kConnection, "worker w1 exited during request");
  classify_error(crash, {.attempt = 1, .may_have_run = true, .idempotent = false});
  EXPECT_EQ(crash.strategy, S::kAbandon);
  classify_error(crash, {.attempt = 1, .may_have_run = true, .idempotent = true});
  EXPECT_EQ(crash.strategy, S::kImmediateRetry);
  classify_error(crash, {.attempt = 1, .may_have_run = false, .idempotent = false});
  EXPECT_EQ(crash.strategy, S::kImmediateRetry);  // never reached a worker: always safe

  Error dead(C::kConnection, "no worker");
  classify_error(dead, {.attempt = 1, .all_workers_affected = true, .may_have_run = true});
  EXPECT_EQ(dead.strategy, S::kAbandon);  // failover would run it a second time too
}

TEST(ErrorClassifierTest, WorkedExampleFromTheHeader) {
  Error e(C::kConnection, "worker died mid-request");
  classify_error(e, {.attempt = 4, .may_have_run = true, .idempotent = true});
  EXPECT_EQ(e.severity, V::kMajor);
  EXPECT_EQ(e.strategy, S::kBackoffRetry);
  EXPECT_EQ(e.context.attempt, 4);
}

TEST(ErrorClassifierTest, CheckoutTimeoutBacksOffAndOpenBreakerFailsOver) {
  Error timeout(C::kTimeout, "no worker became free within 5000 ms");
  classify_error(timeout, {.attempt = 1});
  EXPECT_EQ(timeout.severity, V::kMinor);
  EXPECT_EQ(timeout.strategy, S::kBackoffRetry);
  Error open(C::kCircuitOpen, "breaker pool:default is open");
  classify_error(open, {.attempt = 1});
  EXPECT_EQ(open.strategy, S::kFailover);
  EXPECT_FALSE(open.retryable());
}

// Invariants over every input combination (11 categories x 6 attempts x 2^4 flags).
TEST(ErrorClassifierTest, InvariantsOverAllInputs) {
  int checked = 0;
  for (C category : kAllCategories) {
    for (std::uint32_t attempt = 1; attempt <= 6; ++attempt) {
      for (int bits = 0; bits < 16; ++bits) {
        Error e(category, "x");
        if (category == C::kPython) e.python = PythonError{"E", "", (bits & 8) != 0};
        ClassifyInput in{attempt, (bits & 1) != 0, (bits & 2) != 0, (bits & 4) != 0};
        classify_error(e, in);
        ++checked;
        // Never re-run something that may have run unless it is safe.
        bool reruns = e.retryable() || e.strategy == S::kFailover;
        bool marked = e.python && e.python->retryable.value_or(false);
        if (in.may_have_run && !in.idempotent && !marked) {
          EXPECT_FALSE(reruns);
        }
        // Bad requests and lost sessions are never retried.
        if (category == C::kInvalidRequest || category == C::kSession) {
          EXPECT_EQ(e.strategy, S::kAbandon);
        }
        if (e.severity == V::kCritical && attempt > 2) {
          EXPECT_EQ(e.strategy, S::kAbandon);
        }
        EXPECT_EQ(e.context.attempt, static_cast<int>(attempt));
      }
    }
  }
  EXPECT_EQ(checked, 11 * 6 * 16);
}

}  // namespace
}  // namespace bridgepool
