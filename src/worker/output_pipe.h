// Reading a worker's stdout/stderr pipe into an OutputCapture (the I/O half of output capture;
// OutputCapture itself is pure). Shared by the pool's monitor and the single bridge's thread.
// Called by the one thread that owns the pipe.
#pragma once

#include <string>
#include <vector>

#include "worker/output_capture.h"

namespace bridgepool {

// Reads everything available from the non-blocking pipe `fd` (EINTR retried) and appends the
// completed lines to `lines`. At EOF (or a read error) also appends the capture's unterminated
// tail and returns true: the caller stops watching and closes the pipe.
bool drain_output_pipe(int fd, OutputCapture& capture, std::vector<std::string>& lines);

}  // namespace bridgepool
