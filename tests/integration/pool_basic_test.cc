// Pool basics against real Python workers running examples/handlers.py: round trips, Python
// exceptions, request validation, streaming, async, concurrency and queueing.
#include <atomic>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "integration/test_support.h"

namespace bridgepool {
namespace {

using testing::start_pool;
using testing::test_config;
using testing::wait_until;
using namespace std::chrono_literals;

TEST(PoolBasic, EagerStartBringsEveryWorkerUpAndReportsCommands) {
  auto pool = start_pool(test_config(3));
  ASSERT_TRUE(pool);
  auto st = pool->stats();
  EXPECT_EQ(st.live, 3u);
  EXPECT_EQ(st.idle, 3u);
  EXPECT_EQ(st.started, 3u);
  auto workers = pool->workers();
  ASSERT_EQ(workers.size(), 3u);
  std::set<pid_t> pids;
  for (const auto& w : workers) {
    EXPECT_EQ(w.state, WorkerState::kReady);
    EXPECT_EQ(w.health, WorkerHealth::kHealthy);
    EXPECT_EQ(w.handlers_version, "examples-1");
    ASSERT_FALSE(w.history.empty());
    EXPECT_EQ(w.history.back().reason, TransitionReason::kInitComplete);
    pids.insert(w.pid);
  }
  EXPECT_EQ(pids.size(), 3u);
  bool echo_idempotent = false, crash_found = false;
  for (const auto& c : pool->commands()) {
    if (c.name == "echo") echo_idempotent = c.idempotent;
    if (c.name == "crash") crash_found = !c.idempotent;
  }
  EXPECT_TRUE(echo_idempotent);
  EXPECT_TRUE(crash_found);
}

TEST(PoolBasic, ExecuteEchoReturnsTheArguments) {
  auto pool = start_pool(test_config(1));
  ASSERT_TRUE(pool);
  Json args = {{"text", "héllo \"world\""}, {"n", 42}, {"list", {1, 2, 3}}};
  auto reply = pool->execute("echo", args);
  ASSERT_TRUE(reply) << reply.error().to_string();
  EXPECT_EQ(*reply, args);
  auto pong = pool->execute("ping");
  ASSERT_TRUE(pong);
  EXPECT_EQ(*pong, "pong");
  auto st = pool->stats();
  EXPECT_EQ(st.requests, 2u);
  EXPECT_EQ(st.ok, 2u);
  EXPECT_TRUE(st.errors.empty());
}

TEST(PoolBasic, PythonExceptionIsClassifiedAndTheWorkerSurvives) {
  auto pool = start_pool(test_config(1));
  ASSERT_TRUE(pool);
  auto before = pool->execute("whoami");
  ASSERT_TRUE(before);
  auto reply = pool->execute("fail", {{"type", "ValueError"}, {"message", "bad input 7"}});
  ASSERT_FALSE(reply);
  const Error& e = reply.error();
  EXPECT_EQ(e.category, ErrorCategory::kPython);
  ASSERT_TRUE(e.python.has_value());
  EXPECT_EQ(e.python->type, "ValueError");
  EXPECT_NE(e.message.find("bad input 7"), std::string::npos);
  EXPECT_NE(e.python->traceback.find("Traceback"), std::string::npos);
  EXPECT_NE(e.python->traceback.find("ValueError"), std::string::npos);
  EXPECT_EQ(e.context.command, "fail");
  EXPECT_EQ(e.context.worker_id, (*before)["worker_id"]);
  // Same process still serving.
  auto after = pool->execute("whoami");
  ASSERT_TRUE(after);
  EXPECT_EQ((*after)["pid"], (*before)["pid"]);
  auto st = pool->stats();
  EXPECT_EQ(st.errors.at("python"), 1u);
  EXPECT_EQ(st.replaced, 0u);
  EXPECT_EQ(pool->workers().at(0).python_errors, 1u);
}

TEST(PoolBasic, RetryableFlagFromPythonIsCarried) {
  auto pool = start_pool(test_config(1));
  ASSERT_TRUE(pool);
  auto reply = pool->execute("fail", {{"type", "TimeoutError"}, {"retryable", true}});
  ASSERT_FALSE(reply);
  ASSERT_TRUE(reply.error().python);
  EXPECT_EQ(reply.error().python->retryable, std::optional<bool>(true));
}

TEST(PoolBasic, UnknownCommandIsRejectedWithoutTouchingAWorker) {
  auto pool = start_pool(test_config(1));
  ASSERT_TRUE(pool);
  auto reply = pool->execute("no_such_command", {{"x", 1}});
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().category, ErrorCategory::kInvalidRequest);
  EXPECT_NE(reply.error().message.find("unknown command 'no_such_command'"), std::string::npos);
  EXPECT_NE(reply.error().message.find("echo"), std::string::npos);  // lists what exists
  EXPECT_EQ(pool->workers().at(0).requests, 0u);
  EXPECT_EQ(pool->workers().at(0).history.back().reason, TransitionReason::kInitComplete);
}

TEST(PoolBasic, MalformedRequestsAreRejectedBeforeCheckout) {
  auto pool = start_pool(test_config(1));
  ASSERT_TRUE(pool);
  auto not_object = pool->execute("echo", Json::array({1, 2}));
  ASSERT_FALSE(not_object);
  EXPECT_EQ(not_object.error().category, ErrorCategory::kInvalidRequest);
  EXPECT_NE(not_object.error().message.find("args must be a JSON object"), std::string::npos);
  auto empty = pool->execute("", Json::object());
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().category, ErrorCategory::kInvalidRequest);
  auto huge_name = pool->execute(std::string(1000, 'x'), Json::object());
  ASSERT_FALSE(huge_name);
  EXPECT_EQ(huge_name.error().category, ErrorCategory::kInvalidRequest);
  EXPECT_EQ(pool->workers().at(0).requests, 0u);
  EXPECT_TRUE(pool->execute("ping"));
}

TEST(PoolBasic, OversizedRequestIsRejectedAndTheWorkerKept) {
  auto config = test_config(1);
  config.max_frame_bytes = 4096;
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  auto pid = pool->workers().at(0).pid;
  auto reply = pool->execute("echo", {{"data", std::string(10000, 'a')}});
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().category, ErrorCategory::kInvalidRequest);
  EXPECT_NE(reply.error().message.find("exceeds the maximum frame size"), std::string::npos);
  auto ok = pool->execute("echo", {{"data", "small"}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(pool->workers().at(0).pid, pid);
}

TEST(PoolBasic, LargePayloadRoundTripsThroughFullPipes) {
  auto pool = start_pool(test_config(1));
  ASSERT_TRUE(pool);
  std::string big(3 * 1024 * 1024, 'z');  // far above the 64 KiB pipe buffer, both ways
  auto reply = pool->execute("echo", {{"data", big}});
  ASSERT_TRUE(reply) << reply.error().to_string();
  EXPECT_EQ((*reply)["data"].get<std::string>().size(), big.size());
}

TEST(PoolBasic, StreamingCommandDeliversChunksThenTheResult) {
  auto pool = start_pool(test_config(1));
  ASSERT_TRUE(pool);
  std::vector<int> seen;
  ExecuteOptions options;
  options.on_chunk = [&](const Json& chunk) { seen.push_back(chunk["i"].get<int>()); };
  auto reply = pool->execute("stream", {{"count", 5}}, options);
  ASSERT_TRUE(reply) << reply.error().to_string();
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ((*reply)["count"], 5);
}

TEST(PoolBasic, ExecuteAsyncReturnsFutures) {
  auto pool = start_pool(test_config(2));
  ASSERT_TRUE(pool);
  std::vector<std::future<Result<Json>>> futures;
  for (int i = 0; i < 20; ++i) futures.push_back(pool->execute_async("echo", {{"i", i}}));
  for (int i = 0; i < 20; ++i) {
    auto r = futures[i].get();
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ((*r)["i"], i);
  }
}

TEST(PoolBasic, EightThreadsThousandRequestsEachGetTheirOwnReplies) {
  auto pool = start_pool(test_config(2));
  ASSERT_TRUE(pool);
  constexpr int kThreads = 8, kPerThread = 1000;
  std::atomic<int> mismatches{0}, failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string tag = std::to_string(t) + ":" + std::to_string(i);
        auto r = pool->execute("echo", {{"tag", tag}, {"thread", t}});
        if (!r) {
          ++failures;
        } else if ((*r)["tag"] != tag || (*r)["thread"] != t) {
          ++mismatches;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(mismatches.load(), 0);
  auto st = pool->stats();
  EXPECT_EQ(st.requests, std::uint64_t(kThreads * kPerThread));
  EXPECT_EQ(st.ok, std::uint64_t(kThreads * kPerThread));
  std::uint64_t served = 0;
  for (const auto& w : pool->workers()) served += w.requests;
  EXPECT_EQ(served, std::uint64_t(kThreads * kPerThread));
  EXPECT_EQ(st.busy, 0u);
  EXPECT_EQ(st.idle, 2u);
}

TEST(PoolBasic, CheckoutTimeoutSaysHowLongAndHowBusy) {
  auto config = test_config(1);
  config.checkout_timeout = 200ms;
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  auto slow = pool->execute_async("sleep", {{"ms", 1500}});
  ASSERT_TRUE(wait_until([&] { return pool->stats().busy == 1; }));
  auto t0 = std::chrono::steady_clock::now();
  auto reply = pool->execute("ping");
  auto waited = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(reply);
  EXPECT_EQ(reply.error().category, ErrorCategory::kTimeout);
  EXPECT_NE(reply.error().message.find("no worker became free within"), std::string::npos);
  EXPECT_NE(reply.error().message.find("1 of 1 workers busy"), std::string::npos);
  EXPECT_GE(waited, 190ms);
  EXPECT_GE(reply.error().context.queue_wait, std::chrono::microseconds(190'000));
  EXPECT_TRUE(slow.get());
}

TEST(PoolBasic, QueueBeyondMaxFailsFastWithResourceError) {
  auto config = test_config(1);
  config.max_queue = 2;
  config.checkout_timeout = 3000ms;
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  auto busy = pool->execute_async("sleep", {{"ms", 800}});
  ASSERT_TRUE(wait_until([&] { return pool->stats().busy == 1; }));
  std::vector<std::thread> queued;
  std::atomic<int> queued_ok{0};
  for (int i = 0; i < 2; ++i) {
    queued.emplace_back([&] { queued_ok += pool->execute("ping").has_value() ? 1 : 0; });
  }
  ASSERT_TRUE(wait_until([&] { return pool->stats().queue_length == 2; }));
  auto t0 = std::chrono::steady_clock::now();
  auto reply = pool->execute("ping");
  ASSERT_FALSE(reply);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms);  // fails fast, does not wait
  EXPECT_EQ(reply.error().category, ErrorCategory::kResource);
  EXPECT_NE(reply.error().message.find("checkout queue full"), std::string::npos);
  // Overload: not retried here (more load would not help); a fallback chain may serve it.
  EXPECT_EQ(reply.error().strategy, RecoveryStrategy::kFailover);
  EXPECT_EQ(reply.error().severity, ErrorSeverity::kMajor);
  for (auto& t : queued) t.join();
  EXPECT_EQ(queued_ok.load(), 2);  // FIFO waiters were served once the worker came back
  EXPECT_TRUE(busy.get());
}

TEST(PoolBasic, EventsAreEmittedForTransitionsAndRequests) {
  auto config = test_config(1);
  config.events = std::make_shared<EventBus>();
  std::mutex mu;
  std::vector<Event> events;
  config.events->attach("pool.", [&](const Event& e) {
    std::lock_guard lock(mu);
    events.push_back(e);
  });
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  ASSERT_TRUE(pool->execute("ping"));
  std::lock_guard lock(mu);
  auto count = [&](const std::string& name, const std::string& key = "",
                   const std::string& v = "") {
    return std::count_if(events.begin(), events.end(), [&](const Event& e) {
      return e.name == name && (key.empty() || e.metadata.at(key) == v);
    });
  };
  EXPECT_EQ(count("pool.worker.spawned"), 1);
  EXPECT_EQ(count("pool.worker.ready"), 1);
  EXPECT_EQ(count("pool.worker.transition", "reason", "init_complete"), 1);
  EXPECT_EQ(count("pool.worker.transition", "reason", "checkout"), 1);
  EXPECT_EQ(count("pool.worker.transition", "reason", "checkin_ok"), 1);
  EXPECT_EQ(count("pool.request", "result", "ok"), 1);
}

}  // namespace
}  // namespace bridgepool
