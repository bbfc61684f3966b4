// FakeSpawner: a Spawner whose "workers" are in-process threads speaking the real protocol over
// real pipes (requests on one, replies on another, stdout/stderr pipes the pool drains), so pool
// logic — health timeline, respawn backoff, recycling, session expiry, overflow, breaker and
// quarantine decisions — is tested deterministically with a ManualClock and no Python.
//
// A fake worker sends the `ready` handshake (or init_failed, or nothing, as scripted), then
// answers requests until EOF or `shutdown`:
//   ping            "pong"
//   health_check    {"status": "healthy"} — or "unhealthy" while set_healthy(false)
//   close_session   {"closed": true, "session_id": ...} (recorded: closed_sessions())
//   shutdown        {"shutting_down": true}, then exits 0
//   echo            its args                              (idempotent)
//   fail            ok:false {type: args.type or "ValueError", message, retryable}
//   crash           exits with args.code (default 1) without a reply
//   hold            blocks until release_holds() (then {"released": true}) or until killed
//   mark            replies {} with "worker_unhealthy": args.reason
// Its process "exits" (exit_fd() readable) on EOF, `shutdown`, `crash`, crash(id) from the test,
// or signal(SIGKILL/SIGTERM) from the pool; a stopped process (SIGSTOP) is not simulated.
//
// Observation: every event (spawn, request, exit) wakes wait_for(), so a test advances its
// ManualClock and then waits for what must follow, never for time to pass.
// Thread-safety: every method from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bridgepool/clock.h"
#include "process/spawner.h"

namespace bridgepool::fakes {

// How one fake worker starts.
struct FakeScript {
  // kGarbage: a first frame that is not JSON; kWrongProtocol: a handshake for protocol 1;
  // kSpeaksFirst: a reply before any handshake; kStall: ready, then never reads a request.
  enum class Start { kReady, kInitFailed, kSilent, kGarbage, kWrongProtocol, kSpeaksFirst, kStall };
  Start start = Start::kReady;
  std::string init_failure = "ImportError: scripted";  // kInitFailed: the error message
  // More commands to announce (answered with {"command": name}), e.g. a new handler version.
  std::vector<std::string> extra_commands;
  // Real time between the worker's request pipe closing and its exit becoming visible (its other
  // pipes close at the end of it), as a process that is still tearing down shows: its status
  // read too early says "still running".
  std::chrono::milliseconds exit_lag{0};
};

class FakeSpawner final : public Spawner {
 public:
  // `clock` (e.g. the test's ManualClock) stamps each request's arrival (request_times()).
  explicit FakeSpawner(std::shared_ptr<const Clock> clock = nullptr);
  ~FakeSpawner() override;

  Result<std::unique_ptr<ChildProcess>> spawn(const SpawnSpec& spec) override;

  // The script of the spawn with this 1-based sequence number; others use the default.
  void script(std::uint64_t spawn_number, FakeScript script);
  void set_default_script(FakeScript script);
  // The next `count` spawn() calls fail like a failed posix_spawn (initialization error).
  void fail_next_spawns(int count);

  void set_healthy(bool healthy);  // how health_check answers from now on
  void release_holds();            // every `hold` in progress (and later ones) replies
  // The fake process of this worker id ("w3") exits with `code`, as if it crashed. Returns once
  // its exit has begun (its request pipe is closed).
  bool crash(std::string_view worker_id, int code = 1);

  std::uint64_t spawns() const;                  // spawn() calls that started a fake
  std::size_t running() const;                   // fakes that have not exited
  int requests(std::string_view command) const;  // requests received, all fakes
  std::vector<TimePoint> request_times(std::string_view command) const;
  std::vector<std::string> closed_sessions() const;
  // Waits until `done()` holds, re-checking it on every fake event; `timeout` is a real-time
  // safety net against a hung test, not a way to let time pass.
  bool wait_for(const std::function<bool()>& done,
                std::chrono::milliseconds timeout = std::chrono::milliseconds(10'000));

  struct Shared;  // state shared with the fake workers' threads

 private:
  std::shared_ptr<Shared> shared_;
};

}  // namespace bridgepool::fakes
