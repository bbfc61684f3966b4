#include "pool/request_validation.h"

#include <cmath>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "base/utf8.h"
#include "wire/attachment_codec.h"

namespace bridgepool {
namespace {

tl::unexpected<Error> invalid(std::string_view command, std::string message,
                              std::optional<std::string_view> session = std::nullopt) {
  Error e(ErrorCategory::kInvalidRequest, std::move(message));
  e.context.operation = "execute";
  // Only text that is valid UTF-8 goes into the context: it may be logged or sent as JSON.
  e.context.command = std::string(valid_utf8_prefix(command.substr(0, kMaxCommandLength)));
  if (session) {
    e.context.session_id = std::string(valid_utf8_prefix(session->substr(0, kMaxSessionIdLength)));
  }
  return tl::unexpected(std::move(e));
}

// Depth, UTF-8, finite numbers and binary values, without recursion.
std::optional<std::string> check_args(const nlohmann::json& args, BinaryValues binary) {
  struct Frame {
    const nlohmann::json* value;
    std::size_t depth;
  };
  std::vector<Frame> stack{{&args, 1}};
  std::size_t binaries = 0;
  while (!stack.empty()) {
    const Frame f = stack.back();
    stack.pop_back();
    const nlohmann::json& v = *f.value;
    if (v.is_object() || v.is_array()) {
      if (f.depth > kMaxArgsDepth) {
        return fmt::format("args are nested more than {} levels deep", kMaxArgsDepth);
      }
      if (v.is_object()) {
        if (v.size() == 1 && v.begin().key() == wire::kAttachmentMarker) {
          return fmt::format(
              "args contain an object whose only key is \"{}\", which the "
              "protocol reserves for binary values",
              wire::kAttachmentMarker);
        }
        for (const auto& [key, child] : v.items()) {
          if (!is_valid_utf8(key)) return std::string("args contain a key that is not valid UTF-8");
          stack.push_back({&child, f.depth + 1});
        }
      } else {
        for (const auto& child : v) stack.push_back({&child, f.depth + 1});
      }
    } else if (v.is_string()) {
      if (!is_valid_utf8(v.get_ref<const std::string&>())) {
        return std::string("args contain a string that is not valid UTF-8");
      }
    } else if (v.is_number_float() && !std::isfinite(v.get<double>())) {
      return std::string("args contain a number that is NaN or infinite, which JSON cannot carry");
    } else if (v.is_binary()) {
      if (binary == BinaryValues::kRefused) {
        return std::string("args contain a binary value, which execute_many items cannot carry");
      }
      if (++binaries > wire::kMaxAttachments) {
        return fmt::format("args carry more than {} binary values", wire::kMaxAttachments);
      }
    }
  }
  return std::nullopt;
}

}  // namespace

std::string command_label(std::string_view command) {
  if (command.size() > kMaxCommandLength)
    return fmt::format("<command of {} bytes>", command.size());
  return is_valid_utf8(command) ? std::string(command) : std::string("<invalid UTF-8>");
}

std::string session_label(std::string_view session_id) {
  if (session_id.size() > kMaxSessionIdLength)
    return fmt::format("<session id of {} bytes>", session_id.size());
  return std::string(valid_utf8_prefix(session_id));
}

Result<void> validate_request(std::optional<std::string_view> session, std::string_view command,
                              const nlohmann::json& args, BinaryValues binary) {
  if (command.empty()) return invalid(command, "command name is empty");
  if (command.size() > kMaxCommandLength) {
    return invalid(command, fmt::format("command name is {} bytes long (max {})", command.size(),
                                        kMaxCommandLength));
  }
  if (command.find('\0') != std::string_view::npos) {
    return invalid(command, "command name contains NUL");
  }
  if (auto at = invalid_utf8_at(command); at != std::string_view::npos) {
    return invalid(command, fmt::format("command name is not valid UTF-8 (byte {} of {})", at,
                                        command.size()));
  }
  if (session) {
    if (session->empty()) return invalid(command, "session id is empty");
    if (session->size() > kMaxSessionIdLength) {
      return invalid(command, fmt::format("session id is {} bytes long (max {})", session->size(),
                                          kMaxSessionIdLength));
    }
    if (auto at = invalid_utf8_at(*session); at != std::string_view::npos) {
      return invalid(
          command,
          fmt::format("session id is not valid UTF-8 (byte {} of {})", at, session->size()),
          session);
    }
  }
  if (!args.is_object() && !args.is_null()) {
    return invalid(command, fmt::format("args must be a JSON object, got {}", args.type_name()));
  }
  if (auto problem = check_args(args, binary)) return invalid(command, std::move(*problem));
  return {};
}

Result<void> validate_options(const ExecuteOptions& options) {
  if (options.timeout && options.timeout->count() <= 0) {
    return invalid({},
                   fmt::format("timeout must be positive, got {} ms", options.timeout->count()));
  }
  if (options.checkout_timeout && options.checkout_timeout->count() < 0) {
    return invalid({}, fmt::format("checkout_timeout must not be negative, got {} ms",
                                   options.checkout_timeout->count()));
  }
  return {};
}

Error unknown_command_error(std::string_view command, const std::vector<std::string>& available) {
  return invalid(command, fmt::format("unknown command '{}'; available commands: {}", command,
                                      fmt::join(available, ", ")))
      .value();
}

TimePoint deadline_after(TimePoint now, std::chrono::milliseconds timeout) {
  // A year is longer than any real call and far from the clock's limits (~292 years of ns).
  constexpr std::chrono::milliseconds kMax = std::chrono::hours(24 * 365);
  return now + std::clamp(timeout, std::chrono::milliseconds(0), kMax);
}

}  // namespace bridgepool
