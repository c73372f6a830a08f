// A fresh data directory with the sample events appended, and trailctl run against it.
// Needs the compile definitions TRAILCTL_PATH and TRAIL_SOURCE_DIR (tools_tests has both).
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "tests/support/run_process.h"
#include "tests/support/temp_dir.h"

namespace trail::testing {

class TrailctlWithSample : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(run({"init"}).exit_code, 0);
    std::ifstream in(source("scripts/sample-events.jsonl"));
    std::stringstream sample;
    sample << in.rdbuf();
    auto appended = run({"append", "--project", "demo"}, sample.str());
    ASSERT_EQ(appended.exit_code, 0) << appended.err;
  }
  // A file of the source tree.
  static std::string source(const std::string& path) {
    return std::string(TRAIL_SOURCE_DIR) + "/" + path;
  }
  // trailctl `args` --data D --keys K.
  ProcessResult run(std::vector<std::string> args, const std::string& input = "") {
    std::vector<std::string> argv{TRAILCTL_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--data", (dir_ / "data").string(), "--keys", (dir_ / "keys").string()});
    return run_process(argv, input);
  }
  // One JSON object per line.
  static std::vector<boost::json::object> lines(const std::string& text) {
    std::vector<boost::json::object> out;
    std::istringstream in(text);
    std::string l;
    while (std::getline(in, l)) out.push_back(boost::json::parse(l).as_object());
    return out;
  }
  TempDir dir_;
};

}  // namespace trail::testing
