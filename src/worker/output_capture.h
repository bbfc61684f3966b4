// OutputCapture: turns a worker's stdout or stderr byte stream into log lines, with limits.
//
// Pure (no I/O): the monitor thread reads the pipe and feeds bytes; complete lines come back.
// Lines longer than max_line_bytes are cut (and the rest of that line dropped) so one huge
// print() cannot grow memory; a token bucket bounds lines per second per stream (lesson 7 of
// SPEC §11: a looping print must not fill the disk), and the number of suppressed lines is
// reported once output is allowed again. Owned by one thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "bridgepool/clock.h"

namespace bridgepool {

class OutputCapture {
 public:
  struct Limits {
    std::size_t max_line_bytes = 4096;
    double lines_per_second = 200;  // refill rate
    double burst = 400;             // bucket size
  };

  OutputCapture(const Clock& clock, Limits limits);

  // Appends bytes; returns the lines completed (without '\n') that pass the rate limit. When
  // lines were dropped since the last emitted one, a line "[N lines suppressed]" precedes.
  std::vector<std::string> feed(std::string_view bytes);
  // At EOF: the unterminated tail, if any, as a last line.
  std::vector<std::string> finish();

  std::size_t suppressed_total() const { return suppressed_total_; }

 private:
  void complete_line(std::vector<std::string>& out);
  bool take_token();

  const Clock& clock_;
  Limits limits_;
  std::string partial_;
  bool truncating_ = false;  // current line exceeded max_line_bytes
  double tokens_;
  TimePoint last_refill_;
  std::size_t suppressed_pending_ = 0;
  std::size_t suppressed_total_ = 0;
};

}  // namespace bridgepool
