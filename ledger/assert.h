// TRAIL_ASSERT: invariants that stay on in release builds.
// A failed assertion is a bug in Trail, never a reaction to bad input: it logs the condition
// and location, flushes the log and aborts. Validate untrusted input with Status instead.
#pragma once

namespace trail::detail {
[[noreturn]] void assert_fail(const char* condition, const char* file, int line) noexcept;
}  // namespace trail::detail

#define TRAIL_ASSERT(condition)                                       \
  do {                                                                \
    if (!(condition)) [[unlikely]] {                                  \
      ::trail::detail::assert_fail(#condition, __FILE__, __LINE__);   \
    }                                                                 \
  } while (false)

// For checks that cost O(n): on in debug builds only.
#ifdef NDEBUG
#define TRAIL_DEBUG_ASSERT(condition) \
  do {                                \
  } while (false)
#else
#define TRAIL_DEBUG_ASSERT(condition) TRAIL_ASSERT(condition)
#endif
