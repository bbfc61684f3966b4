#include "cli/status_command.h"

#include <cstdio>

#include "cli/api_client.h"
#include "cli/call_exit.h"
#include "cli/status_table.h"

namespace bridgepool::cli {

int run_status(const StatusOptions& o) {
  std::string url = o.url.empty() ? default_url() : o.url;
  auto reply =
      api_call(url, "/v1/status", std::nullopt, "", std::chrono::milliseconds(o.timeout_ms));
  if (!reply) {
    std::fprintf(stderr, "bridgepool status: %s\n", reply.error().c_str());
    return kExitUnreachable;
  }
  if (reply->status != 200) {
    std::fprintf(stderr, "bridgepool status: %s answered HTTP %d\n", url.c_str(), reply->status);
    return kExitUnreachable;
  }
  if (o.json) {
    std::printf("%s\n", reply->body.dump(2).c_str());
  } else {
    std::fputs(format_status(reply->body).c_str(), stdout);
  }
  return 0;
}

}  // namespace bridgepool::cli
