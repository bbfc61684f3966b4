#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include <fmt/format.h>

#include "process/pidfd.h"
#include "process/pidfd_process.h"
#include "process/posix_spawn_call.h"
#include "process/spawner.h"

namespace bridgepool {
namespace {

constexpr int kFirstFreeFd = 10;

// RAII for the posix_spawn attribute objects.
struct SpawnAttrs {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  SpawnAttrs() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  ~SpawnAttrs() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
};

}  // namespace

Error spawn_error(int err, std::string_view what) {
  // Descriptor and process limits are a resource problem the operator can fix; anything else
  // means this program cannot be started as configured.
  bool resource = err == EMFILE || err == ENFILE || err == EAGAIN || err == ENOMEM;
  Error e(resource ? ErrorCategory::kResource : ErrorCategory::kInitialization,
          fmt::format("{}: {}", what, strerrordesc_np(err)));
  e.context.operation = "spawn";
  e.context.cause = fmt::format("errno {} ({})", err, strerrorname_np(err));
  return e;
}

Result<Pipe> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return tl::unexpected(spawn_error(errno, "pipe2"));
  Pipe p{UniqueFd(fds[0]), UniqueFd(fds[1])};
  for (UniqueFd* end : {&p.read, &p.write}) {
    if (end->get() >= kFirstFreeFd) continue;
    int moved = ::fcntl(end->get(), F_DUPFD_CLOEXEC, kFirstFreeFd);
    if (moved < 0) return tl::unexpected(spawn_error(errno, "fcntl(F_DUPFD_CLOEXEC)"));
    end->reset(moved);
  }
  return p;
}

bool set_nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

void WorkerPipes::host_ends_nonblocking() const {
  for (int fd : {request.write.get(), response.read.get(), out.read.get(), err.read.get()}) {
    set_nonblocking(fd);
  }
}

Result<WorkerPipes> make_worker_pipes() {
  WorkerPipes p;
  for (Pipe* pipe : {&p.request, &p.response, &p.out, &p.err}) {
    auto made = make_pipe();
    if (!made) return tl::unexpected(made.error());
    *pipe = std::move(*made);
  }
  return p;
}

Result<StartedProcess> posix_spawn_process(const SpawnSpec& spec,
                                           const std::vector<int>& child_fds) {
  if (spec.argv.empty() || spec.argv[0].empty()) {
    return make_error(ErrorCategory::kInitialization, "spawn: empty argv");
  }
  SpawnAttrs sa;
  // In the child: stdin from /dev/null; the given descriptors onto 1..n (dup2 clears
  // close-on-exec on the new descriptor); then close everything above, so descriptors that
  // third-party code in the host opened without O_CLOEXEC do not leak into Python either.
  posix_spawn_file_actions_addopen(&sa.actions, 0, "/dev/null", O_RDONLY, 0);
  for (std::size_t i = 0; i < child_fds.size(); ++i) {
    posix_spawn_file_actions_adddup2(&sa.actions, child_fds[i], static_cast<int>(i + 1));
  }
  posix_spawn_file_actions_addclosefrom_np(&sa.actions, static_cast<int>(child_fds.size() + 1));

  // Own process group (so the group can be ended as a whole, and a terminal's Ctrl-C reaches only
  // the host); empty signal mask and default dispositions for every signal — the host may block
  // or ignore signals (we ignore SIGPIPE) and those settings would otherwise be inherited.
  sigset_t empty, all;
  sigemptyset(&empty);
  sigfillset(&all);
  posix_spawnattr_setpgroup(&sa.attr, 0);
  posix_spawnattr_setsigmask(&sa.attr, &empty);
  posix_spawnattr_setsigdefault(&sa.attr, &all);
  posix_spawnattr_setflags(&sa.attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> argv, envp;
  for (const auto& a : spec.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : spec.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  // glibc's posix_spawn uses clone(CLONE_VM|CLONE_VFORK): cheap for a large host, and an exec
  // failure (ENOENT, EACCES) comes back as the return value instead of a silent child exit 127.
  pid_t pid = -1;
  bool search_path = spec.argv[0].find('/') == std::string::npos;
  int rc = search_path
               ? posix_spawnp(&pid, argv[0], &sa.actions, &sa.attr, argv.data(), envp.data())
               : posix_spawn(&pid, argv[0], &sa.actions, &sa.attr, argv.data(), envp.data());
  if (rc != 0)
    return tl::unexpected(spawn_error(rc, fmt::format("cannot execute '{}'", spec.argv[0])));

  // The child is ours and not yet reaped, so its pid cannot have been reused: pidfd_open is safe.
  int pidfd = ::pidfd_open(pid, 0);
  if (pidfd < 0) {
    int e = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return tl::unexpected(spawn_error(e, "pidfd_open"));
  }
  return StartedProcess{pid, UniqueFd(pidfd)};
}

Result<std::unique_ptr<ChildProcess>> PosixSpawner::spawn(const SpawnSpec& spec) {
  if (spec.argv.empty() || spec.argv[0].empty()) {
    return make_error(ErrorCategory::kInitialization, "spawn: empty argv");
  }
  auto pipes = make_worker_pipes();
  if (!pipes) return tl::unexpected(pipes.error());
  // Child fds 1, 2, 3 (requests), 4 (responses).
  auto started = posix_spawn_process(spec, {pipes->child_stdout(), pipes->child_stderr(),
                                            pipes->child_request(), pipes->child_response()});
  if (!started) return tl::unexpected(started.error());
  pipes->host_ends_nonblocking();
  // The child-side ends close here (UniqueFd), so EOF on a pipe means the child end is gone.
  return std::make_unique<PidfdProcess>(
      started->pid, std::move(started->pidfd), std::move(pipes->request.write),
      std::move(pipes->response.read), std::move(pipes->out.read), std::move(pipes->err.read));
}

}  // namespace bridgepool
