// Prometheus text exposition format 0.0.4: the pieces MetricFamily::render() is made of — name
// checks, label value and help escaping, number formatting. Pure functions, no registry.
//
// Escaping (format 0.0.4): label values escape backslash, double quote and line feed; help text
// escapes backslash and line feed. The format is UTF-8, so bytes that are not well-formed UTF-8
// (a command name is whatever a caller sent) are replaced by U+FFFD rather than copied: the
// output stays parseable whatever the input. Numbers use Go's spellings for the special values
// (+Inf, -Inf, NaN) and the shortest decimal that reads back to the same double otherwise.
// Thread-safety: pure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bridgepool::prometheus_text {

// [a-zA-Z_:][a-zA-Z0-9_:]*
bool valid_metric_name(std::string_view name);
// [a-zA-Z_][a-zA-Z0-9_]*, and not reserved (leading "__").
bool valid_label_name(std::string_view name);

// `text` with invalid UTF-8 sequences replaced by U+FFFD, one per offending byte.
std::string sanitize_utf8(std::string_view text);
void append_label_value(std::string& out, std::string_view value);
void append_help(std::string& out, std::string_view help);
void append_number(std::string& out, double value);
void append_number(std::string& out, std::uint64_t value);

// `{a="x",b="y"}` from names and values (same length), or "" when there are none.
std::string format_labels(const std::vector<std::string>& names,
                          const std::vector<std::string>& values);
// `labels` with one more label appended (`{a="x",le="0.5"}`); for histogram buckets.
std::string with_label(const std::string& labels, std::string_view name, std::string_view value);

}  // namespace bridgepool::prometheus_text
