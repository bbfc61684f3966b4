// PoolResilience: what a pool keeps for its resilience layer (SPEC §6) — its circuit breaker
// ("pool:<name>", in a registry that may be shared), its retry budget, its poison quarantine
// and its retry counters — and how one call runs through the one retry engine
// (resilience/retry_engine.h) with the pool's hooks:
//
//   classify   every attempt's error with the pool's facts: attempt number, whether every
//              worker is affected (none serves, none is on its way), whether the request may
//              have run, whether the command is idempotent;
//   quarantine the request's fingerprint (command + canonical args), computed only when asked;
//   stop       no retry once the pool shuts down;
//   breaker    a refusal because the pool shuts down does not count against the breaker.
// With ResilienceConfig::enabled = false a call is one classified attempt (benchmarks of the
// layer's cost).
// Thread-safety: run() from any caller thread concurrently; the parts are thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "bridgepool/circuit_breaker.h"
#include "bridgepool/config.h"
#include "bridgepool/executor.h"
#include "bridgepool/retry_budget.h"
#include "resilience/poison_quarantine.h"
#include "resilience/retry_engine.h"

namespace bridgepool {

class PoolResilience {
 public:
  // One attempt as the pool makes it.
  struct Once {
    Result<Json> result = tl::unexpected(Error());
    std::string worker_id;         // the worker it ran on ("" if none was checked out)
    bool may_have_run = false;     // written to a worker that may have read it
    bool killed_worker = false;    // the worker died or had to be killed (crash, hang, bad stream)
    bool no_time_left = false;     // the attempt used up its own time budget (checkout timeout)
    bool refused_by_pool = false;  // the pool refused it (shutting down): not the target failing
  };
  using OnceFn = std::function<Once(std::uint32_t attempt, const std::string& avoid_worker)>;

  // Facts about the call that only the pool knows.
  struct Facts {
    bool idempotent = false;
    std::function<bool()> all_down;  // no worker serves and none is on its way
    std::function<bool()> stopping;  // the pool shuts down
  };

  // `kind` names the breaker and the retry events: "pool:<name>", or "bridge:<name>".
  PoolResilience(const PoolConfig& config, std::string_view kind, const Clock& clock);

  // Runs one call: the engine with the pool's hooks, or one classified attempt. Fills
  // `attempts` and `served_by` (the worker of the last attempt). Caller's thread.
  Result<Json> run(std::string_view command, const Json& args, const ExecuteOptions& options,
                   TimePoint deadline, const Facts& facts, const OnceFn& once,
                   std::uint32_t& attempts, std::string& served_by);

  std::shared_ptr<CircuitBreaker> breaker() const { return breaker_; }
  const RetryCounters& counters() const { return counters_; }

 private:
  const PoolConfig& config_;
  const Clock& clock_;
  const std::string name_;
  std::shared_ptr<BreakerRegistry> breakers_;
  std::shared_ptr<CircuitBreaker> breaker_;  // null when disabled
  RetryBudget budget_;
  std::unique_ptr<PoisonQuarantine> quarantine_;  // null when disabled
  RetryCounters counters_;
};

}  // namespace bridgepool
