// JSON text written straight from a Json value into the caller's buffer: the request path's
// serializer (message_codec.cc), several times faster than nlohmann's dump() where it matters —
// strings are copied in runs between the bytes that need an escape, found eight at a time,
// instead of one character at a time.
//
// Output is what dump() writes with ensure_ascii=false and error_handler_t::replace: UTF-8 passes
// through, '"', '\' and control characters are escaped (\b \f \n \r \t, else \u00XX), and a
// string that is not valid UTF-8 has each invalid byte replaced by U+FFFD (via dump(): rare, and
// refused by request validation anyway). Doubles are written shortest-round-trip, with ".0" when
// they would otherwise read back as an integer. With `attachments`, each binary value is written
// as {"$attachment": i} and a view of its bytes appended there (attachment_codec.h); without,
// nlohmann's form of it is written. Recursive: for values already validated (args are at most
// 500 levels deep). Pure; never throws except std::bad_alloc.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "wire/attachment_codec.h"

namespace bridgepool::wire {

void append_json(std::string& out, const Json& value, std::vector<Bytes>* attachments = nullptr);
void append_json_string(std::string& out, std::string_view text);
void append_integer(std::string& out, std::int64_t value);
void append_integer(std::string& out, std::uint64_t value);

}  // namespace bridgepool::wire
