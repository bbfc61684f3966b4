#include "server/serve_config.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <functional>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <toml++/toml.h>

#include "bridgepool/logging.h"
#include "server/listen_address.h"

namespace bridgepool::server {
namespace {

using Json = nlohmann::json;
using Status = tl::expected<void, std::string>;

// One key of the table with typed access to its field, as JSON (the common currency of the
// sources: TOML values and parsed text are both turned into JSON before assignment).
struct KeyEntry {
  KeyInfo info;
  std::function<Json(const ServeConfig&)> get;
  std::function<void(ServeConfig&, const Json&)> set;
};

template <typename T>
KeyEntry make_entry(std::string_view name, KeyType type, std::string_view help,
                    T ServeConfig::*field) {
  return KeyEntry{KeyInfo{name, type, help},
                  [field](const ServeConfig& c) { return Json(c.*field); },
                  [field](ServeConfig& c, const Json& v) { c.*field = v.get<T>(); }};
}

const std::vector<KeyEntry>& entries() {
  static const std::vector<KeyEntry> table = [] {
    std::vector<KeyEntry> t;
#define BRIDGEPOOL_KEY_STR(f, d, h) \
  t.push_back(make_entry(#f, KeyType::kString, h, &ServeConfig::f));
#define BRIDGEPOOL_KEY_LIST(f, d, h) \
  t.push_back(make_entry(#f, KeyType::kStringList, h, &ServeConfig::f));
#define BRIDGEPOOL_KEY_UINT(f, d, h) \
  t.push_back(make_entry(#f, KeyType::kUint, h, &ServeConfig::f));
#define BRIDGEPOOL_KEY_BOOL(f, d, h) \
  t.push_back(make_entry(#f, KeyType::kBool, h, &ServeConfig::f));
    BRIDGEPOOL_SERVE_KEYS(BRIDGEPOOL_KEY_STR, BRIDGEPOOL_KEY_LIST, BRIDGEPOOL_KEY_UINT,
                          BRIDGEPOOL_KEY_BOOL)
#undef BRIDGEPOOL_KEY_STR
#undef BRIDGEPOOL_KEY_LIST
#undef BRIDGEPOOL_KEY_UINT
#undef BRIDGEPOOL_KEY_BOOL
    return t;
  }();
  return table;
}

const KeyEntry* find_entry(std::string_view name) {
  for (const auto& e : entries()) {
    if (e.info.name == name) return &e;
  }
  return nullptr;
}

std::string_view type_name(KeyType type) {
  switch (type) {
    case KeyType::kString:
      return "a string";
    case KeyType::kStringList:
      return "a list of strings";
    case KeyType::kUint:
      return "an integer >= 0";
    case KeyType::kBool:
      return "a boolean";
  }
  return "?";
}

bool has_type(const Json& v, KeyType type) {
  switch (type) {
    case KeyType::kString:
      return v.is_string();
    case KeyType::kUint:
      return v.is_number_unsigned();
    case KeyType::kBool:
      return v.is_boolean();
    case KeyType::kStringList:
      return v.is_array() &&
             std::all_of(v.begin(), v.end(), [](const Json& s) { return s.is_string(); });
  }
  return false;
}

std::string describe(const Json& v) {
  std::string text = v.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

Status assign(ServeConfig& config, SourceMap& sources, const KeyEntry& entry, const Json& value,
              const std::string& where) {
  if (!has_type(value, entry.info.type)) {
    return tl::unexpected(fmt::format("{}: {}: expected {}, got {}", where, entry.info.name,
                                      type_name(entry.info.type), describe(value)));
  }
  entry.set(config, value);
  sources[std::string(entry.info.name)] = where;
  return {};
}

// TOML value -> JSON: strings, non-negative integers, booleans and arrays of those. Anything
// else (floats, dates, tables) becomes a JSON value the type check rejects with its text.
Json from_toml(const toml::node& node) {
  if (auto s = node.as_string()) return Json(s->get());
  if (auto i = node.as_integer()) {
    return i->get() >= 0 ? Json(static_cast<std::uint64_t>(i->get())) : Json(i->get());
  }
  if (auto b = node.as_boolean()) return Json(b->get());
  if (auto a = node.as_array()) {
    Json out = Json::array();
    for (const auto& item : *a) out.push_back(from_toml(item));
    return out;
  }
  std::ostringstream text;
  text << "a " << node.type();
  return Json(text.str());
}

// Text (environment, flags) -> JSON of the key's type, or an error.
tl::expected<Json, std::string> from_text(const KeyEntry& entry, const std::string& text) {
  switch (entry.info.type) {
    case KeyType::kString:
      return Json(text);
    case KeyType::kStringList: {
      Json out = Json::array();
      std::stringstream in(text);
      for (std::string item; std::getline(in, item, ',');) {
        if (!item.empty()) out.push_back(item);
      }
      return out;
    }
    case KeyType::kUint: {
      std::uint64_t n = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
      if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
        return tl::unexpected(fmt::format("expected an integer >= 0, got '{}'", text));
      }
      return Json(n);
    }
    case KeyType::kBool:
      if (text == "true" || text == "1" || text == "yes") return Json(true);
      if (text == "false" || text == "0" || text == "no") return Json(false);
      return tl::unexpected(fmt::format("expected true or false, got '{}'", text));
  }
  return tl::unexpected(std::string("unknown key type"));
}

Status check_range(const ServeConfig& c, const SourceMap& s) {
  auto where = [&](const char* key) {
    auto it = s.find(key);
    return it == s.end() ? std::string("default") : it->second;
  };
  auto fail = [&](const char* key, std::string why) {
    return tl::unexpected(fmt::format("{}: {}: {}", where(key), key, why));
  };
  if (c.workers < 1 || c.workers > 512) return fail("workers", "must be from 1 to 512");
  if (c.min_ready > c.workers) {
    return fail("min_ready", fmt::format("{} is more than workers ({})", c.min_ready, c.workers));
  }
  if (c.max_body_bytes < 1) return fail("max_body_bytes", "must be at least 1");
  if (c.request_timeout_ms < 1) return fail("request_timeout_ms", "must be at least 1");
  if (c.read_timeout_ms < 1) return fail("read_timeout_ms", "must be at least 1");
  if (c.checkout_timeout_ms < 1) return fail("checkout_timeout_ms", "must be at least 1");
  if (c.session_ttl_s < 1) return fail("session_ttl_s", "must be at least 1");
  bool ok = false;
  level_from_name(c.log_level, &ok);
  if (!ok)
    return fail("log_level", fmt::format("'{}' is not debug|info|warn|error|off", c.log_level));
  if (!parse_start_method(c.start_method)) {
    return fail("start_method", fmt::format("'{}' is not spawn|fork-server", c.start_method));
  }
  if (c.spare_workers > 512) return fail("spare_workers", "must be from 0 to 512");
  if (c.log_format != "text" && c.log_format != "json") {
    return fail("log_format", fmt::format("'{}' is not text|json", c.log_format));
  }
  return {};
}

}  // namespace

std::string KeyInfo::env_name() const {
  std::string out = "BRIDGEPOOL_";
  for (char ch : name) out += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return out;
}

std::string KeyInfo::flag_name() const {
  std::string out = "--";
  for (char ch : name) out += ch == '_' ? '-' : ch;
  return out;
}

const std::vector<KeyInfo>& serve_keys() {
  static const std::vector<KeyInfo> keys = [] {
    std::vector<KeyInfo> out;
    for (const auto& e : entries()) out.push_back(e.info);
    return out;
  }();
  return keys;
}

std::string default_text(const KeyInfo& key) {
  const KeyEntry* entry = find_entry(key.name);
  Json value = entry->get(ServeConfig{});
  return value.is_string() && !value.get<std::string>().empty() ? value.get<std::string>()
                                                                : value.dump();
}

tl::expected<void, std::string> apply_toml(ServeConfig& config, SourceMap& sources,
                                           std::string_view toml_text, std::string_view origin) {
  toml::table table;
  try {
    table = toml::parse(toml_text, origin);
  } catch (const toml::parse_error& e) {
    return tl::unexpected(
        fmt::format("{}:{}: {}", origin, e.source().begin.line, std::string(e.description())));
  }
  for (const auto& [name, node] : table) {
    std::string where = fmt::format("{}:{}", origin, node.source().begin.line);
    const KeyEntry* entry = find_entry(name.str());
    if (entry == nullptr) {
      return tl::unexpected(fmt::format("{}: unknown key '{}'", where, name.str()));
    }
    if (auto ok = assign(config, sources, *entry, from_toml(node), where); !ok) return ok;
  }
  return {};
}

tl::expected<void, std::string> apply_env(ServeConfig& config, SourceMap& sources,
                                          const std::map<std::string, std::string>& env) {
  for (const auto& entry : entries()) {
    std::string name = entry.info.env_name();
    auto it = env.find(name);
    if (it == env.end()) continue;
    auto value = from_text(entry, it->second);
    if (!value) return tl::unexpected(fmt::format("{}: {}", name, value.error()));
    if (auto ok = assign(config, sources, entry, *value, name); !ok) return ok;
  }
  return {};
}

tl::expected<void, std::string> apply_text(ServeConfig& config, SourceMap& sources,
                                           const std::vector<TextSetting>& settings) {
  for (const auto& s : settings) {
    const KeyEntry* entry = find_entry(s.key);
    if (entry == nullptr)
      return tl::unexpected(fmt::format("{}: unknown key '{}'", s.source, s.key));
    auto value = from_text(*entry, s.value);
    if (!value) return tl::unexpected(fmt::format("{}: {}", s.source, value.error()));
    if (auto ok = assign(config, sources, *entry, *value, s.source); !ok) return ok;
  }
  return {};
}

tl::expected<void, std::string> validate(const ServeConfig& config, const SourceMap& sources) {
  if (auto ok = check_range(config, sources); !ok) return ok;
  auto listen_source = sources.count("listen") ? sources.at("listen") : std::string("default");
  auto address = parse_listen_address(config.listen);
  if (!address)
    return tl::unexpected(fmt::format("{}: listen: {}", listen_source, address.error()));
  if (!address->is_loopback() && config.token.empty() && config.token_file.empty() &&
      !config.insecure) {
    return tl::unexpected(fmt::format(
        "{}: listen: {} can be reached from other machines; set a token (token, token_file, "
        "BRIDGEPOOL_TOKEN) or pass --insecure",
        listen_source, config.listen));
  }
  return {};
}

PoolConfig to_pool_config(const ServeConfig& c) {
  PoolConfig p;
  p.size = c.workers;
  p.python = c.python;
  p.handlers = c.handlers;
  p.min_ready = c.min_ready;
  p.request_timeout = milliseconds(c.request_timeout_ms);
  p.checkout_timeout = milliseconds(c.checkout_timeout_ms);
  p.max_overflow = c.max_overflow;
  p.max_queue = c.max_queue;
  p.session_ttl = milliseconds(c.session_ttl_s * 1000);
  p.max_requests = c.max_requests;
  p.start_method = parse_start_method(c.start_method).value_or(StartMethod::kForkServer);
  p.spare_workers = c.spare_workers;
  return p;
}

std::string serve_keys_markdown() {
  std::string out =
      "| key | type | default | environment | flag | meaning |\n|---|---|---|---|---|---|\n";
  for (const auto& key : serve_keys()) {
    std::string_view type = type_name(key.type);
    type.remove_prefix(type.find(' ') + 1);  // "an integer >= 0" -> "integer >= 0"
    std::string help;
    for (char ch : key.help) help += ch == '|' ? std::string("\\|") : std::string(1, ch);
    out += fmt::format("| `{}` | {} | `{}` | `{}` | `{}` | {} |\n", key.name, type,
                       default_text(key), key.env_name(), key.flag_name(), help);
  }
  return out;
}

}  // namespace bridgepool::server
