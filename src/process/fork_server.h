// ForkServer: one zygote process — a Python interpreter that loaded the worker runtime and the
// handler modules once and from then on only forks ready workers (python/bridgepool_worker/
// zygote.py has the other half and the message list).
//
// The host side: the zygote is posix_spawned with a SOCK_SEQPACKET socket on its fd 3 and
// pipes on 1/2, by this object's own thread, which then lives exactly as long as the zygote —
// PR_SET_PDEATHSIG in the zygote fires when the *thread* that spawned it exits. That thread
// reads everything the zygote says (its state, fork replies with the new worker's pidfd,
// exit reports of reaped workers), logs its output, notices its death (pidfd) and reaps it.
// A fork request travels the other way with the worker's four pipe ends (SCM_RIGHTS).
//
// States: starting -> ready (forks) | unsafe (its modules started threads: never forks) |
// failed (an import error, a bad start, or not ready within the start timeout) ; ready ->
// dead. Workers a dead zygote forked keep serving; their exit status is then unknown.
//
// Thread-safety: every public method may be called from any thread. fork() calls are
// serialized (one request in flight). Callbacks run on the server's thread, without locks held,
// and must not destroy the server.
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/unique_fd.h"
#include "bridgepool/error.h"
#include "bridgepool/logging.h"
#include "process/child_process.h"
#include "process/spawner.h"

namespace bridgepool {

class ForkServer {
 public:
  enum class State { kStarting, kReady, kUnsafe, kFailed, kDead };
  using LogSink = std::function<void(LogLevel, const std::string&)>;

  struct Options {
    std::chrono::milliseconds start_timeout{10'000};  // spawn -> "ready" (imports included)
    std::chrono::milliseconds delay{0};               // wait this long before spawning (backoff)
    LogSink log;                                      // the zygote's output and its fate
    std::function<void(State)> on_settled;            // left kStarting (ready, unsafe or failed)
    std::function<void()> on_died;                    // was ready, then exited
  };

  struct Forked {
    pid_t pid = -1;
    UniqueFd pidfd;
  };

  // Starts the zygote `spec` (argv ends with --zygote) on a new thread after options.delay.
  ForkServer(SpawnSpec spec, Options options);
  // Closes the socket (the zygote exits at EOF), SIGKILL if it has not after a second; joins.
  ~ForkServer();
  ForkServer(const ForkServer&) = delete;
  ForkServer& operator=(const ForkServer&) = delete;

  State state() const;
  pid_t pid() const;  // -1 until spawned
  // Why it is failed or dead (initialization error; for an import error, with the traceback).
  Error failure() const;
  std::string unsafe_reason() const;

  // Forks a worker whose fds 3, 4, 1, 2 become `fds` = {request read end, response write end,
  // stdout write end, stderr write end}; `args` are its per-worker arguments. Waits for the
  // reply up to `timeout`. Errors: not ready, the zygote died, os.fork() failed, timeout (the
  // zygote is then abandoned).
  Result<Forked> fork(const std::vector<std::string>& args, const std::array<int, 4>& fds,
                      std::chrono::milliseconds timeout);
  // The exit status the zygote reported for `pid`, waiting up to `patience` for the report
  // (0: not at all). nullopt when it has not (yet), or the zygote is gone and never will.
  std::optional<ExitStatus> exit_of(pid_t pid, std::chrono::milliseconds patience) const;
  // Drops the report of `pid` (its ForkedProcess is gone).
  void forget(pid_t pid);
  bool alive() const;
  // The zygote stopped answering (a fork request or an exit report timed out: SIGSTOP, a
  // livelock): SIGKILL it. It then goes dead as usual (on_died: replaced with backoff) and
  // waiters stop waiting for it.
  void abandon(const std::string& why);

 private:
  void run(SpawnSpec spec);
  bool spawn_zygote(const SpawnSpec& spec);
  void serve_socket();
  bool read_message();
  void on_message(const std::string& text, UniqueFd fd);
  void drain_output(int fd, bool is_stderr);
  void on_zygote_exit();
  void settle(State state, std::optional<Error> failure = std::nullopt);
  bool wait_delay();

  const Options options_;
  UniqueFd wake_;  // eventfd: the destructor wants the thread to end
  UniqueFd socket_, out_, err_, pidfd_;
  std::string out_buffer_, err_buffer_;
  std::vector<std::string> stderr_tail_;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  State state_ = State::kStarting;
  pid_t pid_ = -1;
  bool stopping_ = false;
  Error failure_;
  std::string unsafe_reason_;
  std::optional<Result<Forked>> reply_;  // the answer to the fork request in flight
  std::unordered_map<pid_t, ExitStatus> exits_;

  std::mutex fork_mu_;  // one fork request at a time
  std::thread thread_;
};

}  // namespace bridgepool
