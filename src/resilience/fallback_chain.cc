// FallbackChain: see include/bridgepool/fallback_chain.h for the rules; this file carries them
// out. The only shared state is each adapter's ramp (under mu_) and its counters (atomics); the
// calls themselves run on the caller's thread with no lock held.
#include "bridgepool/fallback_chain.h"

#include <algorithm>
#include <atomic>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "bridgepool/event_names.h"
#include "pool/request_validation.h"
#include "resilience/error_classifier.h"

namespace bridgepool {

struct FallbackChain::Slot {
  FallbackAdapter adapter;
  std::shared_ptr<CircuitBreaker> breaker;  // null when the adapter guards itself
  std::atomic<std::uint64_t> served{0}, failed{0}, skipped_open{0}, ramp_deferred{0};
  // Ramp state (mu_): unavailable since a failure; ramping back since recovered_at.
  bool unavailable = false;
  bool ramping = false;
  TimePoint recovered_at{};
};

FallbackChain::FallbackChain(std::vector<FallbackAdapter> adapters, FallbackConfig config,
                             const Clock& clock, std::shared_ptr<EventBus> events,
                             UniformRandom random)
    : config_(config),
      clock_(clock),
      events_(std::move(events)),
      random_(random ? std::move(random) : UniformRandom(thread_local_uniform)) {
  for (auto& a : adapters) {
    auto slot = std::make_unique<Slot>();
    slot->breaker = a.breaker;
    if (!slot->breaker && !a.guards_itself) {
      slot->breaker =
          std::make_shared<CircuitBreaker>("chain:" + a.name, config_.breaker, clock_, events_);
    }
    slot->adapter = std::move(a);
    slots_.push_back(std::move(slot));
  }
}

FallbackChain::~FallbackChain() = default;

double FallbackChain::ramp_of(const Slot& slot, TimePoint now) const {
  if (!slot.ramping) return 1.0;
  if (config_.ramp_duration.count() <= 0) return 1.0;
  double done = std::chrono::duration<double>(now - slot.recovered_at).count() /
                std::chrono::duration<double>(config_.ramp_duration).count();
  return std::clamp(done, 0.0, 1.0);
}

std::vector<std::size_t> FallbackChain::order_for(const ExecuteOptions& options) {
  const bool mock_ok = options.allow_mock.value_or(config_.allow_mock);
  std::vector<std::size_t> order;
  auto allowed = [&](std::size_t i) { return !slots_[i]->adapter.canned || mock_ok; };
  if (options.adapters.empty()) {
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      if (allowed(i)) order.push_back(i);
    }
  } else {
    for (const auto& name : options.adapters) {
      for (std::size_t i = 0; i < slots_.size(); ++i) {
        // Naming the mock explicitly is the per-call opt-in.
        if (slots_[i]->adapter.name == name) order.push_back(i);
      }
    }
  }
  // Ramp: an adapter coming back goes first with probability `ramp`, otherwise last.
  std::vector<std::size_t> first, deferred;
  TimePoint now = clock_.now();
  std::lock_guard lock(mu_);
  for (std::size_t i : order) {
    Slot& slot = *slots_[i];
    double ramp = ramp_of(slot, now);
    if (ramp >= 1.0) slot.ramping = false;
    if (ramp < 1.0 && random_() >= ramp) {
      slot.ramp_deferred.fetch_add(1, std::memory_order_relaxed);
      deferred.push_back(i);
    } else {
      first.push_back(i);
    }
  }
  first.insert(first.end(), deferred.begin(), deferred.end());
  return first;
}

void FallbackChain::note_failure(Slot& slot) {
  std::lock_guard lock(mu_);
  slot.unavailable = true;
  slot.ramping = false;
}

void FallbackChain::note_success(Slot& slot) {
  bool recovered = false;
  {
    std::lock_guard lock(mu_);
    if (slot.unavailable) {
      slot.unavailable = false;
      slot.ramping = true;
      slot.recovered_at = clock_.now();
      recovered = true;
    }
  }
  if (recovered && events_) {
    events_->emit(Event{std::string(event_name(EventId::kFallbackRecovered)),
                        {},
                        {{"adapter", slot.adapter.name}}});
  }
}

Result<Json> FallbackChain::run(std::optional<std::string_view> session, std::string_view command,
                                Json args, const ExecuteOptions& options) {
  if (options.report) *options.report = CallReport{};
  // Checked once, before any adapter: a bad request is refused the same way by all of them,
  // and arguments too deep to copy safely must never be copied for a second adapter.
  auto valid = validate_request(session, command, args);
  if (valid) valid = validate_options(options);
  if (!valid) {
    Error e = std::move(valid.error());
    classify_error(e, ClassifyInput{});
    e.context.adapter = "chain";
    return tl::unexpected(std::move(e));
  }
  if (session) {
    std::lock_guard lock(mu_);
    if (!session_pins_.contains(std::string(*session)) &&
        session_pins_.size() >= config_.max_sessions) {
      Error e(ErrorCategory::kResource,
              fmt::format("fallback chain holds {} sessions (max_sessions); close some first",
                          session_pins_.size()));
      e.context.command = command;
      e.context.session_id = *session;
      e.strategy = RecoveryStrategy::kBackoffRetry;
      return tl::unexpected(std::move(e));
    }
  }
  std::vector<std::size_t> order;
  if (session) {
    std::lock_guard lock(mu_);
    if (auto pin = session_pins_.find(std::string(*session)); pin != session_pins_.end()) {
      order.push_back(pin->second);
    }
  }
  if (order.empty()) order = order_for(options);
  std::vector<std::string> tried, notes;
  std::optional<Error> last_error;
  CallReport last_report;  // of the adapter whose error is last_error
  auto finish_report = [&](CallReport report) {
    if (!options.report) return;
    report.adapters_tried = tried;
    *options.report = std::move(report);
  };
  for (std::size_t pos = 0; pos < order.size(); ++pos) {
    Slot& slot = *slots_[order[pos]];
    const std::string& name = slot.adapter.name;
    std::optional<CircuitBreaker::Permit> permit;
    if (slot.breaker) {
      auto admitted = slot.breaker->acquire();
      if (!admitted) {
        slot.skipped_open.fetch_add(1, std::memory_order_relaxed);
        note_failure(slot);
        notes.push_back(fmt::format("{}: circuit open", name));
        if (!last_error) {
          last_error = std::move(admitted.error());
          last_error->context.adapter = name;
          last_report = CallReport{name, "", 0, {}};
        }
        continue;
      }
      permit = *admitted;
    }
    tried.push_back(name);
    CallReport sub;
    ExecuteOptions sub_options = options;
    sub_options.report = &sub;
    sub_options.adapters.clear();
    // Copied for every adapter but the last, which may have them: after it, nothing reads args.
    Json call_args =
        pos + 1 < order.size() ? args : std::move(args);  // NOLINT(bugprone-use-after-move)
    Result<Json> r =
        session ? slot.adapter.executor->execute_in_session(*session, command, std::move(call_args),
                                                            sub_options)
                : slot.adapter.executor->execute(command, std::move(call_args), sub_options);
    if (permit) {
      slot.breaker->record(*permit, r ? BreakerOutcome::kSuccess : breaker_outcome_of(r.error()));
    }
    sub.adapter = name;
    if (r) {
      slot.served.fetch_add(1, std::memory_order_relaxed);
      note_success(slot);
      if (session) {
        std::lock_guard lock(mu_);
        session_pins_.emplace(std::string(*session), order[pos]);
      }
      if (pos > 0 && events_) {
        events_->emit(Event{std::string(event_name(EventId::kFallbackServed)),
                            {{"position", double(pos)}},
                            {{"adapter", name}, {"command", std::string(command)}}});
      }
      finish_report(std::move(sub));
      return std::move(*r);
    }
    slot.failed.fetch_add(1, std::memory_order_relaxed);
    Error e = std::move(r.error());
    e.context.adapter = name;
    if (e.category == ErrorCategory::kCircuitOpen ||
        breaker_outcome_of(e) == BreakerOutcome::kFailure) {
      note_failure(slot);
    }
    notes.push_back(fmt::format("{}: {}", name, category_name(e.category)));
    bool may_move = e.strategy != RecoveryStrategy::kAbandon;
    last_error = std::move(e);
    last_report = std::move(sub);
    if (!may_move) break;
    if (events_ && pos + 1 < order.size()) {
      events_->emit(Event{std::string(event_name(EventId::kFallbackFailover)),
                          {},
                          {{"from", name},
                           {"category", std::string(category_name(last_error->category))},
                           {"command", std::string(command)}}});
    }
  }
  if (!last_error) {
    // Every skipped adapter leaves its breaker's error, so only an empty order gets here.
    Error e(ErrorCategory::kInvalidRequest,
            "no adapter may serve this call: the adapter list names none of this chain's "
            "adapters, or only the mock without allow_mock");
    e.strategy = RecoveryStrategy::kAbandon;
    e.severity = ErrorSeverity::kWarning;
    last_error = std::move(e);
  }
  if (notes.size() > 1 || tried.empty()) {
    std::string all = fmt::format("adapters: {}", fmt::join(notes, "; "));
    last_error->context.cause = last_error->context.cause.empty()
                                    ? all
                                    : fmt::format("{}; {}", last_error->context.cause, all);
  }
  last_error->context.command = command;
  if (session) last_error->context.session_id = *session;
  finish_report(std::move(last_report));
  return tl::unexpected(std::move(*last_error));
}

Result<Json> FallbackChain::execute(std::string_view command, Json args,
                                    const ExecuteOptions& options) {
  return run(std::nullopt, command, std::move(args), options);
}

Result<Json> FallbackChain::execute_in_session(std::string_view session_id,
                                               std::string_view command, Json args,
                                               const ExecuteOptions& options) {
  return run(session_id, command, std::move(args), options);
}

Result<bool> FallbackChain::close_session(std::string_view session_id) {
  std::optional<std::size_t> pinned;
  {
    std::lock_guard lock(mu_);
    auto it = session_pins_.find(std::string(session_id));
    if (it == session_pins_.end()) return false;
    pinned = it->second;
    session_pins_.erase(it);
  }
  return slots_[*pinned]->adapter.executor->close_session(session_id);
}

std::vector<AdapterStats> FallbackChain::stats() const {
  std::vector<AdapterStats> out;
  TimePoint now = clock_.now();
  std::lock_guard lock(mu_);
  for (const auto& slot : slots_) {
    AdapterStats s;
    s.name = slot->adapter.name;
    s.served = slot->served.load();
    s.failed = slot->failed.load();
    s.skipped_open = slot->skipped_open.load();
    s.ramp_deferred = slot->ramp_deferred.load();
    if (slot->breaker) s.breaker_state = std::string(circuit_state_name(slot->breaker->state()));
    s.ramp = ramp_of(*slot, now);
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace bridgepool
