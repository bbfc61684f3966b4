#include "bridgepool/event_bus.h"

#include <stdexcept>

#include <gtest/gtest.h>

namespace bridgepool {
namespace {

TEST(EventBus, DeliversByPrefixAndDetaches) {
  EventBus bus;
  EXPECT_FALSE(bus.has_handlers());
  std::vector<std::string> pool_events, all_events;
  auto a = bus.attach("pool.", [&](const Event& e) { pool_events.push_back(e.name); });
  bus.attach("", [&](const Event& e) { all_events.push_back(e.name); });
  EXPECT_TRUE(bus.has_handlers());
  bus.emit(Event{"pool.checkout", {{"wait_us", 3}}, {}});
  bus.emit(Event{"breaker.transition", {}, {}});
  EXPECT_EQ(pool_events, std::vector<std::string>{"pool.checkout"});
  EXPECT_EQ(all_events, (std::vector<std::string>{"pool.checkout", "breaker.transition"}));
  EXPECT_TRUE(bus.detach(a));
  EXPECT_FALSE(bus.detach(a));
  bus.emit(Event{"pool.checkout", {}, {}});
  EXPECT_EQ(pool_events.size(), 1u);
  EXPECT_EQ(bus.handler_count(), 1u);
}

TEST(EventBus, ThrowingHandlerIsDetachedAndReported) {
  EventBus bus;
  int calls = 0;
  std::vector<Event> failures;
  bus.attach("pool.", [&](const Event&) {
    ++calls;
    throw std::runtime_error("boom");
  });
  bus.attach("telemetry.", [&](const Event& e) { failures.push_back(e); });
  bus.emit(Event{"pool.request", {}, {}});
  bus.emit(Event{"pool.request", {}, {}});
  EXPECT_EQ(calls, 1);
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].name, "telemetry.handler_failed");
  EXPECT_EQ(failures[0].metadata.at("error"), "boom");
  EXPECT_EQ(failures[0].metadata.at("event"), "pool.request");
}

TEST(EventBus, HandlerMayDetachItselfWhileRunning) {
  EventBus bus;
  int calls = 0;
  EventBus::HandlerId id = 0;
  id = bus.attach("", [&](const Event&) {
    ++calls;
    bus.detach(id);
  });
  bus.emit(Event{"x", {}, {}});
  bus.emit(Event{"x", {}, {}});
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace bridgepool
