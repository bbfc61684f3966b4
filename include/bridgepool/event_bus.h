// EventBus: named telemetry events that every component emits and any number of handlers observe.
//
// An event has a dotted name ("pool.worker.transition"), numeric measurements and string
// metadata. Handlers attach with a name prefix ("pool." or "" for all) and detach at run time.
// A handler that throws is detached and the failure is re-emitted as "telemetry.handler_failed";
// it never reaches the emitter. Emitting with no handler attached costs one atomic load, so hot
// paths check has_handlers() — or, for the events of event_names.h, wants(id): true only when an
// attached handler's prefix matches that event — before building an event.
// Observers (call_observer.h) are the bus's allocation-free side for facts that happen on every
// call: the pool hands them typed records, and builds Events only for attached handlers.
// Thread-safety: every method may be called from any thread. Handlers run on the emitting thread
// and must not block; attach/detach from inside a handler is allowed.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bridgepool/call_observer.h"
#include "bridgepool/event_names.h"

namespace bridgepool {

struct Event {
  std::string name;
  std::map<std::string, double> measurements;
  std::map<std::string, std::string> metadata;
  std::chrono::system_clock::time_point time = std::chrono::system_clock::now();
};

class EventBus {
 public:
  using Handler = std::function<void(const Event&)>;
  using HandlerId = std::uint64_t;

  // Handler receives every event whose name starts with `prefix`. Returns an id for detach().
  HandlerId attach(std::string prefix, Handler handler);
  // Returns false if no such handler (already detached).
  bool detach(HandlerId id);

  bool has_handlers() const { return handler_count_.load(std::memory_order_acquire) > 0; }
  std::size_t handler_count() const { return handler_count_.load(std::memory_order_acquire); }
  // True when some handler's prefix matches the event `id` (one atomic load).
  bool wants(EventId id) const {
    return (interest_.load(std::memory_order_acquire) >> static_cast<unsigned>(id)) & 1u;
  }

  void emit(const Event& event);

  // Observers receive every call and worker transition as typed records (call_observer.h).
  // Returns an id for remove_observer(). A throwing observer is removed and reported as
  // telemetry.handler_failed.
  HandlerId add_observer(std::shared_ptr<CallObserver> observer);
  bool remove_observer(HandlerId id);
  bool observing() const { return observer_count_.load(std::memory_order_acquire) > 0; }
  void observe(const CallObservation& call);
  void observe(const TransitionObservation& transition);

 private:
  struct Entry {
    HandlerId id;
    std::string prefix;
    Handler handler;
  };
  using List = std::vector<std::shared_ptr<const Entry>>;

  std::shared_ptr<const List> snapshot() const;
  void publish(std::shared_ptr<const List> handlers);  // under mu_
  struct Observer {
    HandlerId id;
    std::shared_ptr<CallObserver> observer;
  };
  using ObserverList = std::vector<Observer>;
  std::shared_ptr<const ObserverList> observers() const;
  template <typename Record>
  void deliver(const Record& record);

  mutable std::mutex mu_;
  std::shared_ptr<const List> handlers_ = std::make_shared<const List>();  // copy-on-write
  std::atomic<std::size_t> handler_count_{0};
  std::atomic<std::uint64_t> interest_{0};  // bit i: a handler wants kEvents[i]
  std::shared_ptr<const ObserverList> observers_ = std::make_shared<const ObserverList>();
  std::atomic<std::size_t> observer_count_{0};
  HandlerId next_id_ = 1;
};

}  // namespace bridgepool
