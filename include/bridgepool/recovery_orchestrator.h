// RecoveryOrchestrator: turns one failed operation into one final answer, off the caller's thread.
//
// A caller hands over a failed operation with the Error it produced; the error's recovery
// strategy (set by the classifier, src/resilience/error_classifier.h) picks what happens next:
//
//   strategy         what the orchestrator does                             attempts, at most
//   immediate_retry  retry() again at once (after immediate_delay)          3
//   backoff_retry    retry() again after base·2^(n-1), capped               5
//   failover         failover() once, if given                              2
//   circuit_break    nothing: the final error at once                       1
//   abandon          nothing: the final error at once                       1
// (attempts include the failed original).
//
// Every retry reads the strategy of the *latest* error (as with_retry in retry.h does): a retry
// that fails with an abandon-class error ends the recovery there; one whose error turns
// failover- or circuit_break-class fails over when a failover() was given. The outcome is the
// recovered value, the failover value, or the final Error, delivered exactly once and no later
// than time_limit after recover() even when a retry or failover call is still running (the late
// result of that call is discarded: no request is ever answered twice).
//
// Threads: the orchestrator runs the calls on its own `threads`, never on the caller's or the
// pool's, and one watchdog thread fires time limits and ends delays. A delay occupies no thread
// (the job waits in the watchdog's timer queue), so a long backoff never starves other
// recoveries, and shutdown() interrupts it at once. A call that hangs keeps its thread busy until
// it returns: the orchestrator cannot cancel user code; its time limit still answers on time.
// Time: elapsed times (outcome, events, error context) are read from the injected Clock; the
// time limit and the delays are real-time waits (condition variables on steady_clock), as
// src/base/clock.h says of every wait.
// Its neighbours: retry.h retries inline on the calling thread; fallback_chain.h switches adapters
// per call. This class is for the pool's resilience path, which must not wait on its own threads.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bridgepool/clock.h"
#include "bridgepool/error.h"
#include "bridgepool/event_bus.h"
#include "bridgepool/executor.h"

namespace bridgepool {

struct RecoveryRequest {
  std::string name;  // for events and messages, e.g. "pool:default echo"
  Error error;       // the failure that triggered recovery; error.strategy picks the strategy
  // Re-runs the failed operation (attempt = 2, 3, ...). Runs on an orchestrator thread; should
  // not throw (an exception becomes a kSystem error). Empty: no retry is possible.
  std::function<Result<Json>(std::uint32_t attempt)> retry;
  // Optional: the next adapter, called at most once, on an orchestrator thread.
  std::function<Result<Json>()> failover;
  // For the whole recovery, delays included, from the call to recover(). 0 or less: the
  // recovery times out at once, without a call (answered inline, like a refusal).
  std::chrono::milliseconds time_limit{5'000};
};

enum class RecoveryResultKind { kRecovered, kFailedOver, kFailed };

// "recovered", "failed_over", "failed". Any thread.
std::string_view recovery_result_name(RecoveryResultKind kind);

struct RecoveryOutcome {
  RecoveryResultKind kind = RecoveryResultKind::kFailed;
  // The value, or the final Error with context.attempt = attempts made. The final error is the
  // last attempt's error (its cause extended with why recovery stopped), a kTimeout error when
  // the time limit passed, or a kResource error when refused or shut down.
  Result<Json> result;
  // The strategy picked from the triggering error (a failover after exhausted retries keeps it;
  // `kind` says kFailedOver).
  RecoveryStrategy strategy = RecoveryStrategy::kAbandon;
  std::uint32_t attempts = 1;            // calls started, the failed original included
  std::chrono::microseconds elapsed{0};  // from recover() to the outcome, on the injected Clock
};

struct RecoveryConfig {
  // Its own threads for retry/failover calls: never the pool's. 0 reads as 1.
  std::size_t threads = 2;
  std::chrono::microseconds immediate_delay{0};  // before each immediate retry
  // backoff_retry: the delay before retry n (n = 1 after the original failed) is
  // base·2^(n-1), capped: base 50 ms, cap 2 s gives 50, 100, 200, 400 ms for retries 1..4.
  std::chrono::microseconds backoff_base{std::chrono::milliseconds(50)};
  std::chrono::microseconds backoff_cap{std::chrono::milliseconds(2'000)};
  // Recoveries not yet answered. Beyond it a request that would make a call is refused at once
  // with a kResource final error (counted as rejected and failed): recovery must shed load, never
  // queue without bound. (One that makes no call is answered with its own error regardless.)
  std::size_t max_pending = 1024;
};

// initiated == succeeded + failed_over + failed + pending at every read. timed_out and rejected
// are subsets of failed (rejected: refused at once, max_pending or after shutdown).
struct RecoveryCounters {
  std::uint64_t initiated = 0, succeeded = 0, failed_over = 0, failed = 0, timed_out = 0,
                rejected = 0;
  std::size_t pending = 0;
};

// The delay before retry `retry` (1 = the first retry) of a backoff_retry recovery:
// backoff_base·2^(retry-1), never above backoff_cap, saturating (retry 1000 is the cap). Negative
// base or cap read as 0; retry 0 gives 0. Pure; any thread.
std::chrono::microseconds recovery_backoff_delay(const RecoveryConfig& config, std::uint32_t retry);

namespace internal {

enum class RecoveryStepKind { kRetry, kFailover, kGiveUp };

struct RecoveryStep {
  RecoveryStepKind kind = RecoveryStepKind::kGiveUp;
  std::chrono::microseconds delay{0};  // kRetry: wait this long first
  std::string_view reason;             // kGiveUp: "not_retryable", "attempts_exhausted", ...
};

// What the orchestrator does after `attempts` calls (the original included) when the latest
// error has strategy `latest`: retry while the strategy allows it and attempts < its budget;
// otherwise fail over when a failover exists, has not been used, and `latest` is failover, or is
// circuit_break after at least one retry (a circuit_break triggering error makes no call);
// otherwise give up. Pure; any thread.
RecoveryStep next_recovery_step(const RecoveryConfig& config, RecoveryStrategy latest,
                                std::uint32_t attempts, bool has_retry, bool has_failover,
                                bool failover_used);

}  // namespace internal

class RecoveryOrchestrator {
 public:
  using Done = std::function<void(RecoveryOutcome)>;

  // Starts `config.threads` worker threads and the watchdog thread. `clock` must outlive it.
  explicit RecoveryOrchestrator(RecoveryConfig config = {},
                                const Clock& clock = SteadyClock::instance(),
                                std::shared_ptr<EventBus> events = nullptr);
  // shutdown(); must not run on one of its own threads (not from a `done` callback).
  ~RecoveryOrchestrator();

  RecoveryOrchestrator(const RecoveryOrchestrator&) = delete;
  RecoveryOrchestrator& operator=(const RecoveryOrchestrator&) = delete;

  // Starts recovery on the orchestrator's own threads and returns at once; the future becomes
  // ready with the outcome (already ready when refused). Any thread.
  std::future<RecoveryOutcome> recover(RecoveryRequest request);
  // Same, calling `done` exactly once: on an orchestrator thread (a worker, or the watchdog for
  // time limits and shutdown), or inline on the calling thread when no call is made at all
  // (refused; circuit_break or abandon; a time limit of 0). `done` must not block (it may hold up
  // the watchdog) and must not throw (an exception is swallowed so no thread dies of it).
  // Events (when an EventBus was given), on the thread that delivers:
  //   "recovery.initiated" on the calling thread, then exactly one of "recovery.succeeded",
  //   "recovery.failed_over", "recovery.failed"; measurements attempts, elapsed_us; metadata
  //   name, strategy (picked), category (of the triggering error; of the final error for
  //   "recovery.failed", which adds reason: "timed_out", "refused", "shutting_down",
  //   "attempts_exhausted", "not_retryable", "circuit_break", "no_retry", "no_failover",
  //   "failover_failed", "deadline").
  void recover(RecoveryRequest request, Done done);

  // A consistent snapshot. Any thread.
  RecoveryCounters counters() const;

  // Stops taking work (later recover() calls are refused with a kResource error); every pending
  // recovery is answered promptly with a kResource "shutting down" final error (delays are
  // interrupted). Returns once the calls already running on its threads have returned (their
  // results are discarded). Idempotent; any thread except its own (not from `done`).
  void shutdown();

 private:
  struct Job;  // one recovery: its request, progress and timers (defined in the .cc)
  using JobPtr = std::shared_ptr<Job>;
  enum class TimerKind { kDeadline, kResume };
  struct TimerEntry {
    TimerKind kind;
    JobPtr job;
  };
  using Timers = std::multimap<std::chrono::steady_clock::time_point, TimerEntry>;
  // A claimed job and its outcome, delivered outside the lock.
  struct Delivery {
    JobPtr job;
    RecoveryOutcome outcome;
    std::string_view reason;  // why it failed ("timed_out", "attempts_exhausted", ...)
  };

  void worker_loop();
  void watchdog_loop();
  void run_step(const JobPtr& job);
  // The *_locked helpers run under mu_; those returning a Delivery return one when the recovery
  // ended (the caller delivers it after unlocking).
  std::optional<Delivery> start_locked(const JobPtr& job);
  std::optional<Delivery> after_failure_locked(const JobPtr& job, Error error);
  std::optional<Delivery> take_step_locked(const JobPtr& job);
  std::optional<Delivery> give_up_locked(const JobPtr& job, std::string_view reason,
                                         std::string note);
  std::optional<Delivery> time_out_locked(const JobPtr& job);
  std::optional<Delivery> abandon_locked(const JobPtr& job, std::string_view reason, Error error);
  // Marks the job answered (nullopt if it already was), removes its timers and counts it.
  std::optional<Delivery> finish_locked(const JobPtr& job, Result<Json> result,
                                        RecoveryResultKind kind, std::string_view reason = {});
  void add_timer_locked(const JobPtr& job, TimerKind kind,
                        std::chrono::steady_clock::time_point when);
  void deliver(Delivery delivery) const;
  void emit(std::string_view name, const Job& job, const RecoveryOutcome* outcome,
            std::string_view reason) const;
  std::chrono::microseconds elapsed_since(TimePoint start) const;

  const RecoveryConfig config_;
  const Clock& clock_;
  const std::shared_ptr<EventBus> events_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;       // workers: ready_ not empty, or stopping_
  std::condition_variable watchdog_cv_;   // watchdog: an earlier timer, or stopping_
  std::deque<JobPtr> ready_;              // jobs whose next call may run now
  Timers timers_;                         // time limits and delayed retries, earliest first
  std::map<std::uint64_t, JobPtr> live_;  // every job not yet answered, by id
  std::uint64_t next_job_id_ = 1;
  bool stopping_ = false;
  RecoveryCounters counters_;

  std::mutex join_mu_;  // serializes concurrent shutdown() calls around the joins
  std::vector<std::thread> workers_;
  std::thread watchdog_;
};

}  // namespace bridgepool
