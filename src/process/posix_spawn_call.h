// The posix_spawn call both spawners share: a program started with chosen descriptors on fds
// 1..n, /dev/null on 0, everything else closed, its own process group, default signal
// dispositions and an empty mask; plus the close-on-exec pipes they hand to children.
// PosixSpawner (posix_spawner.cc) starts workers with it; ForkServer (fork_server.cc) starts
// the zygote with it. Thread-safety: free functions, any thread (see spawner.h for why the
// pool still calls them from long-lived threads only).
#pragma once

#include <sys/types.h>

#include <string_view>
#include <vector>

#include "base/unique_fd.h"
#include "bridgepool/error.h"
#include "process/spawner.h"

namespace bridgepool {

// A classified spawn failure: resource for descriptor/process/memory limits, initialization
// otherwise; the errno name goes into the cause.
Error spawn_error(int err, std::string_view what);

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

// A close-on-exec pipe whose ends are numbered >= 10, so that dup2 onto 0..4 in a child can
// never clobber one of our own source descriptors (e.g. a host started with fd 0 closed).
Result<Pipe> make_pipe();

bool set_nonblocking(int fd);

// The four pipes of a worker (SPEC §2): requests, responses, stdout, stderr. The child gets the
// `child_*` ends; the host keeps the others, which host_ends_nonblocking() prepares.
struct WorkerPipes {
  Pipe request, response, out, err;
  int child_request() const { return request.read.get(); }
  int child_response() const { return response.write.get(); }
  int child_stdout() const { return out.write.get(); }
  int child_stderr() const { return err.write.get(); }
  void host_ends_nonblocking() const;
};
Result<WorkerPipes> make_worker_pipes();

struct StartedProcess {
  pid_t pid = -1;
  UniqueFd pidfd;
};

// Executes spec.argv with spec.env; child_fds[i] becomes the child's fd i + 1. Every source
// descriptor must be >= 10 (make_pipe's are).
Result<StartedProcess> posix_spawn_process(const SpawnSpec& spec,
                                           const std::vector<int>& child_fds);

}  // namespace bridgepool
