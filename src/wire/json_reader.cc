#include "wire/json_reader.h"

// GCC 12 reports -Wdangling-pointer inside simdjson's own inline iterators (a false positive:
// the tape reference outlives nothing it points to).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif
#include <simdjson.h>

namespace bridgepool::wire {
namespace {

using Json = nlohmann::json;
using simdjson::dom::element;
using simdjson::dom::element_type;

// Documents up to this size reuse the thread's parser (whose buffers grow to the largest one).
constexpr std::size_t kReusedParserLimit = 64 * 1024;

// Recursive, bounded by the depth the parser was allowed.
Json to_json(element e) {
  switch (e.type()) {
    case element_type::ARRAY: {
      simdjson::dom::array children;
      if (e.get(children)) return Json(nullptr);  // cannot happen: the type says array
      Json array = Json::array();
      auto& items = array.get_ref<Json::array_t&>();
      for (element child : children) items.push_back(to_json(child));
      return array;
    }
    case element_type::OBJECT: {
      simdjson::dom::object members;
      if (e.get(members)) return Json(nullptr);  // cannot happen: the type says object
      Json object = Json::object();
      auto& fields = object.get_ref<Json::object_t&>();
      for (auto field : members) {
        fields.insert_or_assign(std::string(field.key), to_json(field.value));
      }
      return object;
    }
    case element_type::INT64: {
      const std::int64_t v = e.get_int64().value_unsafe();
      return v >= 0 ? Json(static_cast<std::uint64_t>(v)) : Json(v);
    }
    case element_type::UINT64:
      return Json(e.get_uint64().value_unsafe());
    case element_type::DOUBLE:
      return Json(e.get_double().value_unsafe());
    case element_type::STRING:
      return Json(std::string(e.get_string().value_unsafe()));
    case element_type::BOOL:
      return Json(e.get_bool().value_unsafe());
    case element_type::NULL_VALUE:
      return Json(nullptr);
  }
  return Json(nullptr);
}

std::optional<Json> parse_with(simdjson::dom::parser& parser, std::string_view text,
                               std::size_t max_depth) {
  if (parser.capacity() < text.size() || parser.max_depth() != max_depth) {
    if (parser.allocate(std::max(text.size(), parser.capacity()), max_depth)) return std::nullopt;
  }
  element root;
  // The text is copied into a padded buffer: simdjson reads up to 64 bytes past the end.
  if (parser.parse(text.data(), text.size(), /*realloc_if_needed=*/true).get(root)) {
    return std::nullopt;
  }
  return to_json(root);
}

}  // namespace

std::optional<Json> parse_json_fast(std::string_view text, std::size_t max_depth) {
  if (text.size() <= kReusedParserLimit) {
    thread_local simdjson::dom::parser parser;
    return parse_with(parser, text, max_depth);
  }
  simdjson::dom::parser parser;
  return parse_with(parser, text, max_depth);
}

}  // namespace bridgepool::wire
