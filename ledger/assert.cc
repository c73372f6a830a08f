#include "ledger/assert.h"

#include <cstdio>
#include <cstdlib>

#include <spdlog/spdlog.h>

namespace trail::detail {

void assert_fail(const char* condition, const char* file, int line) noexcept {
  std::fprintf(stderr, "trail: assertion failed: %s at %s:%d\n", condition, file, line);
  std::fflush(stderr);
  spdlog::critical("assertion failed: {} at {}:{}", condition, file, line);
  spdlog::shutdown();
  std::abort();
}

}  // namespace trail::detail
