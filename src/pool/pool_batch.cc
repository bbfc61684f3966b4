// Batches (Pool::execute_many): the items of one call go to the workers in chunks, one batch
// request per chunk (python/bridgepool_worker/batch.py answers it in parts). The calling thread
// and up to size - 1 helper lanes on the execute_async threads each take the next chunk until
// none is left, so a single caller keeps every worker busy. Each chunk is one call through the
// resilience layer (breaker, retry budget, quarantine, retries) whose attempts send only the
// items not answered yet: a worker lost mid-chunk costs the items it had not reported, retried
// on another worker when the command is idempotent, failed with the worker's error when not.
#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <utility>

#include <fmt/format.h>

#include "pool/pool_impl.h"
#include "pool/request_validation.h"

namespace bridgepool {
namespace {

constexpr std::size_t kMaxChunkItems = 512;

// Items per chunk: `asked`, or an even share for each lane (a chunk costs a round trip and a
// few wake-ups, ~50-100 us: measured, 64-item chunks carry 380k items/s where 16-item ones
// carry 180k, so chunks are no smaller than they need to be to keep the lanes busy).
std::size_t chunk_size_for(std::size_t items, std::size_t lanes, std::size_t asked) {
  if (asked > 0) return asked;
  lanes = std::max<std::size_t>(lanes, 1);
  return std::clamp<std::size_t>((items + lanes - 1) / lanes, 1, kMaxChunkItems);
}

}  // namespace

// One execute_many call, shared with its helper lanes. A lane that starts after every chunk was
// taken only looks and leaves, which is why this lives behind a shared_ptr.
struct BatchRun {
  std::string command;
  std::string command_label;
  std::string pool_name;
  std::string adapter;     // "pool" or "bridge"
  ExecuteOptions options;  // without `report` (the caller's, filled at the end)
  TimePoint deadline{};
  TimePoint checkout_deadline{};
  bool idempotent = false;
  std::vector<Json> chunk_args;                       // per chunk: its items' args, an array
  std::vector<std::vector<std::size_t>> chunk_items;  // per chunk: the items' indices
  std::vector<std::string> texts;  // per item: its args' JSON, encoded once for every attempt
  std::vector<std::optional<Result<Json>>> results;  // per item; a chunk's lane writes its own

  std::mutex mu;
  std::condition_variable cv;
  std::size_t next = 0;        // guarded by mu: the next chunk to take
  std::size_t running = 0;     // guarded by mu: chunks taken and not finished
  std::uint32_t attempts = 0;  // guarded by mu: the most any chunk needed
  std::string last_worker;     // guarded by mu
  Duration queue_wait{0};      // guarded by mu: all chunks' waits for a worker

  // What every error of the call says about where it came from.
  void label(Error& e) const {
    e.context.command = command_label;
    e.context.operation = "execute_many";
    e.context.pool_name = pool_name;
    if (e.context.adapter.empty()) e.context.adapter = adapter;
  }

  std::optional<std::size_t> take() {
    std::lock_guard lock(mu);
    if (next == chunk_items.size()) return std::nullopt;
    ++running;
    return next++;
  }
  void finished(std::uint32_t chunk_attempts, const std::string& worker, Duration waited) {
    std::lock_guard lock(mu);
    --running;
    attempts = std::max(attempts, chunk_attempts);
    if (!worker.empty()) last_worker = worker;
    queue_wait += waited;
    cv.notify_all();
  }
  void wait_all() {
    std::unique_lock lock(mu);
    cv.wait(lock, [this] { return next == chunk_items.size() && running == 0; });
  }
};

std::vector<Result<Json>> Pool::Impl::execute_many(std::string_view command,
                                                   std::vector<Json> items,
                                                   const ExecuteOptions& options) {
  const TimePoint started_at = clock.now();
  if (options.report) *options.report = CallReport{kind, "", 0, {}};
  auto run = std::make_shared<BatchRun>();
  run->command = std::string(command);
  run->command_label = bridgepool::command_label(command);
  run->pool_name = config.name;
  run->adapter = kind;
  run->results.resize(items.size());
  auto fail_item = [&](std::size_t i, Error e) {
    run->label(e);
    classify_error(e, ClassifyInput{});
    count_error(e);
    run->results[i] = tl::unexpected(std::move(e));
  };
  // The command and the options once, each item's arguments on their own (a bad item fails
  // alone and is never sent); after shutdown nothing is attempted.
  Result<void> whole = validate(std::nullopt, command, Json::object(), options);
  if (whole && capacity.closed()) whole = tl::unexpected(shutting_down_error("execute_many"));
  std::vector<std::size_t> valid;
  valid.reserve(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (!whole) {
      fail_item(i, whole.error());
      continue;
    }
    if (items[i].is_null()) items[i] = Json::object();
    if (auto ok = validate_request(std::nullopt, command, items[i], BinaryValues::kRefused); !ok) {
      fail_item(i, std::move(ok.error()));
      continue;
    }
    valid.push_back(i);
  }

  run->options = options;
  run->options.report = nullptr;
  run->deadline = deadline_after(started_at, options.timeout.value_or(config.request_timeout));
  run->checkout_deadline = std::min(
      run->deadline,
      deadline_after(started_at, options.checkout_timeout.value_or(config.checkout_timeout)));
  run->idempotent = is_idempotent(command);
  // As many lanes as workers are idle now (at least one: this thread): callers that already keep
  // every worker busy send their batch as whole chunks, a lone caller spreads it.
  const std::size_t idle_lanes = std::clamp<std::size_t>(registry.counts().idle, 1, config.size);
  const std::size_t per_chunk = chunk_size_for(valid.size(), idle_lanes, options.batch_chunk);
  // Chunks of per_chunk items, cut earlier where the next item would not fit in a frame (an item
  // that fits in none fails alone).
  const std::size_t overhead = wire::batch_request_overhead(command);
  const std::size_t frame_room =
      config.max_frame_bytes > overhead ? config.max_frame_bytes - overhead : 0;
  run->texts.resize(items.size());
  Json args = Json::array();
  std::vector<std::size_t> indices;
  std::size_t bytes = 0;
  auto close_chunk = [&] {
    if (indices.empty()) return;
    run->chunk_args.push_back(std::exchange(args, Json::array()));
    run->chunk_items.push_back(std::exchange(indices, {}));
    bytes = 0;
  };
  std::size_t too_large = 0;
  for (std::size_t i : valid) {
    std::string& text = run->texts[i];
    wire::append_args_json(text, items[i]);
    if (text.size() + 1 > frame_room) {
      fail_item(i, Error(ErrorCategory::kInvalidRequest,
                         fmt::format("item {} encodes to {} bytes, more than fits in a frame "
                                     "(max_frame_bytes {})",
                                     i, text.size(), config.max_frame_bytes)));
      ++too_large;
      continue;
    }
    if (indices.size() == per_chunk || bytes + text.size() + 1 > frame_room) close_chunk();
    bytes += text.size() + 1;
    args.push_back(std::move(items[i]));
    indices.push_back(i);
  }
  close_chunk();
  counters.requests.fetch_add(valid.size() - too_large, std::memory_order_relaxed);

  // Helper lanes besides this thread.
  const std::size_t lanes = std::min(run->chunk_items.size(), idle_lanes);
  if (lanes > 1) {
    if (auto threads = async_executor()) {
      for (std::size_t l = 1; l < lanes; ++l) {
        threads->submit([this, run] {
          while (auto c = run->take()) run_chunk(*run, *c);
        });
      }
    }
  }
  while (auto c = run->take()) run_chunk(*run, *c);
  run->wait_all();

  std::vector<Result<Json>> out;
  out.reserve(run->results.size());
  std::size_t ok = 0;
  for (auto& r : run->results) {
    ok += r && r->has_value();
    out.push_back(r ? std::move(*r)
                    : Result<Json>(tl::unexpected(
                          Error(ErrorCategory::kSystem, "batch item left unanswered"))));
  }
  counters.ok.fetch_add(ok, std::memory_order_relaxed);
  if (options.report) {
    std::lock_guard lock(run->mu);
    options.report->worker_id = run->last_worker;
    options.report->attempts = run->attempts;
    options.report->queue_wait =
        std::chrono::duration_cast<std::chrono::microseconds>(run->queue_wait);
  }
  return out;
}

void Pool::Impl::run_chunk(BatchRun& run, std::size_t chunk) {
  const TimePoint started_at = clock.now();
  const Json& args = run.chunk_args[chunk];
  const std::vector<std::size_t>& items = run.chunk_items[chunk];
  std::vector<bool> answered(items.size(), false);
  std::size_t answered_count = 0;
  std::vector<std::size_t> sent;        // positions in the chunk, in the request's order
  std::vector<std::size_t> errors_now;  // positions failed by the worker in this attempt
  Duration queue_wait{0};
  auto apply = [&](Json value) -> Result<void> {
    auto part = wire::decode_batch_part(std::move(value), sent.size());
    if (!part) return tl::unexpected(std::move(part.error()));
    std::size_t e = 0;
    for (std::size_t k = 0; k < part->results.size(); ++k) {
      const std::size_t index = part->from + k;
      const std::size_t pos = sent[index];
      if (answered[pos]) continue;  // already reported (a worker does not, but never twice)
      answered[pos] = true;
      ++answered_count;
      while (e < part->errors.size() && part->errors[e].index < index) ++e;
      if (e < part->errors.size() && part->errors[e].index == index) {
        Error error = python_reply_error(part->errors[e].error, run.command_label, "");
        run.label(error);
        classify_error(error, ClassifyInput{});
        run.results[items[pos]] = tl::unexpected(std::move(error));
        errors_now.push_back(pos);
      } else {
        run.results[items[pos]] = std::move(part->results[k]);
      }
    }
    return {};
  };
  ExecuteOptions attempt_options = run.options;
  attempt_options.on_chunk = [&](const Json& value) {
    // An intermediate part; a malformed one is ignored here and its items stay unanswered
    // (the final reply decides the attempt).
    (void)apply(value);
  };
  PoolResilience::OnceFn once = [&](std::uint32_t, const std::string& avoid) {
    sent.clear();
    errors_now.clear();
    std::vector<std::string_view> pending;
    for (std::size_t pos = 0; pos < items.size(); ++pos) {
      if (answered[pos]) continue;
      sent.push_back(pos);
      pending.push_back(run.texts[items[pos]]);
    }
    const wire::PreparedRequest prepared = wire::prepare_batch_request(run.command, pending);
    wire::Request request{0, run.command, Json(), std::nullopt, std::nullopt};
    PoolResilience::Once o = run_once(request, run.checkout_deadline, run.deadline, attempt_options,
                                      avoid, queue_wait, &prepared);
    if (o.result) {
      if (auto applied = apply(std::move(*o.result)); !applied) {
        o.result = tl::unexpected(std::move(applied.error()));
      } else if (answered_count < items.size()) {
        o.result =
            tl::unexpected(Error(ErrorCategory::kCommunication,
                                 fmt::format("worker {} answered {} of the {} items of a batch",
                                             o.worker_id, answered_count, items.size())));
      } else {
        o.result = Json();
      }
    }
    for (std::size_t pos : errors_now) {
      run.results[items[pos]]->error().context.worker_id = o.worker_id;
    }
    return o;
  };
  PoolResilience::Facts facts;
  facts.idempotent = run.idempotent;
  facts.all_down = [this] { return capacity.all_down(); };
  facts.stopping = [this] { return capacity.closed(); };
  std::uint32_t attempts = 0;
  std::string served_by;
  Result<Json> result = resilience.run(run.command, args, run.options, run.deadline, facts, once,
                                       attempts, served_by);
  const auto elapsed =
      std::chrono::duration_cast<std::chrono::microseconds>(clock.now() - started_at);
  if (!result) {
    // What the chunk's last attempt could not deliver fails with its error.
    Error& e = result.error();
    run.label(e);
    e.context.elapsed = elapsed;
    for (std::size_t pos = 0; pos < items.size(); ++pos) {
      if (!answered[pos]) run.results[items[pos]] = tl::unexpected(e);
    }
  }
  for (std::size_t pos = 0; pos < items.size(); ++pos) {
    if (run.results[items[pos]] && !run.results[items[pos]]->has_value()) {
      count_error(run.results[items[pos]]->error());
    }
  }
  log_call_end(result, run.command_label, "", served_by, 0, elapsed);
  const double queue_wait_us =
      double(std::chrono::duration_cast<std::chrono::microseconds>(queue_wait).count());
  telemetry.observe_call(
      CallObservation{{},
                      run.command_label,
                      result ? "ok" : category_name(result.error().category),
                      result ? std::string_view() : severity_name(result.error().severity),
                      double(elapsed.count()),
                      queue_wait_us,
                      attempts});
  run.finished(attempts, served_by, queue_wait);
}

}  // namespace bridgepool
