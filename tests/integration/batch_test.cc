// Batches (issue #11): Pool::execute_many with real Python workers — results in order from
// every worker, a failing item failing alone, a worker lost mid-chunk costing only the items it
// had not answered (retried when idempotent, failed when not), sys.exit in an item, the deadline
// of the whole call, bad input refused per item, many callers at once, and a Bridge.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <limits>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "bridgepool/bridge.h"
#include "bridgepool/pool.h"
#include "integration/test_support.h"

namespace bridgepool {
namespace {

using testing::data_path;
using testing::edge_config;
using testing::start_pool;
using testing::test_config;
using namespace std::chrono_literals;

std::vector<Json> values(int count, Json extra = Json::object()) {
  std::vector<Json> items;
  for (int i = 0; i < count; ++i) {
    Json item = extra;
    item["value"] = i;
    items.push_back(std::move(item));
  }
  return items;
}

// A file name for crash_once that no earlier run left behind.
std::string fresh_marker(const std::string& name) {
  std::string path =
      ::testing::TempDir() + "bridgepool_batch_" + name + "_" + std::to_string(::getpid());
  std::remove(path.c_str());
  return path;
}

// One chunk of 10 items: 0-4 report one by one (10 ms each), item 5 kills its worker the first
// time it runs.
std::vector<Result<Json>> run_crashing_chunk(Pool& pool, const std::string& command) {
  std::vector<Json> items = values(10, {{"sleep_ms", 10}});
  items[5]["crash_once"] = fresh_marker(command);
  ExecuteOptions options;
  options.batch_chunk = 10;
  return pool.execute_many(command, std::move(items), options);
}

TEST(Batch, ResultsComeBackInOrderAndEveryWorkerTakesPart) {
  auto pool = start_pool(edge_config(2));
  ASSERT_TRUE(pool);
  auto results = pool->execute_many("item", values(200, {{"sleep_ms", 1}}));
  ASSERT_EQ(results.size(), 200u);
  std::set<std::int64_t> pids;
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(results[i]) << i << ": " << results[i].error().to_string();
    EXPECT_EQ((*results[i])["value"], i);
    pids.insert((*results[i])["pid"].get<std::int64_t>());
  }
  EXPECT_EQ(pids.size(), 2u);  // one caller, both workers busy
  const PoolStats stats = pool->stats();
  EXPECT_EQ(stats.requests, 200u);
  EXPECT_EQ(stats.ok, 200u);
}

TEST(Batch, ABatchHandlerTakesEachChunkInOneCallAndFailsItemsAlone) {
  auto pool = start_pool(edge_config(2));
  ASSERT_TRUE(pool);
  std::vector<Json> items = values(100);
  items[7]["fail"] = true;  // the handler returns a ValueError for it
  ExecuteOptions options;
  options.batch_chunk = 25;
  auto results = pool->execute_many("score_batch", std::move(items), options);
  ASSERT_EQ(results.size(), 100u);
  for (int i = 0; i < 100; ++i) {
    if (i == 7) {
      ASSERT_FALSE(results[i]);
      ASSERT_TRUE(results[i].error().python.has_value());
      EXPECT_EQ(results[i].error().python->type, "ValueError");
      continue;
    }
    ASSERT_TRUE(results[i]) << i << ": " << results[i].error().to_string();
    EXPECT_EQ((*results[i])["value"], i);
    EXPECT_EQ((*results[i])["calls"], 25);  // one handler call per chunk of 25
  }
  // A single call of the same command: one item, one result.
  auto one = pool->execute("score_batch", {{"value", 9}});
  ASSERT_TRUE(one) << one.error().to_string();
  EXPECT_EQ((*one)["calls"], 1);
}

TEST(Batch, AFailingOrInvalidItemFailsAlone) {
  auto pool = start_pool(edge_config(2));
  ASSERT_TRUE(pool);
  std::vector<Json> items = values(6);
  items[1] = {{"raise", "bad item"}};
  items[2] = 7;                                                  // not an object
  items[3] = {{"x", std::numeric_limits<double>::quiet_NaN()}};  // not JSON
  items[4] = nullptr;                                            // no arguments: {}
  auto results = pool->execute_many("item", std::move(items));
  ASSERT_EQ(results.size(), 6u);
  EXPECT_EQ((*results[0])["value"], 0);
  ASSERT_FALSE(results[1]);
  EXPECT_EQ(results[1].error().category, ErrorCategory::kPython);
  ASSERT_TRUE(results[1].error().python);
  EXPECT_EQ(results[1].error().python->type, "ValueError");
  EXPECT_NE(results[1].error().message.find("bad item"), std::string::npos);
  EXPECT_FALSE(results[1].error().context.worker_id.empty());
  ASSERT_FALSE(results[2]);
  EXPECT_EQ(results[2].error().category, ErrorCategory::kInvalidRequest);
  ASSERT_FALSE(results[3]);
  EXPECT_EQ(results[3].error().category, ErrorCategory::kInvalidRequest);
  ASSERT_TRUE(results[4]) << results[4].error().to_string();
  EXPECT_TRUE((*results[4])["value"].is_null());
  EXPECT_EQ((*results[5])["value"], 5);
  EXPECT_EQ(pool->stats().replaced, 0u);  // nothing here harms a worker
}

TEST(Batch, AWorkerLostMidChunkCostsOnlyTheItemsItHadNotAnswered) {
  auto pool = start_pool(edge_config(2));
  ASSERT_TRUE(pool);
  auto results = run_crashing_chunk(*pool, "item");
  std::set<std::int64_t> first_pids, later_pids;
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(results[i]) << i << ": " << results[i].error().to_string();
    EXPECT_EQ((*results[i])["value"], i);
    (i < 5 ? first_pids : later_pids).insert((*results[i])["pid"].get<std::int64_t>());
  }
  // Items 0-4 were answered before the death and not run again; 5-9 ran on another worker.
  ASSERT_EQ(first_pids.size(), 1u);
  ASSERT_EQ(later_pids.size(), 1u);
  EXPECT_NE(*first_pids.begin(), *later_pids.begin());
  EXPECT_GE(pool->stats().replaced, 1u);
}

TEST(Batch, NotIdempotentItemsLostWithTheirWorkerFailWithItsError) {
  auto pool = start_pool(edge_config(2));
  ASSERT_TRUE(pool);
  auto results = run_crashing_chunk(*pool, "item_once");
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(results[i]) << i << ": " << results[i].error().to_string();
  }
  for (int i = 5; i < 10; ++i) {
    ASSERT_FALSE(results[i]) << i;
    EXPECT_EQ(results[i].error().category, ErrorCategory::kConnection)
        << results[i].error().to_string();
    EXPECT_EQ(results[i].error().context.operation, "execute_many");
  }
}

TEST(Batch, SysExitInAnItemFailsThatItemAndTheRestMoveToAnotherWorker) {
  auto pool = start_pool(edge_config(2));
  ASSERT_TRUE(pool);
  std::vector<Json> items = values(4);
  items[1] = {{"exit", 3}};
  ExecuteOptions options;
  options.batch_chunk = 4;
  auto results = pool->execute_many("item", std::move(items), options);
  EXPECT_TRUE(results[0]);
  ASSERT_FALSE(results[1]);
  ASSERT_TRUE(results[1].error().python);
  EXPECT_EQ(results[1].error().python->type, "SystemExit");
  EXPECT_TRUE(results[2]) << results[2].error().to_string();
  EXPECT_TRUE(results[3]) << results[3].error().to_string();
}

TEST(Batch, TheTimeoutBoundsTheWholeCall) {
  auto pool = start_pool(edge_config(1));
  ASSERT_TRUE(pool);
  ExecuteOptions options;
  options.timeout = 500ms;
  options.batch_chunk = 10;
  const auto start = std::chrono::steady_clock::now();
  auto results = pool->execute_many("item", values(10, {{"sleep_ms", 150}}), options);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, 3s);
  EXPECT_TRUE(results[0]) << results[0].error().to_string();  // done at ~150 ms
  ASSERT_FALSE(results[9]);
  EXPECT_EQ(results[9].error().category, ErrorCategory::kTimeout) << results[9].error().to_string();
}

TEST(Batch, WholeCallsRefusedBeforeAnyWorker) {
  auto pool = start_pool(edge_config(1));
  ASSERT_TRUE(pool);
  EXPECT_TRUE(pool->execute_many("item", {}).empty());
  auto unknown = pool->execute_many("no_such_command", values(3));
  ASSERT_EQ(unknown.size(), 3u);
  for (const auto& r : unknown) {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().category, ErrorCategory::kInvalidRequest);
  }
  auto bad_utf8 = pool->execute_many(std::string("it\xffm"), values(2));
  ASSERT_FALSE(bad_utf8[0]);
  EXPECT_EQ(bad_utf8[0].error().category, ErrorCategory::kInvalidRequest);
  Json deep = Json::object();
  Json* at = &deep;
  for (int i = 0; i < 2000; ++i) at = &((*at)["d"] = Json::object());
  std::vector<Json> items = values(2);
  items[0] = deep;
  auto nested = pool->execute_many("item", std::move(items));
  ASSERT_FALSE(nested[0]);
  EXPECT_EQ(nested[0].error().category, ErrorCategory::kInvalidRequest);
  EXPECT_TRUE(nested[1]);
  EXPECT_EQ(pool->stats().requests, 1u);  // only the good item was sent
  pool->shutdown();
  auto after = pool->execute_many("item", values(2));
  ASSERT_FALSE(after[0]);
  EXPECT_EQ(after[0].error().category, ErrorCategory::kResource);
}

TEST(Batch, ChunksAreCutToFitTheFrameAndAnItemThatFitsInNoneFailsAlone) {
  PoolConfig config = edge_config(1);
  config.max_frame_bytes = 1 << 20;
  auto pool = start_pool(config);
  ASSERT_TRUE(pool);
  // Ten 300 KB items in one requested chunk: 3 MB, three times the frame limit.
  std::vector<Json> items = values(10, {{"pad", std::string(300'000, 'p')}});
  items[4]["pad"] = std::string(2'000'000, 'q');  // fits in no frame
  ExecuteOptions options;
  options.batch_chunk = 10;
  auto results = pool->execute_many("item", std::move(items), options);
  for (int i = 0; i < 10; ++i) {
    if (i == 4) continue;
    ASSERT_TRUE(results[i]) << i << ": " << results[i].error().to_string();
    EXPECT_EQ((*results[i])["value"], i);
  }
  ASSERT_FALSE(results[4]);
  EXPECT_EQ(results[4].error().category, ErrorCategory::kInvalidRequest);
  EXPECT_NE(results[4].error().message.find("more than fits in a frame"), std::string::npos)
      << results[4].error().message;
  EXPECT_EQ(pool->stats().requests, 9u);
}

TEST(Batch, ManyCallersEachGetTheirOwnResults) {
  auto pool = start_pool(edge_config(2));
  ASSERT_TRUE(pool);
  std::vector<std::thread> callers;
  std::vector<int> good(4, 0);
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&, c] {
      for (int round = 0; round < 5; ++round) {
        auto results = pool->execute_many("item", values(50, {{"caller", c}}));
        for (int i = 0; i < 50; ++i) {
          good[c] += results[i] && (*results[i])["value"] == i;
        }
      }
    });
  }
  for (auto& t : callers) t.join();
  for (int c = 0; c < 4; ++c) EXPECT_EQ(good[c], 250) << "caller " << c;
}

TEST(Batch, ABridgeRunsTheChunksOnItsWorker) {
  auto bridge = Bridge::start(edge_config(1));
  ASSERT_TRUE(bridge) << bridge.error().to_string();
  Executor& executor = **bridge;
  auto results = executor.execute_many("item", values(30));
  ASSERT_EQ(results.size(), 30u);
  for (int i = 0; i < 30; ++i) EXPECT_EQ((*results[i])["value"], i);
}

}  // namespace
}  // namespace bridgepool
