#include "pool/pool_resilience.h"

#include <fmt/format.h>

#include "resilience/error_classifier.h"

namespace bridgepool {

PoolResilience::PoolResilience(const PoolConfig& config, std::string_view kind, const Clock& clock)
    : config_(config),
      clock_(clock),
      name_(fmt::format("{}:{}", kind, config.name)),
      budget_(config.resilience.retry_budget_ratio, config.resilience.retry_budget_min) {
  const ResilienceConfig& r = config.resilience;
  if (!r.enabled) return;
  breakers_ = r.breakers ? r.breakers : std::make_shared<BreakerRegistry>(clock, config.events);
  if (r.breaker_enabled) breaker_ = breakers_->get_or_create(name_, r.breaker);
  if (r.quarantine.enabled) quarantine_ = std::make_unique<PoisonQuarantine>(r.quarantine, clock);
}

Result<Json> PoolResilience::run(std::string_view command, const Json& args,
                                 const ExecuteOptions& options, TimePoint deadline,
                                 const Facts& facts, const OnceFn& once, std::uint32_t& attempts,
                                 std::string& served_by) {
  // The attempt's result lives here between the engine's looks at it. One pointer is captured
  // so that the AttemptFn stores its callable in place (no allocation per call).
  struct State {
    const OnceFn& once;
    std::uint32_t& attempts;
    std::string& served_by;
    Result<Json> last = tl::unexpected(Error());
  } state{once, attempts, served_by};
  Result<Json>& last = state.last;
  auto attempt = [&state](std::uint32_t n, const std::string& avoid) {
    state.attempts = n;
    Once o = state.once(n, avoid);
    state.served_by = o.worker_id;
    state.last = std::move(o.result);
    AttemptReport report;
    report.error = state.last ? nullptr : &state.last.error();
    report.worker_id = std::move(o.worker_id);
    report.may_have_run = o.may_have_run;
    report.killed_worker = o.killed_worker;
    report.no_time_left = o.no_time_left;
    if (o.refused_by_pool) report.breaker_outcome = BreakerOutcome::kIgnored;
    return report;
  };
  auto classify = [&](Error& e, std::uint32_t n, const AttemptReport* report) {
    if (report == nullptr) {  // a refusal: classified as a first attempt of its own kind
      classify_error(e, ClassifyInput{1, false, false, facts.idempotent});
      return;
    }
    const bool all_down = e.category != ErrorCategory::kPython && facts.all_down();
    classify_error(e, ClassifyInput{n, all_down, report->may_have_run, facts.idempotent});
  };
  if (!config_.resilience.enabled) {
    AttemptReport report = attempt(1, {});
    if (report.error != nullptr) classify(*report.error, 1, &report);
    return std::move(last);  // a reference: without the move, a copy of the whole result
  }
  RetryBudget::RequestScope in_flight(budget_);
  RetryHooks hooks;
  hooks.name = name_;
  hooks.command = std::string(command);
  hooks.clock = &clock_;
  hooks.events = config_.events.get();
  hooks.deadline = deadline;
  hooks.breaker = breaker_.get();
  hooks.budget = &budget_;
  hooks.quarantine = quarantine_.get();
  hooks.fingerprint = [&] { return PoisonQuarantine::fingerprint(command, args); };
  hooks.classify = classify;
  hooks.stop = [&]() -> std::optional<std::string_view> {
    if (facts.stopping()) return "shutting_down";
    return std::nullopt;
  };
  hooks.counters = &counters_;
  const RetryPolicy& policy = options.retry ? *options.retry : config_.resilience.retry;
  std::optional<Error> failure = run_with_retries(policy, hooks, attempt);
  if (!failure) return std::move(last);
  return tl::unexpected(std::move(*failure));
}

}  // namespace bridgepool
