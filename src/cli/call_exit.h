// Exit statuses of `bridgepool call` and `bridgepool status`: one per kind of outcome, so a
// script can tell a bad request from a handler's exception from an unavailable service. The
// table below is the only declaration; `--help` and docs/serve.md show call_exit_help().
// Pure; any thread.
#pragma once

#include <string>

#include "bridgepool/error.h"

namespace bridgepool::cli {

inline constexpr int kExitUnreachable = 10;  // no server at the URL, or an unreadable reply

// 3 invalid_request, 4 python, 5 timeout, 6 session, 7 resource|circuit_open,
// 8 initialization|connection|communication|health_check, 9 system.
int exit_code_for(ErrorCategory category);

// The "Exit status:" block of the --help text (0, 2 and kExitUnreachable included).
std::string call_exit_help();

}  // namespace bridgepool::cli
