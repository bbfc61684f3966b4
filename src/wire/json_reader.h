// JSON text into a Json value the fast way: simdjson (Debian's libsimdjson) parses, then the
// document is copied into nlohmann's DOM, which is what callers get. For a 100 KB string or a
// 100 KB list of small records this takes a fraction of nlohmann's own parser (which reads one
// character at a time), and it is on the path of every reply a worker sends.
//
// Only a shortcut: it returns nullopt for anything simdjson refuses — invalid JSON or UTF-8,
// nesting at or beyond `max_depth`, an integer that does not fit 64 bits — and the caller then
// parses with nlohmann, whose verdict and error messages stay the reference. What it accepts
// reads as nlohmann would read it: non-negative integers unsigned, negative ones signed, the rest
// doubles; a repeated key keeps its last value.
// Thread-safety: any thread (each thread reuses its own parser for documents up to 64 KiB; a
// larger one gets a parser of its own, so no thread keeps a large buffer after it).
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

namespace bridgepool::wire {

std::optional<nlohmann::json> parse_json_fast(std::string_view text, std::size_t max_depth);

}  // namespace bridgepool::wire
