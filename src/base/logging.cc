#include "bridgepool/logging.h"

#include <cstdio>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace bridgepool {

std::string_view level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
    case LogLevel::kOff:
      return "off";
  }
  return "info";
}

LogLevel level_from_name(std::string_view name, bool* ok) {
  if (ok) *ok = true;
  for (LogLevel l :
       {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn, LogLevel::kError, LogLevel::kOff}) {
    if (level_name(l) == name) return l;
  }
  if (ok) *ok = false;
  return LogLevel::kInfo;
}

Logger::Logger(LogLevel min_level, Format format) : min_level_(min_level) {
  sink_ = [format](const LogRecord& r) {
    std::string line = format == Format::kText ? format_text(r) : format_json(r);
    line.push_back('\n');
    std::fwrite(line.data(), 1, line.size(), stderr);
  };
}

Logger::Logger(LogLevel min_level, Sink sink) : min_level_(min_level), sink_(std::move(sink)) {}

void Logger::log(LogRecord record) {
  if (!enabled(record.level)) return;
  if (record.time.time_since_epoch().count() == 0) record.time = std::chrono::system_clock::now();
  std::lock_guard lock(mu_);
  sink_(record);
}

void Logger::log(LogLevel level, std::string_view component, std::string message,
                 std::string_view worker_id) {
  if (!enabled(level)) return;
  LogRecord r;
  r.level = level;
  r.component = component;
  r.message = std::move(message);
  r.worker_id = worker_id;
  log(std::move(r));
}

std::string format_rfc3339(std::chrono::system_clock::time_point time) {
  const auto ms = std::chrono::floor<std::chrono::milliseconds>(time);
  const auto secs = std::chrono::floor<std::chrono::seconds>(ms);
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03d}Z", secs, static_cast<int>((ms - secs).count()));
}

std::string Logger::format_text(const LogRecord& r) {
  std::string out =
      fmt::format("{} {:5} [{}]", format_rfc3339(r.time), level_name(r.level), r.component);
  if (!r.pool.empty() || !r.worker_id.empty()) {
    out += fmt::format(" [{}{}{}]", r.pool, !r.pool.empty() && !r.worker_id.empty() ? "/" : "",
                       r.worker_id);
  }
  if (!r.session_id.empty()) out += fmt::format(" session={}", r.session_id);
  if (r.request_id != 0) out += fmt::format(" request={}", r.request_id);
  out += ' ';
  out += r.message;
  return out;
}

std::string Logger::format_json(const LogRecord& r) {
  nlohmann::json j = {
      {"time", format_rfc3339(r.time)},
      {"time_ms",
       std::chrono::duration_cast<std::chrono::milliseconds>(r.time.time_since_epoch()).count()},
      {"level", level_name(r.level)},
      {"component", r.component},
      {"message", r.message}};
  if (!r.pool.empty()) j["pool"] = r.pool;
  if (!r.worker_id.empty()) j["worker_id"] = r.worker_id;
  if (!r.session_id.empty()) j["session_id"] = r.session_id;
  if (r.request_id != 0) j["request_id"] = r.request_id;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace bridgepool
