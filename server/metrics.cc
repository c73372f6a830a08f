#include "server/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <mutex>
#include <system_error>
#include <variant>

#include "ledger/assert.h"

namespace trail::server {
namespace {

bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }

// [a-zA-Z_:][a-zA-Z0-9_:]*
bool is_metric_name(std::string_view name) {
  return !name.empty() && (is_name_start(name.front()) || name.front() == ':') &&
         std::all_of(name.begin(), name.end(), [](char c) { return is_name_char(c) || c == ':'; });
}

// [a-zA-Z_][a-zA-Z0-9_]*, and names starting with "__" are reserved for Prometheus.
bool is_label_name(std::string_view name) {
  return !name.empty() && is_name_start(name.front()) && !name.starts_with("__") &&
         std::all_of(name.begin(), name.end(), is_name_char);
}

void append_help_escaped(std::string& out, std::string_view text) {
  for (const char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

void append_label_value_escaped(std::string& out, std::string_view text) {
  for (const char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

// Shortest round-trip digits in %g style (0.0005, 65536, 1e+06), as Go's FormatFloat(v, 'g',
// -1, 64) writes them for the official clients; +Inf, -Inf and NaN as the format spells them.
void append_double(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
    return;
  }
  if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
    return;
  }
  std::array<char, 32> buffer{};
  const auto [end, error] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value,
                                          std::chars_format::general);
  TRAIL_ASSERT(error == std::errc{});
  out.append(buffer.data(), end);
}

// `a="x",b="y"`: the label part of a sample line without its braces.
std::string label_text(const Labels& labels) {
  std::string out;
  for (const auto& [name, value] : labels) {
    if (!out.empty()) {
      out += ',';
    }
    out += name;
    out += "=\"";
    append_label_value_escaped(out, value);
    out += '"';
  }
  return out;
}

void append_sample_name(std::string& out, std::string_view name, std::string_view suffix,
                        std::string_view labels, std::string_view extra_label = {}) {
  out += name;
  out += suffix;
  if (!labels.empty() || !extra_label.empty()) {
    out += '{';
    out += labels;
    if (!labels.empty() && !extra_label.empty()) {
      out += ',';
    }
    out += extra_label;
    out += '}';
  }
  out += ' ';
}

// What render() read from one series while holding the lock.
struct HistogramSample {
  std::vector<std::uint64_t> counts;  // Per bucket, not cumulative; the last is +Inf.
  double sum = 0;
};
using Sample = std::variant<std::uint64_t, double, std::function<double()>, HistogramSample>;

struct SeriesSample {
  std::string labels;  // Escaped label text, without braces.
  Sample value;
};

// One family as render() saw it. The views point into the registry's Family, whose name,
// help, type and bounds never change once created, and which is never removed.
struct FamilySample {
  std::string_view name;
  std::string_view help;
  std::string_view type_name;
  std::span<const double> bounds;
  std::vector<SeriesSample> series;
};

void append_histogram(std::string& out, const FamilySample& family, std::string_view labels,
                      const HistogramSample& histogram) {
  TRAIL_ASSERT(histogram.counts.size() == family.bounds.size() + 1);
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < histogram.counts.size(); ++i) {
    cumulative += histogram.counts[i];
    std::string le = "le=\"";
    if (i < family.bounds.size()) {
      append_double(le, family.bounds[i]);
    } else {
      le += "+Inf";
    }
    le += '"';
    append_sample_name(out, family.name, "_bucket", labels, le);
    out += std::to_string(cumulative);
    out += '\n';
  }
  append_sample_name(out, family.name, "_sum", labels);
  append_double(out, histogram.sum);
  out += '\n';
  append_sample_name(out, family.name, "_count", labels);
  out += std::to_string(cumulative);  // Equal to the +Inf bucket, as the format requires.
  out += '\n';
}

// Calls gauge callbacks, so it runs outside the registry's lock.
void append_family(std::string& out, const FamilySample& family) {
  out += "# HELP ";
  out += family.name;
  out += ' ';
  append_help_escaped(out, family.help);
  out += "\n# TYPE ";
  out += family.name;
  out += ' ';
  out += family.type_name;
  out += '\n';
  for (const auto& [labels, value] : family.series) {
    if (const auto* histogram = std::get_if<HistogramSample>(&value)) {
      append_histogram(out, family, labels, *histogram);
      continue;
    }
    append_sample_name(out, family.name, "", labels);
    if (const auto* count = std::get_if<std::uint64_t>(&value)) {
      out += std::to_string(*count);
    } else if (const auto* gauge = std::get_if<double>(&value)) {
      append_double(out, *gauge);
    } else {
      const auto& read = std::get<std::function<double()>>(value);
      append_double(out, read ? read() : 0.0);  // Empty until gauge_callback() stores it.
    }
    out += '\n';
  }
}

}  // namespace

Histogram::Histogram(std::span<const double> bounds)
    : bounds_(bounds.begin(), bounds.end()), counts_(bounds.size() + 1) {
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    TRAIL_ASSERT(std::isfinite(bounds_[i]));
    if (i > 0) {
      TRAIL_ASSERT(bounds_[i - 1] < bounds_[i]);
    }
  }
  TRAIL_ASSERT(counts_.size() == bounds_.size() + 1);
}

void Histogram::observe(double value) noexcept {
  TRAIL_DEBUG_ASSERT(!std::isnan(value));
  if (std::isnan(value)) {
    return;
  }
  // The first bound >= value: a value equal to a bound belongs to that bound's bucket.
  const auto bound = std::lower_bound(bounds_.begin(), bounds_.end(), value);
  const auto index = static_cast<std::size_t>(bound - bounds_.begin());
  TRAIL_ASSERT(index < counts_.size());
  counts_[index].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

std::vector<std::uint64_t> Histogram::bucket_counts() const {
  std::vector<std::uint64_t> counts;
  counts.reserve(counts_.size());
  for (const std::atomic<std::uint64_t>& count : counts_) {
    counts.push_back(count.load(std::memory_order_relaxed));
  }
  return counts;
}

std::uint64_t Histogram::count() const {
  std::uint64_t total = 0;
  for (const std::uint64_t count : bucket_counts()) {
    total += count;
  }
  return total;
}

struct Metrics::Series {
  std::string labels;  // label_text() of the series' labels, already escaped.
  SeriesType type = SeriesType::kCounter;
  std::unique_ptr<Counter> counter;
  std::unique_ptr<Gauge> gauge;
  std::unique_ptr<Histogram> histogram;
  std::function<double()> read;  // Set for kGaugeCallback series, under the exclusive lock.

  Sample sample() const {
    switch (type) {
      case SeriesType::kCounter:
        return counter->value();
      case SeriesType::kGauge:
        return gauge->value();
      case SeriesType::kGaugeCallback:
        return read;
      case SeriesType::kHistogram:
        return HistogramSample{histogram->bucket_counts(), histogram->sum()};
    }
    TRAIL_ASSERT(false);
    return std::uint64_t{0};
  }
};

struct Metrics::Family {
  // Set at creation, then never changed: render() reads them outside the lock.
  std::string name;
  std::string help;
  std::string_view type_name;  // "counter", "gauge" or "histogram".
  std::vector<std::string> label_names;
  std::vector<double> bounds;  // Histograms only.
  // Grow under the exclusive lock.
  std::vector<std::unique_ptr<Series>> series;                // Registration order.
  std::unordered_map<std::string, Series*> series_by_labels;  // Into series.

  static std::string_view type_name_of(SeriesType type) {
    switch (type) {
      case SeriesType::kCounter:
        return "counter";
      case SeriesType::kGauge:
      case SeriesType::kGaugeCallback:
        return "gauge";
      case SeriesType::kHistogram:
        return "histogram";
    }
    TRAIL_ASSERT(false);
    return {};
  }

  // Invariant (2): valid names; `le` left to the buckets; no label twice.
  static void check_names(SeriesType type, std::string_view name, const Labels& labels) {
    TRAIL_ASSERT(is_metric_name(name));
    for (auto label = labels.begin(); label != labels.end(); ++label) {
      TRAIL_ASSERT(is_label_name(label->first));
      if (type == SeriesType::kHistogram) {
        TRAIL_ASSERT(label->first != "le");
      }
      const auto same_name = [&](const auto& earlier) { return earlier.first == label->first; };
      TRAIL_ASSERT(std::none_of(labels.begin(), label, same_name));
    }
  }

  // Invariant (1): a lookup by this family's name asks for what the family is.
  void check(SeriesType type, std::string_view help_asked, const Labels& labels,
             std::span<const double> bounds_asked) const {
    TRAIL_ASSERT(type_name == type_name_of(type));
    TRAIL_ASSERT(help == help_asked);
    TRAIL_ASSERT(label_names.size() == labels.size());
    for (std::size_t i = 0; i < labels.size(); ++i) {
      TRAIL_ASSERT(label_names[i] == labels[i].first);
    }
    TRAIL_ASSERT(
        std::equal(bounds.begin(), bounds.end(), bounds_asked.begin(), bounds_asked.end()));
  }

  Series* find(const std::string& labels, SeriesType type) const {
    const auto it = series_by_labels.find(labels);
    if (it == series_by_labels.end()) {
      return nullptr;
    }
    TRAIL_ASSERT(it->second->type == type);  // A plain gauge is not a callback gauge.
    return it->second;
  }

  Series& add(std::string labels, SeriesType type) {
    TRAIL_ASSERT(!series_by_labels.contains(labels));
    auto added = std::make_unique<Series>();
    added->labels = labels;
    added->type = type;
    switch (type) {
      case SeriesType::kCounter:
        added->counter = std::make_unique<Counter>();
        break;
      case SeriesType::kGauge:
        added->gauge = std::make_unique<Gauge>();
        break;
      case SeriesType::kGaugeCallback:
        break;
      case SeriesType::kHistogram:
        added->histogram = std::make_unique<Histogram>(bounds);
        break;
    }
    Series& result = *added;
    series_by_labels.emplace(std::move(labels), added.get());
    series.push_back(std::move(added));
    return result;
  }

  // Called under the shared lock.
  FamilySample sample() const {
    FamilySample result{name, help, type_name, bounds, {}};
    result.series.reserve(series.size());
    for (const auto& one : series) {
      result.series.push_back(SeriesSample{one->labels, one->sample()});
    }
    return result;
  }
};

Metrics::Metrics() = default;
Metrics::~Metrics() = default;

Metrics::Series& Metrics::find_or_add(SeriesType type, std::string_view name, std::string_view help,
                                      const Labels& labels, std::span<const double> bounds) {
  Family::check_names(type, name, labels);
  std::string key = label_text(labels);
  const std::string family_key{name};
  {
    const std::shared_lock lock{mutex_};
    if (const auto it = families_by_name_.find(family_key); it != families_by_name_.end()) {
      it->second->check(type, help, labels, bounds);
      if (Series* series = it->second->find(key, type)) {
        return *series;
      }
    }
  }

  const std::unique_lock lock{mutex_};
  auto it = families_by_name_.find(family_key);
  if (it == families_by_name_.end()) {
    auto family = std::make_unique<Family>();
    family->name = name;
    family->help = help;
    family->type_name = Family::type_name_of(type);
    for (const auto& label : labels) {
      family->label_names.push_back(label.first);
    }
    family->bounds.assign(bounds.begin(), bounds.end());
    it = families_by_name_.emplace(family_key, family.get()).first;
    families_.push_back(std::move(family));
  }
  Family& family = *it->second;
  family.check(type, help, labels, bounds);
  if (Series* series = family.find(key, type)) {
    return *series;  // Another thread added it between the two locks.
  }
  return family.add(std::move(key), type);
}

Counter& Metrics::counter(std::string_view name, std::string_view help, const Labels& labels) {
  return *find_or_add(SeriesType::kCounter, name, help, labels, {}).counter;
}

Gauge& Metrics::gauge(std::string_view name, std::string_view help, const Labels& labels) {
  return *find_or_add(SeriesType::kGauge, name, help, labels, {}).gauge;
}

Histogram& Metrics::histogram(std::string_view name, std::string_view help,
                              std::span<const double> bounds, const Labels& labels) {
  return *find_or_add(SeriesType::kHistogram, name, help, labels, bounds).histogram;
}

void Metrics::gauge_callback(std::string_view name, std::string_view help,
                             std::function<double()> read, const Labels& labels) {
  TRAIL_ASSERT(read != nullptr);
  Series& series = find_or_add(SeriesType::kGaugeCallback, name, help, labels, {});
  const std::unique_lock lock{mutex_};  // render() copies `read` under the shared lock.
  series.read = std::move(read);
}

std::string Metrics::render() const {
  std::vector<FamilySample> families;
  {
    const std::shared_lock lock{mutex_};
    families.reserve(families_.size());
    for (const auto& family : families_) {
      families.push_back(family->sample());
    }
  }
  std::string out;
  for (const FamilySample& family : families) {
    append_family(out, family);  // Outside the lock: callbacks may use the registry.
  }
  return out;
}

ServerMetrics::ServerMetrics(Metrics& registry)
    : registry_{registry},
      append_latency_seconds_{
          registry.histogram("trail_append_latency_seconds",
                             "Time from receiving an append to its durable receipt, in seconds.",
                             kLatencyBoundsSeconds)},
      commit_latency_seconds_{registry.histogram(
          "trail_commit_latency_seconds", "Time the writer takes per group commit, in seconds.",
          kLatencyBoundsSeconds)},
      events_per_commit_{registry.histogram(
          "trail_events_per_commit", "Events appended per group commit.", kEventsPerCommitBounds)} {
}

Counter& ServerMetrics::http_requests(std::string_view route, unsigned status) const {
  return registry_.counter("trail_http_requests_total",
                           "HTTP requests answered, by route and status.",
                           {{"route", std::string{route}}, {"status", std::to_string(status)}});
}

Counter& ServerMetrics::auth_failures(std::string_view reason) const {
  return registry_.counter("trail_auth_failures_total",
                           "Requests refused by authentication, by reason.",
                           {{"reason", std::string{reason}}});
}

void ServerMetrics::open_connections(std::function<double()> read) const {
  registry_.gauge_callback("trail_http_open_connections", "HTTP connections open now.",
                           std::move(read));
}

}  // namespace trail::server
