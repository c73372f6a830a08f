// A one-line progress bar on stderr, shown only when stderr is a terminal.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace trail::tools {

class Progress {
 public:
  explicit Progress(std::string label);
  ~Progress();  // Ends the line if anything was drawn.
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  // Redraws at most ten times a second.
  void update(std::uint64_t done, std::uint64_t total);

 private:
  std::string label_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_{};
  std::chrono::steady_clock::time_point start_;
};

}  // namespace trail::tools
