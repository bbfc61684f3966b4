// RecoveryPolicy: the SPEC §4 recovery table, row by row (every failure kind below and at its
// limit, shutting down or not), then invariants checked over the whole cross product of inputs.
// What happens to the *request* is the retry engine's (retry_engine_test.cc), not this table's.
#include "worker/recovery_policy.h"

#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

namespace bridgepool {
namespace {

using F = FailureKind;
using W = WorkerAction;
using T = TransitionReason;

struct Row {
  const char* name;
  F kind;
  std::uint32_t failures;
  bool shutting_down;
  W worker;
  bool replace;
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

// clang-format off
const std::vector<Row> kTable = {
  // F failures, S shutting down, R replace. Limits are the defaults: 3 health, 3 checkin.
  // name                          kind          F  S  worker    R
  {"Exited",                       kExited,      1, N, kRemove,  Y},
  {"ExitedShutdown",               kExited,      1, Y, kRemove,  N},
  {"HealthFirstFailure",           kHealth,      1, N, kDegrade, N},
  {"HealthBelowLimit",             kHealth,      2, N, kDegrade, N},
  {"HealthAtLimit",                kHealth,      3, N, kRemove,  Y},
  {"HealthBeyondLimit",            kHealth,      4, N, kRemove,  Y},
  {"HealthBelowLimitShutdown",     kHealth,      2, Y, kDegrade, N},
  {"HealthAtLimitShutdown",        kHealth,      3, Y, kRemove,  N},
  {"CheckinFirstError",            kCheckin,     1, N, kDegrade, N},
  {"CheckinBelowLimit",            kCheckin,     2, N, kDegrade, N},
  {"CheckinAtLimit",               kCheckin,     3, N, kRemove,  Y},
  {"CheckinAtLimitShutdown",       kCheckin,     3, Y, kRemove,  N},
  {"Protocol",                     kProtocol,    1, N, kKill,    Y},
  {"ProtocolShutdown",             kProtocol,    1, Y, kKill,    N},
  {"Timeout",                      kTimeout,     1, N, kKill,    Y},
  {"TimeoutShutdown",              kTimeout,     1, Y, kKill,    N},
  {"Undelivered",                  kUndelivered, 1, N, kRemove,  Y},
  {"UndeliveredShutdown",          kUndelivered, 1, Y, kRemove,  N},
  {"Python",                       kPython,      1, N, kKeep,    N},
  {"PythonIgnoresFailureCount",    kPython,      7, N, kKeep,    N},
  {"InitFailed",                   kInit,        1, N, kKill,    Y},
  {"InitFailedRepeatedly",         kInit,        5, N, kKill,    Y},
  {"InitFailedShutdown",           kInit,        1, Y, kKill,    N},
};
// clang-format on

FailureReport report_of(const Row& row) {
  FailureReport r;
  r.kind = row.kind;
  r.consecutive_failures = row.failures;
  r.shutting_down = row.shutting_down;
  return r;
}

class RecoveryTableTest : public ::testing::TestWithParam<Row> {};

TEST_P(RecoveryTableTest, DecisionMatchesTheSpecTable) {
  const Row& row = GetParam();
  const RecoveryDecision d = RecoveryPolicy().decide(report_of(row));
  EXPECT_EQ(worker_action_name(d.worker), worker_action_name(row.worker));
  EXPECT_EQ(d.replace, row.replace);
  EXPECT_FALSE(d.reason.empty());
}

INSTANTIATE_TEST_SUITE_P(SpecSection4, RecoveryTableTest, ::testing::ValuesIn(kTable),
                         [](const ::testing::TestParamInfo<Row>& info) { return info.param.name; });

TEST(RecoveryPolicy, TableCoversEveryKind) {
  const std::vector<F> kinds = {F::kProcessExited,     F::kHealthCheckFailed, F::kCheckinError,
                                F::kProtocolViolation, F::kRequestTimeout,    F::kNotDelivered,
                                F::kPythonException,   F::kInitFailed};
  for (F kind : kinds) {
    int rows = 0;
    for (const Row& row : kTable) rows += row.kind == kind ? 1 : 0;
    EXPECT_GE(rows, 2) << failure_kind_name(kind);
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
    EXPECT_EQ(to_string(RecoveryPolicy().decide(r).transition), to_string(transition))
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

TEST(RecoveryPolicy, ALimitOfZeroRemovesAtTheFirstFailure) {
  RecoveryLimits limits;
  limits.max_checkin_failures = 0;
  FailureReport r;
  r.kind = F::kCheckinError;
  r.consecutive_failures = 1;
  EXPECT_EQ(RecoveryPolicy(limits).decide(r).worker, W::kRemove);
}

TEST(RecoveryPolicy, ReasonSaysWhatHappenedAndWhatWasDecided) {
  FailureReport r;
  r.kind = F::kHealthCheckFailed;
  r.consecutive_failures = 2;
  EXPECT_EQ(RecoveryPolicy().decide(r).reason, "health_check_failed (2/3): degrade worker");
  r.kind = F::kRequestTimeout;
  EXPECT_EQ(RecoveryPolicy().decide(r).reason, "request_timeout: kill worker and replace");
}

// Invariants over every combination of inputs (8 kinds x 5 counts x shutting down or not).
TEST(RecoveryPolicy, InvariantsHoldOverTheWholeInputSpace) {
  const RecoveryPolicy policy;
  int checked = 0;
  for (int k = 0; k <= static_cast<int>(F::kInitFailed); ++k) {
    for (std::uint32_t failures = 0; failures <= 4; ++failures) {
      for (bool shutting_down : {false, true}) {
        FailureReport r;
        r.kind = static_cast<F>(k);
        r.consecutive_failures = failures;
        r.shutting_down = shutting_down;
        const RecoveryDecision d = policy.decide(r);
        SCOPED_TRACE(d.reason);
        // A replacement exactly when a worker goes away and the pool is not shutting down.
        EXPECT_EQ(d.replace, d.removes_worker() && !shutting_down);
        // A Python exception never costs the worker; a broken stream always does, at once.
        if (r.kind == F::kPythonException) {
          EXPECT_EQ(d.worker, W::kKeep);
        }
        if (r.kind == F::kProtocolViolation || r.kind == F::kRequestTimeout) {
          EXPECT_EQ(d.worker, W::kKill);
        }
        // Counted failures never kill: the channel is fine, the worker is asked to stop.
        if (r.kind == F::kHealthCheckFailed || r.kind == F::kCheckinError) {
          EXPECT_NE(d.worker, W::kKill);
        }
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 8 * 5 * 2);
}

TEST(RecoveryPolicy, EveryEnumValueHasAName) {
  for (int k = 0; k <= static_cast<int>(F::kInitFailed); ++k) {
    EXPECT_NE(failure_kind_name(static_cast<F>(k)), "unknown");
  }
  for (int w = 0; w <= static_cast<int>(W::kKill); ++w) {
    EXPECT_NE(worker_action_name(static_cast<W>(w)), "unknown");
  }
}

}  // namespace
}  // namespace bridgepool
