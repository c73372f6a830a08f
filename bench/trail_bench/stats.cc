#include "bench/trail_bench/stats.h"

#include <algorithm>
#include <bit>
#include <cmath>

#include "bench/trail_bench/check.h"

namespace trail::bench {

namespace {

constexpr std::uint64_t kSubCount = std::uint64_t{1} << Histogram::kSubBits;
// Octaves above the linear range [0, kSubCount), each with kSubCount buckets.
constexpr std::size_t kBucketCount =
    static_cast<std::size_t>(kSubCount) *
    (std::bit_width(Histogram::kValueMax - 1) - Histogram::kSubBits + 1);

}  // namespace

Histogram::Histogram() : counts_(kBucketCount, 0) {}

std::size_t Histogram::index_of(std::uint64_t value) {
  TRAIL_BENCH_CHECK(value < kValueMax);
  if (value < kSubCount) return static_cast<std::size_t>(value);
  const unsigned octave = static_cast<unsigned>(std::bit_width(value)) - 1U;  // >= kSubBits.
  const unsigned shift = octave - kSubBits;
  const std::uint64_t sub = (value >> shift) - kSubCount;  // In [0, kSubCount).
  const std::size_t index = static_cast<std::size_t>((shift + 1U) * kSubCount + sub);
  TRAIL_BENCH_CHECK(index < kBucketCount);
  return index;
}

std::uint64_t Histogram::highest_value_of(std::size_t index) {
  TRAIL_BENCH_CHECK(index < kBucketCount);
  if (index < kSubCount) return index;
  const std::uint64_t shift = index / kSubCount - 1U;
  const std::uint64_t sub = index % kSubCount;
  const std::uint64_t lowest = (kSubCount + sub) << shift;
  return lowest + (std::uint64_t{1} << shift) - 1U;
}

void Histogram::record(std::uint64_t value) {
  const std::uint64_t clamped = std::min(value, kValueMax - 1U);
  ++counts_[index_of(clamped)];
  ++count_;
  max_ = std::max(max_, clamped);
  sum_ += static_cast<long double>(clamped);
}

void Histogram::merge(const Histogram& other) {
  TRAIL_BENCH_CHECK(counts_.size() == other.counts_.size());
  for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

double Histogram::mean() const {
  return count_ == 0 ? 0.0 : static_cast<double>(sum_ / static_cast<long double>(count_));
}

std::uint64_t Histogram::quantile_value(double quantile) const {
  if (count_ == 0) return 0;
  const double q = std::clamp(quantile, 0.0, 1.0);
  const auto rank = std::max<std::uint64_t>(
      1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_))));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::min(highest_value_of(i), max_);
  }
  TRAIL_BENCH_CHECK(false);  // The counts sum to count_.
  return max_;
}

std::uint64_t Stats::failures() const {
  std::uint64_t total = 0;
  for (const auto& [status, n] : failed_by_status) total += n;
  for (const auto& [what, n] : failed_by_io) total += n;
  return total;
}

void Stats::merge(const Stats& other) {
  for (auto [mine, theirs] : {std::pair{&append, &other.append}, std::pair{&read, &other.read}}) {
    mine->requests += theirs->requests;
    mine->events += theirs->events;
    mine->latency_us.merge(theirs->latency_us);
  }
  for (const auto& [status, n] : other.failed_by_status) failed_by_status[status] += n;
  for (const auto& [status, text] : other.sample_by_status) {
    sample_by_status.try_emplace(status, text);
  }
  for (const auto& [what, n] : other.failed_by_io) failed_by_io[what] += n;
  connects += other.connects;
}

}  // namespace trail::bench
