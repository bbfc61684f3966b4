#include "cli/call_command.h"

#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

#include "bridgepool/binary.h"
#include "bridgepool/bridge.h"
#include "cli/api_client.h"
#include "cli/args_json.h"
#include "cli/bench_command.h"
#include "cli/call_exit.h"

namespace bridgepool::cli {

using Json = nlohmann::json;

namespace {

constexpr std::chrono::milliseconds kProbeTimeout{300};

int print_error(std::string_view category, std::string_view message, std::string_view traceback) {
  std::fprintf(stderr, "bridgepool call: %.*s: %.*s\n", static_cast<int>(category.size()),
               category.data(), static_cast<int>(message.size()), message.data());
  if (!traceback.empty()) {
    std::fprintf(stderr, "%.*s\n", static_cast<int>(traceback.size()), traceback.data());
  }
  auto parsed = category_from_name(category);
  return parsed ? exit_code_for(*parsed) : kExitUnreachable;
}

int print_result(const Json& result) {
  std::printf("%s\n", to_json_text(result).c_str());
  return 0;
}

int call_server(const CallOptions& o, const std::string& url, const Json& args) {
  Json body = {{"command", o.command}, {"args", args}, {"timeout_ms", o.timeout_ms}};
  if (!o.session.empty()) body["session_id"] = o.session;
  std::string token = o.token;
  if (token.empty()) {
    if (const char* env = std::getenv("BRIDGEPOOL_TOKEN")) token = env;
  }
  // The HTTP wait allows for the request deadline plus a checkout wait and the round trip.
  auto reply = api_call(url, "/v1/execute", body, token,
                        std::chrono::milliseconds(o.timeout_ms) + std::chrono::seconds(10));
  if (!reply) {
    std::fprintf(stderr, "bridgepool call: %s\n", reply.error().c_str());
    return kExitUnreachable;
  }
  const Json& b = reply->body;
  if (b.value("ok", false) && b.contains("result")) return print_result(b["result"]);
  if (!b.contains("error") || !b["error"].is_object()) {
    std::fprintf(stderr, "bridgepool call: HTTP %d without an error object\n", reply->status);
    return kExitUnreachable;
  }
  const Json& e = b["error"];
  return print_error(e.value("category", "system"), e.value("message", ""),
                     e.value("traceback", ""));
}

int call_local(const CallOptions& o, const Json& args) {
  PoolConfig config;
  config.name = "call";
  config.python = o.python;
  config.handlers = o.handlers;
  config.logger = std::make_shared<Logger>(LogLevel::kError);
  auto bridge = Bridge::start(config);
  if (!bridge) {
    return print_error(category_name(bridge.error().category), bridge.error().message,
                       bridge.error().python ? bridge.error().python->traceback : "");
  }
  ExecuteOptions options;
  options.timeout = std::chrono::milliseconds(o.timeout_ms);
  auto result = o.session.empty()
                    ? (*bridge)->execute(o.command, args, options)
                    : (*bridge)->execute_in_session(o.session, o.command, args, options);
  if (!result) {
    const Error& e = result.error();
    return print_error(category_name(e.category), e.message, e.python ? e.python->traceback : "");
  }
  return print_result(*result);
}

}  // namespace

int run_call(const CallOptions& o) {
  auto args = parse_args_object(o.args_json, "ARGS_JSON");
  if (!args) {
    std::fprintf(stderr, "bridgepool call: %s\n", args.error().c_str());
    return kExitUsage;
  }
  if (!o.url.empty()) return call_server(o, o.url, *args);
  std::string url = default_url();
  if (server_reachable(url, kProbeTimeout)) return call_server(o, url, *args);
  return call_local(o, *args);
}

}  // namespace bridgepool::cli
