#include "process_tree.h"

#include <filesystem>
#include <fstream>
#include <string>

namespace bridgepool::bench {
namespace {

// The direct children of `pid`: each of its threads lists the children it forked.
std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  std::error_code ec;
  const std::filesystem::path tasks = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& task : std::filesystem::directory_iterator(tasks, ec)) {
    std::ifstream in(task.path() / "children");
    for (pid_t child; in >> child;) out.push_back(child);
  }
  return out;  // empty when the process is gone (ec set)
}

}  // namespace

std::vector<pid_t> descendant_pids(pid_t root) {
  std::vector<pid_t> out = children_of(root);
  for (std::size_t i = 0; i < out.size(); ++i) {  // breadth first; `out` grows as we go
    for (pid_t grandchild : children_of(out[i])) out.push_back(grandchild);
  }
  return out;
}

}  // namespace bridgepool::bench
