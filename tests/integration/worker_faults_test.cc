// Faults a handler reports or causes, with real Python workers (tests/data/edge_cases.py):
// a handler that marks its worker unhealthy (checkin errors: degraded, probed, recycled at
// max_checkin_failures), BaseExceptions reported like exceptions, SystemExit, the same
// handlers file listed twice, and requests the pool must refuse before sending.
#include <chrono>

#include <gtest/gtest.h>

#include "bridgepool/pool.h"
#include "integration/test_support.h"

namespace bridgepool {
namespace {

using testing::data_path;
using testing::process_running;
using testing::start_pool;
using testing::test_config;
using testing::wait_until;
using namespace std::chrono_literals;

std::optional<WorkerInfo> find_worker(Pool& pool, const std::string& id) {
  for (const auto& w : pool.workers()) {
    if (w.id == id) return w;
  }
  return std::nullopt;
}

TEST(CheckinErrors, AMarkedWorkerIsDegradedProbedBackAndRecycledAtTheLimit) {
  auto config = testing::edge_config(1);
  config.max_checkin_failures = 2;
  config.health_recheck_interval = 50ms;
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  const pid_t first = find_worker(*pool, "w1")->pid;
  // The reply is delivered as usual; the worker then leaves rotation until a probe passes.
  auto marked = pool->execute("mark", {{"reasons", {"CUDA out of memory"}}});
  ASSERT_TRUE(marked) << marked.error().to_string();
  EXPECT_EQ(*marked, (Json{{"marked", 1}}));
  auto w = find_worker(*pool, "w1");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->state, WorkerState::kDegraded);
  EXPECT_EQ(w->history.back().reason, TransitionReason::kCheckinError);
  ASSERT_TRUE(wait_until([&] {
    auto now = find_worker(*pool, "w1");
    return now && now->state == WorkerState::kReady;
  }));
  EXPECT_EQ(find_worker(*pool, "w1")->history.back().reason, TransitionReason::kHealthCheckPassed);
  // The second error in a row — an exception whose class says so — recycles it.
  auto raised = pool->execute("raise_unhealthy", {{"on", "class"}});
  ASSERT_FALSE(raised);
  EXPECT_EQ(raised.error().category, ErrorCategory::kPython);
  EXPECT_EQ(raised.error().python->type, "ClassFlaggedError");
  ASSERT_TRUE(wait_until([&] { return !process_running(first); }));
  ASSERT_TRUE(pool->wait_ready(10s));
  PoolStats st = pool->stats();
  EXPECT_EQ(st.checkin_errors, 2u);
  EXPECT_EQ(st.recycled, 1u);
  EXPECT_EQ(st.replaced, 1u);
  auto context = pool->execute("context");
  ASSERT_TRUE(context) << context.error().to_string();
  EXPECT_EQ((*context)["worker_id"], "w2");
}

TEST(BaseExceptions, AreReportedWithTypeAndTracebackAndTheWorkerIsKept) {
  auto pool = start_pool(testing::edge_config(1));
  ASSERT_TRUE(pool);
  const pid_t pid = find_worker(*pool, "w1")->pid;
  for (const char* type : {"KeyboardInterrupt", "CancelledError", "GeneratorExit", "CustomBase"}) {
    SCOPED_TRACE(type);
    auto r = pool->execute("raise_base", {{"type", type}, {"message", "stop"}});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().category, ErrorCategory::kPython);
    ASSERT_TRUE(r.error().python);
    EXPECT_EQ(r.error().python->type, type);
    EXPECT_NE(r.error().python->traceback.find("Traceback"), std::string::npos);
  }
  EXPECT_EQ(find_worker(*pool, "w1")->pid, pid);
  EXPECT_EQ(pool->stats().exits, 0u);
  // SystemExit: the caller gets the reply, then the worker exits as it was told and is replaced.
  auto exited = pool->execute("sys_exit", {{"code", 7}});
  ASSERT_FALSE(exited);
  EXPECT_EQ(exited.error().category, ErrorCategory::kPython);
  EXPECT_EQ(exited.error().python->type, "SystemExit");
  ASSERT_TRUE(wait_until([&] { return pool->stats().exits == 1u; }));
  ASSERT_TRUE(pool->wait_ready(10s));
  EXPECT_TRUE(pool->execute("context"));
}

TEST(Handlers, TheSameFileListedTwiceIsLoadedOnce) {
  const std::string module = data_path("edge_cases.py");
  auto pool = start_pool(test_config(1, {module, module}));
  ASSERT_TRUE(pool);
  auto r = pool->execute("context");
  ASSERT_TRUE(r) << r.error().to_string();
}

TEST(Requests, TooDeepOrInvalidRequestsNeverReachAWorker) {
  auto pool = start_pool(test_config(1));
  ASSERT_TRUE(pool);
  const pid_t pid = find_worker(*pool, "w1")->pid;
  auto nested = [](int levels) {  // `levels` objects, one inside the other, built iteratively
    Json v = Json::object();
    Json* inner = &v;
    for (int i = 1; i < levels; ++i) inner = &((*inner)["a"] = Json::object());
    return v;
  };
  // 990 levels used to make the worker's json.loads fail and the worker be killed; 100,000 used
  // to overflow the host's stack in the encoder. Both are refused before sending now.
  for (int levels : {990, 100'000}) {
    auto r = pool->execute("echo", nested(levels));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().category, ErrorCategory::kInvalidRequest);
  }
  // 20 of them do not open the breaker or cost a worker.
  for (int i = 0; i < 20; ++i) EXPECT_FALSE(pool->execute("echo", nested(600)));
  ExecuteOptions zero;
  zero.timeout = 0ms;
  EXPECT_EQ(pool->execute("echo", Json::object(), zero).error().category,
            ErrorCategory::kInvalidRequest);
  auto echo = pool->execute("echo", nested(500));  // at the limit: sent, answered
  ASSERT_TRUE(echo) << echo.error().to_string();
  EXPECT_EQ(find_worker(*pool, "w1")->pid, pid);
  PoolStats st = pool->stats();
  EXPECT_EQ(st.exits, 0u);
  EXPECT_EQ(st.breaker_state, "closed");
  EXPECT_EQ(st.errors.at("invalid_request"), 23u);
}

}  // namespace
}  // namespace bridgepool
