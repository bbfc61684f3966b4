#include "worker/output_capture.h"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

namespace bridgepool {

OutputCapture::OutputCapture(const Clock& clock, Limits limits)
    : clock_(clock), limits_(limits), tokens_(limits.burst), last_refill_(clock.now()) {}

bool OutputCapture::take_token() {
  TimePoint now = clock_.now();
  double elapsed = std::chrono::duration<double>(now - last_refill_).count();
  last_refill_ = now;
  tokens_ = std::min(limits_.burst, tokens_ + elapsed * limits_.lines_per_second);
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

void OutputCapture::complete_line(std::vector<std::string>& out) {
  if (take_token()) {
    if (suppressed_pending_ > 0) {
      out.push_back(fmt::format("[{} lines suppressed]", suppressed_pending_));
      suppressed_pending_ = 0;
    }
    if (truncating_) partial_ += " [truncated]";
    out.push_back(std::move(partial_));
  } else {
    ++suppressed_pending_;
    ++suppressed_total_;
  }
  partial_.clear();
  truncating_ = false;
}

std::vector<std::string> OutputCapture::feed(std::string_view bytes) {
  std::vector<std::string> out;
  while (!bytes.empty()) {
    std::size_t nl = bytes.find('\n');
    std::string_view piece = bytes.substr(0, nl);
    if (!truncating_) {
      std::size_t room = limits_.max_line_bytes - std::min(limits_.max_line_bytes, partial_.size());
      partial_.append(piece.substr(0, room));
      if (piece.size() > room) truncating_ = true;
    }
    if (nl == std::string_view::npos) break;
    complete_line(out);
    bytes.remove_prefix(nl + 1);
  }
  return out;
}

std::vector<std::string> OutputCapture::finish() {
  std::vector<std::string> out;
  if (!partial_.empty() || truncating_) complete_line(out);
  if (suppressed_pending_ > 0) {
    out.push_back(fmt::format("[{} lines suppressed]", suppressed_pending_));
    suppressed_pending_ = 0;
  }
  return out;
}

}  // namespace bridgepool
