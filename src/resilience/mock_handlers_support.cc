// The logic of examples/handlers.py's commands: see mock_handlers_support.h.
#include "resilience/mock_handlers_support.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <utility>

#include "resilience/sha256.h"

namespace bridgepool::internal {
namespace {

// str.isidentifier(), with every non-ASCII character taken as a letter (approximation).
bool is_identifier(std::string_view s) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

std::vector<std::string_view> split(std::string_view s, std::string_view sep) {
  std::vector<std::string_view> parts;
  for (std::size_t start = 0;;) {
    const std::size_t at = s.find(sep, start);
    parts.push_back(s.substr(start, at == std::string_view::npos ? at : at - start));
    if (at == std::string_view::npos) return parts;
    start = at + sep.size();
  }
}

PyResult<std::vector<std::string>> parse_fields(std::string_view text, std::string_view side,
                                                const Json& signature) {
  std::vector<std::string> fields;
  for (std::string_view part : split(text, ",")) fields.emplace_back(py_strip(part));
  if (std::any_of(fields.begin(), fields.end(), [](const auto& f) { return !is_identifier(f); })) {
    return raise("ValueError",
                 fmt::format("bad {} fields in signature {}: expected 'in1, in2 -> out1, out2'",
                             side, py_repr(signature)));
  }
  std::vector<std::string> sorted = fields;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    return raise("ValueError",
                 fmt::format("duplicate {} field in signature {}", side, py_repr(signature)));
  }
  return fields;
}

}  // namespace

PyResult<Signature> parse_signature(const Json& signature) {
  if (!signature.is_string() || split(signature.get_ref<const std::string&>(), "->").size() != 2) {
    return raise("ValueError",
                 "signature must look like 'in1, in2 -> out1', got " + py_repr(signature));
  }
  auto sides = split(signature.get_ref<const std::string&>(), "->");
  auto inputs = parse_fields(sides[0], "input", signature);
  if (!inputs) return tl::unexpected(inputs.error());
  auto outputs = parse_fields(sides[1], "output", signature);
  if (!outputs) return tl::unexpected(outputs.error());
  return Signature{std::move(*inputs), std::move(*outputs)};
}

// Each output is "mock-<field>-" + the first 12 hex digits of the SHA-256 of the inputs as
// compact, key-sorted JSON.
PyResult<Json> mock_language_model(const Json& inputs, const std::vector<std::string>& outputs) {
  std::string canonical;
  if (auto ok = append_py_json(canonical, inputs); !ok) return tl::unexpected(ok.error());
  const std::string digest = sha256_hex(canonical).substr(0, 12);
  Json result = Json::object();
  for (const auto& field : outputs) result[field] = fmt::format("mock-{}-{}", field, digest);
  return result;
}

// Builtin exception classes of Python 3.11 that subclass Exception, by the name
// getattr(builtins, name) finds (EnvironmentError and IOError are OSError).
const std::unordered_map<std::string_view, std::string_view>& exception_classes() {
  static const auto* table = [] {
    auto* t = new std::unordered_map<std::string_view, std::string_view>;
    for (std::string_view name : {"ArithmeticError",
                                  "AssertionError",
                                  "AttributeError",
                                  "BlockingIOError",
                                  "BrokenPipeError",
                                  "BufferError",
                                  "BytesWarning",
                                  "ChildProcessError",
                                  "ConnectionAbortedError",
                                  "ConnectionError",
                                  "ConnectionRefusedError",
                                  "ConnectionResetError",
                                  "DeprecationWarning",
                                  "EOFError",
                                  "EncodingWarning",
                                  "Exception",
                                  "ExceptionGroup",
                                  "FileExistsError",
                                  "FileNotFoundError",
                                  "FloatingPointError",
                                  "FutureWarning",
                                  "ImportError",
                                  "ImportWarning",
                                  "IndentationError",
                                  "IndexError",
                                  "InterruptedError",
                                  "IsADirectoryError",
                                  "KeyError",
                                  "LookupError",
                                  "MemoryError",
                                  "ModuleNotFoundError",
                                  "NameError",
                                  "NotADirectoryError",
                                  "NotImplementedError",
                                  "OSError",
                                  "OverflowError",
                                  "PendingDeprecationWarning",
                                  "PermissionError",
                                  "ProcessLookupError",
                                  "RecursionError",
                                  "ReferenceError",
                                  "ResourceWarning",
                                  "RuntimeError",
                                  "RuntimeWarning",
                                  "StopAsyncIteration",
                                  "StopIteration",
                                  "SyntaxError",
                                  "SyntaxWarning",
                                  "SystemError",
                                  "TabError",
                                  "TimeoutError",
                                  "TypeError",
                                  "UnboundLocalError",
                                  "UnicodeDecodeError",
                                  "UnicodeEncodeError",
                                  "UnicodeError",
                                  "UnicodeTranslateError",
                                  "UnicodeWarning",
                                  "UserWarning",
                                  "ValueError",
                                  "Warning",
                                  "ZeroDivisionError"}) {
      (*t)[name] = name;
    }
    (*t)["EnvironmentError"] = "OSError";
    (*t)["IOError"] = "OSError";
    return t;
  }();
  return *table;
}

// Classes whose constructor refuses a single argument: `cls(message)` raises TypeError instead.
std::optional<std::string_view> constructor_error(std::string_view cls) {
  if (cls == "ExceptionGroup")
    return "BaseExceptionGroup.__new__() takes exactly 2 arguments (1 given)";
  if (cls == "UnicodeDecodeError" || cls == "UnicodeEncodeError") {
    return "function takes exactly 5 arguments (1 given)";
  }
  if (cls == "UnicodeTranslateError") return "function takes exactly 4 arguments (1 given)";
  return std::nullopt;
}

// Signals a worker process survives: 0 (a probe), SIGINT (the runtime ignores it), SIGPIPE and
// SIGXFSZ (ignored by Python), and those whose default action is to ignore or continue.
bool survives_signal(std::int64_t sig) {
  switch (sig) {
    case 0:
    case 2:
    case 13:
    case 17:
    case 18:
    case 23:
    case 25:
    case 28:
      return true;
    default:
      return false;
  }
}

bool stops_process(std::int64_t sig) { return sig >= 19 && sig <= 22; }  // STOP TSTP TTIN TTOU

// sum(i * i % 7 for i in range(n)): the residues repeat every 7 (0 1 4 2 2 4 1, sum 14).
std::int64_t compute_value(std::int64_t n) {
  if (n <= 0) return 0;
  static constexpr std::array<std::int64_t, 7> prefix = {0, 0, 1, 5, 7, 9, 13};
  return (n / 7) * 14 + prefix[static_cast<std::size_t>(n % 7)];
}

}  // namespace bridgepool::internal
