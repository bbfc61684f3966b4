// AsyncExecutor: a fixed set of threads running queued tasks, for Pool::execute_async.
//
// Each async request occupies one thread for its round trip (the I/O is blocking by design, see
// SPEC §1), so the pool sizes it to the number of workers: more threads could only wait in the
// checkout queue. stop() finishes queued tasks, then joins. Thread-safe.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace bridgepool {

class AsyncExecutor {
 public:
  explicit AsyncExecutor(std::size_t threads);
  ~AsyncExecutor();
  // False once stopped (the task is not run).
  bool submit(std::function<void()> task);
  void stop();

 private:
  void run();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace bridgepool
