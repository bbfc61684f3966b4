// Text exposition format 0.0.4 pieces: names, escaping, invalid UTF-8, numbers.
#include "telemetry/prometheus_text.h"

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

namespace bridgepool::prometheus_text {
namespace {

TEST(PrometheusText, MetricAndLabelNames) {
  EXPECT_TRUE(valid_metric_name("bridgepool_requests_total"));
  EXPECT_TRUE(valid_metric_name("a:b_c9"));
  EXPECT_FALSE(valid_metric_name(""));
  EXPECT_FALSE(valid_metric_name("9lives"));
  EXPECT_FALSE(valid_metric_name("with-dash"));
  EXPECT_TRUE(valid_label_name("command"));
  EXPECT_FALSE(valid_label_name("a:b"));  // colons only in metric names
  EXPECT_FALSE(valid_label_name("__reserved"));
  EXPECT_FALSE(valid_label_name("1st"));
}

TEST(PrometheusText, LabelValuesEscapeBackslashQuoteAndNewline) {
  std::string out;
  append_label_value(out, "a\\b\"c\nd\te");
  EXPECT_EQ(out, "a\\\\b\\\"c\\nd\te");  // tab stays as is, as the format allows
}

TEST(PrometheusText, HelpEscapesBackslashAndNewlineButNotQuotes) {
  std::string out;
  append_help(out, "say \"hi\"\\\nbye");
  EXPECT_EQ(out, "say \"hi\"\\\\\\nbye");
}

TEST(PrometheusText, InvalidUtf8BecomesReplacementCharacters) {
  EXPECT_EQ(sanitize_utf8("ok"), "ok");
  EXPECT_EQ(sanitize_utf8("caf\xC3\xA9"), "caf\xC3\xA9");  // valid two-byte sequence kept
  EXPECT_EQ(sanitize_utf8("a\xFF"
                          "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(sanitize_utf8("\xC3"), "\xEF\xBF\xBD");  // truncated sequence
  EXPECT_EQ(sanitize_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  std::string out;
  append_label_value(out, "x\xC0\"");
  EXPECT_EQ(out, "x\xEF\xBF\xBD\\\"");
}

TEST(PrometheusText, NumbersUseShortestRoundTripAndGoSpecialValues) {
  auto num = [](double v) {
    std::string out;
    append_number(out, v);
    return out;
  };
  EXPECT_EQ(num(0.0), "0");
  EXPECT_EQ(num(3.0), "3");
  EXPECT_EQ(num(0.005), "0.005");
  EXPECT_EQ(num(0.00005), "5e-05");
  EXPECT_EQ(num(2.5), "2.5");
  EXPECT_EQ(num(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(num(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(num(std::nan("")), "NaN");
  std::string big;
  append_number(big, std::uint64_t{18446744073709551615u});
  EXPECT_EQ(big, "18446744073709551615");
}

TEST(PrometheusText, LabelSets) {
  EXPECT_EQ(format_labels({}, {}), "");
  EXPECT_EQ(format_labels({"pool", "command"}, {"p", "e\"v"}), "{pool=\"p\",command=\"e\\\"v\"}");
  EXPECT_EQ(with_label("", "le", "0.5"), "{le=\"0.5\"}");
  EXPECT_EQ(with_label("{pool=\"p\"}", "le", "+Inf"), "{pool=\"p\",le=\"+Inf\"}");
}

}  // namespace
}  // namespace bridgepool::prometheus_text
