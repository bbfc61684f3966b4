#include "process/child_process.h"

#include <poll.h>
#include <string.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>

#include <fmt/format.h>

namespace bridgepool {

std::string ExitStatus::describe() const {
  if (unknown) return "exit status unknown (its fork server had exited)";
  if (!signaled) return fmt::format("exit code {}", code);
  const char* name = sigabbrev_np(signal);
  return fmt::format("killed by signal {} (SIG{})", signal, name ? name : "?");
}

ChildProcess::ChildProcess(pid_t pid, UniqueFd request_fd, UniqueFd response_fd, UniqueFd stdout_fd,
                           UniqueFd stderr_fd)
    : pid_(pid),
      request_fd_(std::move(request_fd)),
      response_fd_(std::move(response_fd)),
      stdout_fd_(std::move(stdout_fd)),
      stderr_fd_(std::move(stderr_fd)) {}

bool ChildProcess::has_exited() const {
  if (reaped()) return true;
  pollfd p{exit_fd(), POLLIN, 0};
  int rc;
  do {
    rc = ::poll(&p, 1, 0);
  } while (rc < 0 && errno == EINTR);
  return rc > 0;
}

std::optional<ExitStatus> ChildProcess::exit_status() const {
  if (!reaped()) return std::nullopt;
  return status_;
}

void ChildProcess::record_exit(const ExitStatus& status) {
  status_ = status;
  reaped_.store(true, std::memory_order_release);
}

std::string ChildProcess::describe_exit(std::chrono::milliseconds patience) const {
  if (!has_exited() && patience.count() > 0) {
    // EOF or EPIPE usually arrives a moment before the process is a zombie (it closes its
    // descriptors first): wait for the exit itself so the message can say how it ended.
    pollfd p{exit_fd(), POLLIN, 0};
    while (::poll(&p, 1, static_cast<int>(patience.count())) < 0 && errno == EINTR) {
    }
  }
  if (auto status = peek_exit_status()) return status->describe();
  return fmt::format("still running after {} ms", patience.count());
}

std::optional<std::uint64_t> resident_bytes_of(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/statm", static_cast<int>(pid));
  std::FILE* f = std::fopen(path, "re");
  if (f == nullptr) return std::nullopt;
  unsigned long long size_pages = 0, resident_pages = 0;
  const int fields = std::fscanf(f, "%llu %llu", &size_pages, &resident_pages);
  std::fclose(f);
  if (fields != 2) return std::nullopt;
  return static_cast<std::uint64_t>(resident_pages) *
         static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace bridgepool
