// trailctl prints JSON objects one per line on standard output.
#pragma once

#include <cstdio>
#include <string>

#include <boost/json.hpp>

namespace trail::tools {

// Writes `object` and a newline to stdout.
inline void print_line(const boost::json::object& object) {
  const std::string line = boost::json::serialize(object) + "\n";
  std::fwrite(line.data(), 1, line.size(), stdout);
}

}  // namespace trail::tools
