// EventBus observers (call_observer.h): typed records delivered to every observer, removal, and
// a throwing observer removed and reported like a throwing handler.
#include "bridgepool/call_observer.h"

#include <stdexcept>

#include <gtest/gtest.h>

#include "bridgepool/event_bus.h"

namespace bridgepool {
namespace {

struct Recorder : CallObserver {
  void on_call(const CallObservation& c) override {
    if (fail) throw std::runtime_error("observer broke");
    commands.emplace_back(c.command);
    results.emplace_back(c.result);
  }
  void on_transition(const TransitionObservation& t) override { transitions.push_back(t.reason); }
  bool fail = false;
  std::vector<std::string> commands, results;
  std::vector<TransitionReason> transitions;
};

TEST(CallObserver, ObserversReceiveTypedRecordsUntilRemoved) {
  EventBus bus;
  EXPECT_FALSE(bus.observing());
  auto recorder = std::make_shared<Recorder>();
  auto id = bus.add_observer(recorder);
  EXPECT_TRUE(bus.observing());
  EXPECT_FALSE(bus.has_handlers());  // observers are not Event handlers: no Event gets built
  bus.observe(CallObservation{"p", "echo", "ok", "", 12, 1, 1});
  bus.observe(TransitionObservation{"p", "w1", WorkerState::kReady, WorkerState::kBusy,
                                    TransitionReason::kCheckout, 3});
  EXPECT_EQ(recorder->commands, std::vector<std::string>{"echo"});
  EXPECT_EQ(recorder->transitions, std::vector<TransitionReason>{TransitionReason::kCheckout});
  EXPECT_TRUE(bus.remove_observer(id));
  EXPECT_FALSE(bus.remove_observer(id));
  EXPECT_FALSE(bus.observing());
  bus.observe(CallObservation{"p", "echo", "ok", "", 12, 1, 1});
  EXPECT_EQ(recorder->commands.size(), 1u);
}

TEST(CallObserver, ThrowingObserverIsRemovedAndReported) {
  EventBus bus;
  auto bad = std::make_shared<Recorder>();
  bad->fail = true;
  auto good = std::make_shared<Recorder>();
  bus.add_observer(bad);
  bus.add_observer(good);
  std::vector<Event> failures;
  bus.attach("telemetry.", [&](const Event& e) { failures.push_back(e); });
  bus.observe(CallObservation{"p", "fail", "python", "minor", 5, 0, 1});
  bus.observe(CallObservation{"p", "echo", "ok", "", 5, 0, 1});
  EXPECT_EQ(good->results, (std::vector<std::string>{"python", "ok"}));
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].metadata.at("error"), "observer broke");
  EXPECT_EQ(failures[0].metadata.at("event"), "observer");
}

}  // namespace
}  // namespace bridgepool
