// Test helper: the value of one sample in a text-format scrape, found by its exact name and
// label set (`name{a="x"}`), or nullopt when the scrape has no such line.
#pragma once

#include <optional>
#include <sstream>
#include <string>

namespace bridgepool::testing {

inline std::optional<double> sample(const std::string& scrape, const std::string& series) {
  std::istringstream in(scrape);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return std::nullopt;
}

}  // namespace bridgepool::testing
