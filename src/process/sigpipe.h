// SIGPIPE policy for hosts that write to worker pipes. Thread-safe (sigaction is process-wide).
#pragma once

namespace bridgepool {

// SIGPIPE would kill the host on a write to a worker that just died; we want EPIPE instead.
// Only the default action is replaced: a host that installed its own handler keeps it.
void ignore_sigpipe_if_default();

}  // namespace bridgepool
