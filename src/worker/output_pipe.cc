#include "worker/output_pipe.h"

#include <unistd.h>

#include <cerrno>
#include <iterator>

namespace bridgepool {
namespace {

constexpr std::size_t kReadChunk = 64 * 1024;

void append(std::vector<std::string>& to, std::vector<std::string> from) {
  to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
}

}  // namespace

bool drain_output_pipe(int fd, OutputCapture& capture, std::vector<std::string>& lines) {
  char buf[kReadChunk];
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

}  // namespace bridgepool
