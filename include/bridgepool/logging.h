// Logger: small structured logger with a pluggable sink.
//
// Components log through a Logger handed to them in their configuration (no global logger), so
// a test can capture exactly what one pool wrote. Records carry the fields SPEC §7 asks for
// (pool, component, worker id, session id, request id). The default sink writes one line per record
// to stderr, as text or as JSON lines. Thread-safe: log() may be called from any thread; the sink
// is called under the logger's mutex, so sinks need no locking of their own.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace bridgepool {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

std::string_view level_name(LogLevel level);
// "debug" | "info" | "warn" | "error" | "off"; anything else -> kInfo and ok=false.
LogLevel level_from_name(std::string_view name, bool* ok = nullptr);

struct LogRecord {
  LogLevel level = LogLevel::kInfo;
  std::chrono::system_clock::time_point time;
  std::string pool;       // the pool's name, "" outside a pool
  std::string component;  // "pool", "worker", "worker.stdout", ...
  std::string message;
  std::string worker_id;
  std::string session_id;
  std::uint64_t request_id = 0;  // the wire request id (per worker: read with worker_id)
};

// RFC 3339 UTC time with milliseconds: "2026-01-01T00:00:00.250Z".
std::string format_rfc3339(std::chrono::system_clock::time_point time);

class Logger {
 public:
  using Sink = std::function<void(const LogRecord&)>;
  enum class Format { kText, kJsonLines };

  // Writes to stderr at `min_level` and above.
  explicit Logger(LogLevel min_level = LogLevel::kWarn, Format format = Format::kText);
  // Sends every record at `min_level` and above to `sink`.
  Logger(LogLevel min_level, Sink sink);

  bool enabled(LogLevel level) const { return level >= min_level_; }
  void log(LogRecord record);
  void log(LogLevel level, std::string_view component, std::string message,
           std::string_view worker_id = {});

  // "<time> <level> [<component>] [<pool>/<worker>] session=<id> request=<id> <message>"; the
  // pool, worker, session and request parts only when set.
  static std::string format_text(const LogRecord& record);
  // One JSON object on one line: {"time" (RFC 3339, ms), "time_ms" (since the epoch), "level",
  // "component", "message", and "pool", "worker_id", "session_id", "request_id" when set}. Valid
  // JSON for any bytes: invalid UTF-8 is replaced by U+FFFD.
  static std::string format_json(const LogRecord& record);

 private:
  LogLevel min_level_;
  Sink sink_;
  std::mutex mu_;
};

}  // namespace bridgepool
