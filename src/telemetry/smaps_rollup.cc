#include "telemetry/smaps_rollup.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include <fmt/format.h>

namespace bridgepool {
namespace {

// The fields read, as named in the file, and where each adds up (Shared_Clean and
// Shared_Dirty both go to shared_bytes).
struct Field {
  std::string_view key;
  std::uint64_t MemoryRollup::*target;
};
constexpr Field kFields[] = {
    {"Rss", &MemoryRollup::rss_bytes},
    {"Pss", &MemoryRollup::pss_bytes},
    {"Shared_Clean", &MemoryRollup::shared_bytes},
    {"Shared_Dirty", &MemoryRollup::shared_bytes},
    {"Private_Clean", &MemoryRollup::private_bytes},
    {"Private_Dirty", &MemoryRollup::private_bytes},
    {"SwapPss", &MemoryRollup::swap_pss_bytes},
};

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r");
  return s.substr(first, last - first + 1);
}

// "   1748 kB" -> 1748 * 1024; nullopt unless it is digits followed by the unit kB.
std::optional<std::uint64_t> kilobytes(std::string_view value) {
  value = trim(value);
  const auto space = value.find(' ');
  if (space == std::string_view::npos || trim(value.substr(space)) != "kB") return std::nullopt;
  std::uint64_t kb = 0;
  const char* end = value.data() + space;
  auto [ptr, ec] = std::from_chars(value.data(), end, kb);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return kb * 1024;
}

const Field* find_field(std::string_view key) {
  for (const Field& f : kFields) {
    if (f.key == key) return &f;
  }
  return nullptr;
}

}  // namespace

Result<MemoryRollup> parse_smaps_rollup(std::string_view text) {
  MemoryRollup out;
  bool rss = false, pss = false;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const auto eol = text.find('\n', pos);
    const std::string_view line =
        text.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
    pos = eol == std::string_view::npos ? text.size() : eol + 1;
    const auto colon = line.find(':');
    const Field* field =
        colon == std::string_view::npos ? nullptr : find_field(line.substr(0, colon));
    if (!field) continue;  // the header line, and fields not read
    const auto bytes = kilobytes(line.substr(colon + 1));
    if (!bytes) {
      return make_error(ErrorCategory::kSystem,
                        fmt::format("smaps_rollup: expected '<number> kB' in line '{}'", line));
    }
    out.*(field->target) += *bytes;
    rss = rss || field->key == "Rss";
    pss = pss || field->key == "Pss";
  }
  if (!rss || !pss) {
    return make_error(ErrorCategory::kSystem,
                      fmt::format("smaps_rollup: no {} line", rss ? "Pss" : "Rss"));
  }
  return out;
}

Result<MemoryRollup> read_smaps_rollup(pid_t pid) {
  const std::string path = fmt::format("/proc/{}/smaps_rollup", pid);
  std::ifstream in(path);
  if (!in) {
    return make_error(ErrorCategory::kSystem,
                      fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return parse_smaps_rollup(text.str());
}

}  // namespace bridgepool
