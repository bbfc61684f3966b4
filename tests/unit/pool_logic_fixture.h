// PoolLogic: the fixture of the pool logic tests (pool_logic_test.cc, pool_spares_test.cc): a
// whole pool driven by the fake spawner (tests/fakes) and a ManualClock, with no Python and no
// sleeping — the test moves the clock, then waits for what must follow.
//
// Synchronisation: every maintenance round emits pool.maintenance.round, stamped with the pool's
// (manual) clock. The rounds tick every 100 ms of that clock (the default periods give that
// tick), from the pool's start; the tests move the clock in whole ticks, so a tick falls due at
// every new time and settle() waits for the round stamped with it. The monitor loop had run
// every timer due by then (its tick is one of them), so "no probe yet" after settle() means no
// probe was due: negative checks hold at tick granularity.
// Thread-safety: a gtest fixture; the hooks it installs (events, randomness) lock mu_.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "bridgepool/clock.h"
#include "bridgepool/pool.h"
#include "fakes/fake_spawner.h"

namespace bridgepool {

class PoolLogic : public ::testing::Test {
 protected:
  PoolConfig config(std::size_t size = 1) {
    PoolConfig c;
    c.name = "fake";
    c.size = size;
    c.python = "fake-python";
    c.python_path = "/nonexistent";
    c.handlers = {"fake_handlers.py"};
    c.clock = clock_;
    c.spawner = spawner_;
    c.events = events_;
    c.logger =
        std::make_shared<Logger>(std::getenv("FAKE_POOL_LOG") ? LogLevel::kDebug : LogLevel::kOff);
    c.random = [this] {
      std::lock_guard lock(mu_);
      double u = randoms_.empty() ? 0.5 : randoms_.front();
      if (randoms_.size() > 1) randoms_.erase(randoms_.begin());
      return u;
    };
    return c;
  }

  std::unique_ptr<Pool> start(PoolConfig c) {
    auto pool = Pool::start(std::move(c));
    EXPECT_TRUE(pool) << (pool ? "" : pool.error().format_for_logging());
    return pool ? std::move(*pool) : nullptr;
  }

  void SetUp() override {
    events_->attach("pool.maintenance.round", [this](const Event& e) {
      std::lock_guard lock(mu_);
      last_round_ = std::max(last_round_, e.time);
    });
  }

  // Waits for the maintenance round at the clock's current time (see the file comment).
  void settle() {
    const auto now = clock_->wall_now();
    ASSERT_TRUE(spawner_->wait_for([&] {
      std::lock_guard lock(mu_);
      return last_round_ >= now;
    })) << "no maintenance round at the current time";
  }

  // Moves the clock by whole maintenance ticks and waits for the round at the new time.
  void advance(Duration d) {
    ASSERT_EQ(d % kTick, Duration::zero()) << "advance in whole ticks";
    clock_->advance(d);
    settle();
  }

  static constexpr Duration kTick = std::chrono::milliseconds(100);

  std::shared_ptr<ManualClock> clock_ = std::make_shared<ManualClock>();
  std::shared_ptr<fakes::FakeSpawner> spawner_ = std::make_shared<fakes::FakeSpawner>(clock_);
  std::shared_ptr<EventBus> events_ = std::make_shared<EventBus>();
  std::mutex mu_;
  std::chrono::system_clock::time_point last_round_{};
  std::vector<double> randoms_;
};

inline WorkerState state_of(Pool& pool, const std::string& id) {
  for (const auto& w : pool.workers()) {
    if (w.id == id) return w.state;
  }
  return WorkerState::kTerminated;
}

}  // namespace bridgepool
