// Python's view of decoded JSON values, for code that must answer exactly as a Python handler
// would (MockExecutor, and the examples/handlers.py logic in mock_handlers_support.h): type names,
// repr()/str(), json.dumps(sort_keys=True, compact), int() with its error texts, truthiness and
// hashability. A Python exception that a helper or handler raises is a Raised, carried in a
// PyResult until python_error() turns it into the Error the pool makes of an `ok: false` reply
// (same category, "Type: message" text and PythonError).
//
// Approximations: ints saturate at the int64 range (Python's do not); repr() of non-ASCII text
// escapes only the common non-printable characters. Pure functions: any thread may call them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

#include "bridgepool/error.h"
#include "bridgepool/executor.h"  // Json

namespace bridgepool::internal {

// ---------------------------------------------------------------------------------------------
// A Python exception raised by a handler, before it becomes an Error (see python_error()).

struct Raised {
  std::string type;
  std::string message;
  std::optional<bool> retryable;
  bool by_runtime = false;  // sent by the runtime itself (UnknownCommand): no traceback
};

template <typename T>
using PyResult = tl::expected<T, Raised>;

// `raise type(message)` in a handler, as the failed PyResult.
tl::unexpected<Raised> raise(std::string type, std::string message,
                             std::optional<bool> retryable = std::nullopt);

// The Error the pool makes of an `ok: false` reply (Worker::python_error): the runtime's own
// complaints about the request are invalid_request, everything else user code raised is python.
Error python_error(const Raised& raised);

// python_error() of the exception, as the failed Result of a handler.
tl::unexpected<Error> py_raise(const Raised& raised);
tl::unexpected<Error> py_raise(std::string type, std::string message,
                               std::optional<bool> retryable = std::nullopt);

// ---------------------------------------------------------------------------------------------
// Python's view of JSON values

// type(v).__name__: "NoneType", "bool", "int", "float", "str", "list" or "dict".
std::string_view py_type(const Json& v);

// repr(v), e.g. {'a': [1, 2.0, None, True]}.
std::string py_repr(const Json& v);

// str(x) of a decoded JSON value: the text itself for a string, else repr(x).
std::string py_str(const Json& v);

// Appends json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False) to `out`;
// RecursionError beyond a nesting depth no real request reaches. Callers leave `depth` at 0.
PyResult<void> append_py_json(std::string& out, const Json& v, int depth = 0);

// str.strip(): Python's whitespace (ASCII whitespace and \x1c-\x1f) removed from both ends.
std::string_view py_strip(std::string_view s);

// int(v) for a decoded JSON value, with Python's errors (ValueError for "abc" or NaN,
// OverflowError for infinity, TypeError for None, lists and dicts).
PyResult<std::int64_t> py_int(const Json& v);

// args.get(key): nullptr when absent (a present null is a Json null, as in Python).
const Json* arg(const Json& args, const char* key);

// int(args.get(key, fallback))
PyResult<std::int64_t> int_arg(const Json& args, const char* key, std::int64_t fallback);

// Python's truthiness of a JSON value (`x or {}`).
bool py_truthy(const Json& v);

// A dict lookup with a JSON value as the key: TypeError for lists and dicts (unhashable).
PyResult<void> check_hashable(const Json& key);

}  // namespace bridgepool::internal
