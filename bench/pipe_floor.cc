// pipe_floor — the C++ side of the benchmark floor (SPEC §9).
//
// Spawns `<python> floor_echo.py` with two pipes dup'ed onto fds 3 (requests) and 4 (responses)
// and does the minimum work any C++ → Python JSON bridge must do per call: encode a request with
// nlohmann::json, frame it (4-byte big-endian length), write it, read the reply frame, parse it
// with nlohmann::json and check the id. Nothing else: no pool, no checkout, no resilience layer.
//
//   --mode latency     N sequential round trips of a `ping` request on one pair; p50/p90/p99/mean.
//   --mode throughput  P thread ↔ process pairs at once, each doing N/P sequential `echo` round
//                      trips of a B-byte string; total round trips per second.
//
// Deliberately standalone (no bridgepool_core): the floor must not inherit the library's costs.
// Build by hand: g++ -std=c++20 -O2 bench/pipe_floor.cc -lfmt -pthread -o /tmp/pipe_floor

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/core.h>
#include <nlohmann/json.hpp>

extern char** environ;

#ifndef BRIDGEPOOL_FLOOR_ECHO
#define BRIDGEPOOL_FLOOR_ECHO "bench/floor_echo.py"
#endif

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

std::string errno_text(const char* what) {
  return fmt::format("{}: {}", what, std::strerror(errno));
}

// Moves `fd` to a descriptor >= 10 (close-on-exec), so that dup2 onto 3/4 in the child can never
// clobber a source descriptor that happens to be 3 or 4.
int move_high(int fd) {
  int high = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
  if (high < 0) fail(errno_text("fcntl(F_DUPFD_CLOEXEC)"));
  ::close(fd);
  return high;
}

// One C++ ↔ Python echo pair: a child process plus the parent's ends of its two pipes.
class EchoPeer {
 public:
  EchoPeer(const std::string& python, const std::string& script) {
    int req[2];   // parent writes req[1]; child reads req[0] as fd 3
    int resp[2];  // child writes resp[1] as fd 4; parent reads resp[0]
    if (::pipe2(req, O_CLOEXEC) != 0) fail(errno_text("pipe2"));
    if (::pipe2(resp, O_CLOEXEC) != 0) fail(errno_text("pipe2"));
    int child_in = move_high(req[0]);
    int child_out = move_high(resp[1]);
    write_fd_ = move_high(req[1]);
    read_fd_ = move_high(resp[0]);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, child_in, 3);  // dup2 clears FD_CLOEXEC on 3/4
    posix_spawn_file_actions_adddup2(&actions, child_out, 4);
    posix_spawn_file_actions_addclosefrom_np(&actions, 5);
    std::vector<std::string> args{python, script};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int rc = ::posix_spawn(&pid_, python.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(child_in);
    ::close(child_out);
    if (rc != 0) {
      ::close(write_fd_);
      ::close(read_fd_);
      fail(fmt::format("posix_spawn {}: {}", python, std::strerror(rc)));
    }
    buf_.resize(64 * 1024);
  }

  EchoPeer(const EchoPeer&) = delete;
  EchoPeer& operator=(const EchoPeer&) = delete;

  ~EchoPeer() {
    if (pid_ > 0) {
      (void)finish();
    }
  }

  // Closes the request pipe (EOF makes the echo exit) and reaps the child. Returns its wait status.
  int finish() {
    if (write_fd_ >= 0) ::close(write_fd_);
    write_fd_ = -1;
    if (read_fd_ >= 0) ::close(read_fd_);
    read_fd_ = -1;
    int status = 0;
    if (pid_ > 0) {
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      pid_ = -1;
    }
    return status;
  }

  // One round trip: frame + write `body`, read one reply frame, return it parsed.
  json round_trip(std::string_view body) {
    out_.clear();
    const auto n = static_cast<uint32_t>(body.size());
    const char header[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                            static_cast<char>(n >> 8), static_cast<char>(n)};
    out_.append(header, 4);
    out_.append(body);
    write_all(out_.data(), out_.size());
    return read_reply();
  }

  json read_reply() {
    std::string_view frame = read_frame();
    return json::parse(frame.begin(), frame.end());
  }

 private:
  void write_all(const char* p, size_t len) {
    while (len > 0) {
      ssize_t w = ::write(write_fd_, p, len);
      if (w < 0) {
        if (errno == EINTR) continue;
        fail(errno_text("write to echo"));
      }
      p += w;
      len -= static_cast<size_t>(w);
    }
  }

  // Ensures at least `need` unread bytes are buffered; one read() usually brings a whole frame.
  void fill(size_t need) {
    if (end_ - begin_ >= need) return;
    if (begin_ > 0) {
      std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (buf_.size() < need) buf_.resize(need);
    while (end_ < need) {
      ssize_t r = ::read(read_fd_, buf_.data() + end_, buf_.size() - end_);
      if (r < 0) {
        if (errno == EINTR) continue;
        fail(errno_text("read from echo"));
      }
      if (r == 0) fail("echo process closed its response pipe (truncated frame or exit)");
      end_ += static_cast<size_t>(r);
    }
  }

  std::string_view read_frame() {
    fill(4);
    const auto* h = reinterpret_cast<const unsigned char*>(buf_.data() + begin_);
    const uint32_t len =
        (uint32_t{h[0]} << 24) | (uint32_t{h[1]} << 16) | (uint32_t{h[2]} << 8) | uint32_t{h[3]};
    if (len > 64u * 1024 * 1024) fail(fmt::format("reply frame too large: {} bytes", len));
    begin_ += 4;
    fill(len);
    std::string_view frame(buf_.data() + begin_, len);
    begin_ += len;
    return frame;
  }

  pid_t pid_ = -1;
  int write_fd_ = -1;
  int read_fd_ = -1;
  std::string out_;
  std::string buf_;
  size_t begin_ = 0;
  size_t end_ = 0;
};

struct Options {
  std::string mode = "latency";
  std::string python = "/usr/bin/python3";
  std::string script = BRIDGEPOOL_FLOOR_ECHO;
  long requests = 20000;
  long warmup = 500;
  int pairs = 2;
  long payload_bytes = 64;
  bool pin_pairs = false;
  bool json_out = false;
};

void usage(FILE* to) {
  fmt::print(
      to,
      "usage: pipe_floor [--mode latency|throughput] [--requests N] [--warmup N]\n"
      "                  [--pairs P] [--payload-bytes B] [--python PATH]\n"
      "                  [--script floor_echo.py] [--pin-pairs] [--json]\n"
      "  latency:    N sequential ping round trips on one C++<->Python pair\n"
      "  throughput: P pairs at once, N/P sequential echo round trips each (B-byte string)\n"
      "  --pin-pairs: pin pair i (thread and its Python process) to allowed CPU i mod ncpu\n");
}

Options parse_args(int argc, char** argv) {
  Options o;
  auto value = [&](int& i) -> std::string {
    if (i + 1 >= argc) fail(fmt::format("missing value for {}", argv[i]));
    return argv[++i];
  };
  auto number = [&](int& i) -> long {
    std::string name = argv[i];
    std::string v = value(i);
    char* end = nullptr;
    errno = 0;
    long n = std::strtol(v.c_str(), &end, 10);
    if (errno != 0 || end == v.c_str() || *end != '\0' || n < 0)
      fail(fmt::format("bad value for {}: '{}'", name, v));
    return n;
  };
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--mode")
      o.mode = value(i);
    else if (a == "--python")
      o.python = value(i);
    else if (a == "--script")
      o.script = value(i);
    else if (a == "--requests")
      o.requests = number(i);
    else if (a == "--warmup")
      o.warmup = number(i);
    else if (a == "--pairs")
      o.pairs = static_cast<int>(number(i));
    else if (a == "--payload-bytes")
      o.payload_bytes = number(i);
    else if (a == "--json")
      o.json_out = true;
    else if (a == "--pin-pairs")
      o.pin_pairs = true;
    else if (a == "-h" || a == "--help") {
      usage(stdout);
      std::exit(0);
    } else {
      fail(fmt::format("unknown argument '{}'", a));
    }
  }
  if (o.mode != "latency" && o.mode != "throughput") fail("--mode must be latency or throughput");
  if (o.requests < 1) fail("--requests must be >= 1");
  if (o.pairs < 1) fail("--pairs must be >= 1");
  if (o.mode == "latency") o.pairs = 1;
  if (o.requests < o.pairs) fail("--requests must be >= --pairs");
  return o;
}

// What one pair does: `count` round trips, timing each one if `samples` is non-null.
struct Request {
  std::string command;
  json args;
};

void run_pair(EchoPeer& peer, const Request& req, uint64_t first_id, long count, size_t expect_len,
              std::vector<double>* samples) {
  for (long k = 0; k < count; ++k) {
    const uint64_t id = first_id + static_cast<uint64_t>(k);
    const auto t0 = Clock::now();
    json msg = {{"id", id},
                {"command", req.command},
                {"args", req.args},
                {"session_id", nullptr},
                {"deadline_ms", nullptr}};
    const std::string body = msg.dump();
    json reply = peer.round_trip(body);
    auto id_matches = [id](const json& r) {
      const auto it = r.find("id");
      return it != r.end() && it->is_number_unsigned() && it->get<uint64_t>() == id;
    };
    bool matched = id_matches(reply);
    // Tolerate an echo that announces itself (`{"id":0,"event":"ready",...}`, like a real
    // worker): skip event frames. Only looked at when the id does not match.
    while (!matched && reply.is_object() && reply.contains("event") && !reply.contains("ok")) {
      reply = peer.read_reply();
      matched = id_matches(reply);
    }
    if (!matched) fail(fmt::format("reply id mismatch: sent {}, got {}", id, reply.dump()));
    const auto ok = reply.find("ok");
    if (ok == reply.end() || *ok != true) fail(fmt::format("reply not ok: {}", reply.dump()));
    if (expect_len > 0) {
      const auto& data = reply.at("result").at("data").get_ref<const std::string&>();
      if (data.size() != expect_len) fail("echoed payload has the wrong size");
    }
    if (samples) {
      const auto t1 = Clock::now();
      samples->push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    }
  }
}

struct Stats {
  double p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;
};

Stats summarize(std::vector<double>& v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto rank = [&](double q) {
    size_t idx = static_cast<size_t>(q * static_cast<double>(v.size()) + 0.999999);
    idx = std::clamp<size_t>(idx, 1, v.size());
    return v[idx - 1];
  };
  s.p50 = rank(0.50);
  s.p90 = rank(0.90);
  s.p99 = rank(0.99);
  s.max = v.back();
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(v.size());
  return s;
}

int allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof(set), &set) != 0) return -1;
  return CPU_COUNT(&set);
}

// Pins the calling thread to the n-th CPU of the process's allowed set (the set taskset gave us).
void pin_thread_to_nth_allowed_cpu(int n) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  if (::sched_getaffinity(0, sizeof(allowed), &allowed) != 0) fail(errno_text("sched_getaffinity"));
  for (int cpu = 0, seen = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed)) continue;
    if (seen++ == n) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      if (::sched_setaffinity(0, sizeof(one), &one) != 0) fail(errno_text("sched_setaffinity"));
      return;
    }
  }
  fail("no such allowed CPU");
}

int run(const Options& o) {
  Request req;
  size_t expect_len = 0;
  if (o.mode == "latency") {
    req.command = "ping";
    req.args = json::object();
  } else {
    req.command = "echo";
    req.args = {{"data", std::string(static_cast<size_t>(o.payload_bytes), 'x')}};
    expect_len = static_cast<size_t>(o.payload_bytes);
  }

  // Each pair's thread spawns its own echo process (so that with --pin-pairs the child inherits
  // the thread's CPU affinity) and warms it up (interpreter start, page faults, caches) before the
  // common start signal; only what follows the signal is timed.
  std::vector<std::unique_ptr<EchoPeer>> peers(static_cast<size_t>(o.pairs));
  const long per_pair = o.requests / o.pairs;
  const long measured = per_pair * o.pairs;
  std::vector<std::vector<double>> samples(static_cast<size_t>(o.pairs));
  for (auto& s : samples) s.reserve(static_cast<size_t>(per_pair));
  const int ncpu = std::max(1, allowed_cpus());

  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::string> errors(static_cast<size_t>(o.pairs));
  std::vector<std::thread> threads;
  Clock::time_point start;
  for (int p = 0; p < o.pairs; ++p) {
    threads.emplace_back([&, p] {
      const auto i = static_cast<size_t>(p);
      const uint64_t base = 1 + static_cast<uint64_t>(p) * 1'000'000'000ull;
      try {
        if (o.pin_pairs) pin_thread_to_nth_allowed_cpu(p % ncpu);
        peers[i] = std::make_unique<EchoPeer>(o.python, o.script);
        run_pair(*peers[i], req, base, o.warmup, expect_len, nullptr);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      if (!errors[i].empty()) return;
      try {
        run_pair(*peers[i], req, base + static_cast<uint64_t>(o.warmup), per_pair, expect_len,
                 &samples[i]);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  }
  while (ready.load() < o.pairs) std::this_thread::sleep_for(std::chrono::microseconds(200));
  start = Clock::now();
  go.store(true, std::memory_order_release);
  for (auto& t : threads) t.join();
  const double duration_s = std::chrono::duration<double>(Clock::now() - start).count();

  int bad_exit = 0;
  for (auto& peer : peers) {
    if (!peer) continue;
    int status = peer->finish();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++bad_exit;
  }
  for (const auto& e : errors)
    if (!e.empty()) fail(e);
  if (bad_exit) fail(fmt::format("{} echo process(es) did not exit cleanly", bad_exit));

  std::vector<double> all;
  all.reserve(static_cast<size_t>(measured));
  for (auto& s : samples) all.insert(all.end(), s.begin(), s.end());
  const Stats st = summarize(all);
  const double per_s = static_cast<double>(measured) / duration_s;

  fmt::print(
      "pipe_floor mode={} pairs={} pin_pairs={} requests={} payload_bytes={} cpus_allowed={}\n",
      o.mode, o.pairs, o.pin_pairs, measured, o.mode == "latency" ? 0 : o.payload_bytes,
      allowed_cpus());
  fmt::print("  latency_us p50={:.2f} p90={:.2f} p99={:.2f} max={:.2f} mean={:.2f}\n", st.p50,
             st.p90, st.p99, st.max, st.mean);
  fmt::print("  throughput {:.0f} round trips/s over {:.3f} s\n", per_s, duration_s);
  if (o.json_out) {
    json out = {
        {"mode", o.mode},
        {"pairs", o.pairs},
        {"pin_pairs", o.pin_pairs},
        {"requests", measured},
        {"payload_bytes", o.mode == "latency" ? 0 : o.payload_bytes},
        {"cpus_allowed", allowed_cpus()},
        {"latency_us",
         {{"p50", st.p50}, {"p90", st.p90}, {"p99", st.p99}, {"max", st.max}, {"mean", st.mean}}},
        {"throughput_per_s", per_s},
        {"duration_s", duration_s}};
    fmt::print("{}\n", out.dump());
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  try {
    return run(parse_args(argc, argv));
  } catch (const std::exception& e) {
    fmt::print(stderr, "pipe_floor: {}\n", e.what());
    return 1;
  }
}
