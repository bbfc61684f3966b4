// The `bridgepool` command. Thin: parses arguments and hands over to one function per
// subcommand; errors become exit codes here. A command line CLI11 rejects exits with 2 (the
// message on stderr), like every other unusable option; --help and --version exit with 0.
#include <cstdio>
#include <exception>

#include <CLI/CLI.hpp>

#include "cli/api_client.h"
#include "cli/bench_command.h"
#include "cli/call_command.h"
#include "cli/call_exit.h"
#include "cli/fault_schedule.h"
#include "cli/serve_command.h"
#include "cli/status_command.h"

namespace {

// --url of `call` and `status`: refused at parse time (usage error) unless http://HOST[:PORT].
const CLI::Validator kUrlValidator(
    [](std::string& url) {
      const std::string problem = bridgepool::cli::url_problem(url);
      return problem.empty() ? std::string() : "URL '" + url + "' " + problem;
    },
    "URL");

int run(int argc, char** argv) {
  CLI::App app{"bridgepool: a pool of long-lived Python worker processes"};
  app.set_version_flag("--version", "bridgepool 0.1.0");
  app.require_subcommand(1);

  bridgepool::cli::BenchOptions bench;
  auto* b = app.add_subcommand("bench", "Run a load against a pool and report latency/throughput");
  const std::string bench_footer =
      std::string(bridgepool::cli::kScenarioHelp) + "\n\n" + bridgepool::cli::kBenchExitHelp;
  b->footer(bench_footer);
  b->add_option("--workers", bench.workers, "Worker processes")->check(CLI::Range(1, 512));
  b->add_option("--concurrency", bench.concurrency, "Concurrent callers (default: workers)")
      ->check(CLI::Range(0, 4096));
  b->add_option("--requests", bench.requests, "Total requests")->check(CLI::Range(1, 100000000));
  b->add_option("--command", bench.command, "Command to call");
  b->add_option("--sessions", bench.sessions, "Drive S sessions round-robin (execute_in_session)")
      ->check(CLI::Range(0, 10000000));
  auto* args = b->add_option("--args", bench.args_json, "Arguments as a JSON object");
  b->add_option("--args-file", bench.args_file, "Read the arguments (a JSON object) from a file")
      ->excludes(args);
  b->add_option("--handlers", bench.handlers, "Handler module(s) (path or dotted name)");
  b->add_option("--python", bench.python, "Python interpreter");
  b->add_option("--start-method", bench.start_method,
                "fork-server (default) or spawn: how workers start")
      ->check(CLI::IsMember({"spawn", "fork-server", "fork_server"}));
  b->add_option("--spare-workers", bench.spare_workers, "Warm spare processes kept aside")
      ->check(CLI::Range(0, 512));
  b->add_option("--timeout-ms", bench.timeout_ms, "Per-request timeout")
      ->check(CLI::Range(1, 3600000));
  b->add_option("--log-level", bench.log_level, "debug|info|warn|error|off");
  b->add_flag("--json", bench.json, "Print a JSON summary as the last line");
  b->add_flag("!--no-progress", bench.progress, "Do not draw the progress line");
  // Open loop (open_loop.h): --rate switches it on; the other open-loop options need it.
  auto* rate = b->add_option("--rate", bench.rate,
                             "Open loop: requests per second, latency from the intended send time")
                   ->check(CLI::Range(0.001, 1e7));
  rate->excludes(b->get_option("--requests"))->excludes(b->get_option("--concurrency"));
  b->add_option("--duration", bench.duration_s, "Open loop: seconds (default 10)")
      ->check(CLI::Range(0.001, 86400.0))
      ->needs(rate);
  b->add_option("--senders", bench.senders,
                "Open loop: sender threads (default max(8, 2 x workers, rate / 20))")
      ->check(CLI::Range(1, 4096))
      ->needs(rate);
  b->add_option("--sla-p99-ms", bench.sla_p99_ms, "Open loop: SLA p99 bound in ms (default 20)")
      ->check(CLI::PositiveNumber)
      ->needs(rate);
  b->add_option("--sla-success", bench.sla_success_pct,
                "Open loop: SLA minimum success, percent (default 99.99)")
      ->check(CLI::Range(0.0, 100.0))
      ->needs(rate);
  b->add_flag("--sla-strict", bench.sla_strict, "Open loop: exit 3 when the SLA verdict is FAIL")
      ->needs(rate);
  auto* batch = b->add_option("--batch", bench.batch,
                              "Closed loop: each call is execute_many of N items (--requests, ok "
                              "and errors count items; each item gets \"i\": its index)")
                    ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20))
                    ->excludes(rate)
                    ->excludes(b->get_option("--sessions"));
  b->add_option("--batch-chunk", bench.batch_chunk,
                "Closed loop with --batch: items per chunk (default: the pool's choice)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20))
      ->needs(batch);
  b->add_flag("--distinct-args", bench.distinct_args,
              "Open loop: add \"slot\": i to request i's arguments (no two requests alike)")
      ->needs(rate);
  // The name is checked by run_bench, whose message lists the scenarios.
  auto* scenario = b->add_option("--scenario", bench.scenario,
                                 "Open loop: inject a failure scenario (listed below)")
                       ->needs(rate);
  for (const char* used_by_scenario : {"--command", "--args", "--args-file", "--sessions"}) {
    scenario->excludes(b->get_option(used_by_scenario));
  }
  b->add_option("--seed", bench.seed, "Scenario: seed of its random choices (default 1)")
      ->needs(scenario);

  bridgepool::server::ConfigSources serve;
  auto* s = app.add_subcommand("serve", "Serve the HTTP API over a pool (docs/serve.md)");
  s->footer(bridgepool::cli::kServeExitHelp);
  s->add_option("--config", serve.file, "TOML configuration file");
  bridgepool::cli::add_serve_flags(*s, serve.flags);

  bridgepool::cli::CallOptions call;
  auto* c = app.add_subcommand("call", "Run one command on a server (or a local bridge)");
  std::string call_exit_help = bridgepool::cli::call_exit_help();
  c->footer(call_exit_help);
  c->add_option("COMMAND", call.command, "Command to run")->required();
  c->add_option("ARGS_JSON", call.args_json, "Arguments as a JSON object (default {})");
  c->add_option("--session", call.session, "Run in this session");
  c->add_option("--url", call.url,
                "Server URL (default: http://127.0.0.1:8765 if it answers, "
                "else a local bridge)")
      ->check(kUrlValidator);
  c->add_option("--timeout-ms", call.timeout_ms, "Request deadline")
      ->check(CLI::Range(1, 86400000));
  c->add_option("--token", call.token, "Bearer token (default: $BRIDGEPOOL_TOKEN)");
  c->add_option("--python", call.python, "Local bridge: Python interpreter");
  c->add_option("--handlers", call.handlers, "Local bridge: handler module(s)");

  bridgepool::cli::StatusOptions status;
  auto* st = app.add_subcommand("status", "Show a running server's workers");
  st->footer(call_exit_help);
  st->add_option("--url", status.url, "Server URL (default http://127.0.0.1:8765)")
      ->check(kUrlValidator);
  st->add_flag("--json", status.json, "Print the /v1/status document");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Prints the message (or the help text); its own codes (105, 106, ...) say nothing to a
    // caller that a plain "usage error" would not.
    return app.exit(e) == 0 ? 0 : bridgepool::cli::kExitUsage;
  }
  if (b->parsed()) return bridgepool::cli::run_bench(bench);
  if (s->parsed()) return bridgepool::cli::run_serve(serve);
  if (c->parsed()) return bridgepool::cli::run_call(call);
  if (st->parsed()) return bridgepool::cli::run_status(status);
  return bridgepool::cli::kExitUsage;
}

}  // namespace

// Nothing escapes main as an exception: the library reports errors as values, and anything
// thrown by the parser or the standard library (std::bad_alloc) becomes a message and exit 1.
int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bridgepool: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "bridgepool: unknown exception\n");
  }
  return 1;
}
