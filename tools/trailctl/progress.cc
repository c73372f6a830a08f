#include "tools/trailctl/progress.h"

#include <unistd.h>

#include <cstdio>

namespace trail::tools {

Progress::Progress(std::string label)
    : label_{std::move(label)}, enabled_{::isatty(STDERR_FILENO) == 1},
      start_{std::chrono::steady_clock::now()} {}

Progress::~Progress() {
  if (drawn_) std::fputc('\n', stderr);
}

void Progress::update(std::uint64_t done, std::uint64_t total) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && done < total && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  drawn_ = true;
  constexpr int kWidth = 30;
  const double fraction = total == 0 ? 1.0 : static_cast<double>(done) / static_cast<double>(total);
  const int filled = static_cast<int>(fraction * kWidth);
  const double seconds = std::chrono::duration<double>(now - start_).count();
  const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0.0;
  std::fprintf(stderr, "\r%s [%-*.*s] %3d%% %llu/%llu (%.0f/s)", label_.c_str(), kWidth, filled,
               "##############################", static_cast<int>(fraction * 100),
               static_cast<unsigned long long>(done), static_cast<unsigned long long>(total), rate);
  std::fflush(stderr);
}

}  // namespace trail::tools
