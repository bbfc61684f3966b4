// SHA-256 (FIPS 180-4) of a byte string, as lowercase hex: the digest examples/handlers.py's
// mock_language_model takes with hashlib.sha256, reproduced so the mock executor's outputs match
// a Python worker's (see mock_handlers_support.h). Small and unoptimised: it hashes one short
// canonical JSON text per request. Any thread may call it.
#pragma once

#include <string>
#include <string_view>

namespace bridgepool::internal {

// The 64 hex digits of SHA-256(data), e.g. sha256_hex("abc") == "ba7816bf...f20015ad".
std::string sha256_hex(std::string_view data);

}  // namespace bridgepool::internal
