// TRAIL_BENCH_CHECK: invariants of trail-bench, on in release builds. A failure is a bug in
// trail-bench (never a reaction to what the server answers): print the condition and abort.
// trail-bench is HTTP-only and does not link trail::ledger, whose TRAIL_ASSERT logs via spdlog.
#pragma once

#include <cstdio>
#include <cstdlib>

#define TRAIL_BENCH_CHECK(condition)                                                         \
  do {                                                                                       \
    if (!(condition)) [[unlikely]] {                                                         \
      std::fprintf(stderr, "trail-bench: check failed: %s at %s:%d\n", #condition, __FILE__, \
                   __LINE__);                                                                \
      std::abort();                                                                          \
    }                                                                                        \
  } while (false)
