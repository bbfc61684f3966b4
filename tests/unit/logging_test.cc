// Structured logs: RFC 3339 timestamps, the pool/worker/session/request fields in both formats,
// valid JSON for any bytes, and worker output lines tagged with their pool and worker
// (logging.h, worker/output_pipe.h).
#include "bridgepool/logging.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "worker/output_pipe.h"

namespace bridgepool {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

const auto k2026 = std::chrono::system_clock::time_point(seconds(1'767'225'600));

LogRecord record() {
  LogRecord r;
  r.level = LogLevel::kWarn;
  r.time = k2026 + milliseconds(250);
  r.pool = "api";
  r.component = "pool";
  r.message = "worker removed";
  r.worker_id = "w3";
  r.session_id = "s-1";
  r.request_id = 42;
  return r;
}

TEST(Logging, Rfc3339WithMilliseconds) {
  EXPECT_EQ(format_rfc3339(k2026), "2026-01-01T00:00:00.000Z");
  EXPECT_EQ(format_rfc3339(k2026 + milliseconds(61'999)), "2026-01-01T00:01:01.999Z");
  // Sub-millisecond parts are cut, never rounded up into the next second.
  EXPECT_EQ(format_rfc3339(k2026 + std::chrono::microseconds(999'999)), "2026-01-01T00:00:00.999Z");
}

TEST(Logging, JsonLineCarriesEveryField) {
  const std::string line = Logger::format_json(record());
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["time"], "2026-01-01T00:00:00.250Z");
  EXPECT_EQ(j["time_ms"], 1'767'225'600'250);
  EXPECT_EQ(j["level"], "warn");
  EXPECT_EQ(j["pool"], "api");
  EXPECT_EQ(j["component"], "pool");
  EXPECT_EQ(j["message"], "worker removed");
  EXPECT_EQ(j["worker_id"], "w3");
  EXPECT_EQ(j["session_id"], "s-1");
  EXPECT_EQ(j["request_id"], 42);
}

TEST(Logging, JsonLineLeavesOutFieldsThatAreNotSet) {
  LogRecord r;
  r.time = k2026;
  r.component = "alerts";
  r.message = "m";
  const auto j = nlohmann::json::parse(Logger::format_json(r));
  for (const char* absent : {"pool", "worker_id", "session_id", "request_id"}) {
    EXPECT_FALSE(j.contains(absent)) << absent;
  }
}

TEST(Logging, JsonLineIsValidForAnyBytes) {
  LogRecord r = record();
  r.message = std::string("bad \xff\xfe utf8 \xc3(, quote \" backslash \\ nul ") + '\0' +
              " tab \t newline \n end";
  r.session_id = "\xed\xa0\x80";  // an encoded surrogate: invalid UTF-8
  const std::string line = Logger::format_json(r);
  EXPECT_EQ(line.find('\n'), std::string::npos);  // one record, one line
  nlohmann::json j;
  ASSERT_NO_THROW(j = nlohmann::json::parse(line)) << line;  // the parser rejects bad UTF-8
  const std::string message = j["message"];
  EXPECT_NE(message.find("bad \xef\xbf\xbd"), std::string::npos);  // U+FFFD
  EXPECT_NE(message.find(std::string("nul ") + '\0' + " tab \t newline \n end"), std::string::npos);
  EXPECT_NE(j["session_id"].get<std::string>().find("\xef\xbf\xbd"), std::string::npos);
}

TEST(Logging, TextLineNamesPoolWorkerSessionAndRequest) {
  EXPECT_EQ(Logger::format_text(record()),
            "2026-01-01T00:00:00.250Z warn  [pool] [api/w3] session=s-1 request=42 worker "
            "removed");
  LogRecord r = record();
  r.pool.clear();
  r.session_id.clear();
  r.request_id = 0;
  EXPECT_EQ(Logger::format_text(r), "2026-01-01T00:00:00.250Z warn  [pool] [w3] worker removed");
}

TEST(Logging, WorkerOutputLinesAreTaggedWithPoolAndWorker) {
  std::vector<LogRecord> records;
  Logger logger(LogLevel::kInfo, [&](const LogRecord& r) { records.push_back(r); });
  std::deque<std::string> tail;
  log_output_lines(logger, "api", "w2", false, {"hello", "\xff raw"}, tail, 10);
  log_output_lines(logger, "api", "w2", true, {"e1", "e2", "e3"}, tail, 2);
  ASSERT_EQ(records.size(), 5u);
  EXPECT_EQ(records[0].component, "worker.stdout");
  EXPECT_EQ(records[0].pool, "api");
  EXPECT_EQ(records[0].worker_id, "w2");
  EXPECT_EQ(records[1].message, "\xff raw");  // the bytes as written; the JSON sink replaces
  EXPECT_NO_THROW(nlohmann::json::parse(Logger::format_json(records[1])));
  EXPECT_EQ(records[4].component, "worker.stderr");
  EXPECT_EQ(tail, (std::deque<std::string>{"e2", "e3"}));  // only stderr, at most the limit
}

TEST(Logging, OutputLinesBelowTheLevelStillFillTheStderrTail) {
  std::vector<LogRecord> records;
  Logger logger(LogLevel::kWarn, [&](const LogRecord& r) { records.push_back(r); });
  std::deque<std::string> tail;
  log_output_lines(logger, "api", "w1", true, {"Traceback", "ImportError"}, tail, 10);
  EXPECT_TRUE(records.empty());
  EXPECT_EQ(tail.size(), 2u);
}

}  // namespace
}  // namespace bridgepool
