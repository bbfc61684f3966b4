// Reading a worker's stdout/stderr pipe into an OutputCapture (the I/O half of output capture;
// OutputCapture itself is pure). Shared by the pool's monitor and the single bridge's thread.
// Called by the one thread that owns the pipe.
#pragma once

#include <cstddef>
#include <deque>
#include <string>
#include <vector>

#include "bridgepool/logging.h"
#include "worker/output_capture.h"

namespace bridgepool {

// Reads everything available from the non-blocking pipe `fd` (EINTR retried) and appends the
// completed lines to `lines`. At EOF (or a read error) also appends the capture's unterminated
// tail and returns true: the caller stops watching and closes the pipe.
bool drain_output_pipe(int fd, OutputCapture& capture, std::vector<std::string>& lines);

// Logs captured lines at info level as "worker.stdout"/"worker.stderr", tagged with the pool's
// name and the worker id (the bytes as the worker wrote them: a JSON-lines sink replaces invalid
// UTF-8); stderr lines are also kept in `stderr_tail` (at most `tail_limit`), which explains a
// worker that dies before its handshake.
void log_output_lines(Logger& logger, const std::string& pool, const std::string& worker_id,
                      bool is_stderr, std::vector<std::string> lines,
                      std::deque<std::string>& stderr_tail, std::size_t tail_limit);

}  // namespace bridgepool
