// ListenAddress: the HOST:PORT of `bridgepool serve --listen`, parsed and classified.
//
// Accepts "127.0.0.1:8765", "localhost:0", "0.0.0.0:80" and bracketed IPv6 ("[::1]:8765").
// is_loopback() decides whether the server may listen without a token (serve_config.h): only
// 127.0.0.0/8, ::1 and "localhost" count; anything else can be reached from another machine.
// Pure; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

namespace bridgepool::server {

struct ListenAddress {
  std::string host;  // without brackets
  std::uint16_t port = 0;

  bool is_loopback() const;
  // "127.0.0.1:8765", "[::1]:8765" (brackets back for IPv6).
  std::string to_string() const;
};

// Parses HOST:PORT. Errors say what is wrong (no port, port not a number or > 65535, empty host).
tl::expected<ListenAddress, std::string> parse_listen_address(std::string_view text);

}  // namespace bridgepool::server
