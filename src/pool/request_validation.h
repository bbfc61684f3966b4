// Request validation: a malformed request is rejected with an invalid_request error before any
// worker is touched (SPEC §11.4), and nothing is silently changed on the way to the worker.
// Used by every executor (pool, bridge, mock). Pure; thread-safe.
//
//   command     1..256 bytes of valid UTF-8, no NUL
//   session id  1..256 bytes of valid UTF-8 (two different invalid ids must never be encoded
//               into one, both as "u\ufffd", and share one Python session)
//   args        a JSON object (null, e.g. `execute("ping", {})`, reads as an empty one: every
//               executor sends or hands {} instead), nested at most kMaxArgsDepth levels (the
//               object itself is level
//               1): deeper input would exhaust the worker's JSON parser (~990 levels) and, far
//               deeper, the host's own stack in the encoder; every string and key valid UTF-8;
//               every number finite (NaN and Infinity are not JSON); at most 4096 binary values
//               (Json::binary: sent as attachments, wire/attachment_codec.h), none in
//               execute_many items; no object whose only key is "$attachment" (the marker that
//               stands for a binary value on the wire). Checked iteratively, so even 100,000
//               levels are refused without recursion.
//   timeouts    ExecuteOptions::timeout > 0 if set; checkout_timeout >= 0 if set (0: do not
//               wait for a worker).
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "bridgepool/clock.h"
#include "bridgepool/error.h"
#include "bridgepool/executor.h"

namespace bridgepool {

inline constexpr std::size_t kMaxCommandLength = 256;
inline constexpr std::size_t kMaxSessionIdLength = 256;
// 500 leaves room in the 1024-level limit of replies (wire/message_codec.cc) for an echo of the
// deepest args, and stays well below Python's ~990 levels.
inline constexpr std::size_t kMaxArgsDepth = 500;

enum class BinaryValues { kAllowed, kRefused };
Result<void> validate_request(std::optional<std::string_view> session, std::string_view command,
                              const nlohmann::json& args,
                              BinaryValues binary = BinaryValues::kAllowed);

// What logs, events, metrics and error contexts may say about a command or session id that may
// be the very input refused: itself when valid UTF-8 within the length limit; over the limit a
// short description ("<command of 500000 bytes>"), so an oversized name is never copied into
// every log line and label; not UTF-8: "<invalid UTF-8>" for a command, the valid prefix of a
// session id.
std::string command_label(std::string_view command);
std::string session_label(std::string_view session_id);
Result<void> validate_options(const ExecuteOptions& options);

// The invalid_request error for a command no worker offers, listing `available` (sorted):
// "unknown command 'x'; available commands: echo, ping". The same words from every executor.
Error unknown_command_error(std::string_view command, const std::vector<std::string>& available);

// now + timeout, saturating: an absurd timeout (hours(1'000'000)) must not overflow the clock.
TimePoint deadline_after(TimePoint now, std::chrono::milliseconds timeout);

}  // namespace bridgepool
