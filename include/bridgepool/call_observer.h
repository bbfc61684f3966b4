// CallObserver: the allocation-free side of the event bus, for observers that must see every
// call (metrics) without making each call pay for an Event.
//
// Two facts happen on every call: the call ends (what `pool.request` says) and its worker goes
// ready -> busy -> ready (what `pool.worker.transition` says). An Event is a name plus maps of
// strings, built only when a handler is attached; building and delivering the three per call
// costs ~0.9 µs, 8% of a pinned 11 µs `ping`. The pool therefore hands these two facts to
// observers as plain structs (string views, enums, numbers; nothing allocated) and builds the
// Events only when an Event handler is attached too. Both come from the same values at the same
// place in the pool, so they cannot disagree. EventBus (event_bus.h) keeps the observers.
// Thread-safety: observer methods run on the thread where the call or transition happened,
// concurrently for different calls; they must not block and must not throw (a throw detaches
// the observer, as it detaches a handler). Views are valid only during the call.
#pragma once

#include <cstdint>
#include <string_view>

#include "bridgepool/worker_state.h"

namespace bridgepool {

// A call ended (pool.request).
struct CallObservation {
  std::string_view pool;
  std::string_view command;   // "<invalid UTF-8>" if the caller's name was not UTF-8
  std::string_view result;    // "ok" or the error category's name
  std::string_view severity;  // the error's severity name; "" for ok
  double duration_us = 0;     // entry to return
  double queue_wait_us = 0;   // waiting for a free worker
  std::uint32_t attempts = 0;
};

// A worker changed state (pool.worker.transition).
struct TransitionObservation {
  std::string_view pool;
  std::string_view worker_id;
  WorkerState from = WorkerState::kInitializing;
  WorkerState to = WorkerState::kInitializing;
  TransitionReason reason = TransitionReason::kInitComplete;
  double time_in_previous_ms = 0;
};

class CallObserver {
 public:
  virtual ~CallObserver() = default;
  virtual void on_call(const CallObservation& call) = 0;
  virtual void on_transition(const TransitionObservation& transition) = 0;
};

}  // namespace bridgepool
