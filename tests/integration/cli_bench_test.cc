// `bridgepool bench` end to end: the real binary, real workers; the JSON summary on the last line.
// Also its exit statuses, its answers to hostile command lines, and SIGINT/SIGTERM (the binary
// is started with posix_spawn so the test can signal it and see its stdout and stderr apart).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "bridgepool/error.h"
#include "integration/cli_process.h"
#include "integration/test_support.h"

extern char** environ;

namespace {

using bridgepool::testing::data_path;
using bridgepool::testing::process_running;
using bridgepool::testing::wait_until;
using namespace std::chrono_literals;

struct CliRun {
  int status = -1;
  std::string output;
  nlohmann::json summary;
};

nlohmann::json last_line_json(const std::string& output) {
  auto end = output.find_last_not_of('\n');
  if (end == std::string::npos) return nlohmann::json();
  auto start = output.rfind('\n', end);
  std::string last = output.substr(start == std::string::npos ? 0 : start + 1, end - start);
  return nlohmann::json::parse(last, nullptr, false);
}

CliRun run_cli(const std::string& args) {
  CliRun r;
  std::string cmd = std::string(BRIDGEPOOL_CLI) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p)) r.output += buf;
  r.status = ::pclose(p);
  r.summary = last_line_json(r.output);
  return r;
}

using bridgepool::testing::read_text;
using bridgepool::testing::TempDir;
using BenchProcess = bridgepool::testing::CliProcess;

// "<worker pid> <helper pid>" lines written by tests/data/interrupt_handlers.py.
std::vector<pid_t> recorded_pids(const std::string& path) {
  std::vector<pid_t> pids;
  std::istringstream lines(read_text(path));
  pid_t worker, helper;
  while (lines >> worker >> helper) {
    pids.push_back(worker);
    pids.push_back(helper);
  }
  return pids;
}

std::size_t recorded_lines(const std::string& path) { return recorded_pids(path).size() / 2; }

// Every process in `pids` is gone or a zombie. The helpers are orphans once their worker dies, and
// PID 1 here does not reap orphans, so "dead" means state Z (process_running), not kill(0).
bool all_dead(const std::vector<pid_t>& pids) {
  for (pid_t pid : pids) {
    if (process_running(pid)) return false;
  }
  return true;
}

int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1000 - status; }

// Runs the binary with a raw argv (no shell) to its end; returns its exit code, stdout, stderr.
struct ArgvRun {
  int code = -1;
  std::string out, err;
};
ArgvRun run_argv(std::vector<std::string> args) {
  TempDir dir;
  BenchProcess bench(dir, std::move(args));
  auto status = bench.wait(60s);
  ArgvRun r;
  r.code = status ? exit_code(*status) : -1;  // -1: still running after 60 s (a hang)
  r.out = bench.out();
  r.err = bench.err();
  return r;
}

const std::string kPython = std::string("--python ") + BRIDGEPOOL_TEST_PYTHON;

TEST(CliBench, JsonSummaryOnTheLastLine) {
  CliRun r = run_cli(
      "bench --workers 2 --concurrency 3 --requests 500 --command echo --args "
      "'{\"data\":\"abc\"}' --json " +
      kPython);
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
  CliRun r = run_cli(
      "bench --workers 2 --concurrency 2 --requests 400 --sessions 10 --command "
      "whoami --json " +
      kPython);
  ASSERT_EQ(r.status, 0) << r.output;
  ASSERT_TRUE(r.summary.is_object()) << r.output;
  EXPECT_EQ(r.summary["ok"], 400);
  EXPECT_EQ(r.summary["sessions"]["count"], 10);
  EXPECT_EQ(r.summary["sessions"]["misses"], 10);
  EXPECT_EQ(r.summary["sessions"]["hits"], 390);
  EXPECT_EQ(r.summary["sessions"]["lost"], 0);
}

TEST(CliBench, BatchesCountItemsAndTheLastBatchIsCutToTheRequests) {
  // 95 items in batches of 10 on 3 callers: nine full batches and one of 5.
  CliRun r =
      run_cli("bench --workers 2 --concurrency 3 --requests 95 --batch 10 --command echo --json " +
              kPython);
  ASSERT_EQ(r.status, 0) << r.output;
  ASSERT_TRUE(r.summary.is_object()) << r.output;
  EXPECT_EQ(r.summary["requests"], 95);
  EXPECT_EQ(r.summary["ok"], 95);
  EXPECT_EQ(r.summary["batch"]["items"], 10);
  EXPECT_GT(r.summary["throughput_per_s"].get<double>(), 0);
  // A failing command: every item counted as an error of its category, exit 1.
  ArgvRun failing = run_argv({"bench", "--workers", "1", "--requests", "12", "--batch", "5",
                              "--command", "fail", "--json", "--python", BRIDGEPOOL_TEST_PYTHON});
  EXPECT_EQ(failing.code, 1) << failing.out << failing.err;
  nlohmann::json summary = last_line_json(failing.out);
  ASSERT_TRUE(summary.is_object()) << failing.out;
  EXPECT_EQ(summary["errors"]["python"], 12) << failing.out;
}

TEST(CliBench, BatchOptionsAreChecked) {
  for (const char* bad :
       {"--batch 0", "--batch -3", "--batch 5 --rate 100", "--batch 5 --sessions 2",
        "--batch-chunk 4", "--batch 5 --batch-chunk 0"}) {
    CliRun r = run_cli(std::string("bench --requests 10 ") + bad + " " + kPython);
    EXPECT_NE(r.status, 0) << bad << ": " << r.output;
  }
}

TEST(CliBench, ErrorsAreCountedByCategoryAndARunWhereEveryRequestFailedExitsWith1) {
  ArgvRun r = run_argv({"bench", "--workers", "2", "--requests", "20", "--command", "crash",
                        "--json", "--python", BRIDGEPOOL_TEST_PYTHON});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("every request failed (20 of 20); first error: "), std::string::npos)
      << r.err;
  nlohmann::json summary = last_line_json(r.out);  // the summary is still printed
  ASSERT_TRUE(summary.is_object()) << r.out;
  EXPECT_EQ(summary["ok"], 0);
  EXPECT_EQ(summary["interrupted"], false);
  // The same request (crash, no arguments) killed its first workers, then the poison
  // quarantine refused it (invalid_request) instead of letting it kill 20 workers.
  int crashed = summary["errors"].value("connection", 0);
  int refused = summary["errors"].value("invalid_request", 0);
  EXPECT_EQ(crashed + refused, 20) << summary.dump();
  EXPECT_GE(crashed, 3);  // kill_threshold 3
  EXPECT_LE(crashed, 5);  // concurrency 2 at most: one more in flight as it trips
  EXPECT_GE(summary["workers"]["replaced"].get<int>(), crashed);
}

TEST(CliBench, APythonErrorOnEveryRequestExitsWith1AndSomeSuccessesExitWith0) {
  ArgvRun all_fail = run_argv({"bench", "--workers", "1", "--requests", "5", "--command", "fail",
                               "--json", "--python", BRIDGEPOOL_TEST_PYTHON});
  EXPECT_EQ(all_fail.code, 1) << all_fail.err;
  EXPECT_NE(all_fail.err.find("every request failed (5 of 5); first error: python: RuntimeError"),
            std::string::npos)
      << all_fail.err;
  nlohmann::json summary = last_line_json(all_fail.out);
  ASSERT_TRUE(summary.is_object()) << all_fail.out;
  EXPECT_EQ(summary["errors"]["python"], 5);
  // Half fail, deterministically (one worker, every odd call raises): still exit 0.
  CliRun some_fail = run_cli(
      "bench --workers 1 --requests 10 --command fail_odd --json "
      "--handlers " +
      data_path("bench_handlers.py") + " " + kPython);
  EXPECT_EQ(exit_code(some_fail.status), 0) << some_fail.output;
  ASSERT_TRUE(some_fail.summary.is_object()) << some_fail.output;
  EXPECT_EQ(some_fail.summary["ok"], 5);
  EXPECT_EQ(some_fail.summary["errors"]["python"], 5);
}

// The open-loop smoke (SPEC §9's 1000 req/s with 5% failures, scaled down): 400 req/s for 5 s
// against `flaky`. The SLA numbers themselves are not asserted (a shared, noisy machine); the
// accounting is: every scheduled request is sent once, and outcomes add up.
TEST(CliBench, OpenLoopSmokeAgainstFlakyAccountsForEveryRequest) {
  CliRun r = run_cli(
      "bench --workers 2 --rate 400 --duration 5 --command flaky --args "
      "'{\"fail_rate\":0.05,\"crash_share\":0.3}' --json " +
      kPython);
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
  CliRun r = run_cli(
      "bench --workers 1 --rate 100 --duration 0.5 --command echo "
      "--sla-p99-ms 0.000001 --sla-strict --json " +
      kPython);
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

// -- hostile command lines: a clear message and exit status 2, never a crash or a hang ------------

std::vector<std::string> bench_with(std::vector<std::string> extra) {
  std::vector<std::string> args{"bench",    "--workers",           "1", "--requests", "1",
                                "--python", BRIDGEPOOL_TEST_PYTHON};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

TEST(CliBenchHostileInput, ArgsThatAreNotJsonNameTheProblemAndItsPosition) {
  ArgvRun r = run_argv(bench_with({"--args", "{\"a\": tru}"}));
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("--args is not valid JSON: parse error at line 1, column "),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("(input: {\"a\": tru})"), std::string::npos) << r.err;
  ArgvRun empty = run_argv(bench_with({"--args", ""}));
  EXPECT_EQ(empty.code, 2) << empty.err;
  EXPECT_NE(empty.err.find("--args is not valid JSON"), std::string::npos) << empty.err;
}

TEST(CliBenchHostileInput, UnknownStartMethodAndNegativeOrHugeSparesAreUsageErrors) {
  for (std::vector<std::string> bad : {std::vector<std::string>{"--start-method", "forkserver"},
                                       {"--start-method", ""},
                                       {"--spare-workers", "-1"},
                                       {"--spare-workers", "513"}}) {
    ArgvRun r = run_argv(bench_with(bad));
    EXPECT_EQ(r.code, 2) << bad[0] << " " << bad[1] << ": " << r.err;
    EXPECT_NE(r.err.find(bad[0]), std::string::npos) << r.err;
  }
}

TEST(CliBenchHostileInput, ArgsThatAreNotAnObjectSayWhatTheyAre) {
  for (auto [text, type] : std::vector<std::pair<std::string, std::string>>{
           {"[1,2]", "array"}, {"\"text\"", "string"}, {"42", "number"}, {"null", "null"}}) {
    ArgvRun r = run_argv(bench_with({"--args", text}));
    EXPECT_EQ(r.code, 2) << text << ": " << r.err;
    EXPECT_NE(r.err.find("--args must be a JSON object, got " + type + ": " + text),
              std::string::npos)
        << r.err;
  }
}

TEST(CliBenchHostileInput, ArgsNested100000LevelsDeepAreRefusedBeforeAnyWorkerStarts) {
  // 100,000 '[' fit in one argument (the kernel allows 128 KiB); a recursive parser or dump
  // would run out of stack long before noticing that none is closed.
  ArgvRun open = run_argv(bench_with({"--args", std::string(100'000, '[')}));
  EXPECT_EQ(open.code, 2) << open.err;
  EXPECT_NE(open.err.find("--args is nested deeper than 500 levels (input starts: [[[["),
            std::string::npos)
      << open.err.substr(0, 300);
  // Balanced, 100,000 levels are 200 KB: too long for one argument, so through --args-file.
  TempDir dir;
  std::string deep = dir.file("deep.json");
  std::string balanced;
  for (int i = 0; i < 100'000; ++i) balanced += "{\"a\":";
  balanced += "1" + std::string(100'000, '}');
  std::ofstream(deep) << balanced;
  ArgvRun file = run_argv(bench_with({"--args-file", deep}));
  EXPECT_EQ(file.code, 2) << file.err;
  EXPECT_NE(file.err.find("--args-file '" + deep + "' is nested deeper than 500 levels"),
            std::string::npos)
      << file.err.substr(0, 300);
  // Brackets inside strings are text, not nesting.
  ArgvRun in_string = run_argv(
      bench_with({"--command", "ping", "--json", "--args",
                  "{\"s\":\"" + std::string(1000, '[') + "\\\"" + std::string(1000, '{') + "\"}"}));
  EXPECT_EQ(in_string.code, 0) << in_string.err;
}

TEST(CliBenchHostileInput, ArgsAtTheDepthLimitAreSentOneLevelMoreIsRefused) {
  TempDir dir;
  auto nested = [&](int levels) {
    std::string text;
    for (int i = 0; i < levels; ++i) text += "{\"a\":";
    text += "1" + std::string(levels, '}');
    std::string path = dir.file("depth" + std::to_string(levels) + ".json");
    std::ofstream(path) << text;
    return path;
  };
  // `ping` ignores its arguments: the request (500 levels, the library's limit) is all that is
  // tested here.
  ArgvRun at_limit =
      run_argv(bench_with({"--command", "ping", "--json", "--args-file", nested(500)}));
  EXPECT_EQ(at_limit.code, 0) << at_limit.err;
  nlohmann::json summary = last_line_json(at_limit.out);
  ASSERT_TRUE(summary.is_object()) << at_limit.out;
  EXPECT_EQ(summary["ok"], 1);
  ArgvRun over = run_argv(bench_with({"--command", "ping", "--args-file", nested(501)}));
  EXPECT_EQ(over.code, 2) << over.err;
  EXPECT_NE(over.err.find("is nested deeper than 500 levels"), std::string::npos) << over.err;
}

TEST(CliBenchHostileInput, ArgsWithInvalidUtf8AreRefusedAndQuotedSafely) {
  ArgvRun r = run_argv(bench_with({"--args", "{\"s\":\"\xff\xfe\"}"}));
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("--args is not valid JSON: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ill-formed UTF-8 byte"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("(input: {\"s\":\"\\xff\\xfe\"})"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\xff'), std::string::npos);  // the raw byte is never echoed
  // A command name with invalid UTF-8 reaches the pool, which answers "unknown command" for
  // every request: exit status 1, not a crash.
  ArgvRun command = run_argv(bench_with({"--command", "\xff\xfe"}));
  EXPECT_EQ(command.code, 1) << command.err;
  EXPECT_NE(command.err.find("every request failed (1 of 1)"), std::string::npos) << command.err;
}

TEST(CliBenchHostileInput, OutOfRangeNumbersAreUsageErrors) {
  ArgvRun zero = run_argv(bench_with({"--workers", "0"}));
  EXPECT_EQ(zero.code, 2) << zero.err;
  EXPECT_NE(zero.err.find("--workers: Value 0 not in range 1 to 512"), std::string::npos)
      << zero.err;
  ArgvRun negative = run_argv(bench_with({"--workers", "-3"}));
  EXPECT_EQ(negative.code, 2) << negative.err;
  EXPECT_NE(negative.err.find("--workers: Value -3 not in range 1 to 512"), std::string::npos)
      << negative.err;
  ArgvRun timeout = run_argv(bench_with({"--timeout-ms", "0"}));
  EXPECT_EQ(timeout.code, 2) << timeout.err;
  EXPECT_NE(timeout.err.find("--timeout-ms: Value 0 not in range 1 to 3600000"), std::string::npos)
      << timeout.err;
}

TEST(CliBenchHostileInput, MissingFilesAreNamed) {
  ArgvRun handlers = run_argv(bench_with({"--handlers", "/nonexistent/handlers.py"}));
  EXPECT_EQ(handlers.code, 2) << handlers.err;
  EXPECT_NE(handlers.err.find("--handlers '/nonexistent/handlers.py': no such file"),
            std::string::npos)
      << handlers.err;
  ArgvRun args_file = run_argv(bench_with({"--args-file", "/nonexistent/args.json"}));
  EXPECT_EQ(args_file.code, 2) << args_file.err;
  EXPECT_NE(args_file.err.find("cannot read --args-file '/nonexistent/args.json': No such file"),
            std::string::npos)
      << args_file.err;
  TempDir dir;
  ArgvRun args_dir = run_argv(bench_with({"--args-file", dir.file("")}));
  EXPECT_EQ(args_dir.code, 2) << args_dir.err;
  EXPECT_NE(args_dir.err.find("': Is a directory"), std::string::npos) << args_dir.err;
  ArgvRun args_empty = run_argv(bench_with({"--args-file", "/dev/null"}));
  EXPECT_EQ(args_empty.code, 2) << args_empty.err;
  EXPECT_NE(args_empty.err.find("--args-file '/dev/null' is not valid JSON"), std::string::npos)
      << args_empty.err;
  ArgvRun handlers_dir = run_argv(bench_with({"--handlers", dir.file("")}));
  EXPECT_EQ(handlers_dir.code, 2) << handlers_dir.err;
  EXPECT_NE(handlers_dir.err.find("': not a regular file"), std::string::npos) << handlers_dir.err;
}

TEST(CliBenchHostileInput, AnInterpreterOrModuleThatCannotStartIsAUsageErrorWithTheReason) {
  ArgvRun python = run_argv({"bench", "--requests", "1", "--python", "/nonexistent"});
  EXPECT_EQ(python.code, 2) << python.err;
  EXPECT_NE(python.err.find("bridgepool bench: the pool could not start: pool 'bench' could not "
                            "start its workers: cannot execute '/nonexistent': No such file or "
                            "directory"),
            std::string::npos)
      << python.err;
  // A module name (not a file) can only be checked by importing it: the worker's import error.
  ArgvRun module = run_argv(bench_with({"--handlers", "no_such_module_xyz"}));
  EXPECT_EQ(module.code, 2) << module.err;
  EXPECT_NE(module.err.find("the pool could not start: "), std::string::npos) << module.err;
  EXPECT_NE(module.err.find("No module named 'no_such_module_xyz'"), std::string::npos)
      << module.err;
}

// -- SIGINT / SIGTERM ---------------------------------------------------------------------------

// A bench whose requests start `sleep 60` helpers and record them (tests/data/bench_handlers.py).
std::vector<std::string> sleeper_bench(std::vector<std::string> extra) {
  std::vector<std::string> args{"bench",
                                "--workers",
                                "2",
                                "--command",
                                "spawn_sleeper",
                                "--handlers",
                                data_path("bench_handlers.py"),
                                "--json",
                                "--python",
                                BRIDGEPOOL_TEST_PYTHON};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::map<std::string, std::string> pids_env(const std::string& pids) {
  return {{"BENCH_INTERRUPT_PIDS", pids}};
}

TEST(CliBenchInterrupt, SigintMidRunPrintsTheSummaryExits130AndLeavesNoProcessBehind) {
  TempDir dir;
  std::string pids = dir.file("pids");
  BenchProcess bench(dir,
                     sleeper_bench({"--concurrency", "2", "--requests", "1000000", "--args",
                                    R"({"hold_ms": 20})"}),
                     pids_env(pids));
  // Both workers serving: six requests have started (each records its worker and helper).
  ASSERT_TRUE(wait_until([&] { return recorded_lines(pids) >= 6; }, 30s)) << bench.err();
  ASSERT_TRUE(bench.signal(SIGINT));
  auto status = bench.wait(20s);
  ASSERT_TRUE(status) << "no exit 20 s after SIGINT; stderr: " << bench.err();
  EXPECT_EQ(exit_code(*status), 130) << bench.err();
  std::string out = bench.out();
  EXPECT_NE(out.find("bridgepool bench: INTERRUPTED by SIGINT: "), std::string::npos) << out;
  EXPECT_NE(out.find("throughput"), std::string::npos) << out;  // the usual summary follows
  EXPECT_NE(bench.err().find("SIGINT: stopping; requests in flight get 2000 ms to finish"),
            std::string::npos)
      << bench.err();
  nlohmann::json j = last_line_json(out);
  ASSERT_TRUE(j.is_object()) << out;
  EXPECT_EQ(j["interrupted"], true);
  EXPECT_EQ(j["signal"], "SIGINT");
  EXPECT_EQ(j["requests"], 1000000);
  // Every request that started (and recorded itself) finished within the grace and is counted:
  // nothing was cut off, nothing failed, nothing was sent after the signal.
  std::size_t started = recorded_lines(pids);
  EXPECT_EQ(j["completed"], started);
  EXPECT_EQ(j["ok"], started);
  EXPECT_EQ(j["cut_off"], 0);
  EXPECT_TRUE(j["errors"].empty()) << j.dump();
  // The workers and every helper they started: gone (the helpers would sleep for 60 s).
  std::vector<pid_t> all = recorded_pids(pids);
  EXPECT_TRUE(wait_until([&] { return all_dead(all); }, 5s));
}

TEST(CliBenchInterrupt, SigintDuringBatchesCountsEveryItemThatRanAndLeavesNoProcessBehind) {
  TempDir dir;
  std::string pids = dir.file("pids");
  BenchProcess bench(dir,
                     sleeper_bench({"--concurrency", "2", "--requests", "1000000", "--batch", "8",
                                    "--args", R"({"hold_ms": 5})"}),
                     pids_env(pids));
  ASSERT_TRUE(wait_until([&] { return recorded_lines(pids) >= 12; }, 30s)) << bench.err();
  ASSERT_TRUE(bench.signal(SIGINT));
  auto status = bench.wait(20s);
  ASSERT_TRUE(status) << "no exit 20 s after SIGINT; stderr: " << bench.err();
  EXPECT_EQ(exit_code(*status), 130) << bench.err();
  nlohmann::json j = last_line_json(bench.out());
  ASSERT_TRUE(j.is_object()) << bench.out();
  EXPECT_EQ(j["interrupted"], true);
  EXPECT_EQ(j["batch"]["items"], 8);
  // Items count, not batches: every item that started finished within the grace.
  std::size_t started = recorded_lines(pids);
  EXPECT_EQ(j["completed"], started);
  EXPECT_EQ(j["ok"], started);
  EXPECT_TRUE(j["errors"].empty()) << j.dump();
  std::vector<pid_t> all = recorded_pids(pids);
  EXPECT_TRUE(wait_until([&] { return all_dead(all); }, 5s));
}

TEST(CliBenchInterrupt, SigtermCutsOffRequestsStillInFlightAfterTheGraceAndExits143) {
  TempDir dir;
  std::string pids = dir.file("pids");
  // Each request holds its worker for 60 s: both are in flight when SIGTERM arrives.
  BenchProcess bench(
      dir,
      sleeper_bench({"--concurrency", "2", "--requests", "10", "--args", R"({"hold_ms": 60000})"}),
      pids_env(pids));
  ASSERT_TRUE(wait_until([&] { return recorded_lines(pids) >= 2; }, 30s)) << bench.err();
  auto signalled = std::chrono::steady_clock::now();
  ASSERT_TRUE(bench.signal(SIGTERM));
  auto status = bench.wait(20s);
  ASSERT_TRUE(status) << "no exit 20 s after SIGTERM; stderr: " << bench.err();
  auto took = std::chrono::steady_clock::now() - signalled;
  EXPECT_EQ(exit_code(*status), 143) << bench.err();  // an interrupt, although nothing succeeded
  EXPECT_GE(took, 1900ms);  // the requests in flight were given their grace ...
  nlohmann::json j = last_line_json(bench.out());
  ASSERT_TRUE(j.is_object()) << bench.out();
  EXPECT_EQ(j["interrupted"], true);
  EXPECT_EQ(j["signal"], "SIGTERM");
  EXPECT_EQ(j["completed"], 0);
  EXPECT_EQ(j["ok"], 0);
  EXPECT_EQ(j["cut_off"], 2);  // ... then cut off, and counted apart from the errors
  EXPECT_TRUE(j["errors"].empty()) << j.dump();
  EXPECT_EQ(recorded_lines(pids), 2u);  // and nothing else was sent
  std::vector<pid_t> all = recorded_pids(pids);
  EXPECT_TRUE(wait_until([&] { return all_dead(all); }, 5s));
}

TEST(CliBenchInterrupt, SigintStopsAnOpenLoopRunAndItsSummarySaysWhatWasSent) {
  TempDir dir;
  std::string pids = dir.file("pids");
  BenchProcess bench(
      dir, sleeper_bench({"--rate", "100", "--duration", "60", "--args", R"({"hold_ms": 5})"}),
      pids_env(pids));
  ASSERT_TRUE(wait_until([&] { return recorded_lines(pids) >= 20; }, 30s)) << bench.err();
  ASSERT_TRUE(bench.signal(SIGINT));
  auto status = bench.wait(20s);  // not the 60 s the schedule has left
  ASSERT_TRUE(status) << "no exit 20 s after SIGINT; stderr: " << bench.err();
  EXPECT_EQ(exit_code(*status), 130) << bench.err();
  std::string out = bench.out();
  EXPECT_NE(out.find("bridgepool bench: INTERRUPTED by SIGINT: "), std::string::npos) << out;
  EXPECT_NE(out.find("SLA: "), std::string::npos) << out;
  nlohmann::json j = last_line_json(out);
  ASSERT_TRUE(j.is_object()) << out;
  EXPECT_EQ(j["mode"], "open_loop");
  EXPECT_EQ(j["interrupted"], true);
  EXPECT_EQ(j["signal"], "SIGINT");
  EXPECT_EQ(j["requests"], 6000);
  // Every request that reached a handler (and recorded itself) completed within the grace. A
  // request still queued for a worker when the pool shut down is failed at once and counted as
  // cut off (at 100/s a burst can queue on a busy machine), so cut_off is not always 0.
  std::size_t started = recorded_lines(pids);
  EXPECT_EQ(j["sent"], started);
  EXPECT_EQ(j["completed"], started);
  EXPECT_EQ(j["ok"], started);
  EXPECT_TRUE(j["errors"].empty()) << j.dump();
  EXPECT_LT(started + j["cut_off"].get<std::size_t>(), 6000u);
  std::vector<pid_t> all = recorded_pids(pids);
  EXPECT_TRUE(wait_until([&] { return all_dead(all); }, 5s));
}

TEST(CliBenchInterrupt, ASecondSignalExitsAtOnceAfterKillingTheWorkers) {
  TempDir dir;
  std::string pids = dir.file("pids");
  BenchProcess bench(
      dir,
      sleeper_bench({"--concurrency", "2", "--requests", "10", "--args", R"({"hold_ms": 60000})"}),
      pids_env(pids));
  ASSERT_TRUE(wait_until([&] { return recorded_lines(pids) >= 2; }, 30s)) << bench.err();
  ASSERT_TRUE(bench.signal(SIGINT));
  // The first signal has been taken (two pending SIGINTs would merge into one).
  ASSERT_TRUE(wait_until([&] { return bench.err().find("stopping") != std::string::npos; }, 10s))
      << bench.err();
  ASSERT_TRUE(bench.signal(SIGINT));
  auto status = bench.wait(10s);
  ASSERT_TRUE(status) << "no exit 10 s after the second SIGINT; stderr: " << bench.err();
  EXPECT_EQ(exit_code(*status), 130) << bench.err();
  EXPECT_NE(bench.err().find("SIGINT again: ending the workers and exiting at once"),
            std::string::npos)
      << bench.err();
  // It did not wait for the shutdown, which ends with the summary.
  EXPECT_EQ(bench.out().find("INTERRUPTED"), std::string::npos) << bench.out() << bench.err();
  std::vector<pid_t> all = recorded_pids(pids);
  EXPECT_TRUE(wait_until([&] { return all_dead(all); }, 5s));
}

// SIGINT while the handler module imports for a minute: in every spawned worker, or once in the
// fork server (whose workers are not forked yet). Each importer records itself and a helper.
void sigint_during_start_up(const std::string& start_method, std::size_t importers) {
  SCOPED_TRACE(start_method);
  TempDir dir;
  std::string pids = dir.file("pids");
  auto env = pids_env(pids);
  env["BENCH_INTERRUPT_SLOW_IMPORT_S"] = "60";  // the workers import for a minute
  BenchProcess bench(dir, sleeper_bench({"--requests", "10", "--start-method", start_method}), env);
  ASSERT_TRUE(wait_until([&] { return recorded_lines(pids) >= importers; }, 30s)) << bench.err();
  ASSERT_TRUE(bench.signal(SIGINT));
  auto status = bench.wait(10s);
  ASSERT_TRUE(status) << "no exit 10 s after SIGINT; stderr: " << bench.err();
  EXPECT_EQ(exit_code(*status), 130) << bench.err();
  std::string out = bench.out();
  EXPECT_NE(out.find("bridgepool bench: INTERRUPTED by SIGINT during the pool's start-up: no "
                     "request sent"),
            std::string::npos)
      << out;
  nlohmann::json j = last_line_json(out);
  ASSERT_TRUE(j.is_object()) << out;
  EXPECT_EQ(j["interrupted"], true);
  EXPECT_EQ(j["signal"], "SIGINT");
  EXPECT_EQ(j["phase"], "start-up");
  EXPECT_EQ(j["completed"], 0);
  std::vector<pid_t> all = recorded_pids(pids);
  ASSERT_GE(all.size(), 2 * importers);
  EXPECT_TRUE(wait_until([&] { return all_dead(all); }, 5s));
}

TEST(CliBenchInterrupt, SigintDuringThePoolsStartUpEndsTheStartingWorkersAndExits130) {
  sigint_during_start_up("spawn", 2);
}

TEST(CliBenchInterrupt, SigintWhileTheForkServerImportsEndsItAndExits130) {
  sigint_during_start_up("fork-server", 1);
}

// -- failure scenarios (--scenario): each applies its fault and reports what it measured ---------

// A short scenario run on 2 workers at 200 req/s for 2 s (faults from 0.5 s, 0.5 s long).
nlohmann::json scenario_run(const std::string& name, std::string* output = nullptr) {
  ArgvRun r = run_argv({"bench", "--workers", "2", "--rate", "200", "--duration", "2", "--scenario",
                        name, "--json", "--no-progress", "--python", BRIDGEPOOL_TEST_PYTHON});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  if (output) *output = r.out;
  nlohmann::json j = last_line_json(r.out);
  EXPECT_TRUE(j.is_object() && j.contains("scenario")) << r.out << r.err;
  EXPECT_EQ(j["sent"], 400) << r.out;  // every request accounted for
  EXPECT_EQ(j["scenario"]["name"], name);
  EXPECT_EQ(j["scenario"]["sla"]["pass"], j["scenario"]["sla"]["p99_ok"].get<bool>() &&
                                              j["scenario"]["sla"]["success_ok"].get<bool>());
  return j;
}

TEST(CliBenchScenario, CascadeKillsEveryWorkerTwiceAndMeasuresTheRecovery) {
  std::string out;
  nlohmann::json j = scenario_run("cascade", &out);
  const auto& s = j["scenario"];
  std::size_t kills = 0;
  for (const auto& e : s["events"]) {
    kills += e["action"] == "kill_worker" && e["detail"].get<std::string>().starts_with("SIGKILL");
  }
  EXPECT_EQ(kills, 4u) << s.dump();
  EXPECT_GE(j["workers"]["replaced"].get<int>(), 4);
  ASSERT_EQ(s["waves"].size(), 2u);
  for (const auto& wave : s["waves"]) EXPECT_TRUE(wave["recovery_ms"].is_number()) << s.dump();
  EXPECT_EQ(s["echo"]["sent"].get<int>() + s["submit"]["sent"].get<int>(), 400);
  EXPECT_EQ(s["echo"]["failed"], 0) << s.dump();  // idempotent: retried onto a replacement
  EXPECT_NE(out.find("full throughput back after"), std::string::npos) << out;
  EXPECT_NE(out.find("(every request)"), std::string::npos) << out;
}

TEST(CliBenchScenario, TimeoutsJudgeTheOtherCallsApartFromTheHungOnes) {
  nlohmann::json j = scenario_run("timeouts");
  const auto& s = j["scenario"];
  auto hung = s["hung"]["sent"].get<int>();
  EXPECT_GT(hung, 0);  // 2% of 400: 8 expected; P(0) = 0.98^400 < 1e-3 (seed 1 gives some)
  EXPECT_EQ(s["hung"]["errors"]["timeout"], hung) << s.dump();
  EXPECT_EQ(s["others"]["sent"].get<int>() + hung, 400);
  EXPECT_EQ(s["others"]["failed"], 0) << s.dump();
  EXPECT_GE(s["workers_replaced"].get<int>(), 1);  // a worker past its deadline is replaced
  EXPECT_EQ(s["sla"]["subject"], "the other 98%");
}

TEST(CliBenchScenario, BreakerOpensRefusesFastAndClosesAfterTheRecovery) {
  nlohmann::json j = scenario_run("breaker");
  const auto& s = j["scenario"];
  ASSERT_TRUE(s["opened_after_ms"].is_number()) << s.dump();
  EXPECT_GT(s["refused"].get<int>(), 0) << s.dump();
  EXPECT_EQ(s["refused_before_fault"], 0);
  ASSERT_TRUE(s["closed_after_recovery_ms"].is_number()) << s.dump();
  // Refused without a call: faster than a call that goes to a worker, measured in the same run
  // (an absolute bound fails on a loaded machine or under a sanitizer).
  EXPECT_LT(s["refusal_us"]["p50"].get<double>(), s["others_before"]["p50_us"].get<double>())
      << s.dump();
  EXPECT_EQ(s["others_during"]["failed"], 0) << s.dump();
  EXPECT_GT(s["guarded"]["failed"].get<int>(), 0);
}

TEST(CliBenchScenario, SlowWorkerServesLessThanItsShareWhileSlow) {
  nlohmann::json j = scenario_run("slow");
  const auto& s = j["scenario"];
  EXPECT_GT(s["slow_worker"]["sent"].get<int>(), 0) << s.dump();
  EXPECT_LT(s["slow_worker_share"].get<double>(), s["blind_share"].get<double>()) << s.dump();
  EXPECT_GT(s["slow_worker"]["p50_us"].get<double>(), 20 * 1000.0 * 0.9);  // 1 ms x 20
}

TEST(CliBenchScenario, FallbackServesFromTheBridgeThenTheMockThenThePoolAgain) {
  nlohmann::json j = scenario_run("fallback");
  const auto& s = j["scenario"];
  // Phases go by intended send time: a call due right at the boundary may run a few µs before
  // the injector forces the pool's breaker open, and still reach the pool.
  EXPECT_LE(s["pool_down"]["served_by"]["pool"].get<int>(), 2) << s.dump();
  EXPECT_GT(s["pool_down"]["served_by"]["bridge"].get<int>(), 40) << s.dump();  // of 50
  EXPECT_GT(s["pool_and_bridge_down"]["served_by"]["mock"].get<int>(), 0) << s.dump();
  EXPECT_GT(s["after"]["served_by"]["pool"].get<int>(), 0) << s.dump();
  EXPECT_TRUE(s["pool_back_after_ms"].is_number()) << s.dump();
  EXPECT_EQ(j["failed"], 0) << s.dump();  // always someone to answer
}

// The same crashing request again and again is poison, and the quarantine refuses it after three
// kills; with --distinct-args every request is another one, so each reaches a worker.
TEST(CliBench, DistinctArgsMakeEveryRequestAnotherOneForTheQuarantine) {
  auto run = [](bool distinct) {
    std::vector<std::string> argv = {
        "bench",         "--workers",   "2",         "--rate",   "40",
        "--duration",    "0.5",         "--command", "crash",    "--json",
        "--no-progress", "--log-level", "off",       "--python", BRIDGEPOOL_TEST_PYTHON};
    if (distinct) argv.push_back("--distinct-args");
    ArgvRun r = run_argv(argv);
    EXPECT_EQ(r.code, 1) << r.out << r.err;  // every request failed
    return last_line_json(r.out);
  };
  nlohmann::json same = run(false);
  nlohmann::json distinct = run(true);
  ASSERT_TRUE(same.is_object() && distinct.is_object());
  EXPECT_GE(same["pool"]["quarantine_refused"].get<int>(), 1) << same.dump();
  EXPECT_EQ(distinct["pool"]["quarantine_refused"], 0) << distinct.dump();
  EXPECT_EQ(distinct["sent"], 20);
  // Each call kills its worker (a few may end otherwise while no worker is ready).
  EXPECT_GE(distinct["workers"]["replaced"].get<int>(), 18) << distinct.dump();
}

TEST(CliBenchScenario, BadScenarioCommandLinesAreUsageErrors) {
  const std::string py = BRIDGEPOOL_TEST_PYTHON;
  const std::pair<std::vector<std::string>, std::string> cases[] = {
      {{"bench", "--rate", "10", "--duration", "1", "--scenario", "meteor", "--python", py},
       "unknown --scenario 'meteor' (one of: cascade, timeouts, breaker, slow, fallback)"},
      {bench_with({"--scenario", "cascade"}), "--scenario requires --rate"},
      {{"bench", "--rate", "10", "--scenario", "slow", "--command", "echo", "--python", py},
       "--command excludes --scenario"},
      {{"bench", "--rate", "10", "--scenario", "slow", "--sessions", "3", "--python", py},
       "--sessions excludes --scenario"},
      {{"bench", "--rate", "10", "--seed", "3", "--python", py}, "--seed requires --scenario"},
      {bench_with({"--distinct-args"}), "--distinct-args requires --rate"},
  };
  for (const auto& [argv, message] : cases) {
    ArgvRun r = run_argv(argv);
    EXPECT_EQ(r.code, 2) << message << "\n" << r.err;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
  }
  ArgvRun help = run_argv({"bench", "--help"});
  EXPECT_EQ(help.code, 0);
  for (const char* name : {"cascade", "timeouts", "breaker", "slow", "fallback"}) {
    EXPECT_NE(help.out.find(std::string("  ") + name + " "), std::string::npos) << help.out;
  }
}

}  // namespace
