// Generated documents kept in the source tree (docs/telemetry.md, docs/metrics.md, the keys table
// of docs/serve.md): a test renders what a document must say from the declaration tables and
// fails when the file differs; with BRIDGEPOOL_UPDATE_DOCS set in the environment it rewrites the
// file first, e.g.
//   BRIDGEPOOL_UPDATE_DOCS=1 build/tests/unit_tests --gtest_filter='MetricsReference.*'
#pragma once

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace bridgepool::testing {

// The text of `relative_path` under the source tree ("" if it cannot be read).
inline std::string read_source_file(const std::string& relative_path) {
  std::ifstream in(std::string(BRIDGEPOOL_SOURCE_DIR) + "/" + relative_path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Expects `relative_path` to hold exactly `expected` (rewriting it first under
// BRIDGEPOOL_UPDATE_DOCS).
inline void expect_generated_doc(const std::string& relative_path, const std::string& expected) {
  if (std::getenv("BRIDGEPOOL_UPDATE_DOCS") != nullptr)
    std::ofstream(std::string(BRIDGEPOOL_SOURCE_DIR) + "/" + relative_path) << expected;
  EXPECT_EQ(read_source_file(relative_path), expected)
      << relative_path << " differs from the tables it is generated from; regenerate it with "
      << "BRIDGEPOOL_UPDATE_DOCS=1 (see tests/unit/golden_doc.h)";
}

}  // namespace bridgepool::testing
