// `bridgepool bench` end to end: the real binary, real workers; the JSON summary on the last line.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

namespace {

struct CliRun {
  int status = -1;
  std::string output;
  nlohmann::json summary;
};

CliRun run_cli(const std::string& args) {
  CliRun r;
  std::string cmd = std::string(BRIDGEPOOL_CLI) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p)) r.output += buf;
  r.status = ::pclose(p);
  auto end = r.output.find_last_not_of('\n');
  auto start = r.output.rfind('\n', end);
  std::string last = r.output.substr(start == std::string::npos ? 0 : start + 1, end - start);
  r.summary = nlohmann::json::parse(last, nullptr, false);
  return r;
}

const std::string kPython = std::string("--python ") + BRIDGEPOOL_TEST_PYTHON;

TEST(CliBench, JsonSummaryOnTheLastLine) {
  CliRun r = run_cli("bench --workers 2 --concurrency 3 --requests 500 --command echo --args "
                  "'{\"data\":\"abc\"}' --json " + kPython);
  ASSERT_EQ(r.status, 0) << r.output;
  ASSERT_TRUE(r.summary.is_object()) << r.output;
  EXPECT_EQ(r.summary["requests"], 500);
  EXPECT_EQ(r.summary["ok"], 500);
  EXPECT_TRUE(r.summary["errors"].empty());
  EXPECT_EQ(r.summary["concurrency"], 3);
  EXPECT_EQ(r.summary["workers"]["started"], 2);
  EXPECT_EQ(r.summary["workers"]["replaced"], 0);
  auto lat = r.summary["latency_us"];
  EXPECT_GT(lat["p50"].get<double>(), 0);
  EXPECT_LE(lat["p50"].get<double>(), lat["p99"].get<double>());
  EXPECT_LE(lat["p99"].get<double>(), lat["max"].get<double>());
  EXPECT_GT(r.summary["throughput_per_s"].get<double>(), 0);
  EXPECT_NE(r.output.find("throughput"), std::string::npos);  // the human summary too
}

TEST(CliBench, SessionsAreDrivenRoundRobinAndCounted) {
  CliRun r = run_cli("bench --workers 2 --concurrency 2 --requests 400 --sessions 10 --command "
                     "whoami --json " + kPython);
  ASSERT_EQ(r.status, 0) << r.output;
  ASSERT_TRUE(r.summary.is_object()) << r.output;
  EXPECT_EQ(r.summary["ok"], 400);
  EXPECT_EQ(r.summary["sessions"]["count"], 10);
  EXPECT_EQ(r.summary["sessions"]["misses"], 10);
  EXPECT_EQ(r.summary["sessions"]["hits"], 390);
  EXPECT_EQ(r.summary["sessions"]["lost"], 0);
}

TEST(CliBench, ErrorsAreCountedByCategoryAndTheRunStillSucceeds) {
  CliRun r = run_cli("bench --workers 2 --requests 20 --command crash --json " + kPython);
  ASSERT_EQ(r.status, 0) << r.output;
  ASSERT_TRUE(r.summary.is_object()) << r.output;
  EXPECT_EQ(r.summary["ok"], 0);
  EXPECT_EQ(r.summary["errors"]["connection"], 20);
  EXPECT_GE(r.summary["workers"]["replaced"].get<int>(), 20);
}

TEST(CliBench, BadArgumentsAreRejectedWithAClearMessage) {
  CliRun r = run_cli("bench --args '[1,2]' " + kPython);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("--args must be a JSON object"), std::string::npos) << r.output;
  CliRun unknown = run_cli("frobnicate");
  EXPECT_NE(unknown.status, 0);
}

}  // namespace
