// EventBus: named telemetry events that every component emits and any number of handlers observe.
//
// An event has a dotted name ("pool.worker.transition"), numeric measurements and string
// metadata. Handlers attach with a name prefix ("pool." or "" for all) and detach at run time.
// A handler that throws is detached and the failure is re-emitted as "telemetry.handler_failed";
// it never reaches the emitter. Emitting with no handler attached costs one atomic load, so hot
// paths check has_handlers() before building an event.
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

  void emit(const Event& event);

 private:
  struct Entry {
    HandlerId id;
    std::string prefix;
    Handler handler;
  };
  using List = std::vector<std::shared_ptr<const Entry>>;

  std::shared_ptr<const List> snapshot() const;

  mutable std::mutex mu_;
  std::shared_ptr<const List> handlers_ = std::make_shared<const List>();  // copy-on-write
  std::atomic<std::size_t> handler_count_{0};
  HandlerId next_id_ = 1;
};

}  // namespace bridgepool
