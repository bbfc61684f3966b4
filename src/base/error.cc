// Error: category names and the two textual forms of an Error (one log line, one log block).
//
// The names are part of the library's stable surface: they appear in JSON replies of the server,
// in metric labels and in logs, so they never change once published.
#include "bridgepool/error.h"

#include <array>
#include <iterator>
#include <utility>

#include <fmt/format.h>

namespace bridgepool {
namespace {

constexpr std::array<std::pair<ErrorCategory, std::string_view>, 11> kCategoryNames = {{
    {ErrorCategory::kInitialization, "initialization"},
    {ErrorCategory::kConnection, "connection"},
    {ErrorCategory::kCommunication, "communication"},
    {ErrorCategory::kTimeout, "timeout"},
    {ErrorCategory::kResource, "resource"},
    {ErrorCategory::kHealthCheck, "health_check"},
    {ErrorCategory::kSession, "session"},
    {ErrorCategory::kPython, "python"},
    {ErrorCategory::kCircuitOpen, "circuit_open"},
    {ErrorCategory::kSystem, "system"},
    {ErrorCategory::kInvalidRequest, "invalid_request"},
}};

constexpr std::array<std::pair<ErrorSeverity, std::string_view>, 4> kSeverityNames = {{
    {ErrorSeverity::kWarning, "warning"},
    {ErrorSeverity::kMinor, "minor"},
    {ErrorSeverity::kMajor, "major"},
    {ErrorSeverity::kCritical, "critical"},
}};

constexpr std::array<std::pair<RecoveryStrategy, std::string_view>, 5> kStrategyNames = {{
    {RecoveryStrategy::kImmediateRetry, "immediate_retry"},
    {RecoveryStrategy::kBackoffRetry, "backoff_retry"},
    {RecoveryStrategy::kCircuitBreak, "circuit_break"},
    {RecoveryStrategy::kFailover, "failover"},
    {RecoveryStrategy::kAbandon, "abandon"},
}};

template <typename Enum, std::size_t N>
std::string_view name_of(const std::array<std::pair<Enum, std::string_view>, N>& table,
                         Enum value) {
  for (const auto& [v, name] : table) {
    if (v == value) return name;
  }
  return "unknown";
}

template <typename Enum, std::size_t N>
std::optional<Enum> value_of(const std::array<std::pair<Enum, std::string_view>, N>& table,
                             std::string_view name) {
  for (const auto& [v, known] : table) {
    if (known == name) return v;
  }
  return std::nullopt;
}

// Appends " key=value" (or "key=value" first) to a bracketed field list being built.
void append_field(std::string& fields, std::string_view key, std::string_view value) {
  if (!fields.empty()) fields += ' ';
  fmt::format_to(std::back_inserter(fields), "{}={}", key, value);
}

// Empty context strings read as "-" in the logging block so every line has a value.
std::string_view or_dash(const std::string& value) {
  return value.empty() ? std::string_view("-") : std::string_view(value);
}

// Indents every line of a multi-line text (a traceback) so it stays inside its block.
void append_indented(std::string& out, std::string_view text) {
  while (!text.empty()) {
    std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    fmt::format_to(std::back_inserter(out), "\n    {}", line);
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
}

}  // namespace

std::string_view category_name(ErrorCategory category) { return name_of(kCategoryNames, category); }
std::optional<ErrorCategory> category_from_name(std::string_view name) {
  return value_of(kCategoryNames, name);
}
std::string_view severity_name(ErrorSeverity severity) { return name_of(kSeverityNames, severity); }
std::optional<ErrorSeverity> severity_from_name(std::string_view name) {
  return value_of(kSeverityNames, name);
}
std::string_view strategy_name(RecoveryStrategy strategy) {
  return name_of(kStrategyNames, strategy);
}
std::optional<RecoveryStrategy> strategy_from_name(std::string_view name) {
  return value_of(kStrategyNames, name);
}

std::uint32_t attempt_budget(RecoveryStrategy strategy) {
  switch (strategy) {
    case RecoveryStrategy::kImmediateRetry:
      return 3;
    case RecoveryStrategy::kBackoffRetry:
      return 5;
    case RecoveryStrategy::kFailover:
      return 2;  // the original attempt + one on the next adapter
    case RecoveryStrategy::kCircuitBreak:
    case RecoveryStrategy::kAbandon:
      return 1;
  }
  return 1;
}

void Error::append_cause(std::string_view note) {
  context.cause =
      context.cause.empty() ? std::string(note) : fmt::format("{}; {}", context.cause, note);
}

std::string Error::to_string() const {
  // Only fields that carry information are listed, so a bare error stays a short line. attempt
  // is listed from the second attempt on: "attempt=1" on every line would be noise.
  std::string fields;
  if (!context.command.empty()) append_field(fields, "command", context.command);
  if (!context.worker_id.empty()) append_field(fields, "worker", context.worker_id);
  if (!context.session_id.empty()) append_field(fields, "session", context.session_id);
  if (context.attempt > 1) append_field(fields, "attempt", std::to_string(context.attempt));
  if (context.elapsed.count() > 0) {
    append_field(fields, "elapsed_us", std::to_string(context.elapsed.count()));
  }
  if (context.queue_wait.count() > 0) {
    append_field(fields, "queue_wait_us", std::to_string(context.queue_wait.count()));
  }
  if (!context.cause.empty()) append_field(fields, "cause", context.cause);

  std::string out = fmt::format("{}: {}", category_name(category), message);
  if (!fields.empty()) fmt::format_to(std::back_inserter(out), " [{}]", fields);
  return out;
}

std::string Error::format_for_logging() const {
  // Keys padded to one column (the longest, "queue_wait_us:", plus a space) so values line up.
  std::string out;
  auto line = [&out](std::string_view key, auto&& value) {
    fmt::format_to(std::back_inserter(out), "{}{:<15}{}", out.empty() ? "" : "\n",
                   fmt::format("{}:", key), value);
  };
  line("error", category_name(category));
  line("message", message);
  line("severity", severity_name(severity));
  line("strategy", strategy_name(strategy));
  line("operation", or_dash(context.operation));
  line("command", or_dash(context.command));
  line("session", or_dash(context.session_id));
  line("worker", or_dash(context.worker_id));
  line("pool", or_dash(context.pool_name));
  line("adapter", or_dash(context.adapter));
  line("attempt", context.attempt);
  line("elapsed_us", context.elapsed.count());
  line("queue_wait_us", context.queue_wait.count());
  line("cause", or_dash(context.cause));
  if (python) {
    line("python_type", or_dash(python->type));
    line("retryable", python->retryable ? (*python->retryable ? "true" : "false") : "unknown");
    if (!python->traceback.empty()) {
      out += "\ntraceback:";
      append_indented(out, python->traceback);
    }
  }
  return out;
}

}  // namespace bridgepool
