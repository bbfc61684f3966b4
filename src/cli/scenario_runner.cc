#include "cli/scenario_runner.h"

#include <signal.h>

#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "bridgepool/bridge.h"
#include "bridgepool/circuit_breaker.h"
#include "bridgepool/fallback_chain.h"
#include "bridgepool/mock_executor.h"

namespace bridgepool::cli {
namespace {

using SteadyTime = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Slot 0 is due this long after the runner starts (as in run_open_loop): starting the sender
// threads is not charged to the first requests.
constexpr milliseconds kLeadIn{5};

// What the injector changes and the calls read.
struct FaultState {
  std::atomic<bool> failing{false};  // breaker: the guarded command fails
  std::atomic<pid_t> slow_pid{0};    // slow: the worker to slow down (0: none)
  std::mutex mu;                     // guards slow_worker_id
  std::string slow_worker_id;
  std::vector<pid_t> wave;  // cascade: the workers of the current wave (injector only)
  nlohmann::json applied = nlohmann::json::array();  // injector only until it is joined
};

// What the calls go through, beyond the pool.
struct Targets {
  Pool& pool;
  std::shared_ptr<CircuitBreaker> command_breaker;  // breaker
  std::unique_ptr<Bridge> bridge;                   // fallback
  std::shared_ptr<FallbackChain> chain;             // fallback
};

milliseconds to_ms(Duration d) { return std::chrono::duration_cast<milliseconds>(d); }

Result<std::shared_ptr<FallbackChain>> make_chain(const ScenarioPlan& plan, Targets& t) {
  PoolConfig config = t.pool.config();
  config.name = "bench-bridge";
  auto bridge = Bridge::start(config);
  if (!bridge) return tl::unexpected(bridge.error());
  t.bridge = std::move(*bridge);
  if (!t.pool.breaker() || !t.bridge->breaker()) {
    return make_error(ErrorCategory::kInvalidRequest,
                      "the fallback scenario needs the pool's circuit breaker (resilience "
                      "enabled)");
  }
  auto mock = std::make_shared<MockExecutor>();
  auto added = mock->add_handler(
      "echo", [](const Json& args, MockExecutor::Context&) -> Result<Json> { return args; }, true);
  if (!added) return tl::unexpected(added.error());
  // Non-owning: the pool and the bridge outlive the chain (run_scenario holds both).
  auto pool = std::shared_ptr<Executor>(&t.pool, [](Executor*) {});
  auto bridge_executor = std::shared_ptr<Executor>(t.bridge.get(), [](Executor*) {});
  FallbackConfig fc;
  fc.allow_mock = true;
  fc.breaker.open_timeout = to_ms(plan.breaker_open_timeout);
  fc.ramp_duration = to_ms(plan.fault_length);
  return std::make_shared<FallbackChain>(
      std::vector<FallbackAdapter>{{"pool", pool, nullptr, true, false},
                                   {"bridge", bridge_executor, nullptr, true, false},
                                   {"mock", mock, nullptr, false, true}},
      fc);
}

Result<void> prepare(const ScenarioPlan& plan, Targets& t) {
  if (plan.scenario == Scenario::kBreaker) {
    CircuitBreakerConfig c;
    c.window = BreakerWindow::kConsecutive;
    c.failure_threshold = 5;
    c.open_timeout = to_ms(plan.breaker_open_timeout);
    t.command_breaker = std::make_shared<CircuitBreaker>("command:flaky", c);
  }
  if (plan.scenario == Scenario::kFallback) {
    auto chain = make_chain(plan, t);
    if (!chain) return tl::unexpected(chain.error());
    t.chain = std::move(*chain);
  }
  return {};
}

void note_reply(const Result<Json>& reply, const CallReport& report, SlotRecord& rec) {
  rec.ok = reply.has_value();
  rec.attempts = report.attempts;
  rec.worker_id = report.worker_id;
  rec.adapter = report.adapter;
  if (!reply) rec.category = std::string(category_name(reply.error().category));
  if (!reply && rec.first_error.empty()) rec.first_error = reply.error().to_string();
}

// The breaker scenario's guarded command: the breaker first, the pool only if it admits.
void call_guarded(Targets& t, const FaultState& f, SlotRecord& rec) {
  auto permit = t.command_breaker->acquire();
  if (!permit) {
    rec.refused = true;
    rec.category = std::string(category_name(permit.error().category));
    rec.breaker_closed = t.command_breaker->state() == CircuitState::kClosed;
    return;
  }
  CallReport report;
  ExecuteOptions opts;
  opts.report = &report;
  opts.retry = RetryPolicy::none();
  Json args = {{"fail_rate", f.failing.load() ? 1.0 : 0.0}, {"crash_share", 0.0}};
  auto reply = t.pool.execute("flaky", std::move(args), opts);
  t.command_breaker->record(*permit, reply ? BreakerOutcome::kSuccess : BreakerOutcome::kFailure);
  note_reply(reply, report, rec);
  rec.breaker_closed = t.command_breaker->state() == CircuitState::kClosed;
}

// Sends request `slot` as the scenario wants it (scenario_runner.h) and notes how it went.
void send_one(const ScenarioOptions& o, Targets& t, FaultState& f, std::size_t slot,
              SlotRecord& rec) {
  CallReport report;
  ExecuteOptions opts;
  opts.report = &report;
  const Json args = {{"slot", slot}};
  switch (o.plan.scenario) {
    case Scenario::kCascade:
      rec.group = int(slot % 2);
      note_reply(t.pool.execute(rec.group == 0 ? "echo" : "submit", args, opts), report, rec);
      return;
    case Scenario::kTimeouts: {
      rec.group = hangs(o.seed, slot, o.plan.hang_share) ? 1 : 0;
      if (rec.group == 0) return note_reply(t.pool.execute("echo", args, opts), report, rec);
      opts.timeout = to_ms(o.plan.hang_deadline);
      opts.retry = RetryPolicy::none();
      // The slot makes each hanging call a request of its own: the same request hanging again
      // and again would be (rightly) quarantined as poison after two killed workers.
      Json hang = {{"ms", 10 * to_ms(o.plan.hang_deadline).count()}, {"slot", slot}};
      return note_reply(t.pool.execute("sleep", hang, opts), report, rec);
    }
    case Scenario::kBreaker:
      rec.group = int(slot % 2);
      if (rec.group == 0) return call_guarded(t, f, rec);
      return note_reply(t.pool.execute("echo", args, opts), report, rec);
    case Scenario::kSlow: {
      const pid_t slow = f.slow_pid.load();
      const double ms =
          std::chrono::duration<double, std::milli>(slow_call_length(o.rate, o.workers)).count();
      Json sleep = {{"ms", ms}, {"slow_pid", slow}, {"slow_factor", o.plan.slow_factor}};
      note_reply(t.pool.execute("sleep", sleep, opts), report, rec);
      std::lock_guard lock(f.mu);  // group 1: this call really was slowed
      rec.group = slow != 0 && rec.worker_id == f.slow_worker_id ? 1 : 0;
      return;
    }
    case Scenario::kFallback:
      return note_reply(t.chain->execute("echo", args, opts), report, rec);
  }
}

std::vector<pid_t> live_pids(const Pool& pool) {
  std::vector<pid_t> pids;
  for (const auto& w : pool.workers()) {
    if (w.pid > 0) pids.push_back(w.pid);
  }
  return pids;
}

void set_forced_open(const std::shared_ptr<CircuitBreaker>& breaker, bool open) {
  if (open) {
    breaker->force_open();
  } else {
    breaker->reset();
  }
}

// Applies one fault; returns what it did, for the JSON's event log.
std::string apply(const FaultEvent& e, Targets& t, FaultState& f) {
  switch (e.action) {
    case FaultAction::kKillWorker: {
      if (e.target == 0) f.wave = live_pids(t.pool);
      if (e.target >= f.wave.size()) return "no such worker";
      ::kill(f.wave[e.target], SIGKILL);  // ESRCH: it already died, which is what we want
      return fmt::format("SIGKILL pid {}", f.wave[e.target]);
    }
    case FaultAction::kFailOn:
    case FaultAction::kFailOff:
      f.failing.store(e.action == FaultAction::kFailOn);
      return "";
    case FaultAction::kSlowOn: {
      auto workers = t.pool.workers();
      if (workers.empty()) return "no worker";
      const WorkerInfo& w = workers[e.target % workers.size()];
      std::lock_guard lock(f.mu);
      f.slow_worker_id = w.id;
      f.slow_pid.store(w.pid);
      return fmt::format("{} (pid {})", w.id, w.pid);
    }
    case FaultAction::kSlowOff:
      f.slow_pid.store(0);
      return "";
    case FaultAction::kPoolDown:
    case FaultAction::kPoolUp:
      set_forced_open(t.pool.breaker(), e.action == FaultAction::kPoolDown);
      return "";
    case FaultAction::kBridgeDown:
    case FaultAction::kBridgeUp:
      set_forced_open(t.bridge->breaker(), e.action == FaultAction::kBridgeDown);
      return "";
  }
  return "";
}

// The injector thread: sleeps until each event is due and applies it; ends early on a stop.
void inject(const ScenarioPlan& plan, SteadyTime::time_point start, StopFlag& stop, Targets& t,
            FaultState& f) {
  FaultSchedule schedule(plan.events);
  while (auto next = schedule.next_due()) {
    if (!stop.sleep_until(start + *next)) return;
    Duration now = SteadyTime::now() - start;
    for (const FaultEvent& e : schedule.take_due(now)) {
      std::string what = apply(e, t, f);
      f.applied.push_back({{"action", fault_action_name(e.action)},
                           {"planned_s", std::chrono::duration<double>(e.at).count()},
                           {"applied_s", std::chrono::duration<double>(now).count()},
                           {"detail", what}});
    }
  }
}

}  // namespace

Result<ScenarioOutcome> run_scenario(const ScenarioOptions& o, Pool& pool, StopFlag& stop,
                                     const std::atomic<bool>& shutdown_begun) {
  Targets targets{pool, nullptr, nullptr, nullptr};
  if (auto ready = prepare(o.plan, targets); !ready) return tl::unexpected(ready.error());
  SendSchedule schedule(o.rate, o.plan.duration);
  std::vector<SlotRecord> records(schedule.size());
  FaultState faults;
  const auto start = SteadyTime::now() + kLeadIn;
  OpenLoopCall call = [&](std::size_t slot) -> SendOutcome {
    SlotRecord& rec = records[slot];  // one sender per slot: no lock
    rec.sent = SteadyTime::now() - start;
    send_one(o, targets, faults, slot, rec);
    rec.completed = SteadyTime::now() - start;
    rec.cut_off = !rec.ok && !rec.refused && shutdown_begun.load();
    rec.done = !rec.cut_off;
    return {rec.ok ? std::string() : rec.category, rec.cut_off};
  };
  std::thread injector([&] { inject(o.plan, start, stop, targets, faults); });
  OpenLoopProgress progress;
  OpenLoopTally tally = run_open_loop(schedule, o.senders, call, progress, &stop, start);
  injector.join();
  ScenarioInputs in{
      o.plan, schedule, records, pool.stats(), std::move(faults.applied), pool.config().size};
  if (targets.bridge) targets.bridge->shutdown();
  ScenarioOutcome out = analyse_scenario(in);
  out.report = tally.report(schedule.size());
  return out;
}

}  // namespace bridgepool::cli
