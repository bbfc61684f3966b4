// SessionAffinity at scale (SPEC §5): bytes per session with one million sessions, lookup cost
// with 1, 2, 4 and 8 threads, and the cost of drop_worker() and expire() over a million entries.
//
// Plain main() printing a table. `--smoke` runs tiny sizes (< 2 s) so CI can keep it compiling and
// running; `--sessions N` overrides the map size. Memory is the process RSS (/proc/self/statm)
// before and after binding the sessions, so it includes hash-map buckets, malloc chunk headers
// and rounding — everything the map really costs. Ids are formatted on the fly, so the driver
// holds no per-session memory of its own.
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "pool/session_affinity.h"

namespace bridgepool {
namespace {

using BenchClock = std::chrono::steady_clock;

// The real monotonic clock plus an offset the benchmark can jump, so lookups pay for a real
// clock read while expire() can still be made to find everything idle.
class JumpableClock final : public Clock {
 public:
  TimePoint now() const override {
    return std::chrono::steady_clock::now() + Duration(offset_.load(std::memory_order_relaxed));
  }
  std::chrono::system_clock::time_point wall_now() const override {
    return std::chrono::system_clock::now();
  }
  void jump(Duration d) { offset_.fetch_add(d.count()); }

 private:
  std::atomic<Duration::rep> offset_{0};
};

long resident_bytes() {
  // statm: size resident shared text lib data dt, in pages.
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return -1;
  long size = 0, resident = 0;
  int n = std::fscanf(f, "%ld %ld", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * sysconf(_SC_PAGESIZE) : -1;
}

double seconds_since(BenchClock::time_point start) {
  return std::chrono::duration<double>(BenchClock::now() - start).count();
}

// "session-000123456": 17 characters, formatted by hand into the caller's buffer so that making
// an id costs a few ns and touches no memory (a vector of a million std::strings would add two
// cache misses per lookup, charged to the map).
constexpr std::size_t kIdLength = 17;

std::string_view format_id(std::size_t index, char (&buf)[kIdLength]) {
  std::memcpy(buf, "session-", 8);
  for (std::size_t i = kIdLength; i-- > 8;) {
    buf[i] = static_cast<char>('0' + index % 10);
    index /= 10;
  }
  return {buf, kIdLength};
}

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct LookupRun {
  double wall_seconds = 0;
  double cpu_seconds = 0;  // summed over the threads
};

// Each thread looks up `per_thread` ids chosen by an LCG (uniform over the map). CPU time is
// reported beside wall time because a shared machine's other load inflates wall time only.
LookupRun run_lookups(SessionAffinity& affinity, std::size_t sessions, int threads,
                      std::size_t per_thread) {
  std::atomic<std::uint64_t> misses{0};
  std::atomic<std::int64_t> cpu_nanos{0};
  auto start = BenchClock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::uint64_t x = 0x9E3779B97F4A7C15ull * (t + 1);
      std::uint64_t local_misses = 0;
      char buf[kIdLength];
      double cpu_start = thread_cpu_seconds();
      for (std::size_t i = 0; i < per_thread; ++i) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        std::string_view id = format_id((x >> 33) % sessions, buf);
        if (affinity.lookup(id).outcome != LookupOutcome::kHit) ++local_misses;
      }
      cpu_nanos += static_cast<std::int64_t>(1e9 * (thread_cpu_seconds() - cpu_start));
      misses += local_misses;
    });
  }
  for (auto& w : workers) w.join();
  LookupRun run{seconds_since(start), cpu_nanos.load() * 1e-9};
  if (misses.load() != 0) std::fprintf(stderr, "unexpected: %lu lookups missed\n", misses.load());
  return run;
}

struct Sizes {
  std::size_t sessions = 1'000'000;
  std::size_t lookups_per_config = 2'000'000;  // split over the threads of one row
};

void print_lookup_table(SessionAffinity& affinity, const Sizes& sizes) {
  std::printf("\n%-8s %10s %12s %14s %12s\n", "threads", "lookups", "wall ns/op", "latency ns/op",
              "cpu ns/op");
  for (int threads : {1, 2, 4, 8}) {
    std::size_t per_thread = sizes.lookups_per_config / threads;
    LookupRun run = run_lookups(affinity, sizes.sessions, threads, per_thread);
    double total = static_cast<double>(per_thread) * threads;
    // wall: aggregate throughput (wall / lookups); latency: what one caller sees (wall * threads
    // / lookups); cpu: CPU time per lookup, which lock contention would inflate.
    std::printf("%-8d %10.0f %12.1f %14.1f %12.1f\n", threads, total,
                1e9 * run.wall_seconds / total, 1e9 * run.wall_seconds * threads / total,
                1e9 * run.cpu_seconds / total);
  }
  std::printf("(%u CPUs: rows beyond that are oversubscribed)\n",
              std::thread::hardware_concurrency());
}

void run(const Sizes& sizes) {
  JumpableClock clock;
  AffinityConfig config;  // defaults: 64 shards, strict, 300 s
  SessionAffinity affinity(clock, config);
  for (WorkerKey w = 1; w <= 8; ++w) affinity.add_worker(w);

  long rss_before = resident_bytes();
  auto start = BenchClock::now();
  char buf[kIdLength];
  for (std::size_t i = 0; i < sizes.sessions; ++i) affinity.bind(format_id(i, buf), 1 + i % 8);
  double bind_seconds = seconds_since(start);
  long rss_after = resident_bytes();
  std::printf("sessions            %zu (ids of %zu chars, 8 workers, %zu shards)\n", sizes.sessions,
              kIdLength, config.shards);
  std::printf("bind               %8.1f ns/session\n", 1e9 * bind_seconds / sizes.sessions);
  std::printf("memory             %8.1f bytes/session (RSS %+.1f MiB)\n",
              static_cast<double>(rss_after - rss_before) / sizes.sessions,
              (rss_after - rss_before) / 1048576.0);

  print_lookup_table(affinity, sizes);

  start = BenchClock::now();
  std::vector<ExpiredSession> none = affinity.expire();
  std::printf("\nexpire, none idle  %8.2f ms over %zu entries (%zu expired)\n",
              1e3 * seconds_since(start), affinity.size(), none.size());

  start = BenchClock::now();
  std::size_t lost = affinity.drop_worker(3);
  std::printf("drop_worker        %8.2f us (%zu sessions lost)\n", 1e6 * seconds_since(start),
              lost);

  clock.jump(config.ttl);
  std::size_t before = affinity.size();
  start = BenchClock::now();
  std::vector<ExpiredSession> all = affinity.expire();
  std::printf("expire, all idle   %8.2f ms over %zu entries (%zu returned, %zu tombstones)\n",
              1e3 * seconds_since(start), before, all.size(), before - all.size());
}

}  // namespace
}  // namespace bridgepool

int main(int argc, char** argv) {
  bridgepool::Sizes sizes;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--smoke") == 0) {
      sizes.sessions = 10'000;
      sizes.lookups_per_config = 40'000;
    } else if (std::strcmp(argv[i], "--sessions") == 0 && i + 1 < argc) {
      sizes.sessions = std::strtoul(argv[++i], nullptr, 10);
    } else {
      std::fprintf(stderr, "usage: %s [--smoke] [--sessions N]\n", argv[0]);
      return 2;
    }
  }
  bridgepool::run(sizes);
  return 0;
}
