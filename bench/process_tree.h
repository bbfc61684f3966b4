// descendant_pids(): every process below `root` (children, grandchildren, ...), from
// /proc/<pid>/task/<tid>/children (Linux >= 4.2 with CONFIG_PROC_CHILDREN, as on Debian). Used by
// replacement_bench to add up the PSS of everything a pool runs — workers, and a fork server's
// template process or a worker's sentinel, whatever the start method makes — so that the totals
// of two start methods compare the same thing. A process that exits meanwhile is skipped.
// Thread-safety: no shared state.
#pragma once

#include <sys/types.h>

#include <vector>

namespace bridgepool::bench {

std::vector<pid_t> descendant_pids(pid_t root);

}  // namespace bridgepool::bench
