// Capacity: how many workers a pool has and is starting, and every decision to start one (SPEC
// §4 start, §5 sizing and overflow, respawn backoff) — plus what new workers start with (the
// spawn generation that rolling_restart replaces).
//
// The pool asks it before each start and tells it how each start and each removal ended; it
// answers whether to start a replacement and after which delay. Counting and deciding happen in
// one critical section: two threads that both saw "one short" would otherwise start two workers
// for one missing slot (found by the chaos test). The counts here are the authority for
// starting decisions; the worker registry's in-service set may lag them by a moment.
//
// Rules:
//  - Initial workers: `size` when eager, `min_ready` when lazy.
//  - A removed worker is replaced while in_service + starting < size (so an overflow worker
//    leaving is not replaced), after backoff(consecutive start failures): at once while starts
//    succeed, 100 ms, 200 ms, ... 10 s while they fail.
//  - A failed start is retried under the same rule and backoff.
//  - A caller about to wait may grow the pool up to size + max_overflow.
//  - Warm spares (spare_workers): started like workers (the initial ones once min_ready workers
//    serve, eager or lazy), then kept aside; they never count in in_service. A slot that opens (a
//    counted replacement or growth) is filled by promoting a ready spare of the current generation
//    when there is one — on_promoted() turns the counted start into a serving worker and counts the
//    spare that replenishes it — else by a start. A spare that leaves (exit, failed probe,
//    recycling, old generation) or fails to start is replaced while spares + spares starting <
//    spare_workers, after the same backoff as any start (failures of spares and workers count in
//    one streak: they run the same code). Total processes: size + spare_workers + overflow.
//  - After close() nothing starts.
// Thread-safety: every method from any thread; one mutex, a leaf in the pool's lock order.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bridgepool/config.h"
#include "bridgepool/error.h"
#include "pool/respawn_backoff.h"

namespace bridgepool {

// What new workers are started with: the interpreter, handlers, environment and init commands
// of one "generation". rolling_restart() installs a new one; workers remember theirs.
struct SpawnGeneration {
  std::uint64_t number = 1;
  PoolConfig config;
  std::vector<std::string> env;  // computed once per generation
};
using GenerationPtr = std::shared_ptr<const SpawnGeneration>;

// What a start is for: a worker that serves, or a warm spare kept aside.
enum class StartRole { kService, kSpare };

struct CapacitySnapshot {
  std::size_t in_service = 0;
  std::size_t starting = 0;            // for service (replacements, growth)
  std::size_t spares = 0;              // ready spares, kept aside
  std::size_t spares_starting = 0;     // spare starts in flight or waiting out a backoff
  std::uint64_t spare_promotions = 0;  // spares that went into service
  std::uint64_t started = 0, replaced = 0, init_failures = 0;
  std::uint32_t consecutive_init_failures = 0;
  std::optional<Error> last_init_error;
  std::uint64_t last_failed_generation = 0;  // generation of the last start that failed
  std::uint64_t generation = 1;
};

class Capacity {
 public:
  Capacity(std::size_t size, std::size_t max_overflow, std::size_t spare_workers,
           RespawnBackoff backoff, GenerationPtr first_generation);

  // Counts `n` initial starts; returns n (0 once closed).
  std::size_t reserve_initial(std::size_t n);
  // Counts the initial spare starts; returns spare_workers (0 once closed).
  std::size_t reserve_initial_spares();
  // A unique, never reused worker number (ids are "w<number>").
  std::uint64_t next_worker_number();

  // A start succeeded: the worker serves (kService) or is kept as a spare (kSpare). False once
  // closed: the caller ends the worker instead of admitting it.
  bool on_started(StartRole role = StartRole::kService);
  // A start failed. Returns the delay of the replacement start (same role) it counted, if due.
  std::optional<std::chrono::milliseconds> on_start_failed(const Error& error,
                                                           std::uint64_t generation,
                                                           StartRole role = StartRole::kService);
  // A worker left service (kService) or a spare left (kSpare). Returns the delay of the
  // replacement (same role) it counted, if one is due.
  // `ends_recycle`: this removal is the one try_begin_recycle() reserved.
  std::optional<std::chrono::milliseconds> on_removed(StartRole role = StartRole::kService,
                                                      bool ends_recycle = false);
  // A ready spare took the place of one counted service start (from on_removed,
  // on_start_failed or try_grow): it serves now. Returns the delay of the spare start that
  // replenishes it, if one is due (none once closed).
  std::optional<std::chrono::milliseconds> on_promoted();
  // A counted start that will not happen after all (closed before it ran).
  void cancel_start(StartRole role = StartRole::kService);
  // A caller must wait for a worker: grow by one if below size + max_overflow (true: counted).
  bool try_grow();

  // While no worker serves: the last start's error when starts keep failing (fail fast).
  std::optional<Error> failing_starts() const;
  // "Every worker affected" (severity critical): none serves and none is about to — none is
  // starting, or starts keep failing. Replacements on their way after crashes are not critical.
  bool all_down() const;
  // Whether an idle worker due for recycling may leave now (capacity never dips below size - 1,
  // one recycle at a time), and if so counts it as leaving at once: called under the registry's
  // lock by the check-in that decides, so a second check-in cannot also leave on the strength of
  // a count that the first removal has not updated yet. The reservation ends with
  // on_removed(kService, true), or end_recycle() if the worker did not leave after all.
  bool try_begin_recycle();
  void end_recycle();

  GenerationPtr generation() const;
  // Installs the next generation (rolling restart); returns the previous one.
  GenerationPtr install_generation(GenerationPtr next);
  void restore_generation(GenerationPtr previous);

  void close();
  // Lock-free: read on every request.
  bool closed() const { return closed_.load(std::memory_order_acquire); }
  CapacitySnapshot snapshot() const;

 private:
  std::optional<std::chrono::milliseconds> replacement_locked();
  std::optional<std::chrono::milliseconds> spare_replacement_locked();

  const std::size_t size_;
  const std::size_t max_overflow_;
  const std::size_t spare_workers_;
  const RespawnBackoff backoff_;

  mutable std::mutex mu_;
  CapacitySnapshot counts_;
  std::size_t recycles_reserved_ = 0;  // try_begin_recycle() not yet ended
  GenerationPtr generation_;
  std::uint64_t next_number_ = 1;
  std::atomic<bool> closed_{false};  // written under mu_, read without it
};

}  // namespace bridgepool
