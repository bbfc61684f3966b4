#include "cli/call_exit.h"

#include <array>

#include <fmt/format.h>

#include "cli/bench_command.h"

namespace bridgepool::cli {
namespace {

struct CategoryExit {
  ErrorCategory category;
  int code;
};

constexpr std::array<CategoryExit, 11> kTable = {{
    {ErrorCategory::kInvalidRequest, 3},
    {ErrorCategory::kPython, 4},
    {ErrorCategory::kTimeout, 5},
    {ErrorCategory::kSession, 6},
    {ErrorCategory::kResource, 7},
    {ErrorCategory::kCircuitOpen, 7},
    {ErrorCategory::kInitialization, 8},
    {ErrorCategory::kConnection, 8},
    {ErrorCategory::kCommunication, 8},
    {ErrorCategory::kHealthCheck, 8},
    {ErrorCategory::kSystem, 9},
}};

}  // namespace

int exit_code_for(ErrorCategory category) {
  for (const auto& row : kTable) {
    if (row.category == category) return row.code;
  }
  return 9;
}

std::string call_exit_help() {
  std::string out = fmt::format(
      "Exit status:\n  0   the command returned a result (printed as JSON on stdout)\n"
      "  {}   invalid command line (e.g. ARGS_JSON is not a JSON object)\n",
      kExitUsage);
  int last = 0;
  for (const auto& row : kTable) {
    if (row.code == last) {
      out.pop_back();
      out += fmt::format(", {}\n", category_name(row.category));
      continue;
    }
    out += fmt::format("  {}   {}\n", row.code, category_name(row.category));
    last = row.code;
  }
  out +=
      fmt::format("  {}  no server reachable at --url, or an unreadable reply", kExitUnreachable);
  return out;
}

}  // namespace bridgepool::cli
