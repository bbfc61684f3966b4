// Bearer-token checks for the API (RFC 6750 `Authorization: Bearer <token>`).
//
// The comparison takes the same time whatever the first differing byte is (it always walks the
// whole expected token and folds every difference into one value), so response times do not
// reveal how much of a guess was right. Pure; any thread.
#pragma once

#include <string_view>

namespace bridgepool::server {

// True when `a` and `b` are equal; time depends only on the lengths.
bool constant_time_equal(std::string_view a, std::string_view b);

// True when `authorization` (the header's value, "" if absent) carries `token`. An empty
// `token` means no token is configured: everything is authorized.
bool authorized(std::string_view authorization, std::string_view token);

}  // namespace bridgepool::server
