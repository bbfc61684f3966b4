// MemoryRollup: a process's memory as /proc/PID/smaps_rollup (Linux >= 4.14) reports it, above
// all its PSS — proportional set size: private pages counted whole, every shared page divided by
// the number of processes mapping it. PSS is the figure that shows copy-on-write sharing between
// forked workers (RSS counts a shared page in full in every process that maps it), and the PSS
// of a set of processes adds up to the memory they really occupy together.
//
// parse_smaps_rollup() is pure (tested with sample text); read_smaps_rollup() reads the file.
// Used by bench/replacement_bench (PSS per worker, spawn vs fork server). Thread-safety: free
// functions without shared state.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string_view>

#include "bridgepool/error.h"

namespace bridgepool {

struct MemoryRollup {
  std::uint64_t rss_bytes = 0;
  std::uint64_t pss_bytes = 0;
  std::uint64_t shared_bytes = 0;    // Shared_Clean + Shared_Dirty (counted in full, as in RSS)
  std::uint64_t private_bytes = 0;   // Private_Clean + Private_Dirty
  std::uint64_t swap_pss_bytes = 0;  // SwapPss (0 when the kernel does not report it)
};

// Parses the text of a smaps_rollup file: "Key:   <n> kB" lines after a header line. Rss and
// Pss must be present; the other fields default to 0. A known field whose value is not
// "<digits> kB" is an error too. Errors are kSystem (the kernel's output was not what Linux
// documents) and name the offending line.
Result<MemoryRollup> parse_smaps_rollup(std::string_view text);

// Reads /proc/<pid>/smaps_rollup. kSystem error with strerror when it cannot be read (the
// process is gone, or the kernel is older than 4.14), or a parse error as above.
Result<MemoryRollup> read_smaps_rollup(pid_t pid);

}  // namespace bridgepool
