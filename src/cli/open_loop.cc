#include "cli/open_loop.h"

#include <thread>

namespace bridgepool::cli {

OpenLoopTally run_open_loop(const SendSchedule& schedule, std::size_t senders,
                            const OpenLoopCall& call, OpenLoopProgress& progress, StopFlag* stop,
                            std::optional<std::chrono::steady_clock::time_point> first_due) {
  using SteadyTime = std::chrono::steady_clock;
  senders = std::max<std::size_t>(senders, 1);
  std::vector<OpenLoopTally> tallies(senders);
  std::atomic<std::size_t> next{0};
  // Slot 0 is due 5 ms from now, so starting the sender threads (~100 µs each on this VM) is not
  // charged as latency to the first requests.
  const auto start = first_due.value_or(SteadyTime::now() + std::chrono::milliseconds(5));
  auto since_start = [start] { return Duration(SteadyTime::now() - start); };

  std::vector<std::thread> threads;
  threads.reserve(senders);
  for (std::size_t s = 0; s < senders; ++s) {
    threads.emplace_back([&, s] {
      OpenLoopTally& tally = tallies[s];
      // A sender that is busy when its next slot falls due picks that slot up late; the lateness
      // counts as latency, because the request's clock starts at the intended time.
      auto stopped = [stop] { return stop != nullptr && stop->stop_requested(); };
      for (std::size_t slot; !stopped() && (slot = next.fetch_add(1)) < schedule.size();) {
        Duration intended = schedule.intended(slot);
        // Both return at once when late; the flag's also when a stop is requested.
        if (stop == nullptr) {
          std::this_thread::sleep_until(start + intended);
        } else if (!stop->sleep_until(start + intended)) {
          break;
        }
        Duration sent = since_start();
        SendOutcome outcome = call(slot);
        if (outcome.cut_off) {
          tally.record_cut_off();
          continue;
        }
        tally.record(intended, sent, since_start(), outcome.error_category);
        if (!outcome.error_category.empty()) progress.failed.fetch_add(1);
        progress.done.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();

  OpenLoopTally all;
  for (const auto& t : tallies) all.merge(t);
  return all;
}

}  // namespace bridgepool::cli
