// Worker: one Python worker process, its protocol channel, its state machine and its counters.
//
// Who touches what (SPEC §1 threading):
//  - The supervisor (worker_supervisor.h) creates the Worker from a spawned ChildProcess, reads
//    the handshake (read_handshake) on its loop thread, watches the exit and reaps the process.
//  - The borrower — the caller thread that checked the worker out — does the request I/O itself
//    (call). Only one borrower at a time, guaranteed by the pool's checkout.
//  - State transitions and counters are thread-safe (a per-worker mutex / atomics), so stats
//    can be read from any thread.
// A call's outcome says whether the worker itself is still trustworthy (WorkerFault), which is
// what the pool needs to decide between checkin ok and removal.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "bridgepool/clock.h"
#include "bridgepool/error.h"
#include "process/child_process.h"
#include "wire/frame_codec.h"
#include "wire/message_codec.h"
#include "worker/worker_state_machine.h"

namespace bridgepool {

using Json = nlohmann::json;
using ChunkCallback = std::function<void(const Json&)>;

// What a failed call says about the worker (not about the request).
enum class WorkerFault {
  kNone,          // the worker is fine (success, or a Python exception reported normally)
  kNotDelivered,  // the process was gone before it could read the request: safe to re-route
  kExited,        // the process went away after reading the request (may have run it)
  kProtocol,      // the stream broke the protocol: bad frame, bad JSON, wrong reply id
  kTimeout,       // no reply before the deadline: state unknown, the worker must be killed
};
std::string_view fault_name(WorkerFault fault);
// The worker died or had to be killed because of the request in flight (exit, hang past the
// deadline, broken stream) — what the poison quarantine counts. kNotDelivered is not: the
// worker was gone before it read the request.
inline bool ends_worker(WorkerFault fault) {
  return fault == WorkerFault::kExited || fault == WorkerFault::kTimeout ||
         fault == WorkerFault::kProtocol;
}

struct CallOutcome {
  Result<Json> result;
  WorkerFault fault = WorkerFault::kNone;
  // The handler said its worker is no longer trustworthy (ctx.mark_unhealthy, or an exception
  // with worker_unhealthy): the reply is good, but the worker's checkin is an `error`.
  std::optional<std::string> unhealthy;
};

// The Error of a reply's "error" object (python, or invalid_request / communication for what the
// runtime says about the request itself), with the Python type, traceback and retryable flag.
Error python_reply_error(const wire::ReplyError& error, std::string_view command,
                         std::string_view worker_id);

// A copy of a worker's public facts, safe to hand to any thread.
struct WorkerSnapshot {
  std::string id;
  pid_t pid = 0;
  WorkerState state = WorkerState::kInitializing;
  WorkerHealth health = WorkerHealth::kUnknown;
  std::uint64_t requests = 0;       // round trips completed (including Python errors)
  std::uint64_t python_errors = 0;  // replies with ok:false
  std::uint64_t failures = 0;       // consecutive checkin errors
  Duration uptime{0};               // since the handshake (0 while initializing)
  std::string handlers_version;
  std::string current_session;  // session of the request in flight ("" if none/idle)
  std::vector<Transition> history;
};

class Worker {
 public:
  // `number` is unique within the pool and never reused; the id is "w<number>".
  Worker(std::uint64_t number, std::unique_ptr<ChildProcess> process, std::size_t max_frame_bytes,
         const Clock& clock);

  const std::string& id() const { return id_; }
  std::uint64_t number() const { return number_; }
  pid_t pid() const { return process_->pid(); }
  ChildProcess& process() { return *process_; }
  const ChildProcess& process() const { return *process_; }

  // Monitor thread, while initializing, when the response pipe is readable. nullopt: need more
  // bytes. Error (initialization) on init_failed, a malformed first frame, or EOF.
  Result<std::optional<wire::Handshake>> read_handshake();
  // Only after read_handshake() succeeded, on the thread that called it (or after admission).
  const wire::Handshake& handshake() const { return handshake_; }

  // Borrower thread: one round trip. Sets request.id. `deadline` bounds the whole call.
  CallOutcome call(wire::Request& request, TimePoint deadline, const ChunkCallback& on_chunk);
  // The round trip in two halves, so another thread may send on the borrower's behalf (the pool's
  // hand-off: the caller returning a worker writes the next waiter's request before waking it).
  // Whoever holds the worker calls them, one after the other, never concurrently. send() sets
  // `id` and returns the failed outcome if the request could not be written (too large: nothing
  // sent; the deadline passed; the process gone: not delivered); receive() reads its reply.
  std::optional<CallOutcome> send(const wire::PreparedRequest& request,
                                  std::optional<std::int64_t> deadline_ms, TimePoint deadline,
                                  std::uint64_t& id);
  CallOutcome receive(std::uint64_t id, TimePoint deadline, const ChunkCallback& on_chunk,
                      std::string_view command);

  // Borrower thread, right after checkout: the process is alive and nothing is pending on the
  // response pipe (an idle worker has no business writing; if it did, its stream is suspect).
  // Returns the reason it is unusable, or nullopt when usable.
  std::optional<std::string> check_usable() const;

  // Thread-safe state machine access.
  Result<Transition> transition(WorkerState to, TransitionReason reason,
                                std::map<std::string, std::string> metadata = {});
  WorkerState state() const;
  void set_health(WorkerHealth health);

  // Counters.
  void note_ready(TimePoint at);
  std::uint64_t requests() const { return requests_.load(std::memory_order_relaxed); }
  std::uint64_t increment_failures() { return ++consecutive_failures_; }
  void reset_failures() { consecutive_failures_.store(0, std::memory_order_relaxed); }
  WorkerSnapshot snapshot() const;

  // How the process ended: "exit code 1" / "killed by signal 9 (SIGKILL)" (see ChildProcess).
  std::string describe_exit() const { return process_->describe_exit(); }
  void set_current_session(std::string session) {
    std::lock_guard lock(mu_);
    current_session_ = std::move(session);
  }

 private:
  Result<void> write_frame(std::span<iovec> pieces, TimePoint deadline);
  CallOutcome read_reply(std::uint64_t id, TimePoint deadline, const ChunkCallback& on_chunk,
                         std::string_view command);
  CallOutcome exited_outcome(std::string_view command, bool partial_reply) const;
  CallOutcome fail(ErrorCategory category, WorkerFault fault, std::string message,
                   std::string_view command) const;

  const std::uint64_t number_;
  const std::string id_;
  std::unique_ptr<ChildProcess> process_;
  const std::size_t max_frame_bytes_;
  const Clock& clock_;

  // Borrower-owned I/O state.
  wire::FrameDecoder decoder_;
  std::uint64_t next_request_id_ = 1;  // 0 is the handshake
  bool pipes_grown_ = false;           // both pipes grown for large frames (Worker::send)

  wire::Handshake handshake_;

  mutable std::mutex mu_;
  WorkerStateMachine machine_;    // guarded by mu_
  TimePoint ready_at_{};          // guarded by mu_
  std::string handlers_version_;  // guarded by mu_
  std::string current_session_;   // guarded by mu_: session of the request in flight, if any

  std::atomic<std::uint64_t> requests_{0};
  std::atomic<std::uint64_t> python_errors_{0};
  std::atomic<std::uint64_t> consecutive_failures_{0};
};

}  // namespace bridgepool
