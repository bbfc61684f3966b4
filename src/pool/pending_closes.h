// PendingCloses: `close_session` commands a pool owes to workers that were busy when the session
// was closed or expired. The maintenance thread sends them once the worker is idle, so
// close_session() never waits on someone else's request; a new session reusing the id on that
// worker sends its pending close first (the new session starts empty, and the close must never
// land after its first call).
// Thread-safety: every method from any thread; one mutex, a leaf in the pool's lock order.
#pragma once

#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace bridgepool {

class PendingCloses {
 public:
  void add(const std::string& worker_id, std::string session_id);
  // Removes one owed close; true if it was owed.
  bool take(const std::string& worker_id, std::string_view session_id);
  // Removes and returns up to `max` owed closes of a worker.
  std::vector<std::string> take_some(const std::string& worker_id, std::size_t max);
  bool owes(const std::string& worker_id) const;
  bool empty() const;
  // The worker left service: its sessions' state went with it.
  void drop_worker(const std::string& worker_id);

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::vector<std::string>> by_worker_;
};

}  // namespace bridgepool
