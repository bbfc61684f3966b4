// SharedSlot<T>: one shared_ptr that threads read and replace as a whole, e.g. an immutable
// table read on every request and swapped when a newer one arrives.
//
// A short mutex around copying the pointer (an uncontended lock is ~20 ns), not
// std::atomic<std::shared_ptr>: GCC 12's implementation releases a reader's internal lock with
// relaxed ordering, so a reader's copy and a writer's swap are not ordered — a data race that
// ThreadSanitizer reports (seen under a rolling restart: a handshake storing the new command
// table while callers read it).
// Thread-safety: load() and store() from any thread.
#pragma once

#include <memory>
#include <mutex>
#include <utility>

namespace bridgepool {

template <typename T>
class SharedSlot {
 public:
  std::shared_ptr<T> load() const {
    std::lock_guard lock(mu_);
    return value_;
  }
  void store(std::shared_ptr<T> value) {
    std::shared_ptr<T> old;  // released outside the lock: its destructor may be long
    {
      std::lock_guard lock(mu_);
      old = std::exchange(value_, std::move(value));
    }
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<T> value_;
};

}  // namespace bridgepool
