// The `--args` / `--args-file` value of `bridgepool bench`: text from the command line, checked
// before any worker starts, so that hostile input ends in one clear message and exit status 2
// instead of a crash, a hang or an error from every request.
//
// Checks, in order: nesting depth (a pre-scan that needs no recursion, so 100,000 '[' cost a
// loop, not the stack), JSON syntax including UTF-8 validity (nlohmann's parser, which is not
// recursive either), and that the value is an object. An object whose only key is "$base64" is
// a binary value (bridgepool/binary.h), sent as an attachment. Messages quote at most an excerpt of
// the input, printable ASCII only. Pure; any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>
#include <tl/expected.hpp>

#include "bridgepool/binary.h"
#include "pool/request_validation.h"

namespace bridgepool::cli {

// Deepest nesting accepted: the library's own limit for request args (kMaxArgsDepth in
// pool/request_validation.h), checked here on the text so hostile input never reaches a pool.

// Returns the deepest nesting of arrays and objects in `text`, counting only brackets outside
// strings, and stops counting once it exceeds `limit` (the result is then limit + 1). Not a
// validator: unbalanced or otherwise broken text is left to the parser.
std::size_t json_nesting_depth(std::string_view text, std::size_t limit);

// `text` with every byte outside printable ASCII written as \xNN, cut to about `max` characters
// ("..." appended when cut): safe to print whatever the input was.
std::string printable_excerpt(std::string_view text, std::size_t max = 80);

// Parses `text` as the arguments of a request. Returns the object, or a message naming `source`
// (e.g. "--args") and saying what is wrong: too deep, invalid JSON (with the parser's position
// and reason), or not an object (with the type found).
tl::expected<nlohmann::json, std::string> parse_args_object(std::string_view text,
                                                            std::string_view source);

}  // namespace bridgepool::cli
