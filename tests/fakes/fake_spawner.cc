#include "fakes/fake_spawner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/unique_fd.h"
#include "process/child_process.h"

namespace bridgepool::fakes {
namespace {

using Json = nlohmann::json;

// Fake pids are far above any real pid_max (4,194,304), so nothing can ever signal a real
// process through one.
constexpr pid_t kFirstFakePid = 10'000'000;

struct Pipe {
  UniqueFd read, write;
};

Pipe make_pipe(bool nonblocking_read, bool nonblocking_write) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) std::abort();
  if (nonblocking_read) ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
  if (nonblocking_write) ::fcntl(fds[1], F_SETFL, O_NONBLOCK);
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

std::string arg_after(const std::vector<std::string>& argv, std::string_view flag) {
  for (std::size_t i = 0; i + 1 < argv.size(); ++i) {
    if (argv[i] == flag) return argv[i + 1];
  }
  return "w?";
}

}  // namespace

// State shared by the spawner, its fake processes and their threads.
struct FakeSpawner::Shared {
  std::shared_ptr<const Clock> clock;
  std::mutex mu;
  std::condition_variable changed;
  std::map<std::uint64_t, FakeScript> scripts;
  FakeScript default_script;
  int failing_spawns = 0;
  bool healthy = true;
  bool holds_released = false;
  std::uint64_t spawns = 0;
  std::size_t running = 0;
  std::map<std::string, int> requests;
  std::map<std::string, std::vector<TimePoint>> request_times;
  std::vector<std::string> closed_sessions;
  std::map<std::string, std::function<bool(int)>> crashers;  // worker id -> exits with code

  void note() {
    { std::lock_guard lock(mu); }
    changed.notify_all();
  }
};

namespace {

// One fake worker: the worker's ends of the pipes, a thread answering requests, and its exit.
class FakeWorker {
 public:
  FakeWorker(std::shared_ptr<FakeSpawner::Shared> shared, std::string id, FakeScript script,
             UniqueFd requests, UniqueFd replies, UniqueFd out, UniqueFd err)
      : shared_(std::move(shared)),
        id_(std::move(id)),
        script_(script),
        requests_(std::move(requests)),
        replies_(std::move(replies)),
        out_(std::move(out)),
        err_(std::move(err)),
        stop_(::eventfd(0, EFD_CLOEXEC)),
        exited_(::eventfd(0, EFD_CLOEXEC)) {}

  ~FakeWorker() {
    stop(ExitStatus{true, 0, SIGKILL});
    if (thread_.joinable()) thread_.join();
  }

  void start() {
    thread_ = std::thread([this] { run(); });
  }

  int exit_fd() const { return exited_.get(); }

  // Ends the worker as a signal or a crash would; false if it had exited already.
  bool stop(ExitStatus status) {
    {
      std::lock_guard lock(mu_);
      if (exited_flag_ || stop_requested_) return !exited_flag_;
      stop_requested_ = true;
      requested_status_ = status;
    }
    std::uint64_t one = 1;
    ssize_t rc = ::write(stop_.get(), &one, sizeof one);
    (void)rc;
    return true;
  }

  std::optional<ExitStatus> status() const {
    std::lock_guard lock(mu_);
    if (!exited_flag_) return std::nullopt;
    return status_;
  }

  void join() {
    if (thread_.joinable()) thread_.join();
  }

  // Whether the worker has begun to exit: its request pipe is closed.
  bool request_closed() const { return request_closed_.load(); }

 private:
  void run() {
    {
      std::lock_guard lock(shared_->mu);
      ++shared_->running;
    }
    shared_->note();
    ExitStatus status = serve();
    exit_with(status);
  }

  ExitStatus serve() {
    switch (script_.start) {
      case FakeScript::Start::kSilent:
        return wait_for_stop();
      case FakeScript::Start::kInitFailed:
        send(Json{{"id", 0},
                  {"event", "init_failed"},
                  {"error",
                   {{"type", "ImportError"},
                    {"message", script_.init_failure},
                    {"traceback", nullptr},
                    {"retryable", nullptr}}}});
        return ExitStatus{false, 3, 0};
      case FakeScript::Start::kGarbage:
        send_raw("this is not JSON");
        return wait_for_stop();
      case FakeScript::Start::kSpeaksFirst:
        send(Json{{"id", 0}, {"ok", true}, {"result", "hello"}});
        return wait_for_stop();
      case FakeScript::Start::kReady:
      case FakeScript::Start::kWrongProtocol:
      case FakeScript::Start::kStall:
        break;
    }
    Json commands = Json::array({{{"name", "ping"}, {"idempotent", true}},
                                 {{"name", "health_check"}, {"idempotent", true}},
                                 {{"name", "close_session"}, {"idempotent", true}},
                                 {{"name", "shutdown"}, {"idempotent", false}},
                                 {{"name", "echo"}, {"idempotent", true}},
                                 {{"name", "fail"}, {"idempotent", false}},
                                 {{"name", "crash"}, {"idempotent", false}},
                                 {{"name", "hold"}, {"idempotent", false}},
                                 {{"name", "mark"}, {"idempotent", false}}});
    for (const auto& name : script_.extra_commands) {
      commands.push_back({{"name", name}, {"idempotent", true}});
    }
    send(Json{{"id", 0},
              {"event", "ready"},
              {"protocol", script_.start == FakeScript::Start::kWrongProtocol ? 1 : 2},
              {"pid", kFirstFakePid},
              {"worker_id", id_},
              {"commands", std::move(commands)}});
    if (script_.start == FakeScript::Start::kStall) return wait_for_stop();
    for (;;) {
      std::string body;
      if (auto stopped = read_frame(body)) return *stopped;
      Json request = Json::parse(body, nullptr, false);
      const std::uint64_t id = request.value("id", std::uint64_t{0});
      const std::string command = request.value("command", "");
      const Json args = request.value("args", Json::object());
      {
        std::lock_guard lock(shared_->mu);
        ++shared_->requests[command];
        if (shared_->clock) shared_->request_times[command].push_back(shared_->clock->now());
      }
      shared_->note();
      if (auto exit = answer(id, command, args)) return *exit;
    }
  }

  // Answers one request; an exit status when the worker must exit now.
  std::optional<ExitStatus> answer(std::uint64_t id, const std::string& command, const Json& args) {
    Json reply = {{"id", id}, {"ok", true}};
    if (command == "ping") {
      reply["result"] = "pong";
    } else if (command == "health_check") {
      std::lock_guard lock(shared_->mu);
      reply["result"] = {{"status", shared_->healthy ? "healthy" : "unhealthy"}};
    } else if (command == "close_session") {
      const std::string session = args.value("session_id", "");
      {
        std::lock_guard lock(shared_->mu);
        shared_->closed_sessions.push_back(session);
      }
      reply["result"] = {{"closed", true}, {"session_id", session}};
    } else if (command == "shutdown") {
      reply["result"] = {{"shutting_down", true}};
      send(reply);
      return ExitStatus{false, 0, 0};
    } else if (command == "echo") {
      reply["result"] = args;
    } else if (command == "fail") {
      reply["ok"] = false;
      reply["error"] = {{"type", args.value("type", "ValueError")},
                        {"message", args.value("message", "scripted failure")},
                        {"traceback", nullptr},
                        {"retryable", args.value("retryable", false)}};
    } else if (command == "crash") {
      return ExitStatus{false, args.value("code", 1), 0};
    } else if (command == "hold") {
      if (auto stopped = wait_for_release()) return stopped;
      reply["result"] = {{"released", true}};
    } else if (command == "mark") {
      reply["result"] = Json::object();
      reply["worker_unhealthy"] = args.value("reason", "scripted");
    } else if (std::find(script_.extra_commands.begin(), script_.extra_commands.end(), command) !=
               script_.extra_commands.end()) {
      reply["result"] = {{"command", command}};
    } else {
      reply["ok"] = false;
      reply["error"] = {{"type", "UnknownCommand"},
                        {"message", "unknown command " + command},
                        {"traceback", nullptr},
                        {"retryable", false}};
    }
    send(reply);
    return std::nullopt;
  }

  // Reads one request frame; an exit status on EOF (exit 0) or a stop.
  std::optional<ExitStatus> read_frame(std::string& body) {
    char header[4];
    if (auto stopped = read_exactly(header, 4)) return stopped;
    const std::uint32_t size = (std::uint32_t(std::uint8_t(header[0])) << 24) |
                               (std::uint32_t(std::uint8_t(header[1])) << 16) |
                               (std::uint32_t(std::uint8_t(header[2])) << 8) |
                               std::uint32_t(std::uint8_t(header[3]));
    body.resize(size);
    return read_exactly(body.data(), size);
  }

  std::optional<ExitStatus> read_exactly(char* out, std::size_t size) {
    std::size_t got = 0;
    while (got < size) {
      pollfd fds[2] = {{requests_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0 && errno == EINTR) continue;
      if (fds[1].revents != 0) return stopped_status();
      ssize_t n = ::read(requests_.get(), out + got, size - got);
      if (n > 0) {
        got += static_cast<std::size_t>(n);
      } else if (n == 0) {
        return ExitStatus{false, 0, 0};  // EOF: the pool closed our input
      } else if (errno != EINTR && errno != EAGAIN) {
        return ExitStatus{false, 0, 0};
      }
    }
    return std::nullopt;
  }

  std::optional<ExitStatus> wait_for_release() {
    for (;;) {
      {
        std::lock_guard lock(shared_->mu);
        if (shared_->holds_released) return std::nullopt;
      }
      pollfd fd{stop_.get(), POLLIN, 0};
      if (::poll(&fd, 1, 1) > 0) return stopped_status();
    }
  }

  ExitStatus wait_for_stop() {
    pollfd fd{stop_.get(), POLLIN, 0};
    while (::poll(&fd, 1, -1) <= 0) {
    }
    return stopped_status();
  }

  ExitStatus stopped_status() {
    std::lock_guard lock(mu_);
    return requested_status_;
  }

  void send(const Json& message) { send_raw(message.dump()); }

  void send_raw(const std::string& body) {
    std::string frame(4, '\0');
    for (int i = 0; i < 4; ++i) frame[i] = char((body.size() >> (8 * (3 - i))) & 0xff);
    frame += body;
    std::size_t off = 0;
    while (off < frame.size()) {
      ssize_t n = ::write(replies_.get(), frame.data() + off, frame.size() - off);
      if (n > 0) {
        off += static_cast<std::size_t>(n);
      } else if (n < 0 && errno != EINTR) {
        return;  // the pool closed its end
      }
    }
  }

  void exit_with(ExitStatus status) {
    // As the kernel does: the descriptors close first, then the exit becomes visible.
    // The request pipe first: during an exit lag the pool can still write, get EPIPE, and must
    // wait for the exit status before it describes what happened.
    requests_.reset();
    request_closed_ = true;
    if (script_.exit_lag.count() > 0) std::this_thread::sleep_for(script_.exit_lag);
    replies_.reset();
    out_.reset();
    err_.reset();
    {
      std::lock_guard lock(mu_);
      exited_flag_ = true;
      status_ = status;
    }
    std::uint64_t one = 1;
    ssize_t rc = ::write(exited_.get(), &one, sizeof one);  // never read: stays readable
    (void)rc;
    {
      std::lock_guard lock(shared_->mu);
      --shared_->running;
    }
    shared_->note();
  }

  std::shared_ptr<FakeSpawner::Shared> shared_;
  const std::string id_;
  const FakeScript script_;
  UniqueFd requests_, replies_, out_, err_;
  UniqueFd stop_, exited_;
  std::thread thread_;
  mutable std::mutex mu_;
  bool stop_requested_ = false;
  ExitStatus requested_status_;
  bool exited_flag_ = false;
  ExitStatus status_;
  std::atomic<bool> request_closed_{false};
};

class FakeProcess final : public ChildProcess {
 public:
  FakeProcess(pid_t pid, UniqueFd request, UniqueFd response, UniqueFd out, UniqueFd err,
              std::shared_ptr<FakeWorker> worker)
      : ChildProcess(pid, std::move(request), std::move(response), std::move(out), std::move(err)),
        worker_(std::move(worker)) {}

  int exit_fd() const override { return worker_->exit_fd(); }

  bool signal(int sig) const override {
    if (sig == 0) return !worker_->status();
    if (sig != SIGKILL && sig != SIGTERM) return !worker_->status();
    return worker_->stop(ExitStatus{true, 0, sig});
  }

  std::optional<ExitStatus> reap() override {
    if (reaped()) return std::nullopt;
    worker_->join();
    auto status = worker_->status();
    if (!status) return std::nullopt;
    record_exit(*status);
    return status;
  }

  std::optional<ExitStatus> peek_exit_status() const override {
    if (auto s = exit_status()) return s;
    return worker_->status();
  }

 private:
  std::shared_ptr<FakeWorker> worker_;
};

}  // namespace

FakeSpawner::FakeSpawner(std::shared_ptr<const Clock> clock) : shared_(std::make_shared<Shared>()) {
  shared_->clock = std::move(clock);
}

FakeSpawner::~FakeSpawner() = default;

Result<std::unique_ptr<ChildProcess>> FakeSpawner::spawn(const SpawnSpec& spec) {
  FakeScript script;
  std::uint64_t number;
  {
    std::lock_guard lock(shared_->mu);
    if (shared_->failing_spawns > 0) {
      --shared_->failing_spawns;
      Error e(ErrorCategory::kInitialization, "cannot execute 'fake': scripted spawn failure");
      e.context.operation = "spawn";
      return tl::unexpected(std::move(e));
    }
    number = ++shared_->spawns;
    auto it = shared_->scripts.find(number);
    script = it != shared_->scripts.end() ? it->second : shared_->default_script;
  }
  const std::string id = arg_after(spec.argv, "--worker-id");
  // The pool's ends are non-blocking, as PosixSpawner makes them; the worker's block.
  Pipe request = make_pipe(false, true);
  Pipe response = make_pipe(true, false);
  Pipe out = make_pipe(true, false);
  Pipe err = make_pipe(true, false);
  auto worker = std::make_shared<FakeWorker>(shared_, id, script, std::move(request.read),
                                             std::move(response.write), std::move(out.write),
                                             std::move(err.write));
  {
    std::lock_guard lock(shared_->mu);
    std::weak_ptr<FakeWorker> weak = worker;
    shared_->crashers[id] = [weak](int code) {
      auto w = weak.lock();
      if (!w || !w->stop(ExitStatus{false, code, 0})) return false;
      // Returns once the exit has begun (the request pipe is closed), like a crash already
      // under way when the pool next looks; bounded in case the thread is stuck elsewhere.
      for (int i = 0; i < 10'000 && !w->request_closed(); ++i) {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
      return true;
    };
  }
  worker->start();
  auto process = std::make_unique<FakeProcess>(
      kFirstFakePid + static_cast<pid_t>(number), std::move(request.write),
      std::move(response.read), std::move(out.read), std::move(err.read), std::move(worker));
  shared_->note();
  return std::unique_ptr<ChildProcess>(std::move(process));
}

void FakeSpawner::script(std::uint64_t spawn_number, FakeScript script) {
  std::lock_guard lock(shared_->mu);
  shared_->scripts[spawn_number] = script;
}

void FakeSpawner::set_default_script(FakeScript script) {
  std::lock_guard lock(shared_->mu);
  shared_->default_script = script;
}

void FakeSpawner::fail_next_spawns(int count) {
  std::lock_guard lock(shared_->mu);
  shared_->failing_spawns = count;
}

void FakeSpawner::set_healthy(bool healthy) {
  std::lock_guard lock(shared_->mu);
  shared_->healthy = healthy;
}

void FakeSpawner::release_holds() {
  {
    std::lock_guard lock(shared_->mu);
    shared_->holds_released = true;
  }
  shared_->note();
}

bool FakeSpawner::crash(std::string_view worker_id, int code) {
  std::function<bool(int)> crasher;
  {
    std::lock_guard lock(shared_->mu);
    auto it = shared_->crashers.find(std::string(worker_id));
    if (it == shared_->crashers.end()) return false;
    crasher = it->second;
  }
  return crasher(code);
}

std::uint64_t FakeSpawner::spawns() const {
  std::lock_guard lock(shared_->mu);
  return shared_->spawns;
}

std::size_t FakeSpawner::running() const {
  std::lock_guard lock(shared_->mu);
  return shared_->running;
}

int FakeSpawner::requests(std::string_view command) const {
  std::lock_guard lock(shared_->mu);
  auto it = shared_->requests.find(std::string(command));
  return it == shared_->requests.end() ? 0 : it->second;
}

std::vector<TimePoint> FakeSpawner::request_times(std::string_view command) const {
  std::lock_guard lock(shared_->mu);
  auto it = shared_->request_times.find(std::string(command));
  return it == shared_->request_times.end() ? std::vector<TimePoint>{} : it->second;
}

std::vector<std::string> FakeSpawner::closed_sessions() const {
  std::lock_guard lock(shared_->mu);
  return shared_->closed_sessions;
}

bool FakeSpawner::wait_for(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(shared_->mu);
  while (true) {
    lock.unlock();
    const bool ok = done();
    lock.lock();
    if (ok) return true;
    // Pool state (not only fake events) may be what `done` waits for: look again every 2 ms.
    if (shared_->changed.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() +
                                                                 std::chrono::milliseconds(2))) ==
            std::cv_status::timeout &&
        std::chrono::steady_clock::now() >= deadline) {
      lock.unlock();
      return done();
    }
  }
}

}  // namespace bridgepool::fakes
