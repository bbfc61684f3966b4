// `bridgepool bench` end to end: the real binary, real workers; the JSON summary on the last line.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "bridgepool/error.h"

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
  // The same request (crash, no arguments) killed its first workers, then the poison
  // quarantine refused it (invalid_request) instead of letting it kill 20 workers.
  int crashed = r.summary["errors"].value("connection", 0);
  int refused = r.summary["errors"].value("invalid_request", 0);
  EXPECT_EQ(crashed + refused, 20) << r.summary.dump();
  EXPECT_GE(crashed, 2);
  EXPECT_LE(crashed, 4);  // concurrency 2 at most: one more in flight as it trips
  EXPECT_GE(r.summary["workers"]["replaced"].get<int>(), crashed);
}

// The open-loop smoke (SPEC §9's 1000 req/s with 5% failures, scaled down): 400 req/s for 5 s
// against `flaky`. The SLA numbers themselves are not asserted (a shared, noisy machine); the
// accounting is: every scheduled request is sent once, and outcomes add up.
TEST(CliBench, OpenLoopSmokeAgainstFlakyAccountsForEveryRequest) {
  CliRun r = run_cli("bench --workers 2 --rate 400 --duration 5 --command flaky --args "
                     "'{\"fail_rate\":0.05,\"crash_share\":0.3}' --json " + kPython);
  ASSERT_EQ(r.status, 0) << r.output;  // an SLA FAIL does not fail the run without --sla-strict
  ASSERT_TRUE(r.summary.is_object()) << r.output;
  const auto& j = r.summary;
  EXPECT_EQ(j["mode"], "open_loop");
  EXPECT_EQ(j["command"], "flaky");
  EXPECT_EQ(j["rate"], 400.0);
  EXPECT_EQ(j["duration_s"], 5.0);
  EXPECT_EQ(j["requests"], 2000);
  EXPECT_EQ(j["sent"], 2000);  // no request missing
  auto ok = j["ok"].get<std::uint64_t>();
  auto failed = j["failed"].get<std::uint64_t>();
  EXPECT_EQ(ok + failed, 2000u);
  std::uint64_t by_category = 0;
  for (const auto& [category, n] : j["errors"].items()) {
    EXPECT_TRUE(bridgepool::category_from_name(category).has_value()) << category;
    by_category += n.get<std::uint64_t>();
  }
  EXPECT_EQ(by_category, failed);
  EXPECT_DOUBLE_EQ(j["success_ratio"].get<double>(), double(ok) / 2000.0);
  // 2000 calls with 1.5% crashes: ~30 expected; none at all has probability e^-30.
  EXPECT_GE(j["workers"]["replaced"].get<int>(), 1);
  EXPECT_EQ(j["workers"]["configured"], 2);

  const auto& lat = j["latency_us"];
  EXPECT_GT(lat["p50"].get<double>(), 0);
  EXPECT_LE(lat["p50"].get<double>(), lat["p90"].get<double>());
  EXPECT_LE(lat["p90"].get<double>(), lat["p99"].get<double>());
  EXPECT_LE(lat["p99"].get<double>(), lat["p999"].get<double>());
  EXPECT_LE(lat["p999"].get<double>(), lat["max"].get<double>());
  EXPECT_LE(j["send_lag_us"]["p99"].get<double>(), j["send_lag_us"]["max"].get<double>());
  // The last request is due at 4.9975 s; the run cannot end before it.
  EXPECT_GE(j["elapsed_s"].get<double>(), 4.99);
  EXPECT_GT(j["achieved_rate"].get<double>(), 0);
  EXPECT_GE(j["senders"].get<int>(), 8);

  const auto& sla = j["sla"];
  EXPECT_EQ(sla["p99_ms_max"], 20.0);
  EXPECT_DOUBLE_EQ(sla["success_min"].get<double>(), 0.9999);
  EXPECT_EQ(sla["p99_ok"], lat["p99"].get<double>() < 20000.0);
  EXPECT_EQ(sla["success_ok"], j["success_ratio"].get<double>() >= 0.9999 - 1e-12);
  EXPECT_EQ(sla["pass"], sla["p99_ok"].get<bool>() && sla["success_ok"].get<bool>());
  std::string verdict = sla["pass"].get<bool>() ? "SLA: PASS  p99 " : "SLA: FAIL  p99 ";
  EXPECT_NE(r.output.find(verdict), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("latency from intended send"), std::string::npos) << r.output;
}

TEST(CliBench, OpenLoopSlaStrictExitsWith3OnFail) {
  // No request completes in under a nanosecond: the p99 part fails, and --sla-strict makes the
  // exit status say so.
  CliRun r = run_cli("bench --workers 1 --rate 100 --duration 0.5 --command echo "
                     "--sla-p99-ms 0.000001 --sla-strict --json " + kPython);
  ASSERT_TRUE(WIFEXITED(r.status)) << r.output;
  EXPECT_EQ(WEXITSTATUS(r.status), 3) << r.output;
  ASSERT_TRUE(r.summary.is_object()) << r.output;
  EXPECT_EQ(r.summary["sent"], 50);
  EXPECT_EQ(r.summary["ok"], 50);
  EXPECT_EQ(r.summary["sla"]["p99_ok"], false);
  EXPECT_EQ(r.summary["sla"]["success_ok"], true);
  EXPECT_EQ(r.summary["sla"]["pass"], false);
  EXPECT_NE(r.output.find("SLA: FAIL  p99 "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("(fail), success 100.000% >= 99.99%"), std::string::npos) << r.output;
}

TEST(CliBench, OpenLoopOptionsNeedRateAndExcludeClosedLoopOnes) {
  CliRun duration_alone = run_cli("bench --duration 5 " + kPython);
  EXPECT_NE(duration_alone.status, 0);
  EXPECT_NE(duration_alone.output.find("--duration requires --rate"), std::string::npos)
      << duration_alone.output;
  CliRun both = run_cli("bench --rate 100 --requests 10 " + kPython);
  EXPECT_NE(both.status, 0);
  EXPECT_NE(both.output.find("excludes"), std::string::npos) << both.output;
}

TEST(CliBench, BadArgumentsAreRejectedWithAClearMessage) {
  CliRun r = run_cli("bench --args '[1,2]' " + kPython);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("--args must be a JSON object"), std::string::npos) << r.output;
  CliRun unknown = run_cli("frobnicate");
  EXPECT_NE(unknown.status, 0);
}

}  // namespace
