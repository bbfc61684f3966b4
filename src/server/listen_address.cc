#include "server/listen_address.h"

#include <charconv>

#include <fmt/format.h>

namespace bridgepool::server {

bool ListenAddress::is_loopback() const {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

std::string ListenAddress::to_string() const {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

tl::expected<ListenAddress, std::string> parse_listen_address(std::string_view text) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos) {
    return tl::unexpected(fmt::format("'{}' is not HOST:PORT (no port)", text));
  }
  std::string_view host = text.substr(0, colon);
  std::string_view port_text = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return tl::unexpected(fmt::format("'{}': an IPv6 host needs brackets, e.g. [::1]:8765", text));
  }
  if (host.empty()) return tl::unexpected(fmt::format("'{}' has an empty host", text));
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
      port > 65535) {
    return tl::unexpected(fmt::format("'{}': port must be a number from 0 to 65535", text));
  }
  return ListenAddress{std::string(host), static_cast<std::uint16_t>(port)};
}

}  // namespace bridgepool::server
