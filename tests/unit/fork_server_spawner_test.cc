// The fork-server spawner's pure decisions and the worker command line it splits: which route a
// spawn takes for each zygote state, when a launch waits, the restart backoff, what identifies
// a zygote and the zygote's own command line.
#include "process/fork_server_spawner.h"

#include <gtest/gtest.h>

#include "pool/worker_command.h"

namespace bridgepool {
namespace {

using namespace std::chrono_literals;
using State = ForkServer::State;

TEST(ForkServerRoute, ReadyForksFailedFailsEverythingElseSpawns) {
  EXPECT_EQ(route_for(State::kReady), SpawnRoute::kFork);
  EXPECT_EQ(route_for(State::kFailed), SpawnRoute::kFail);
  EXPECT_EQ(route_for(State::kUnsafe), SpawnRoute::kSpawn);
  EXPECT_EQ(route_for(State::kDead), SpawnRoute::kSpawn);
  EXPECT_EQ(route_for(State::kStarting), SpawnRoute::kSpawn);
}

TEST(ForkServerRoute, OnlyTheFirstZygoteOfAGenerationIsWaitedFor) {
  EXPECT_TRUE(waits_for(State::kStarting, false));
  EXPECT_FALSE(waits_for(State::kStarting, true));  // a replacement: spawn meanwhile
  for (State s : {State::kReady, State::kUnsafe, State::kFailed, State::kDead}) {
    EXPECT_FALSE(waits_for(s, false));
    EXPECT_FALSE(waits_for(s, true));
  }
}

TEST(ForkServerRoute, RestartDelayDoublesUpToTheCap) {
  EXPECT_EQ(restart_delay(1, 100ms, 10'000ms), 100ms);
  EXPECT_EQ(restart_delay(2, 100ms, 10'000ms), 200ms);
  EXPECT_EQ(restart_delay(4, 100ms, 10'000ms), 800ms);
  EXPECT_EQ(restart_delay(8, 100ms, 10'000ms), 10'000ms);
  EXPECT_EQ(restart_delay(4'000'000'000u, 100ms, 10'000ms), 10'000ms);  // no overflow
}

SpawnSpec fork_spec(std::string worker_id, std::uint64_t generation = 1,
                    std::vector<std::string> handlers = {"h.py"}) {
  PoolConfig config;
  config.python = "/usr/bin/python3";
  config.handlers = std::move(handlers);
  config.start_method = StartMethod::kForkServer;
  auto spec = worker_spawn_spec(config, worker_id, 42, {"A=1", "PYTHONPATH=/p"});
  spec.generation = generation;
  return spec;
}

TEST(ForkServerRoute, TheWorkerIdIsThePerWorkerTailOfTheCommandLine) {
  auto spec = fork_spec("w7");
  ASSERT_EQ(spec.template_args + 2, spec.argv.size());
  EXPECT_EQ(spec.argv[spec.template_args], "--worker-id");
  EXPECT_EQ(spec.argv.back(), "w7");
  PoolConfig spawn_config;
  spawn_config.python = "/usr/bin/python3";
  spawn_config.handlers = {"h.py"};
  spawn_config.start_method = StartMethod::kSpawn;
  EXPECT_EQ(worker_spawn_spec(spawn_config, "w1", 42, {}).template_args, 0u);
}

TEST(ForkServerRoute, OneZygotePerGenerationCommandLineAndEnvironment) {
  EXPECT_EQ(template_key(fork_spec("w1")), template_key(fork_spec("w2")));
  EXPECT_NE(template_key(fork_spec("w1", 1)), template_key(fork_spec("w1", 2)));
  EXPECT_NE(template_key(fork_spec("w1", 1, {"a.py"})), template_key(fork_spec("w1", 1, {"b.py"})));
  auto other_env = fork_spec("w1");
  other_env.env.push_back("B=2");
  EXPECT_NE(template_key(fork_spec("w1")), template_key(other_env));
  // No collision from moving text between arguments.
  SpawnSpec a, b;
  a.argv = {"ab", "c"};
  b.argv = {"a", "bc"};
  a.template_args = b.template_args = 2;
  EXPECT_NE(template_key(a), template_key(b));
}

TEST(ForkServerRoute, TheZygoteRunsTheSharedPrefixWithZygote) {
  auto spec = fork_spec("w3", 5);
  auto z = zygote_spec(spec);
  ASSERT_EQ(z.argv.size(), spec.template_args + 1);
  EXPECT_EQ(z.argv.back(), "--zygote");
  EXPECT_EQ(std::vector<std::string>(z.argv.begin(), z.argv.end() - 1),
            std::vector<std::string>(spec.argv.begin(), spec.argv.begin() + spec.template_args));
  EXPECT_EQ(z.env, spec.env);
  EXPECT_EQ(z.generation, 5u);
  EXPECT_EQ(z.template_args, 0u);  // the zygote itself is always spawned
}

}  // namespace
}  // namespace bridgepool
