// WorkerSupervisor: the one owner of worker *processes*, from spawn to reap (SPEC §4), used by
// every executor that runs Python — the pool, and the single bridge, which is a pool of one.
//
// What it does, all on the event loop it is given (the owner's "monitor thread"):
//   launch     spawn (through the injected Spawner), watch the exit fd and the response pipe,
//              read the handshake, run the init commands (on the supervisor's own init thread:
//              they are request I/O and must not stall the loop), then report on_ready — or,
//              for a spawn error, an import error, a bad or missing handshake (init_timeout), a
//              failed init command or an exit during start-up, report on_start_failed once,
//              after the process is gone and its last stderr lines are in the error's cause.
//   output     drain stdout/stderr continuously (an undrained pipe blocks the child at 64 KiB,
//              SPEC §11.6) and log them line by line, rate-limited, tagged with the worker id.
//   exit       notice every exit at once (the exit fd is an epoll event), reap it (and what is
//              left of its process group), then report on_exit for a worker that was ready.
//   terminate  shutdown command + EOF now, SIGTERM after a grace, SIGKILL kill_grace later.
// It knows nothing of checkout, sessions or retries: the Listener (the pool) decides what a
// start, a failure or an exit means for service. The supervisor moves a worker
// initializing -> ready (init_complete) or -> terminated (init_failed), and terminating ->
// terminated once reaped; every other transition is the listener's.
//
// Why the loop thread spawns: PR_SET_PDEATHSIG in the child fires when the *thread* that forked
// it exits, so workers are spawned from the long-lived loop thread, never from a caller's thread
// that may end the next moment.
//
// Thread-safety: launch, terminate, kill, close, workers, wait_idle may be called from any
// thread; listener callbacks run on the loop thread, one at a time, and may call back into the
// supervisor. Lock: mu_ guards known_/pending_/closed_ and is a leaf (nothing is called under it).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/async_executor.h"
#include "base/event_loop.h"
#include "bridgepool/clock.h"
#include "bridgepool/config.h"
#include "process/spawner.h"
#include "worker/output_capture.h"
#include "worker/recovery_policy.h"
#include "worker/worker.h"
#include "worker/worker_telemetry.h"

namespace bridgepool {

using WorkerPtr = std::shared_ptr<Worker>;

// How to start one worker and what to replay on it before it serves.
struct LaunchSpec {
  std::uint64_t number = 0;      // the worker's id is "w<number>"; never reused by an owner
  std::uint64_t generation = 1;  // the owner's tag, given back with the outcome
  SpawnSpec spawn;
  std::vector<InitCommand> init_commands;
};

struct SupervisorConfig {
  std::chrono::milliseconds init_timeout{10'000};  // spawn -> handshake + init commands
  std::chrono::milliseconds kill_grace{1'000};     // SIGTERM -> SIGKILL
  std::size_t max_frame_bytes = std::size_t{64} * 1024 * 1024;
  double output_lines_per_second = 200;  // per stream, burst of twice that
};

class WorkerSupervisor {
 public:
  class Listener {
   public:
    virtual ~Listener() = default;
    // The worker completed its handshake and init commands: it is `ready` and healthy.
    virtual void on_ready(const WorkerPtr& worker, std::uint64_t generation, Duration startup) = 0;
    // A launch failed; `error` is classified by the caller (initialization, or resource for
    // descriptor/process limits and for launches refused after close()).
    virtual void on_start_failed(std::uint64_t number, std::uint64_t generation, Error error) = 0;
    // A worker reported by on_ready has exited and been reaped; `how` says how it ended.
    virtual void on_exit(const WorkerPtr& worker, const std::string& how) = 0;
  };

  // `loop`, `spawner`, `clock`, `telemetry`, `recovery` and `listener` must outlive the
  // supervisor. A start failure is handled as `recovery` decides (FailureKind::kInitFailed).
  WorkerSupervisor(EventLoop& loop, Spawner& spawner, const Clock& clock,
                   const WorkerTelemetry& telemetry, const RecoveryPolicy& recovery,
                   Listener& listener, SupervisorConfig config);
  ~WorkerSupervisor();

  // Starts worker `spec.number` (asynchronously); exactly one of on_ready / on_start_failed
  // follows. Any thread.
  void launch(LaunchSpec spec);
  // Ends a worker that nobody is using: the shutdown command and EOF now, SIGTERM after
  // `grace`, SIGKILL after kill_grace more. Any thread.
  void terminate(const WorkerPtr& worker, std::chrono::milliseconds grace);
  // SIGKILL now (a process whose state or stream cannot be trusted). Any thread.
  void kill(const WorkerPtr& worker) const;
  // SIGKILL to every process not yet reaped. Any thread.
  void kill_all() const;
  // From now on launches fail (resource error, "shutting down"). Any thread.
  void close();
  // Every worker process not yet reaped, initializing ones included. Any thread.
  std::vector<WorkerPtr> workers() const;
  // Waits until no launch is pending and every process has been reaped. False at the deadline.
  bool wait_idle(TimePoint deadline);
  // Stops the init thread. After wait_idle, before the loop stops; idempotent.
  void stop();

 private:
  enum class Phase { kStarting, kFailed, kReady };
  struct Proc {
    WorkerPtr worker;
    LaunchSpec spec;
    Phase phase = Phase::kStarting;
    bool handshaken = false;
    std::optional<Error> failure;  // kFailed: reported once the process is gone
    EventLoop::WatchId exit_watch = 0, response_watch = 0, stdout_watch = 0, stderr_watch = 0;
    OutputCapture out, err;
    std::deque<std::string> stderr_tail;
    TimePoint spawned_at;
    Proc(const Clock& c, OutputCapture::Limits l) : out(c, l), err(c, l) {}
  };

  // Loop thread.
  void spawn(LaunchSpec spec);
  void on_response_readable(const std::string& id);
  void finish_start(const std::string& id, const Result<void>& init);
  void fail_start(Proc& proc, Error error);
  void on_init_timeout(const std::string& id);
  void drain_output(Proc& proc, bool is_stderr);
  void on_exit_readable(const std::string& id);
  void report_failure(std::uint64_t number, std::uint64_t generation, Error error);
  // Init thread.
  Result<void> run_init_commands(Worker& worker, const std::vector<InitCommand>& commands);

  EventLoop& loop_;
  Spawner& spawner_;
  const Clock& clock_;
  const WorkerTelemetry& telemetry_;
  const RecoveryPolicy& recovery_;
  Listener& listener_;
  const SupervisorConfig config_;
  AsyncExecutor init_thread_{1};

  mutable std::mutex mu_;
  std::condition_variable idle_cv_;
  std::unordered_map<std::string, WorkerPtr> known_;  // spawned, not yet reaped
  std::size_t pending_ = 0;                           // launched, not yet spawned
  bool closed_ = false;

  std::unordered_map<std::string, std::unique_ptr<Proc>> procs_;  // loop thread only
};

}  // namespace bridgepool
