// Binary values end to end (issue #11, protocol 2): bytes and numpy arrays between C++ and real
// Python workers as attachments — every size up to 16 MiB, arrays with dtype and shape, stream
// chunks, sessions, the frame limit on either side, batches that refuse them, and a worker whose
// attachment frame lies.
#include <signal.h>

#include <future>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "bridgepool/binary.h"
#include "bridgepool/pool.h"
#include "integration/test_support.h"

namespace bridgepool {
namespace {

using testing::edge_config;
using testing::start_pool;

std::vector<std::uint8_t> pattern(std::size_t size) {
  std::vector<std::uint8_t> data(size);
  for (std::size_t i = 0; i < size; ++i)
    data[i] = static_cast<std::uint8_t>((i * 7 + i / 251) & 0xFF);
  return data;
}

TEST(Attachments, BytesOfEverySizeRoundTripUnchanged) {
  auto pool = start_pool(edge_config());
  ASSERT_NE(pool, nullptr);
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{64}, std::size_t{65537},
                           std::size_t{16} << 20}) {
    const std::vector<std::uint8_t> data = pattern(size);
    auto r = pool->execute("echo_binary", {{"data", bytes(data)}, {"size", size}});
    ASSERT_TRUE(r.has_value()) << size << ": " << r.error().to_string();
    ASSERT_TRUE((*r)["data"].is_binary()) << size;
    EXPECT_EQ((*r)["data"].get_binary(), data) << size;
    EXPECT_EQ((*r)["size"], size);
  }
  // Plain JSON calls are unaffected in between and after.
  EXPECT_EQ(*pool->execute("echo_binary", {{"x", 1}}), Json({{"x", 1}}));
}

TEST(Attachments, AnArrayReachesTheHandlerAsNumpyAndOneComesBackWithDtypeAndShape) {
  auto pool = start_pool(edge_config());
  ASSERT_NE(pool, nullptr);
  const std::vector<double> values = {1, 2, 3, 4, 5, 6};
  auto kinds =
      pool->execute("binary_kinds", {{"m", ndarray(std::span<const double>(values), {2, 3})},
                                     {"raw", bytes(std::vector<std::uint8_t>{0xAB, 0xCD})}});
  ASSERT_TRUE(kinds.has_value()) << kinds.error().to_string();
  EXPECT_EQ((*kinds)["m"]["type"], "ndarray");
  EXPECT_EQ((*kinds)["m"]["shape"], Json::array({2, 3}));
  EXPECT_EQ((*kinds)["m"]["sum"], 21.0);
  EXPECT_EQ((*kinds)["m"]["aligned"], true);
  EXPECT_EQ((*kinds)["raw"]["type"], "memoryview");
  EXPECT_EQ((*kinds)["raw"]["head"], "abcd");

  auto array = pool->execute("array_out", {{"n", 10}, {"dtype", "<i4"}, {"step", 2}});
  ASSERT_TRUE(array.has_value()) << array.error().to_string();
  auto view = array_view(*array);
  ASSERT_TRUE(view.has_value()) << view.error().message << " " << array->dump();
  EXPECT_EQ(view->dtype, "<i4");
  EXPECT_EQ(view->shape, std::vector<std::size_t>{5});
  std::vector<std::int32_t> got(5);
  std::memcpy(got.data(), view->data.data(), view->data.size());
  EXPECT_EQ(got, (std::vector<std::int32_t>{0, 2, 4, 6, 8}));
}

TEST(Attachments, StreamChunksAndSessionsCarryBytes) {
  auto pool = start_pool(edge_config());
  ASSERT_NE(pool, nullptr);
  std::vector<std::string> chunks;
  ExecuteOptions options;
  options.on_chunk = [&](const Json& chunk) {
    auto view = bytes_view(chunk["data"]);
    chunks.push_back(view ? std::string(reinterpret_cast<const char*>(view->data()), view->size())
                          : std::string("not binary"));
  };
  auto r = pool->execute("stream_bytes", {{"count", 2}}, options);
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ(chunks, (std::vector<std::string>{std::string(3, '\0'), std::string(3, '\1')}));
  EXPECT_EQ(r->get_binary(), (std::vector<std::uint8_t>{'e', 'n', 'd'}));

  auto s = pool->execute_in_session("s1", "echo_binary", {{"b", bytes(pattern(1000))}});
  ASSERT_TRUE(s.has_value()) << s.error().to_string();
  EXPECT_EQ((*s)["b"].get_binary(), pattern(1000));
}

TEST(Attachments, TheFrameLimitHoldsOnBothSidesAndCostsNoWorker) {
  PoolConfig config = edge_config();
  config.max_frame_bytes = 64 * 1024;
  auto pool = start_pool(std::move(config));
  ASSERT_NE(pool, nullptr);
  const pid_t pid = pool->workers().at(0).pid;
  auto big = pool->execute("echo_binary", {{"data", bytes(pattern(100 * 1024))}});
  ASSERT_FALSE(big.has_value());
  EXPECT_EQ(big.error().category, ErrorCategory::kInvalidRequest) << big.error().to_string();
  EXPECT_NE(big.error().message.find("maximum frame size"), std::string::npos);

  auto reply = pool->execute("bytes_out", {{"size", 100 * 1024}});
  ASSERT_FALSE(reply.has_value());
  ASSERT_TRUE(reply.error().python.has_value()) << reply.error().to_string();
  EXPECT_EQ(reply.error().python->type, "SerializationError");

  auto fits = pool->execute("echo_binary", {{"data", bytes(pattern(60 * 1024))}});
  ASSERT_TRUE(fits.has_value()) << fits.error().to_string();
  EXPECT_EQ(pool->workers().at(0).pid, pid);  // nothing above cost the worker
}

TEST(Attachments, AWorkerKilledWhileALargeRequestIsBeingWrittenCostsOnlyARetry) {
  auto pool = start_pool(edge_config(1));
  ASSERT_NE(pool, nullptr);
  const pid_t pid = pool->workers().at(0).pid;
  // Stopped, the worker reads nothing: the 8 MiB request fills the pipe and the write blocks.
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  const std::vector<std::uint8_t> data = pattern(std::size_t{8} << 20);
  auto call = std::async(std::launch::async, [&] {
    return pool->execute("echo_binary", {{"data", bytes(data)}});
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  auto r = call.get();  // not delivered, so retried on the replacement (echo_binary is idempotent)
  ASSERT_TRUE(r.has_value()) << r.error().to_string();
  EXPECT_EQ((*r)["data"].get_binary(), data);
  EXPECT_NE(pool->workers().at(0).pid, pid);
}

TEST(Attachments, AWorkerSpeakingProtocol1IsRefusedAtItsHandshakeWithAClearError) {
  // tests/data/old_protocol.py makes a real worker announce protocol 1, as an older
  // bridgepool_worker package would.
  PoolConfig config = testing::test_config(1, {testing::data_path("old_protocol.py")});
  config.startup_timeout = std::chrono::milliseconds(5000);
  auto pool = Pool::start(std::move(config));
  ASSERT_FALSE(pool);
  EXPECT_EQ(pool.error().category, ErrorCategory::kInitialization);
  EXPECT_NE(pool.error().message.find("speaks protocol 1 but this pool speaks protocol 2"),
            std::string::npos)
      << pool.error().message;
}

TEST(Attachments, BatchItemsWithBinaryValuesFailAloneBeforeAnyWorkerIsTouched) {
  auto pool = start_pool(edge_config());
  ASSERT_NE(pool, nullptr);
  std::vector<Json> items = {{{"value", 1}}, {{"value", bytes(pattern(3))}}, {{"value", 3}}};
  auto results = pool->execute_many("item", std::move(items));
  ASSERT_EQ(results.size(), 3u);
  EXPECT_TRUE(results[0].has_value());
  ASSERT_FALSE(results[1].has_value());
  EXPECT_EQ(results[1].error().category, ErrorCategory::kInvalidRequest);
  EXPECT_TRUE(results[2].has_value());
}

TEST(Attachments, AWorkerWhoseAttachmentFrameLiesIsACommunicationErrorAndIsReplaced) {
  auto pool = start_pool(edge_config());
  ASSERT_NE(pool, nullptr);
  const pid_t pid = pool->workers().at(0).pid;
  auto r = pool->execute("lying_attachment", Json::object());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().category, ErrorCategory::kCommunication) << r.error().to_string();
  EXPECT_NE(r.error().message.find("names no attachment"), std::string::npos);
  ASSERT_TRUE(testing::wait_until([&] {
    auto workers = pool->workers();
    return !workers.empty() && workers[0].pid != pid && workers[0].state == WorkerState::kReady;
  }));
  EXPECT_TRUE(pool->execute("echo_binary", {{"b", bytes(pattern(5))}}).has_value());
}

}  // namespace
}  // namespace bridgepool
