// ForkServerSpawner: spawn or fork each worker; see fork_server_spawner.h.
#include "process/fork_server_spawner.h"

#include <algorithm>

#include <fmt/format.h>

#include "process/forked_process.h"
#include "process/posix_spawn_call.h"

namespace bridgepool {

SpawnRoute route_for(ForkServer::State state) {
  switch (state) {
    case ForkServer::State::kReady:
      return SpawnRoute::kFork;
    case ForkServer::State::kFailed:
      return SpawnRoute::kFail;
    case ForkServer::State::kStarting:  // a replacement loading: the old one served, spawn now
    case ForkServer::State::kUnsafe:
    case ForkServer::State::kDead:
      return SpawnRoute::kSpawn;
  }
  return SpawnRoute::kSpawn;
}

bool waits_for(ForkServer::State state, bool generation_had_ready_zygote) {
  return state == ForkServer::State::kStarting && !generation_had_ready_zygote;
}

std::chrono::milliseconds restart_delay(std::uint32_t n, std::chrono::milliseconds initial,
                                        std::chrono::milliseconds max) {
  auto delay = initial;
  for (std::uint32_t i = 1; i < n && delay < max; ++i) delay *= 2;
  return std::min(delay, max);
}

std::string template_key(const SpawnSpec& spec) {
  std::string key = fmt::format("{}", spec.generation);
  const std::size_t shared = std::min(spec.template_args, spec.argv.size());
  for (std::size_t i = 0; i < shared; ++i) key += '\0' + spec.argv[i];
  key += '\1';
  for (const auto& e : spec.env) key += '\0' + e;
  return key;
}

SpawnSpec zygote_spec(const SpawnSpec& worker) {
  SpawnSpec z;
  const std::size_t shared = std::min(worker.template_args, worker.argv.size());
  z.argv.assign(worker.argv.begin(), worker.argv.begin() + static_cast<std::ptrdiff_t>(shared));
  z.argv.push_back("--zygote");
  z.env = worker.env;
  z.generation = worker.generation;
  return z;
}

struct ForkServerSpawner::Shared {
  std::mutex mu;
  std::shared_ptr<ForkServer> server;  // the zygote of `key`
  std::string key;
  std::uint64_t epoch = 0;     // bumped per started server: callbacks of older ones are ignored
  bool had_ready = false;      // some zygote of `key` reached ready
  std::uint32_t restarts = 0;  // consecutive restarts without reaching ready
  bool closed = false;
  SpawnSpec last_spec;  // to restart the zygote on its own after a death
  std::vector<std::function<void()>> waiting;
  std::vector<std::shared_ptr<ForkServer>> retired;
};

ForkServerSpawner::ForkServerSpawner(Options options)
    : options_(std::move(options)), shared_(std::make_shared<Shared>()) {}

ForkServerSpawner::~ForkServerSpawner() { stop(); }

void ForkServerSpawner::stop() {
  close();
  std::vector<std::shared_ptr<ForkServer>> servers;
  {
    std::lock_guard lock(shared_->mu);
    servers = std::move(shared_->retired);
    if (shared_->server) servers.push_back(std::move(shared_->server));
  }
  servers.clear();  // joins their threads, outside the lock
}

pid_t ForkServerSpawner::zygote_pid() const {
  std::lock_guard lock(shared_->mu);
  return shared_->server && shared_->server->alive() ? shared_->server->pid() : -1;
}

void ForkServerSpawner::start_locked(const SpawnSpec& spec, std::chrono::milliseconds delay) {
  if (shared_->server) shared_->retired.push_back(std::move(shared_->server));
  const std::uint64_t epoch = ++shared_->epoch;
  std::weak_ptr<Shared> weak = shared_;
  ForkServer::Options o;
  o.start_timeout = options_.start_timeout;
  o.delay = delay;
  o.log = options_.log;
  o.on_settled = [weak, epoch](ForkServer::State state) {
    auto shared = weak.lock();
    if (!shared) return;
    std::vector<std::function<void()>> ready;
    {
      std::lock_guard lock(shared->mu);
      if (shared->epoch != epoch) return;
      if (state == ForkServer::State::kReady) {
        shared->had_ready = true;
        shared->restarts = 0;
      }
      ready.swap(shared->waiting);
    }
    for (auto& callback : ready) callback();
  };
  o.on_died = [this, weak, epoch] {
    auto shared = weak.lock();
    if (!shared) return;
    std::lock_guard lock(shared->mu);
    if (shared->epoch != epoch || shared->closed) return;
    ensure_locked(shared->last_spec);  // restart now, with backoff
  };
  shared_->server = std::make_shared<ForkServer>(zygote_spec(spec), std::move(o));
}

void ForkServerSpawner::ensure_locked(const SpawnSpec& spec) {
  const std::string key = template_key(spec);
  shared_->last_spec = spec;
  if (!shared_->server || key != shared_->key) {
    shared_->key = key;
    shared_->had_ready = false;
    shared_->restarts = 0;
    start_locked(spec, std::chrono::milliseconds(0));
    return;
  }
  const auto state = shared_->server->state();
  if (state != ForkServer::State::kDead && state != ForkServer::State::kFailed) return;
  const auto delay =
      restart_delay(++shared_->restarts, options_.backoff_initial, options_.backoff_max);
  if (options_.log) {
    options_.log(LogLevel::kInfo,
                 fmt::format("starting a new fork server in {} ms", delay.count()));
  }
  start_locked(spec, delay);
}

void ForkServerSpawner::when_ready(const SpawnSpec& spec, std::function<void()> ready) {
  if (spec.template_args == 0) {
    ready();
    return;
  }
  bool waiting = false;
  {
    std::lock_guard lock(shared_->mu);
    if (!shared_->closed) {
      ensure_locked(spec);
      waiting = waits_for(shared_->server->state(), shared_->had_ready);
      if (waiting) shared_->waiting.push_back(std::move(ready));
    }
  }
  prune_retired();
  if (!waiting) ready();
}

void ForkServerSpawner::close() {
  std::vector<std::function<void()>> ready;
  {
    std::lock_guard lock(shared_->mu);
    shared_->closed = true;
    ready.swap(shared_->waiting);
  }
  for (auto& callback : ready) callback();
}

Result<std::unique_ptr<ChildProcess>> ForkServerSpawner::spawn(const SpawnSpec& spec) {
  if (spec.template_args == 0) return posix_.spawn(spec);
  std::shared_ptr<ForkServer> server;
  {
    std::lock_guard lock(shared_->mu);
    // A failed or dead zygote is restarted by when_ready and on_died, not here: this launch
    // gets its failure (or is spawned), never a zygote that has not loaded yet.
    if (!shared_->closed && (!shared_->server || shared_->key != template_key(spec))) {
      ensure_locked(spec);
    }
    server = shared_->server;
  }
  prune_retired();
  if (!server) return posix_.spawn(spec);
  switch (route_for(server->state())) {
    case SpawnRoute::kFail:
      return tl::unexpected(server->failure());
    case SpawnRoute::kSpawn:
      return posix_.spawn(spec);
    case SpawnRoute::kFork:
      break;
  }
  auto forked = fork_from(server, spec);
  if (forked) return forked;
  if (options_.log) {
    options_.log(LogLevel::kWarn, fmt::format("fork failed ({}); spawning the worker instead",
                                              forked.error().message));
  }
  return posix_.spawn(spec);
}

Result<std::unique_ptr<ChildProcess>> ForkServerSpawner::fork_from(
    const std::shared_ptr<ForkServer>& server, const SpawnSpec& spec) {
  auto pipes = make_worker_pipes();
  if (!pipes) return tl::unexpected(pipes.error());
  std::vector<std::string> args(spec.argv.begin() + static_cast<std::ptrdiff_t>(std::min(
                                                        spec.template_args, spec.argv.size())),
                                spec.argv.end());
  auto forked = server->fork(args,
                             {pipes->child_request(), pipes->child_response(),
                              pipes->child_stdout(), pipes->child_stderr()},
                             options_.fork_timeout);
  if (!forked) return tl::unexpected(forked.error());
  pipes->host_ends_nonblocking();
  // The worker's ends close here: EOF on a pipe then means the worker's end is gone.
  return std::make_unique<ForkedProcess>(
      forked->pid, std::move(forked->pidfd), std::move(pipes->request.write),
      std::move(pipes->response.read), std::move(pipes->out.read), std::move(pipes->err.read),
      server);
}

void ForkServerSpawner::prune_retired() {
  std::vector<std::shared_ptr<ForkServer>> done;
  {
    std::lock_guard lock(shared_->mu);
    done.swap(shared_->retired);
  }
  // Outside the lock. A zygote nobody else holds ends now; one whose workers still run lives on
  // in their ForkedProcess and ends with the last of them.
  done.clear();
}

}  // namespace bridgepool
