#include "worker/output_pipe.h"

#include <unistd.h>

#include <cerrno>
#include <iterator>

namespace bridgepool {
namespace {

// Bytes of a worker's stdout/stderr read per read(2).
constexpr std::size_t kOutputReadChunk = std::size_t{64} * 1024;

void append(std::vector<std::string>& to, std::vector<std::string> from) {
  to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
}

}  // namespace

bool drain_output_pipe(int fd, OutputCapture& capture, std::vector<std::string>& lines) {
  char buf[kOutputReadChunk];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      append(lines, capture.feed(std::string_view(buf, static_cast<std::size_t>(n))));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return false;
    append(lines, capture.finish());  // EOF, or the pipe is unusable: flush what is left
    return true;
  }
}

void log_output_lines(Logger& logger, const std::string& pool, const std::string& worker_id,
                      bool is_stderr, std::vector<std::string> lines,
                      std::deque<std::string>& stderr_tail, std::size_t tail_limit) {
  for (auto& line : lines) {
    if (is_stderr) {
      stderr_tail.push_back(line);
      if (stderr_tail.size() > tail_limit) stderr_tail.pop_front();
    }
    if (!logger.enabled(LogLevel::kInfo)) continue;
    LogRecord r;
    r.level = LogLevel::kInfo;
    r.pool = pool;
    r.component = is_stderr ? "worker.stderr" : "worker.stdout";
    r.message = std::move(line);
    r.worker_id = worker_id;
    logger.log(std::move(r));
  }
}

}  // namespace bridgepool
