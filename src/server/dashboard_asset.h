// The dashboard page served at GET /: the bytes of src/server/dashboard/index.html, embedded
// into the binary at build time (cmake/BridgepoolServer.cmake generates the definition), so the
// service needs no files at run time. Immutable; any thread.
#pragma once

#include <string_view>

namespace bridgepool::server {

extern const std::string_view kDashboardHtml;

// The Content-Security-Policy sent with the page: its own inline script and style and requests
// to this server only; no remote origin of any kind, no framing.
inline constexpr std::string_view kDashboardCsp =
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'";

}  // namespace bridgepool::server
