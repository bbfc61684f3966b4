// What a large binary round trip costs in memory and time (issue #11: 64 MiB frames must not be
// copied more than twice on each side). One worker running the shipped echo handler; a request
// of N MiB of bytes (Json::binary) is echoed back, and each side's peak RSS is measured around
// that one call — the high-water mark is reset first (/proc/PID/clear_refs "5") — so the growth
// over the resident size just before, in units of N MiB, counts the copies of the payload that
// were alive at once:
//   host    the request's own bytes are already resident; expected +2 (the frame read into the
//           decoder's buffer, and the reply's binary value copied out of it)
//   worker  expected +1 (the request read into one bytearray; the handler's memoryview of it is
//           written back with writev, no copy)
// Also the round trip's wall time (median of --rounds). The last line with --json is one JSON
// object (scripts/bench reads it).
//   attachment_bench [--mib N] [--rounds R] [--python P] [--json]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bridgepool/binary.h"
#include "bridgepool/pool.h"

namespace {

using bridgepool::Json;

struct Options {
  long mib = 64;
  int rounds = 3;
  std::string python;
  bool json = false;
};

// A field of /proc/PID/status in KiB ("VmRSS", "VmHWM"); -1 if unreadable.
long status_kib(const std::string& pid, const std::string& field) {
  std::ifstream in("/proc/" + pid + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::atol(line.c_str() + field.size() + 1);
  }
  return -1;
}

bool reset_peak(const std::string& pid) {
  std::ofstream out("/proc/" + pid + "/clear_refs");
  out << "5";
  return static_cast<bool>(out);
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "attachment_bench: %s\nusage: attachment_bench [--mib N (1..1000)] "
               "[--rounds R (>= 1)] [--python P] [--json]\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    auto value = [&] { return i + 1 < argc ? std::string(argv[++i]) : std::string(); };
    if (!std::strcmp(argv[i], "--mib")) {
      o.mib = std::atol(value().c_str());
    } else if (!std::strcmp(argv[i], "--rounds")) {
      o.rounds = std::atoi(value().c_str());
    } else if (!std::strcmp(argv[i], "--python")) {
      o.python = value();
    } else if (!std::strcmp(argv[i], "--json")) {
      o.json = true;
    } else {
      usage("unknown option");
    }
  }
  if (o.mib < 1 || o.mib > 1000) usage("--mib must be within 1..1000");
  if (o.rounds < 1) usage("--rounds must be at least 1");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  bridgepool::PoolConfig config;
  config.size = 1;
  config.name = "attachments";
  config.max_frame_bytes = static_cast<std::size_t>(o.mib + 1) << 20;
  config.request_timeout = std::chrono::minutes(2);
  config.logger = std::make_shared<bridgepool::Logger>(bridgepool::LogLevel::kOff);
  if (!o.python.empty()) config.python = o.python;
  auto started = bridgepool::Pool::start(config);
  if (!started) usage(started.error().to_string().c_str());
  auto& pool = **started;
  const std::string worker_pid = std::to_string(pool.workers().at(0).pid);

  const std::size_t size = static_cast<std::size_t>(o.mib) << 20;
  std::vector<std::uint8_t> expected(size);
  for (std::size_t i = 0; i < size; i += 4096) expected[i] = static_cast<std::uint8_t>(i >> 12);
  // Warm-up: a small binary call, so that nothing but the payload grows below.
  if (!pool.execute("echo", {{"data", bridgepool::bytes(std::vector<std::uint8_t>(4096))}})) {
    usage("the warm-up call failed");
  }

  std::vector<double> ms;
  long host_growth = 0, worker_growth = 0;
  for (int round = 0; round < o.rounds; ++round) {
    // The caller's own bytes, moved into the call (as a caller that is done with them would):
    // resident before the measurement starts, so not counted as a copy.
    Json args = {{"data", bridgepool::bytes(expected)}};
    const long host_before = status_kib("self", "VmRSS");
    const long worker_before = status_kib(worker_pid, "VmRSS");
    const bool reset = reset_peak("self") && reset_peak(worker_pid);
    const auto t0 = std::chrono::steady_clock::now();
    auto r = pool.execute("echo", std::move(args));
    const auto t1 = std::chrono::steady_clock::now();
    if (!r || !(*r)["data"].is_binary() || (*r)["data"].get_binary() != expected) {
      std::fprintf(stderr, "attachment_bench: the echo failed or changed the bytes: %s\n",
                   r ? "different bytes" : r.error().to_string().c_str());
      return 1;
    }
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    if (!reset) usage("cannot reset the peak RSS (/proc/PID/clear_refs)");
    host_growth = std::max(host_growth, status_kib("self", "VmHWM") - host_before);
    worker_growth = std::max(worker_growth, status_kib(worker_pid, "VmHWM") - worker_before);
  }
  std::sort(ms.begin(), ms.end());
  const double mib_kib = static_cast<double>(o.mib) * 1024;
  const double host_copies = static_cast<double>(host_growth) / mib_kib;
  const double worker_copies = static_cast<double>(worker_growth) / mib_kib;
  const double median_ms = ms[ms.size() / 2];
  std::printf("%ld MiB echo: %.1f ms per round trip (median of %d), %.0f MiB/s each way\n", o.mib,
              median_ms, o.rounds, static_cast<double>(o.mib) / (median_ms / 1000));
  std::printf("peak RSS growth during the call: host %.2f x payload, worker %.2f x payload\n",
              host_copies, worker_copies);
  if (o.json) {
    std::printf("%s\n", Json{{"mib", o.mib},
                             {"round_trip_ms", median_ms},
                             {"host_copies", host_copies},
                             {"worker_copies", worker_copies},
                             {"goal_copies", 2.0},
                             {"goal_met", host_copies <= 2.2 && worker_copies <= 2.2}}
                            .dump()
                            .c_str());
  }
  pool.shutdown();
  return 0;
}
