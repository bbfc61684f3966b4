// ServeConfig: every setting of `bridgepool serve`, declared once, and how the four sources
// (defaults < TOML file < BRIDGEPOOL_* environment < command-line flags) are merged into it.
//
// BRIDGEPOOL_SERVE_KEYS lists each key with its type, default and meaning. The struct fields, the
// environment names (BRIDGEPOOL_ + the key upper-cased), the flags (--key with '-' for '_'), the
// merge and the reference table of docs/serve.md (a unit test fails when the document differs)
// all come from that list, so a key cannot exist in one place and be missing in another.
// Every rejected value is a message naming its source: "serve.toml:3: workers: ...",
// "BRIDGEPOOL_WORKERS: ...", "--workers: ...". The merge is pure: the environment is passed in.
// Thread-safety: plain data and pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "bridgepool/config.h"

namespace bridgepool::server {

enum class KeyType { kString, kStringList, kUint, kBool };

// KEY(field, type, default, help). Types: STR (std::string), LIST (strings), UINT, BOOL.
#define BRIDGEPOOL_SERVE_KEYS(STR, LIST, UINT, BOOL)                                            \
  STR(listen, "127.0.0.1:8765", "HOST:PORT to listen on (port 0: the kernel picks one)")        \
  UINT(workers, 2, "Python worker processes")                                                   \
  LIST(handlers, {}, "Handler modules, paths or dotted names (empty: examples/handlers.py)")    \
  STR(python, "", "Python interpreter (empty: /usr/bin/python3, else python3)")                 \
  STR(token, "", "Bearer token required by POST/DELETE endpoints (empty: none)")                \
  STR(token_file, "", "Read the token from this file (keeps it out of ps and the environment)") \
  BOOL(insecure, false, "Allow a non-loopback listen address without a token")                  \
  UINT(max_body_bytes, 1048576, "Largest request body accepted; larger ones get 413")           \
  UINT(request_timeout_ms, 60000, "Default deadline of one request on a worker")                \
  UINT(read_timeout_ms, 5000, "Idle time allowed while reading a request before dropping it")   \
  UINT(http_threads, 0, "HTTP connection threads (0: max(8, 4 x (workers + max_overflow)))")    \
  STR(log_level, "info", "debug|info|warn|error|off")                                           \
  STR(log_format, "text", "text|json (JSON lines on stderr)")                                   \
  UINT(min_ready, 1, "Workers that must be ready for /readyz (and before serving)")             \
  UINT(checkout_timeout_ms, 5000, "Wait for a free worker before a timeout error")              \
  UINT(max_overflow, 0, "Extra workers started while every worker is busy")                     \
  UINT(max_queue, 1024, "Callers waiting for a worker beyond this fail at once (503)")          \
  UINT(session_ttl_s, 300, "Sessions idle this long are closed")                                \
  UINT(max_requests, 0, "Recycle a worker after this many requests (0: never)")                 \
  STR(start_method, "fork-server", "fork-server|spawn: how worker processes are started")       \
  UINT(spare_workers, 0, "Warm spare processes kept aside to replace a dead worker at once")    \
  UINT(shutdown_grace_ms, 10000, "SIGTERM/SIGINT: time in-flight requests get to finish")

struct ServeConfig {
#define BRIDGEPOOL_SERVE_STR(field, def, help) std::string field = def;
#define BRIDGEPOOL_SERVE_LIST(field, def, help) std::vector<std::string> field = def;
#define BRIDGEPOOL_SERVE_UINT(field, def, help) std::uint64_t field = def;
#define BRIDGEPOOL_SERVE_BOOL(field, def, help) bool field = def;
  BRIDGEPOOL_SERVE_KEYS(BRIDGEPOOL_SERVE_STR, BRIDGEPOOL_SERVE_LIST, BRIDGEPOOL_SERVE_UINT,
                        BRIDGEPOOL_SERVE_BOOL)
#undef BRIDGEPOOL_SERVE_STR
#undef BRIDGEPOOL_SERVE_LIST
#undef BRIDGEPOOL_SERVE_UINT
#undef BRIDGEPOOL_SERVE_BOOL
};

struct KeyInfo {
  std::string_view name;  // "max_body_bytes"
  KeyType type;
  std::string_view help;
  std::string env_name() const;   // "BRIDGEPOOL_MAX_BODY_BYTES"
  std::string flag_name() const;  // "--max-body-bytes"
};

// Every key, in declaration order.
const std::vector<KeyInfo>& serve_keys();

// The default of a key as the reference shows it ("127.0.0.1:8765", "2", "false", "[]", "\"\"").
std::string default_text(const KeyInfo& key);

// A value given as text (environment, flag): "--workers" or "BRIDGEPOOL_WORKERS" is `source`.
struct TextSetting {
  std::string key;
  std::string value;
  std::string source;
};

// Where each key's final value came from ("default", "serve.toml:3", "BRIDGEPOOL_TOKEN", ...).
using SourceMap = std::map<std::string, std::string>;

// Applies a TOML document to `config`. `origin` names it in messages (the file path). Errors:
// syntax (with line), unknown key, wrong type, out-of-range value.
tl::expected<void, std::string> apply_toml(ServeConfig& config, SourceMap& sources,
                                           std::string_view toml_text, std::string_view origin);
// Applies the known BRIDGEPOOL_* variables found in `env` (others are left alone: the library
// reads BRIDGEPOOL_PYTHONPATH and the like itself).
tl::expected<void, std::string> apply_env(ServeConfig& config, SourceMap& sources,
                                          const std::map<std::string, std::string>& env);
// Applies settings given as text (flags), in order. Unknown keys are errors.
tl::expected<void, std::string> apply_text(ServeConfig& config, SourceMap& sources,
                                           const std::vector<TextSetting>& settings);

// Checks the merged configuration as a whole (listen address syntax, log level and format,
// min_ready <= workers, a token for a non-loopback address unless insecure, ...). Messages name
// the source of the offending key.
tl::expected<void, std::string> validate(const ServeConfig& config, const SourceMap& sources);

// The pool settings of a validated configuration.
PoolConfig to_pool_config(const ServeConfig& config);

// The reference table of docs/serve.md: one row per key (key, type, default, env, flag, meaning).
std::string serve_keys_markdown();

}  // namespace bridgepool::server
