// FallbackChain: an ordered list of adapters behind the one Executor interface — typically
// pool -> single bridge -> mock (SPEC §6). A call goes to the first adapter that may serve it;
// when that adapter fails with an error that may go elsewhere, or its breaker is open, the next
// one serves. To learn which adapter served a call, pass a CallReport in ExecuteOptions::report:
// the chain fills it on success and on failure (adapter, worker_id, attempts, adapters_tried).
// A failure's Error::context.adapter also names the adapter whose error it is, for logs.
//
// Rules (why each one):
//   * Which errors move on: everything but `abandon`. The classifier already turned every error
//     that must not run twice (a delivered, non-idempotent request; a Python error; a bad
//     request; a lost session) into abandon, so an error still carrying another strategy is safe
//     to send to the next adapter — retries already exhausted below it included.
//   * One adapter at a time, sequentially: an adapter is tried only after the previous one has
//     answered with an error, so no request is answered twice and none is dropped in a switch.
//   * Breakers: an adapter may bring its own breaker (a Pool guards itself: its circuit_open
//     error is instant and moves on), or the chain gives it one ("chain:<name>") — it opens after
//     failures, refuses at once while open, and half-opens after open_timeout: the probe.
//   * Return to the primary: after the probe succeeds, traffic ramps back over `ramp_duration`:
//     a call tries the recovering adapter first with probability elapsed / ramp_duration
//     (0 -> 1), otherwise it tries it last. Nothing is refused by the ramp, only reordered.
//   * The mock answers with canned data, so it serves only when allowed (config.allow_mock or
//     ExecuteOptions::allow_mock) — SPEC §6: failing over to the mock is opt-in.
//   * Sessions stay on the adapter that first served them (state lives there); if it cannot
//     serve, the call fails with that adapter's error instead of silently starting over
//     elsewhere. Beyond max_sessions pinned sessions, new sessions are refused (resource error)
//     until some are closed: forgetting a pin could move a session without anyone noticing.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "bridgepool/circuit_breaker.h"
#include "bridgepool/clock.h"
#include "bridgepool/event_bus.h"
#include "bridgepool/executor.h"
#include "bridgepool/retry.h"

namespace bridgepool {

struct FallbackAdapter {
  std::string name;                    // "pool", "bridge", "mock", ...
  std::shared_ptr<Executor> executor;  // never null
  // The chain guards the adapter with this breaker; null: the chain creates "chain:<name>"
  // unless `guards_itself` (a Pool has its own breaker: wrapping it again would spend two
  // half-open trial slots per probe).
  std::shared_ptr<CircuitBreaker> breaker;
  bool guards_itself = false;
  bool canned = false;  // answers with canned data (the mock): used only when allowed
};

struct FallbackConfig {
  CircuitBreakerConfig breaker = [] {
    CircuitBreakerConfig c;
    c.failure_threshold = 5;
    c.open_timeout = std::chrono::seconds(5);
    return c;
  }();
  std::chrono::milliseconds ramp_duration{5'000};
  bool allow_mock = false;
  std::size_t max_sessions = 100'000;  // session -> adapter pins; beyond, new sessions are refused
};

struct AdapterStats {
  std::string name;
  std::uint64_t served = 0;         // calls this adapter answered successfully
  std::uint64_t failed = 0;         // calls it failed (and the chain moved on or gave up)
  std::uint64_t skipped_open = 0;   // calls that skipped it because its breaker was open
  std::uint64_t ramp_deferred = 0;  // calls that tried it last because it is ramping back
  std::string breaker_state;        // of its breaker ("" if it guards itself)
  double ramp = 1.0;                // share of traffic it gets first (1 = fully back)
};

class FallbackChain final : public Executor {
 public:
  // `adapters` in order of preference; at least one. Any thread.
  explicit FallbackChain(std::vector<FallbackAdapter> adapters, FallbackConfig config = {},
                         const Clock& clock = SteadyClock::instance(),
                         std::shared_ptr<EventBus> events = nullptr, UniformRandom random = {});
  ~FallbackChain() override;

  // The first answer an adapter gives; on failure the last adapter's error, with context.adapter
  // naming it and context.cause listing what the others said. options.report, if set, is reset
  // and then filled: `adapter` = the adapter that answered (or whose error is returned, also when
  // its breaker refused the call; empty if the chain refused it itself), `worker_id` and
  // `attempts` from that adapter's own report, `adapters_tried` = the adapters actually called,
  // in order. Any thread.
  Result<Json> execute(std::string_view command, Json args = Json::object(),
                       const ExecuteOptions& options = {}) override;
  // The same in a session: its first call pins it to the adapter that answers; later calls go
  // there only. resource error beyond config.max_sessions pinned sessions.
  Result<Json> execute_in_session(std::string_view session_id, std::string_view command,
                                  Json args = Json::object(),
                                  const ExecuteOptions& options = {}) override;
  // Forwards to the adapter the session is pinned to and drops the pin; false if not pinned.
  Result<bool> close_session(std::string_view session_id) override;
  std::string_view kind() const override { return "chain"; }

  std::vector<AdapterStats> stats() const;

 private:
  struct Slot;
  std::vector<std::size_t> order_for(const ExecuteOptions& options);
  Result<Json> run(std::optional<std::string_view> session, std::string_view command, Json args,
                   const ExecuteOptions& options);
  void note_failure(Slot& slot);
  void note_success(Slot& slot);
  double ramp_of(const Slot& slot, TimePoint now) const;

  std::vector<std::unique_ptr<Slot>> slots_;
  FallbackConfig config_;
  const Clock& clock_;
  std::shared_ptr<EventBus> events_;
  UniformRandom random_;

  mutable std::mutex mu_;  // guards the slots' ramp state and the session pins
  std::unordered_map<std::string, std::size_t> session_pins_;
};

}  // namespace bridgepool
