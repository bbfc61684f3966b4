#include "base/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "base/clock_wait.h"

namespace bridgepool {

EventLoop::EventLoop(const Clock& clock) : clock_(clock) {}

EventLoop::~EventLoop() { stop(); }

Result<void> EventLoop::start() {
  epoll_fd_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_fd_) {
    return make_error(ErrorCategory::kResource,
                      fmt::format("epoll_create1: {}", std::strerror(errno)));
  }
  wake_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_fd_) {
    return make_error(ErrorCategory::kResource, fmt::format("eventfd: {}", std::strerror(errno)));
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;  // watch id 0 is the wake-up descriptor
  ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, wake_fd_.get(), &ev);
  thread_ = std::thread([this] { run(); });
  return {};
}

void EventLoop::stop() {
  if (!thread_.joinable()) return;
  stopping_.store(true);
  wake();
  if (in_loop_thread()) {
    thread_.detach();  // stop() from inside a task: the loop ends after it returns
  } else {
    thread_.join();
  }
}

void EventLoop::wake() {
  std::uint64_t one = 1;
  ssize_t rc = ::write(wake_fd_.get(), &one, sizeof one);
  (void)rc;  // EAGAIN means the counter is already non-zero: the loop will wake anyway
}

void EventLoop::post(Task task) {
  {
    std::lock_guard lock(mu_);
    tasks_.push_back(std::move(task));
  }
  wake();
}

void EventLoop::post_after(std::chrono::nanoseconds delay, Task task) {
  post_at(clock_.now() + delay, std::move(task));
}

void EventLoop::post_at(TimePoint when, Task task) {
  {
    std::lock_guard lock(mu_);
    timers_.push(Timer{when, seq_++, std::move(task)});
  }
  wake();
}

EventLoop::WatchId EventLoop::watch(int fd, std::uint32_t events, FdCallback callback) {
  WatchId id = next_watch_++;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = id;
  if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return 0;
  watches_.emplace(id, Watch{fd, std::move(callback)});
  return id;
}

void EventLoop::unwatch(WatchId id) {
  auto it = watches_.find(id);
  if (it == watches_.end()) return;
  // Explicit removal matters for pidfds: a reaped pidfd stays readable, and epoll would report
  // it forever (and the descriptor number may be reused after close).
  ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, it->second.fd, nullptr);
  watches_.erase(it);
}

int EventLoop::next_timeout_ms() {
  std::lock_guard lock(mu_);
  if (!tasks_.empty()) return 0;
  if (timers_.empty()) return -1;
  auto wait = real_wait(clock_, timers_.top().when);
  if (wait <= std::chrono::nanoseconds::zero()) return 0;
  // Round up so a timer never fires early.
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(wait).count());
}

void EventLoop::run_due_tasks() {
  std::vector<Task> due;
  {
    std::lock_guard lock(mu_);
    due.swap(tasks_);
    auto now = clock_.now();
    while (!timers_.empty() && timers_.top().when <= now) {
      due.push_back(std::move(const_cast<Timer&>(timers_.top()).task));
      timers_.pop();
    }
  }
  for (auto& task : due) task();
}

void EventLoop::run() {
  thread_id_.store(std::this_thread::get_id());
  epoll_event events[64];
  while (true) {
    run_due_tasks();
    if (stopping_.load()) break;
    int n = ::epoll_wait(epoll_fd_.get(), events, 64, next_timeout_ms());
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i) {
      WatchId id = events[i].data.u64;
      if (id == 0) {
        std::uint64_t count;
        while (::read(wake_fd_.get(), &count, sizeof count) > 0) {
        }
        continue;
      }
      auto it = watches_.find(id);
      if (it == watches_.end()) continue;   // unwatched by an earlier callback in this batch
      FdCallback cb = it->second.callback;  // copy: the callback may unwatch itself
      cb(events[i].events);
    }
  }
  run_due_tasks();
}

}  // namespace bridgepool
