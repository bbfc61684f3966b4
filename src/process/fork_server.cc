// ForkServer: the host side of one zygote; see fork_server.h and python/bridgepool_worker/
// zygote.py.
#include "process/fork_server.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "process/pidfd.h"
#include "process/posix_spawn_call.h"

#ifndef P_PIDFD
#define P_PIDFD 3  // linux/wait.h; glibc 2.36 does not always expose it
#endif

namespace bridgepool {
namespace {

constexpr std::size_t kMaxMessage = 64 * 1024;
constexpr std::size_t kStderrTailLines = 20;
constexpr std::size_t kMaxLineChars = 4096;
constexpr int kStopGraceMs = 1000;  // after EOF on its socket, then SIGKILL

Error server_error(std::string message, std::string_view operation = "fork_server") {
  Error e(ErrorCategory::kInitialization, std::move(message));
  e.context.operation = std::string(operation);
  return e;
}

// A close-on-exec descriptor numbered >= 10 (see make_pipe), or -1.
int high_fd(int fd) {
  if (fd >= 10) return fd;
  int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
  ::close(fd);
  return moved;
}

ExitStatus status_of(const siginfo_t& info) {
  ExitStatus s;
  s.signaled = info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED;
  (s.signaled ? s.signal : s.code) = info.si_status;
  return s;
}

Error init_failed_error(const nlohmann::json& message) {
  const auto& e = message.value("error", nlohmann::json::object());
  Error error =
      server_error(e.value("message", std::string("the fork server failed to start")), "handshake");
  PythonError python;
  python.type = e.value("type", std::string());
  if (e.contains("traceback") && e["traceback"].is_string()) python.traceback = e["traceback"];
  error.python = std::move(python);
  return error;
}

}  // namespace

ForkServer::ForkServer(SpawnSpec spec, Options options)
    : options_(std::move(options)), wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  thread_ = std::thread([this, spec = std::move(spec)] { run(spec); });
}

ForkServer::~ForkServer() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  std::uint64_t one = 1;
  ssize_t rc = ::write(wake_.get(), &one, sizeof one);
  (void)rc;
  if (thread_.joinable()) thread_.join();
}

ForkServer::State ForkServer::state() const {
  std::lock_guard lock(mu_);
  return state_;
}

pid_t ForkServer::pid() const {
  std::lock_guard lock(mu_);
  return pid_;
}

Error ForkServer::failure() const {
  std::lock_guard lock(mu_);
  return failure_;
}

std::string ForkServer::unsafe_reason() const {
  std::lock_guard lock(mu_);
  return unsafe_reason_;
}

bool ForkServer::alive() const {
  std::lock_guard lock(mu_);
  return state_ == State::kReady || state_ == State::kStarting;
}

void ForkServer::abandon(const std::string& why) {
  {
    std::lock_guard lock(mu_);
    if (state_ != State::kReady) return;
  }
  if (options_.log) {
    options_.log(LogLevel::kError, fmt::format("fork server (pid {}) {}: killing it", pid(), why));
  }
  ::pidfd_send_signal(pidfd_.get(), SIGKILL, nullptr, 0);
}

Result<ForkServer::Forked> ForkServer::fork(const std::vector<std::string>& args,
                                            const std::array<int, 4>& fds,
                                            std::chrono::milliseconds timeout) {
  std::lock_guard serial(fork_mu_);
  {
    std::lock_guard lock(mu_);
    if (state_ != State::kReady)
      return make_error(ErrorCategory::kResource, "fork server not ready");
    reply_.reset();
  }
  const std::string text = nlohmann::json{{"op", "fork"}, {"args", args}}.dump();
  iovec iov{const_cast<char*>(text.data()), text.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int) * 4);
  std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * 4);
  ssize_t sent;
  do {
    sent = ::sendmsg(socket_.get(), &msg, MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) return tl::unexpected(spawn_error(errno, "fork request to the fork server"));

  std::unique_lock lock(mu_);
  bool answered =
      cv_.wait_for(lock, timeout, [&] { return reply_.has_value() || state_ != State::kReady; });
  if (reply_) {
    auto out = std::move(*reply_);
    reply_.reset();
    return out;
  }
  if (!answered) {
    lock.unlock();
    const std::string why =
        fmt::format("did not answer a fork request within {} ms", timeout.count());
    abandon(why);  // hung: a replacement zygote starts; this worker is spawned instead
    return make_error(ErrorCategory::kResource, "fork server " + why);
  }
  return make_error(ErrorCategory::kResource, "fork server exited during a fork request");
}

std::optional<ExitStatus> ForkServer::exit_of(pid_t pid, std::chrono::milliseconds patience) const {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, patience, [&] {
    return exits_.count(pid) > 0 || state_ == State::kDead || state_ == State::kFailed;
  });
  auto it = exits_.find(pid);
  if (it == exits_.end()) return std::nullopt;
  return it->second;
}

void ForkServer::forget(pid_t pid) {
  std::lock_guard lock(mu_);
  exits_.erase(pid);
}

// ---- the server's thread ------------------------------------------------------------------

void ForkServer::run(SpawnSpec spec) {
  if (!wait_delay()) {
    settle(State::kFailed, server_error("shutting down", "spawn"));
    return;
  }
  if (!spawn_zygote(spec)) return;
  serve_socket();
}

bool ForkServer::wait_delay() {
  if (options_.delay.count() <= 0) return true;
  pollfd p{wake_.get(), POLLIN, 0};
  int rc;
  do {
    rc = ::poll(&p, 1, static_cast<int>(options_.delay.count()));
  } while (rc < 0 && errno == EINTR);
  return rc == 0;  // 0: the delay passed without a stop request
}

bool ForkServer::spawn_zygote(const SpawnSpec& spec) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    settle(State::kFailed, spawn_error(errno, "socketpair"));
    return false;
  }
  UniqueFd host_end(high_fd(pair[0])), zygote_end(high_fd(pair[1]));
  auto out = make_pipe();
  auto err = out ? make_pipe() : tl::unexpected(out.error());
  if (!host_end || !zygote_end || !out || !err) {
    settle(State::kFailed, !out ? out.error() : !err ? err.error() : spawn_error(EMFILE, "fcntl"));
    return false;
  }
  auto started = posix_spawn_process(spec, {out->write.get(), err->write.get(), zygote_end.get()});
  if (!started) {
    settle(State::kFailed, started.error());
    return false;
  }
  set_nonblocking(out->read.get());
  set_nonblocking(err->read.get());
  socket_ = std::move(host_end);
  out_ = std::move(out->read);
  err_ = std::move(err->read);
  pidfd_ = std::move(started->pidfd);
  {
    std::lock_guard lock(mu_);
    pid_ = started->pid;
  }
  if (options_.log) {
    options_.log(LogLevel::kDebug, fmt::format("fork server spawned (pid {})", started->pid));
  }
  return true;
}

void ForkServer::serve_socket() {
  const auto start_deadline = std::chrono::steady_clock::now() + options_.start_timeout;
  std::optional<std::chrono::steady_clock::time_point> kill_at;
  bool socket_open = true;
  for (;;) {
    pollfd fds[5] = {{wake_.get(), POLLIN, 0},
                     {socket_open ? socket_.get() : -1, POLLIN, 0},
                     {out_ ? out_.get() : -1, POLLIN, 0},
                     {err_ ? err_.get() : -1, POLLIN, 0},
                     {pidfd_.get(), POLLIN, 0}};
    int timeout = -1;
    auto now = std::chrono::steady_clock::now();
    const bool starting = state() == State::kStarting;
    auto deadline = kill_at ? kill_at : starting ? std::optional(start_deadline) : std::nullopt;
    if (deadline) {
      timeout = static_cast<int>(
          std::max<long>(0, std::chrono::ceil<std::chrono::milliseconds>(*deadline - now).count()));
    }
    int rc = ::poll(fds, 5, timeout);
    if (rc < 0 && errno == EINTR) continue;
    if (rc == 0 && deadline) {
      if (!kill_at && starting) {
        settle(State::kFailed,
               server_error(fmt::format("the fork server did not load the handler modules within "
                                        "{} ms",
                                        options_.start_timeout.count()),
                            "handshake"));
      }
      ::pidfd_send_signal(pidfd_.get(), SIGKILL, nullptr, 0);
      kill_at = std::chrono::steady_clock::now() + std::chrono::hours(1);
      continue;
    }
    if (fds[0].revents && !kill_at) {
      // Stop: EOF on its socket makes the zygote exit; SIGKILL if it has not within a second.
      ::shutdown(socket_.get(), SHUT_RDWR);
      kill_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(kStopGraceMs);
      std::uint64_t drained;
      ssize_t n = ::read(wake_.get(), &drained, sizeof drained);
      (void)n;
    }
    if (fds[1].revents && socket_open) {
      while (read_message()) {
      }
      if (fds[1].revents & (POLLHUP | POLLERR)) socket_open = false;
    }
    if (fds[2].revents) drain_output(out_.get(), false);
    if (fds[3].revents) drain_output(err_.get(), true);
    if (fds[4].revents) {
      while (socket_open && read_message()) {
      }
      if (out_) drain_output(out_.get(), false);
      if (err_) drain_output(err_.get(), true);
      on_zygote_exit();
      return;
    }
  }
}

bool ForkServer::read_message() {
  char buffer[kMaxMessage];
  iovec iov{buffer, sizeof buffer};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = ::recvmsg(socket_.get(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n <= 0) return false;
  UniqueFd passed;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
      passed.reset(fd);
    }
  }
  on_message(std::string(buffer, static_cast<std::size_t>(n)), std::move(passed));
  return true;
}

void ForkServer::on_message(const std::string& text, UniqueFd fd) {
  auto message = nlohmann::json::parse(text, nullptr, false);
  const std::string event =
      message.is_object() && message.value("event", nlohmann::json()).is_string()
          ? message["event"].get<std::string>()
          : std::string();
  if (event == "ready") {
    if (options_.log) {
      options_.log(LogLevel::kInfo, fmt::format("fork server ready (pid {}, {} native thread(s))",
                                                pid(), message.value("native_threads", 1)));
    }
    settle(State::kReady);
  } else if (event == "init_failed") {
    settle(State::kFailed, init_failed_error(message));
  } else if (event == "unsafe") {
    {
      std::lock_guard lock(mu_);
      unsafe_reason_ = message.value("reason", std::string("threads at import"));
    }
    settle(State::kUnsafe);
  } else if (event == "forked" || event == "fork_failed") {
    std::lock_guard lock(mu_);
    if (event == "forked" && fd) {
      reply_ = Forked{message.value("pid", pid_t{-1}), std::move(fd)};
    } else {
      reply_ = make_error(ErrorCategory::kResource,
                          "fork server: " + message.value("message", std::string("no pidfd")));
    }
    cv_.notify_all();
  } else if (event == "exited") {
    ExitStatus status;
    if (message.contains("signal")) {
      status.signaled = true;
      status.signal = message.value("signal", 0);
    } else {
      status.code = message.value("code", 0);
    }
    std::lock_guard lock(mu_);
    exits_[message.value("pid", pid_t{-1})] = status;
    cv_.notify_all();
  } else if (options_.log) {
    options_.log(LogLevel::kWarn, "fork server: unexpected message ignored");
  }
}

void ForkServer::drain_output(int fd, bool is_stderr) {
  std::string& buffer = is_stderr ? err_buffer_ : out_buffer_;
  char chunk[4096];
  for (;;) {
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) (is_stderr ? err_ : out_).reset();  // EOF
      break;
    }
    buffer.append(chunk, static_cast<std::size_t>(n));
  }
  std::size_t start = 0;
  for (std::size_t nl; (nl = buffer.find('\n', start)) != std::string::npos; start = nl + 1) {
    std::string line = buffer.substr(start, std::min(nl - start, kMaxLineChars));
    if (is_stderr) {
      stderr_tail_.push_back(line);
      if (stderr_tail_.size() > kStderrTailLines) stderr_tail_.erase(stderr_tail_.begin());
    }
    if (options_.log) {
      options_.log(is_stderr ? LogLevel::kWarn : LogLevel::kInfo, "fork server: " + line);
    }
  }
  buffer.erase(0, start);
  if (buffer.size() > kMaxLineChars) buffer.clear();  // a runaway line without newline
}

void ForkServer::on_zygote_exit() {
  siginfo_t info{};
  int rc;
  do {
    rc = ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd_.get()), &info, WEXITED);
  } while (rc < 0 && errno == EINTR);
  const std::string how = rc == 0 ? status_of(info).describe() : "status unknown";
  State before;
  bool stopping;
  {
    std::lock_guard lock(mu_);
    before = state_;
    stopping = stopping_;
  }
  if (before == State::kStarting) {
    Error e = server_error(
        fmt::format("the fork server (pid {}) exited before it was ready ({})", pid(), how),
        "handshake");
    if (!stderr_tail_.empty())
      e.context.cause = fmt::format("stderr: {}", fmt::join(stderr_tail_, "\n"));
    settle(State::kFailed, std::move(e));
  } else if (before == State::kReady) {
    if (options_.log && !stopping) {
      options_.log(LogLevel::kWarn,
                   fmt::format("fork server (pid {}) exited ({}); the workers it forked keep "
                               "serving",
                               pid(), how));
    }
    {
      std::lock_guard lock(mu_);
      state_ = State::kDead;
      failure_ = server_error(fmt::format("the fork server (pid {}) exited ({})", pid_, how));
    }
    cv_.notify_all();
    if (options_.on_died && !stopping) options_.on_died();
  }
  cv_.notify_all();
}

void ForkServer::settle(State state, std::optional<Error> failure) {
  {
    std::lock_guard lock(mu_);
    if (state_ != State::kStarting) return;  // settled once
    state_ = state;
    if (failure) failure_ = std::move(*failure);
  }
  cv_.notify_all();
  if (state == State::kFailed && options_.log) {
    options_.log(LogLevel::kError, "fork server failed: " + failure_.to_string());
  }
  if (state == State::kUnsafe && options_.log) {
    options_.log(LogLevel::kWarn,
                 fmt::format("fork server refused to fork: {}; workers of this generation are "
                             "spawned instead",
                             unsafe_reason()));
  }
  if (options_.on_settled) options_.on_settled(state);
}

}  // namespace bridgepool
