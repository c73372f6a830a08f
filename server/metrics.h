// Prometheus metrics: counters, gauges and fixed-bucket histograms in a registry that renders
// the text exposition format 0.0.4 for GET /metrics.
//
// The hot path is one relaxed atomic add per event (two for a histogram observation): callers
// look a series up once, by name and label values, and keep the reference. Lookups take a
// shared lock on a small map; only the first lookup of a series takes the exclusive lock.
// Series are never removed, so references stay valid for the registry's lifetime.
//
// Invariants: (1) one name is one family: one type, one help text, one list of label names
//             and, for histograms, one list of bucket bounds; asked otherwise, the registry
//             asserts (a bug in Trail, not bad input). (2) Names and label names are valid
//             Prometheus names; `le` is reserved for histogram buckets. Label values may be
//             anything and are escaped when rendered.
// Thread safety: every method of Counter, Gauge, Histogram and Metrics may be called from any
//                thread. render() reads each atomic once; a histogram's _count always equals
//                its +Inf bucket, its _sum may include an observation its buckets do not yet.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace trail::server {

// Label names and values of one series, rendered in this order.
using Labels = std::vector<std::pair<std::string, std::string>>;

// The Content-Type of render()'s output.
inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// Upper bounds (seconds) of the append and commit latency buckets.
inline constexpr std::array<double, 13> kLatencyBoundsSeconds = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
// Upper bounds of the events-per-group-commit buckets.
inline constexpr std::array<double, 13> kEventsPerCommitBounds = {
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 10000, 65536};

// A monotonically increasing count.
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  void inc(std::uint64_t amount = 1) noexcept {
    value_.fetch_add(amount, std::memory_order_relaxed);
  }
  std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// A value that goes up and down.
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void set(double value) noexcept { value_.store(value, std::memory_order_relaxed); }
  void add(double amount) noexcept { value_.fetch_add(amount, std::memory_order_relaxed); }
  void inc() noexcept { add(1); }
  void dec() noexcept { add(-1); }
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Observations counted into fixed buckets. A value equal to a bound counts in that bound's
// bucket (Prometheus `le`, less than or equal); values above the last bound count in +Inf.
// TODO(perf): buckets share cache lines; pad them if observe() shows up under contention.
class Histogram {
 public:
  // `bounds`: bucket upper bounds, finite and strictly increasing (asserted); +Inf is implicit.
  explicit Histogram(std::span<const double> bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // Counts `value`. NaN is a bug in the caller: asserted in debug builds, dropped in release.
  void observe(double value) noexcept;

  std::span<const double> bounds() const noexcept { return bounds_; }
  // Per-bucket (not cumulative) counts: bounds().size() + 1 of them, the last for +Inf.
  std::vector<std::uint64_t> bucket_counts() const;
  // The number of observations: the sum of bucket_counts().
  std::uint64_t count() const;
  double sum() const noexcept { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::vector<std::atomic<std::uint64_t>> counts_;  // bounds_.size() + 1 buckets.
  std::atomic<double> sum_{0};
};

// The registry of metric families; render() is the body of GET /metrics (kMetricsContentType).
class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // The series `name{labels}`, created (at zero) on first use. The reference is valid for the
  // registry's lifetime; keep it rather than looking it up per event.
  // Asserts invariants (1) and (2) above.
  Counter& counter(std::string_view name, std::string_view help, const Labels& labels = {});
  Gauge& gauge(std::string_view name, std::string_view help, const Labels& labels = {});
  // `bounds` as for Histogram; a later lookup of the same name must pass the same bounds.
  Histogram& histogram(std::string_view name, std::string_view help, std::span<const double> bounds,
                       const Labels& labels = {});

  // A gauge series whose value render() reads from `read` (called on the rendering thread,
  // outside the registry's lock, so it may use the registry). Registering the same series
  // again replaces the callback: register a no-op before whatever `read` captures dies.
  // Asserts invariants (1) and (2), and that the series is not a plain gauge.
  void gauge_callback(std::string_view name, std::string_view help, std::function<double()> read,
                      const Labels& labels = {});

  // Every family in registration order, its series in registration order: `# HELP`, `# TYPE`,
  // then one line per sample (histograms: cumulative `_bucket{le=...}` up to `+Inf`, `_sum`,
  // `_count`). Ends with a newline unless empty.
  std::string render() const;

 private:
  enum class SeriesType : std::uint8_t { kCounter, kGauge, kGaugeCallback, kHistogram };
  struct Series;
  struct Family;

  // Finds or creates the series; asserts that `type`, `help`, label names and `bounds`
  // agree with the family's.
  Series& find_or_add(SeriesType type, std::string_view name, std::string_view help,
                      const Labels& labels, std::span<const double> bounds);

  mutable std::shared_mutex mutex_;
  std::vector<std::unique_ptr<Family>> families_;              // Registration order.
  std::unordered_map<std::string, Family*> families_by_name_;  // Into families_.
};

// Trail's own metrics, registered up front so hot paths hold plain references.
// Thread safety: as Metrics. Lifetime: must not outlive `registry`.
class ServerMetrics {
 public:
  explicit ServerMetrics(Metrics& registry);

  // trail_http_requests_total{route,status}. A registry lookup (shared lock); callers that
  // know their routes and statuses in advance should keep the references. `route` must be a
  // route pattern from a fixed set, never the raw request path: every distinct value is a
  // series kept for the process's lifetime.
  Counter& http_requests(std::string_view route, unsigned status) const;
  // trail_auth_failures_total{reason}. A registry lookup, as above; `reason` from a fixed set.
  Counter& auth_failures(std::string_view reason) const;
  // trail_http_open_connections, read from `read` at render time (see gauge_callback).
  void open_connections(std::function<double()> read) const;

  Histogram& append_latency_seconds() const { return append_latency_seconds_; }
  Histogram& commit_latency_seconds() const { return commit_latency_seconds_; }
  Histogram& events_per_commit() const { return events_per_commit_; }
  Metrics& registry() const { return registry_; }

 private:
  Metrics& registry_;
  Histogram& append_latency_seconds_;
  Histogram& commit_latency_seconds_;
  Histogram& events_per_commit_;
};

}  // namespace trail::server
