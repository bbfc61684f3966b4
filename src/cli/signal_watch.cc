#include "cli/signal_watch.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace bridgepool::cli {
namespace {

sigset_t watched_signals(bool hangup) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  if (hangup) sigaddset(&set, SIGHUP);
  return set;
}

Error system_error(const char* what) {
  return Error(ErrorCategory::kSystem, fmt::format("{}: {}", what, ::strerror(errno)));
}

}  // namespace

Result<std::unique_ptr<SignalWatch>> SignalWatch::start(Callback on_first, Callback on_again,
                                                        Callback on_hangup) {
  sigset_t set = watched_signals(static_cast<bool>(on_hangup));
  // Blocked, the signals stay pending until the watcher reads them from the signalfd; a signal
  // that arrives before the signalfd exists is not lost either: it waits, pending, and is read
  // first.
  if (int rc = ::pthread_sigmask(SIG_BLOCK, &set, nullptr); rc != 0) {
    errno = rc;
    return tl::unexpected(system_error("pthread_sigmask"));
  }
  UniqueFd signal_fd(::signalfd(-1, &set, SFD_CLOEXEC));
  if (!signal_fd) return tl::unexpected(system_error("signalfd"));
  UniqueFd wake_fd(::eventfd(0, EFD_CLOEXEC));
  if (!wake_fd) return tl::unexpected(system_error("eventfd"));
  std::unique_ptr<SignalWatch> watch(new SignalWatch(std::move(signal_fd), std::move(wake_fd),
                                                     std::move(on_first), std::move(on_again),
                                                     std::move(on_hangup)));
  try {
    watch->thread_ = std::thread([w = watch.get()] { w->run(); });
  } catch (const std::system_error& e) {
    return tl::unexpected(Error(ErrorCategory::kSystem, fmt::format("thread: {}", e.what())));
  }
  return watch;
}

SignalWatch::SignalWatch(UniqueFd signal_fd, UniqueFd wake_fd, Callback on_first, Callback on_again,
                         Callback on_hangup)
    : signal_fd_(std::move(signal_fd)),
      wake_fd_(std::move(wake_fd)),
      on_first_(std::move(on_first)),
      on_again_(std::move(on_again)),
      on_hangup_(std::move(on_hangup)) {}

SignalWatch::~SignalWatch() {
  if (thread_.joinable()) {
    std::uint64_t one = 1;
    // An eventfd write of 1 cannot block or be partial (the counter is far from overflowing).
    ssize_t rc = ::write(wake_fd_.get(), &one, sizeof one);
    (void)rc;
    thread_.join();
  }
}

std::string SignalWatch::name_of(int signo) {
  if (signo == SIGINT) return "SIGINT";
  if (signo == SIGTERM) return "SIGTERM";
  if (signo == SIGHUP) return "SIGHUP";
  return fmt::format("signal {}", signo);
}

void SignalWatch::run() {
  pollfd fds[2] = {{signal_fd_.get(), POLLIN, 0}, {wake_fd_.get(), POLLIN, 0}};
  for (;;) {
    int rc = ::poll(fds, 2, -1);
    if (rc < 0 && errno == EINTR) continue;  // not expected (no handlers), but harmless
    if (rc < 0 || (fds[1].revents & POLLIN)) return;
    if (!(fds[0].revents & POLLIN)) continue;
    signalfd_siginfo info;
    // A signalfd read returns whole siginfo records; one per pending signal. Two SIGINTs that
    // arrive before this read are merged by the kernel into one (standard signals do not queue).
    ssize_t n = ::read(signal_fd_.get(), &info, sizeof info);
    if (n != static_cast<ssize_t>(sizeof info)) continue;
    int signo = static_cast<int>(info.ssi_signo);
    if (signo == SIGHUP) {
      if (on_hangup_) on_hangup_(signo);
    } else if (received_++ == 0) {
      on_first_(signo);
    } else {
      on_again_(signo);
    }
  }
}

// ---------------------------------------------------------------------------------------------

std::size_t kill_child_process_groups() {
  const pid_t self = ::getpid();
  std::size_t signalled = 0;
  DIR* proc = ::opendir("/proc");
  if (!proc) return 0;
  while (dirent* entry = ::readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(entry->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    // /proc/PID/stat: "pid (comm) state ppid pgrp ..."; comm may contain spaces and ')', so
    // the fields are read after the last ')'.
    std::ifstream stat(fmt::format("/proc/{}/stat", pid));
    std::string line;
    if (!std::getline(stat, line)) continue;
    auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(line.substr(close + 1));
    char state = 0;
    pid_t ppid = 0, pgrp = 0;
    if (!(fields >> state >> ppid >> pgrp) || ppid != self) continue;
    // Our child, not reaped when /proc was read (a zombie included), so the group it leads is
    // the worker's. (The pool may reap it between that read and the kill; the id would then have
    // to be taken by a new group leader within those microseconds to be hit by mistake.) A child
    // that does not lead a group is signalled alone.
    pid_t target = pgrp == static_cast<pid_t>(pid) ? -pgrp : static_cast<pid_t>(pid);
    if (::kill(target, SIGKILL) == 0) ++signalled;
  }
  ::closedir(proc);
  return signalled;
}

}  // namespace bridgepool::cli
