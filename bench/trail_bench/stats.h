// What a run measured: a log-linear latency histogram (HdrHistogram's layout, fixed memory,
// mergeable), per-thread counters, and live counters the progress line samples.
//
// Thread safety: Histogram and Stats belong to one thread until the run ends, when the main
// thread merges them; LiveCounters are written by one thread and read by any (relaxed).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace trail::bench {

// Counts values (microseconds) in buckets whose width is at most 1/128 of their lower bound:
// values below 128 exactly, then 128 sub-buckets per power of two. Values at or above
// kValueMax are counted as kValueMax - 1 (and `max` says so).
class Histogram {
 public:
  static constexpr unsigned kSubBits = 7;
  static constexpr std::uint64_t kValueMax = std::uint64_t{1} << 36U;  // ~19 hours in µs.

  Histogram();

  void record(std::uint64_t value);
  void merge(const Histogram& other);

  std::uint64_t count() const { return count_; }
  std::uint64_t max() const { return max_; }
  double mean() const;

  // The smallest value v such that at least `quantile` (0 to 1) of the recorded values are
  // <= v, rounded up to its bucket's highest value (never above max()). 0 when empty.
  std::uint64_t quantile_value(double quantile) const;

 private:
  static std::size_t index_of(std::uint64_t value);
  static std::uint64_t highest_value_of(std::size_t index);

  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  std::uint64_t max_ = 0;
  long double sum_ = 0;
};

enum class Op : std::uint8_t { kAppend, kRead };

// Successful (2xx) requests of one kind, counted inside the measurement window.
struct OpStats {
  std::uint64_t requests = 0;
  std::uint64_t events = 0;  // Events appended; 0 for reads.
  Histogram latency_us;      // From writing the request to reading the answer, successful
                             // requests only; includes connecting when it (re)connected.
};

// Everything one thread measured inside the window.
struct Stats {
  OpStats append;
  OpStats read;
  std::map<unsigned, std::uint64_t> failed_by_status;  // Non-2xx answers, by status code.
  std::map<unsigned, std::string> sample_by_status;    // The first such answer, abridged.
  std::map<std::string, std::uint64_t> failed_by_io;   // "connect: Connection refused", ...
  std::uint64_t connects = 0;                          // Connections opened (inside or not).

  OpStats& of(Op op) { return op == Op::kAppend ? append : read; }
  std::uint64_t failures() const;
  void merge(const Stats& other);
};

// Counters the progress line reads once a second; warm-up included.
struct alignas(64) LiveCounters {
  std::atomic<std::uint64_t> requests{0};  // Successful.
  std::atomic<std::uint64_t> events{0};
  std::atomic<std::uint64_t> failures{0};
};

}  // namespace trail::bench
