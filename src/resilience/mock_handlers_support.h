// The pure logic behind the commands of examples/handlers.py that MockExecutor answers in C++:
// DSPy-like signatures ("in1, in2 -> out1") and the deterministic mock language model of the
// program commands, the builtin exception classes `fail` may raise, what a signal does to a
// worker (`crash`), and `compute`'s sum. Each function mirrors its Python original — same checks
// in the same order, same exception types and texts — using python_values.h for Python's view of
// the arguments; MockExecutor keeps the state (sessions, programs) and the command table.
// Pure functions: any thread may call them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bridgepool/executor.h"  // Json
#include "resilience/python_values.h"

namespace bridgepool::internal {

// ---------------------------------------------------------------------------------------------
// Signatures and the mock language model (create_program, execute_program)

struct Signature {
  std::vector<std::string> inputs, outputs;
};

// The fields of a signature such as "question, context -> answer": ValueError unless it is a
// string with one "->" whose sides are comma-separated identifiers, each at most once per side.
PyResult<Signature> parse_signature(const Json& signature);

// Maps each output field to "mock-<field>-" + the first 12 hex digits of the SHA-256 of the
// inputs as compact, key-sorted JSON; RecursionError for inputs nested too deeply.
PyResult<Json> mock_language_model(const Json& inputs, const std::vector<std::string>& outputs);

// ---------------------------------------------------------------------------------------------
// fail

// Builtin exception classes of Python 3.11 that subclass Exception, by the name
// getattr(builtins, name) finds, each mapped to its class (EnvironmentError and IOError to
// OSError).
const std::unordered_map<std::string_view, std::string_view>& exception_classes();

// For the classes whose constructor refuses a single argument, the message of the TypeError
// that `cls(message)` raises instead; nullopt for the others.
std::optional<std::string_view> constructor_error(std::string_view cls);

// ---------------------------------------------------------------------------------------------
// crash and compute

// Signals a worker process survives: 0 (a probe), SIGINT (the runtime ignores it), SIGPIPE and
// SIGXFSZ (ignored by Python), and those whose default action is to ignore or continue.
bool survives_signal(std::int64_t sig);

// Whether the signal stops (rather than ends) a process: SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU.
bool stops_process(std::int64_t sig);

// sum(i * i % 7 for i in range(n)), the value `compute` returns; O(1), 0 for n <= 0.
std::int64_t compute_value(std::int64_t n);

}  // namespace bridgepool::internal
