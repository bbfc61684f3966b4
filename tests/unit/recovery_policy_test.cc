// RecoveryPolicy: the SPEC §4 recovery table, row by row (every failure kind below and at its
// limit, retryable or not, delivered or not, shutting down or not, within and at the attempt
// budget), then invariants checked over the whole cross product of inputs.
#include "pool/recovery_policy.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <tuple>
#include <vector>

namespace bridgepool {
namespace {

using std::chrono::milliseconds;
using F = FailureKind;
using W = WorkerAction;
using R = RequestAction;
using T = TransitionReason;

struct Row {
  const char* name;
  // FailureReport.
  F kind;
  std::uint32_t failures;
  bool idempotent;
  bool marked;
  bool delivered;
  std::uint32_t attempts;
  bool shutting_down;
  // Expected decision.
  W worker;
  R request;
  bool replace;
  int delay_ms;
};

void PrintTo(const Row& row, std::ostream* os) { *os << row.name; }

constexpr bool Y = true;
constexpr bool N = false;
constexpr F kExited = F::kProcessExited;
constexpr F kHealth = F::kHealthCheckFailed;
constexpr F kCheckin = F::kCheckinError;
constexpr F kProtocol = F::kProtocolViolation;
constexpr F kTimeout = F::kRequestTimeout;
constexpr F kUndelivered = F::kNotDelivered;
constexpr F kPython = F::kPythonException;
constexpr F kInit = F::kInitFailed;
constexpr W kKeep = W::kKeep;
constexpr W kDegrade = W::kDegradeAndProbeSoon;
constexpr W kRemove = W::kRemove;
constexpr W kKill = W::kKill;
constexpr R kResult = R::kReturnResult;
constexpr R kError = R::kReturnError;
constexpr R kElsewhere = R::kRetryElsewhere;
constexpr R kDelay = R::kRetryAfterDelay;

// clang-format off
const std::vector<Row> kTable = {
  // F failures, I idempotent, M marked retryable, D delivered, A attempts, S shutting down,
  // R replace, delay in ms. Limits are the defaults: 3 health, 3 checkin, 3 attempts, 100 ms.
  // name                          kind          F  I  M  D  A  S  worker    request     R delay
  // Process exited: remove; re-run only what cannot have run or is safe to run twice.
  {"ExitedDeliveredNotRetryable",  kExited,      1, N, N, Y, 1, N, kRemove,  kError,     Y,   0},
  {"ExitedDeliveredIdempotent",    kExited,      1, Y, N, Y, 1, N, kRemove,  kElsewhere, Y,   0},
  {"ExitedDeliveredMarked",        kExited,      1, N, Y, Y, 1, N, kRemove,  kElsewhere, Y,   0},
  {"ExitedNotDelivered",           kExited,      1, N, N, N, 1, N, kRemove,  kElsewhere, Y,   0},
  {"ExitedIdempotentAttempt2",     kExited,      1, Y, N, Y, 2, N, kRemove,  kElsewhere, Y,   0},
  {"ExitedIdempotentBudgetSpent",  kExited,      1, Y, N, Y, 3, N, kRemove,  kError,     Y,   0},
  {"ExitedUndeliveredBudgetSpent", kExited,      1, N, N, N, 3, N, kRemove,  kError,     Y,   0},
  {"ExitedNotRetryableShutdown",   kExited,      1, N, N, Y, 1, Y, kRemove,  kError,     N,   0},
  {"ExitedIdempotentShutdown",     kExited,      1, Y, N, Y, 1, Y, kRemove,  kError,     N,   0},
  {"ExitedUndeliveredShutdown",    kExited,      1, N, N, N, 1, Y, kRemove,  kError,     N,   0},
  // Health check failed: degrade below the limit, remove at it; a probe is never retried.
  {"HealthFirstFailure",           kHealth,      1, N, N, Y, 1, N, kDegrade, kError,     N,   0},
  {"HealthBelowLimit",             kHealth,      2, N, N, Y, 1, N, kDegrade, kError,     N,   0},
  {"HealthBelowLimitRetryable",    kHealth,      2, Y, Y, Y, 1, N, kDegrade, kError,     N,   0},
  {"HealthAtLimit",                kHealth,      3, N, N, Y, 1, N, kRemove,  kError,     Y,   0},
  {"HealthBeyondLimit",            kHealth,      4, N, N, Y, 1, N, kRemove,  kError,     Y,   0},
  {"HealthBelowLimitShutdown",     kHealth,      2, N, N, Y, 1, Y, kDegrade, kError,     N,   0},
  {"HealthAtLimitShutdown",        kHealth,      3, N, N, Y, 1, Y, kRemove,  kError,     N,   0},
  // Checkin error: same counting as health; the caller gets what the worker answered.
  {"CheckinFirstError",            kCheckin,     1, N, N, Y, 1, N, kDegrade, kResult,    N,   0},
  {"CheckinBelowLimitIdempotent",  kCheckin,     2, Y, N, Y, 1, N, kDegrade, kResult,    N,   0},
  {"CheckinBelowLimitMarked",      kCheckin,     2, N, Y, Y, 1, N, kDegrade, kResult,    N,   0},
  {"CheckinAtLimit",               kCheckin,     3, N, N, Y, 1, N, kRemove,  kResult,    Y,   0},
  {"CheckinAtLimitRetryable",      kCheckin,     3, Y, Y, Y, 1, N, kRemove,  kResult,    Y,   0},
  {"CheckinBelowLimitShutdown",    kCheckin,     2, N, N, Y, 1, Y, kDegrade, kResult,    N,   0},
  {"CheckinAtLimitShutdown",       kCheckin,     3, N, N, Y, 1, Y, kRemove,  kResult,    N,   0},
  // Protocol violation: kill; the request follows the "may it run again" rule.
  {"ProtocolNotRetryable",         kProtocol,    1, N, N, Y, 1, N, kKill,    kError,     Y,   0},
  {"ProtocolIdempotent",           kProtocol,    1, Y, N, Y, 1, N, kKill,    kElsewhere, Y,   0},
  {"ProtocolUndelivered",          kProtocol,    1, N, N, N, 1, N, kKill,    kElsewhere, Y,   0},
  {"ProtocolIdempotentNoBudget",   kProtocol,    1, Y, N, Y, 3, N, kKill,    kError,     Y,   0},
  {"ProtocolIdempotentShutdown",   kProtocol,    1, Y, N, Y, 1, Y, kKill,    kError,     N,   0},
  {"ProtocolNotRetryableShutdown", kProtocol,    1, N, N, Y, 1, Y, kKill,    kError,     N,   0},
  // Request timeout: kill; retry elsewhere only if retryable (or it never got there).
  {"TimeoutNotRetryable",          kTimeout,     1, N, N, Y, 1, N, kKill,    kError,     Y,   0},
  {"TimeoutIdempotent",            kTimeout,     1, Y, N, Y, 1, N, kKill,    kElsewhere, Y,   0},
  {"TimeoutMarked",                kTimeout,     1, N, Y, Y, 1, N, kKill,    kElsewhere, Y,   0},
  {"TimeoutUndelivered",           kTimeout,     1, N, N, N, 1, N, kKill,    kElsewhere, Y,   0},
  {"TimeoutIdempotentAttempt2",    kTimeout,     1, Y, N, Y, 2, N, kKill,    kElsewhere, Y,   0},
  {"TimeoutIdempotentNoBudget",    kTimeout,     1, Y, N, Y, 3, N, kKill,    kError,     Y,   0},
  {"TimeoutIdempotentShutdown",    kTimeout,     1, Y, N, Y, 1, Y, kKill,    kError,     N,   0},
  {"TimeoutNotRetryableShutdown",  kTimeout,     1, N, N, Y, 1, Y, kKill,    kError,     N,   0},
  // Not delivered: it never ran, so re-routing is always safe (within the budget).
  {"Undelivered",                  kUndelivered, 1, N, N, N, 1, N, kRemove,  kElsewhere, Y,   0},
  {"UndeliveredFlagIgnored",       kUndelivered, 1, N, N, Y, 1, N, kRemove,  kElsewhere, Y,   0},
  {"UndeliveredIdempotent",        kUndelivered, 1, Y, N, N, 2, N, kRemove,  kElsewhere, Y,   0},
  {"UndeliveredBudgetSpent",       kUndelivered, 1, N, N, N, 3, N, kRemove,  kError,     Y,   0},
  {"UndeliveredShutdown",          kUndelivered, 1, N, N, N, 1, Y, kRemove,  kError,     N,   0},
  // Python exception: the worker is fine; only the worker's own "retryable" mark allows a retry.
  {"PythonNotRetryable",           kPython,      1, N, N, Y, 1, N, kKeep,    kError,     N,   0},
  {"PythonIdempotentNotEnough",    kPython,      1, Y, N, Y, 1, N, kKeep,    kError,     N,   0},
  {"PythonMarkedAttempt1",         kPython,      1, N, Y, Y, 1, N, kKeep,    kDelay,     N, 100},
  {"PythonMarkedAttempt2",         kPython,      1, Y, Y, Y, 2, N, kKeep,    kDelay,     N, 200},
  {"PythonMarkedBudgetSpent",      kPython,      1, N, Y, Y, 3, N, kKeep,    kError,     N,   0},
  {"PythonMarkedShutdown",         kPython,      1, N, Y, Y, 1, Y, kKeep,    kError,     N,   0},
  {"PythonIgnoresFailureCount",    kPython,      7, N, N, Y, 1, N, kKeep,    kError,     N,   0},
  // Init failed: kill what is left, replace (the respawn backoff paces it), re-route waiters.
  {"InitFailed",                   kInit,        1, N, N, N, 1, N, kKill,    kElsewhere, Y,   0},
  {"InitFailedRepeatedly",         kInit,        5, N, N, N, 1, N, kKill,    kElsewhere, Y,   0},
  {"InitFailedBudgetSpent",        kInit,        1, N, N, N, 3, N, kKill,    kError,     Y,   0},
  {"InitFailedShutdown",           kInit,        1, N, N, N, 1, Y, kKill,    kError,     N,   0},
};
// clang-format on

FailureReport report_of(const Row& row) {
  FailureReport r;
  r.kind = row.kind;
  r.consecutive_failures = row.failures;
  r.idempotent = row.idempotent;
  r.marked_retryable = row.marked;
  r.delivered = row.delivered;
  r.attempts = row.attempts;
  r.shutting_down = row.shutting_down;
  return r;
}

class RecoveryTableTest : public testing::TestWithParam<Row> {};

TEST_P(RecoveryTableTest, DecisionMatchesTheSpecTable) {
  const Row& row = GetParam();
  const RecoveryDecision d = RecoveryPolicy().decide(report_of(row));
  EXPECT_EQ(worker_action_name(d.worker), worker_action_name(row.worker));
  EXPECT_EQ(request_action_name(d.request), request_action_name(row.request));
  EXPECT_EQ(d.replace, row.replace);
  EXPECT_EQ(d.retry_delay, milliseconds(row.delay_ms));
  EXPECT_FALSE(d.reason.empty());
}

INSTANTIATE_TEST_SUITE_P(SpecSection4, RecoveryTableTest, testing::ValuesIn(kTable),
                         [](const testing::TestParamInfo<Row>& info) { return info.param.name; });

// Every kind appears in the table, both below and at the limit where a limit exists.
TEST(RecoveryPolicy, TableCoversEveryKind) {
  const std::vector<F> kinds = {F::kProcessExited,     F::kHealthCheckFailed, F::kCheckinError,
                                F::kProtocolViolation, F::kRequestTimeout,    F::kNotDelivered,
                                F::kPythonException,   F::kInitFailed};
  for (F kind : kinds) {
    int rows = 0;
    for (const Row& row : kTable) rows += row.kind == kind ? 1 : 0;
    EXPECT_GE(rows, 4) << failure_kind_name(kind);
  }
}

// The reason recorded on the worker's transition, per kind, below and at the limit.
TEST(RecoveryPolicy, TransitionReasonNamesWhatHappened) {
  const std::vector<std::tuple<F, std::uint32_t, T>> expected = {
      {kExited, 1, T::kExited},       {kHealth, 2, T::kHealthCheckFailed},
      {kHealth, 3, T::kMaxFailures},  {kCheckin, 2, T::kCheckinError},
      {kCheckin, 3, T::kMaxFailures}, {kProtocol, 1, T::kProtocolError},
      {kTimeout, 1, T::kTimeout},     {kUndelivered, 1, T::kExited},
      {kPython, 1, T::kCheckinOk},    {kInit, 1, T::kInitFailed},
  };
  for (const auto& [kind, failures, transition] : expected) {
    FailureReport r;
    r.kind = kind;
    r.consecutive_failures = failures;
    EXPECT_EQ(reason_name(RecoveryPolicy().decide(r).transition), reason_name(transition))
        << failure_kind_name(kind) << " " << failures;
  }
}

TEST(RecoveryPolicy, LimitsComeFromTheConfiguration) {
  RecoveryLimits limits;
  limits.max_health_failures = 1;
  limits.max_checkin_failures = 5;
  RecoveryPolicy policy(limits);
  FailureReport r;
  r.kind = F::kHealthCheckFailed;
  r.consecutive_failures = 1;
  EXPECT_EQ(policy.decide(r).worker, W::kRemove);  // 1 >= 1: the first failure removes
  r.kind = F::kCheckinError;
  r.consecutive_failures = 4;
  EXPECT_EQ(policy.decide(r).worker, W::kDegradeAndProbeSoon);  // 4 < 5
  r.consecutive_failures = 5;
  EXPECT_EQ(policy.decide(r).worker, W::kRemove);
}

TEST(RecoveryPolicy, AttemptBudgetComesFromTheConfiguration) {
  RecoveryLimits limits;
  limits.max_attempts = 1;  // no retries at all
  FailureReport r;
  r.kind = F::kNotDelivered;
  r.delivered = false;
  EXPECT_EQ(RecoveryPolicy(limits).decide(r).request, R::kReturnError);
  limits.max_attempts = 5;
  r.attempts = 4;
  EXPECT_EQ(RecoveryPolicy(limits).decide(r).request, R::kRetryElsewhere);
}

TEST(RecoveryPolicy, RetryDelayDoublesUpToTheCap) {
  RecoveryLimits limits;
  limits.max_attempts = 100;
  limits.retry_base_delay = milliseconds(100);
  limits.retry_max_delay = milliseconds(1'000);
  RecoveryPolicy policy(limits);
  FailureReport r;
  r.kind = F::kPythonException;
  r.marked_retryable = true;
  // 100, 200, 400, 800, then 1600 capped to 1000; 2^98 must not overflow.
  const std::vector<std::pair<std::uint32_t, int>> expected = {{1, 100}, {2, 200},   {3, 400},
                                                               {4, 800}, {5, 1'000}, {99, 1'000}};
  for (const auto& [attempts, delay_ms] : expected) {
    r.attempts = attempts;
    EXPECT_EQ(policy.decide(r).retry_delay, milliseconds(delay_ms)) << "attempts " << attempts;
  }
}

TEST(RecoveryPolicy, ReasonSaysWhatHappenedAndWhatWasDecided) {
  FailureReport r;
  r.kind = F::kHealthCheckFailed;
  r.consecutive_failures = 2;
  EXPECT_EQ(RecoveryPolicy().decide(r).reason,
            "health_check_failed (2/3): degrade worker, return_error");
  r.kind = F::kRequestTimeout;
  r.idempotent = true;
  EXPECT_EQ(RecoveryPolicy().decide(r).reason,
            "request_timeout: kill worker and replace, retry_elsewhere");
}

// Invariants over every combination of inputs (8 kinds x 5 counts x 2^4 flags x 4 attempts).
TEST(RecoveryPolicy, InvariantsHoldOverTheWholeInputSpace) {
  const RecoveryPolicy policy;
  int checked = 0;
  for (int k = 0; k <= static_cast<int>(F::kInitFailed); ++k) {
    for (std::uint32_t failures = 0; failures <= 4; ++failures) {
      for (int bits = 0; bits < 16; ++bits) {
        for (std::uint32_t attempts = 1; attempts <= 4; ++attempts) {
          FailureReport r;
          r.kind = static_cast<F>(k);
          r.consecutive_failures = failures;
          r.idempotent = bits & 1;
          r.marked_retryable = bits & 2;
          r.delivered = bits & 4;
          r.shutting_down = bits & 8;
          r.attempts = attempts;
          const RecoveryDecision d = policy.decide(r);
          const bool retries = d.request == R::kRetryElsewhere || d.request == R::kRetryAfterDelay;
          SCOPED_TRACE(d.reason);
          // A replacement exactly when a worker goes away and the pool is not shutting down.
          EXPECT_EQ(d.replace, d.removes_worker() && !r.shutting_down);
          // Never a retry while shutting down or once the budget is spent.
          if (r.shutting_down || attempts >= 3) {
            EXPECT_FALSE(retries);
          }
          // A delivered request that is not safe to repeat is never run again.
          if (r.delivered && !r.retryable() && r.kind != F::kNotDelivered &&
              r.kind != F::kInitFailed) {
            EXPECT_FALSE(retries);
          }
          // A Python exception is retried only when the worker marked it, and keeps the worker.
          if (r.kind == F::kPythonException) {
            EXPECT_EQ(d.worker, W::kKeep);
            if (!r.marked_retryable) {
              EXPECT_FALSE(retries);
            }
          }
          // A delay only comes with kRetryAfterDelay.
          EXPECT_EQ(d.retry_delay > milliseconds(0), d.request == R::kRetryAfterDelay);
          ++checked;
        }
      }
    }
  }
  EXPECT_EQ(checked, 8 * 5 * 16 * 4);
}

TEST(RecoveryPolicy, EveryEnumValueHasAName) {
  for (int k = 0; k <= static_cast<int>(F::kInitFailed); ++k) {
    EXPECT_NE(failure_kind_name(static_cast<F>(k)), "unknown");
  }
  for (int w = 0; w <= static_cast<int>(W::kKill); ++w) {
    EXPECT_NE(worker_action_name(static_cast<W>(w)), "unknown");
  }
  for (int q = 0; q <= static_cast<int>(R::kRetryAfterDelay); ++q) {
    EXPECT_NE(request_action_name(static_cast<R>(q)), "unknown");
  }
}

}  // namespace
}  // namespace bridgepool
