// The `bridgepool` command. Thin: parses arguments and hands over to one function per
// subcommand; errors become exit codes here.
#include <CLI/CLI.hpp>

#include "cli/bench_command.h"

int main(int argc, char** argv) {
  CLI::App app{"bridgepool: a pool of long-lived Python worker processes"};
  app.set_version_flag("--version", "bridgepool 0.1.0");
  app.require_subcommand(1);

  bridgepool::cli::BenchOptions bench;
  auto* b = app.add_subcommand("bench", "Run a load against a pool and report latency/throughput");
  b->add_option("--workers", bench.workers, "Worker processes")->check(CLI::Range(1, 512));
  b->add_option("--concurrency", bench.concurrency, "Concurrent callers (default: workers)")
      ->check(CLI::Range(0, 4096));
  b->add_option("--requests", bench.requests, "Total requests")->check(CLI::Range(1, 100000000));
  b->add_option("--command", bench.command, "Command to call");
  b->add_option("--sessions", bench.sessions, "Drive S sessions round-robin (execute_in_session)")
      ->check(CLI::Range(0, 10000000));
  b->add_option("--args", bench.args_json, "Arguments as a JSON object");
  b->add_option("--handlers", bench.handlers, "Handler module(s) (path or dotted name)");
  b->add_option("--python", bench.python, "Python interpreter");
  b->add_option("--timeout-ms", bench.timeout_ms, "Per-request timeout")->check(CLI::Range(1, 3600000));
  b->add_option("--log-level", bench.log_level, "debug|info|warn|error|off");
  b->add_flag("--json", bench.json, "Print a JSON summary as the last line");
  b->add_flag("!--no-progress", bench.progress, "Do not draw the progress line");

  CLI11_PARSE(app, argc, argv);
  if (b->parsed()) return bridgepool::cli::run_bench(bench);
  return 1;
}
