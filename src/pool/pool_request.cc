// The request path: validation, one attempt on a checked-out worker (and the worker's checkin by
// RecoveryPolicy), sessionless attempts with re-routing, and the accounting of a whole call.
// Runs on the caller's thread (SPEC §1: the borrower does the worker's I/O itself).
#include <algorithm>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "base/utf8.h"
#include "pool/pool_impl.h"
#include "pool/request_validation.h"

namespace bridgepool {

bool Pool::Impl::is_idempotent(std::string_view command) const {
  auto table = command_table.load();
  if (!table) return false;
  auto it = table->idempotent.find(std::string(command));
  return it != table->idempotent.end() && it->second;
}

void Pool::Impl::count_error(const Error& e) {
  counters.errors_by_category[static_cast<std::size_t>(e.category)].fetch_add(
      1, std::memory_order_relaxed);
}

Result<void> Pool::Impl::validate(std::optional<std::string_view> session, std::string_view command,
                                  const Json& args, const ExecuteOptions& options) const {
  if (auto valid = validate_request(session, command, args); !valid) return valid;
  if (auto valid = validate_options(options); !valid) return valid;
  // Unknown commands are refused here, before any worker is touched (SPEC §11.4).
  auto table = command_table.load();
  if (!table || table->idempotent.contains(std::string(command))) return {};
  std::vector<std::string> names;
  for (const auto& c : table->commands) names.push_back(c.name);
  std::sort(names.begin(), names.end());
  return tl::unexpected(unknown_command_error(command, names));
}

Pool::Impl::Attempt Pool::Impl::attempt_on(const WorkerPtr& w, wire::Request& request,
                                           TimePoint deadline, const ChunkCallback& on_chunk,
                                           bool close) {
  const wire::PreparedRequest prepared = wire::prepare_request(request);
  Sending sending(prepared, deadline);
  send_attempt(w, sending);
  return finish_attempt(w, sending, request, on_chunk, close);
}

void Pool::Impl::send_attempt(const WorkerPtr& w, Sending& sending) {
  sending.done = true;
  std::optional<std::string> unusable = w->check_usable();
  if (!unusable && !telemetry.transit(*w, WorkerState::kBusy, TransitionReason::kCheckout)) {
    unusable = "it is no longer in service";
  }
  if (unusable) {
    counters.discarded.fetch_add(1, std::memory_order_relaxed);
    Error e(ErrorCategory::kConnection,
            fmt::format("worker {} was unusable at checkout: {}", w->id(), *unusable));
    e.context.worker_id = w->id();
    sending.failed = CallOutcome{tl::unexpected(std::move(e)), WorkerFault::kNotDelivered, {}};
    // A process still alive whose stream holds data nobody asked for cannot be trusted.
    sending.kind =
        w->process().has_exited() ? FailureKind::kNotDelivered : FailureKind::kProtocolViolation;
    return;
  }
  auto remaining =
      std::chrono::duration_cast<std::chrono::milliseconds>(sending.deadline - clock.now());
  sending.failed = w->send(*sending.request, std::max<std::int64_t>(0, remaining.count()),
                           sending.deadline, sending.id);
  if (sending.failed) sending.kind = failure_kind_of(sending.failed->fault);
}

Pool::Impl::Attempt Pool::Impl::finish_attempt(const WorkerPtr& w, Sending& sending,
                                               wire::Request& request,
                                               const ChunkCallback& on_chunk, bool close) {
  request.id = sending.id;
  CallOutcome outcome =
      sending.failed ? std::move(*sending.failed)
                     : w->receive(sending.id, sending.deadline, on_chunk, sending.request->command);
  // What the failure means for the worker; the request's fault says whether it may have run.
  const FailureKind kind = sending.failed ? sending.kind : failure_kind_of(outcome.fault);
  if (outcome.fault == WorkerFault::kNone) {
    // Success, or a Python exception reported in a normal reply: the round trip worked
    // (RecoveryPolicy: kPythonException keeps the worker) — unless the handler said its worker
    // is no longer trustworthy, which is a checkin error.
    if (outcome.unhealthy) {
      checkin_error(w, *outcome.unhealthy, request);
    } else if (close) {
      w->reset_failures();
      checkin_remove(w, TransitionReason::kClosed, false, "checked in with close by the caller");
    } else {
      checkin_ok(w);
    }
    return Attempt{std::move(outcome.result), WorkerFault::kNone};
  }
  // Every worker-level failure goes through the one recovery policy (SPEC §4).
  worker_failed(
      w, kind, 1,
      outcome.result ? std::string("data after the reply") : outcome.result.error().message, true);
  return Attempt{std::move(outcome.result), outcome.fault};
}

void Pool::Impl::checkin_error(const WorkerPtr& w, const std::string& marked,
                               const wire::Request& request) {
  // The runtime caps reasons at 1,024 characters; a worker that does not is cut here, so one
  // reply cannot flood the log (at a character boundary: the text is valid UTF-8).
  const std::string reason(valid_utf8_prefix(std::string_view(marked).substr(0, 4096)));
  counters.checkin_errors.fetch_add(1, std::memory_order_relaxed);
  const auto failures = static_cast<std::uint32_t>(w->increment_failures());
  FailureReport report;
  report.kind = FailureKind::kCheckinError;
  report.consecutive_failures = failures;
  const RecoveryDecision decision = recovery.decide(report);
  telemetry.log(
      LogLevel::kWarn,
      fmt::format("handler marked the worker unhealthy: {} ({})", reason, decision.reason), w->id(),
      valid_utf8_prefix(request.session_id.value_or("")), request.id);
  telemetry.emit(EventId::kWorkerCheckinError, {{"failures", double(failures)}},
                 {{"worker_id", w->id()},
                  {"reason", reason},
                  {"action", std::string(worker_action_name(decision.worker))}});
  if (decision.removes_worker()) counters.recycled.fetch_add(1, std::memory_order_relaxed);
  worker_failed(w, FailureKind::kCheckinError, failures,
                decision.removes_worker()
                    ? fmt::format("{} checkin errors in a row, the last: {}", failures, reason)
                    : reason,
                true);
}

void Pool::Impl::log_call_end(const Result<Json>& result, std::string_view command,
                              std::string_view session, std::string_view worker_id,
                              std::uint64_t request_id, std::chrono::microseconds elapsed) const {
  // Failures at info, successes at debug: a log at info shows what went wrong, and with which
  // ids, without one line per successful call.
  const LogLevel level = result ? LogLevel::kDebug : LogLevel::kInfo;
  if (!config.logger->enabled(level)) return;
  const std::string outcome = result ? std::string("ok") : result.error().to_string();
  std::string_view worker = worker_id;
  if (!result && worker.empty()) worker = result.error().context.worker_id;
  telemetry.log(level,
                fmt::format("call '{}' ended in {} us: {}", command, elapsed.count(), outcome),
                worker, session, request_id);
}

PoolResilience::Once Pool::Impl::run_once(wire::Request& request, TimePoint checkout_deadline,
                                          TimePoint deadline, const ExecuteOptions& options,
                                          const std::string& avoid_worker, Duration& queue_wait,
                                          const wire::PreparedRequest* prepared_request) {
  // A worker found dead before it read the request is replaced and the request goes to another
  // one at once (it never ran: always safe, and not a retry); bounded so a pool whose workers
  // all die on arrival still answers.
  const std::size_t max_reroutes = config.size + config.max_overflow + 2;
  std::string avoid = avoid_worker;
  std::optional<wire::PreparedRequest> own;
  if (!prepared_request) own = wire::prepare_request(request);
  const wire::PreparedRequest& prepared = prepared_request ? *prepared_request : *own;
  const bool may_hand_off = wire::payload_bytes(prepared) <= kHandoffMaxBytes;
  for (std::size_t reroute = 1;; ++reroute) {
    Sending sending(prepared, deadline);
    // If this call has to wait, the caller that frees a worker sends the request for it.
    const WorkerRegistry::Handoff handoff = [this, &sending](const WorkerPtr& w) {
      send_attempt(w, sending);
    };
    const TimePoint checkout_start = clock.now();
    auto worker = registry.checkout(checkout_deadline, avoid, may_hand_off ? &handoff : nullptr);
    queue_wait += clock.now() - checkout_start;
    PoolResilience::Once once;
    if (!worker) {
      once.no_time_left = worker.error().category == ErrorCategory::kTimeout;
      once.refused_by_pool = capacity.closed();
      once.result = tl::unexpected(std::move(worker.error()));
      return once;
    }
    once.worker_id = (*worker)->id();
    if (!sending.done) send_attempt(*worker, sending);
    Attempt a = finish_attempt(*worker, sending, request, options.on_chunk, options.close_worker);
    if (a.fault == WorkerFault::kNotDelivered && reroute < max_reroutes && !capacity.closed()) {
      counters.rerouted.fetch_add(1, std::memory_order_relaxed);
      avoid.clear();
      continue;
    }
    once.result = std::move(a.result);
    once.may_have_run = a.fault != WorkerFault::kNotDelivered;
    once.killed_worker = ends_worker(a.fault);
    return once;
  }
}

Result<Json> Pool::Impl::execute(std::optional<std::string_view> session, std::string_view command,
                                 Json args, const ExecuteOptions& options) {
  const TimePoint started_at = clock.now();
  if (options.report) *options.report = CallReport{kind, "", 0, {}};
  Duration queue_wait{0};
  std::uint32_t attempts = 0;
  std::string served_by;
  std::uint64_t request_id = 0;  // the wire id of the last attempt, once one was sent
  // What logs, events and metrics may say about the command (it may be the input refused here).
  const std::string command_label = bridgepool::command_label(command);
  const std::string session_text = session ? session_label(*session) : std::string();
  auto finish = [&](Result<Json> result) {
    auto elapsed = std::chrono::duration_cast<std::chrono::microseconds>(clock.now() - started_at);
    if (result) {
      counters.ok.fetch_add(1, std::memory_order_relaxed);
    } else {
      Error& e = result.error();
      e.context.command = command_label;
      if (session) e.context.session_id = session_text;
      e.context.elapsed = elapsed;
      e.context.queue_wait = std::chrono::duration_cast<std::chrono::microseconds>(queue_wait);
      e.context.pool_name = config.name;
      if (e.context.adapter.empty()) e.context.adapter = kind;
      if (e.context.operation.empty())
        e.context.operation = session ? "execute_in_session" : "execute";
      count_error(e);
    }
    log_call_end(result, command_label, session_text, served_by, request_id, elapsed);
    const double queue_wait_us =
        double(std::chrono::duration_cast<std::chrono::microseconds>(queue_wait).count());
    telemetry.observe_call(
        CallObservation{{},
                        command_label,
                        result ? "ok" : category_name(result.error().category),
                        result ? std::string_view() : severity_name(result.error().severity),
                        double(elapsed.count()),
                        queue_wait_us,
                        attempts});
    if (telemetry.emitting(EventId::kRequest)) {
      telemetry.emit(
          EventId::kRequest,
          {{"duration_us", double(elapsed.count())},
           {"queue_wait_us", queue_wait_us},
           {"attempts", double(attempts)}},
          result ? std::map<std::string, std::string>{{"command", command_label}, {"result", "ok"}}
                 : std::map<std::string, std::string>{
                       {"command", command_label},
                       {"result", std::string(category_name(result.error().category))},
                       {"severity", std::string(severity_name(result.error().severity))}});
    }
    return result;
  };
  auto refuse = [&](Error e) {
    classify_error(e, ClassifyInput{});
    return finish(tl::unexpected(std::move(e)));
  };
  if (auto valid = validate(session, command, args, options); !valid) {
    return refuse(std::move(valid.error()));
  }
  // After shutdown nothing is attempted: no breaker permit, no retry budget, no worker.
  if (capacity.closed())
    return refuse(shutting_down_error(session ? "execute_in_session" : "execute"));
  counters.requests.fetch_add(1, std::memory_order_relaxed);
  const TimePoint deadline =
      deadline_after(started_at, options.timeout.value_or(config.request_timeout));
  const TimePoint checkout_deadline = std::min(
      deadline,
      deadline_after(started_at, options.checkout_timeout.value_or(config.checkout_timeout)));
  if (args.is_null()) args = Json::object();  // `execute("ping", {})`: no arguments
  wire::Request request{0, std::string(command), std::move(args),
                        session ? std::optional<std::string>(*session) : std::nullopt,
                        std::nullopt};
  // Everything an attempt needs, behind one pointer: the std::function below then stores its
  // callable in place (no allocation on the request path).
  struct Call {
    std::optional<std::string_view> session;
    wire::Request& request;
    const ExecuteOptions& options;
    TimePoint checkout_deadline, deadline;
    Duration& queue_wait;
  } call{session, request, options, checkout_deadline, deadline, queue_wait};
  PoolResilience::OnceFn once = [this, &call](std::uint32_t, const std::string& avoid) {
    // A session's calls go to its own worker, so a retry goes there too (no avoid); a session
    // whose worker died fails with session_lost, which the classifier never retries.
    if (call.session) {
      return run_session_once(*call.session, call.request, call.options, call.checkout_deadline,
                              call.deadline, call.queue_wait);
    }
    return run_once(call.request, call.checkout_deadline, call.deadline, call.options, avoid,
                    call.queue_wait);
  };
  PoolResilience::Facts facts;
  facts.idempotent = is_idempotent(command);
  facts.all_down = [this] { return capacity.all_down(); };
  facts.stopping = [this] { return capacity.closed(); };
  Result<Json> result =
      resilience.run(command, request.args, options, deadline, facts, once, attempts, served_by);
  request_id = request.id;
  if (options.report) {
    options.report->worker_id = served_by;
    options.report->attempts = attempts;
    options.report->queue_wait = std::chrono::duration_cast<std::chrono::microseconds>(queue_wait);
  }
  return finish(std::move(result));
}

}  // namespace bridgepool
