// The result of a run, for people (a few aligned lines) or for scripts (one JSON object).
// Rates are over the measured window; latencies are of successful requests, in milliseconds.
#pragma once

#include <cstddef>
#include <string>

#include "bench/trail_bench/options.h"
#include "bench/trail_bench/stats.h"

namespace trail::bench {

struct RunSummary {
  const Options& options;
  std::size_t threads = 0;   // Worker threads actually used.
  double measured_s = 0.0;   // Length of the measurement window (shorter if interrupted).
  bool interrupted = false;  // Stopped early by SIGINT/SIGTERM.
  Stats stats;               // Merged over all threads.
};

std::string format_text(const RunSummary& summary);
std::string format_json(const RunSummary& summary);

}  // namespace trail::bench
