// The Prometheus registry: exact exposition text, exact totals under concurrency, bucket
// boundaries, and the invariants it asserts.
#include "server/metrics.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

namespace trail::testing {
namespace {

using server::Counter;
using server::Histogram;
using server::Metrics;
using server::ServerMetrics;

TEST(Metrics, EmptyRegistryRendersNothing) { EXPECT_EQ(Metrics{}.render(), ""); }

TEST(Metrics, RendersExactExpositionText) {
  Metrics metrics;
  metrics
      .counter("trail_http_requests_total", "HTTP requests answered.",
               {{"route", "/v1/events"}, {"status", "200"}})
      .inc(3);
  metrics
      .counter("trail_http_requests_total", "HTTP requests answered.",
               {{"route", "/v1/events"}, {"status", "409"}})
      .inc();
  metrics.gauge("trail_queue_depth", "Batches waiting.\nSecond line \\ end.").set(2.5);
  metrics.gauge_callback("trail_http_open_connections", "Open connections.", [] { return 7.0; });
  const std::array<double, 3> bounds = {0.5, 1, 2.5};
  Histogram& latency =
      metrics.histogram("trail_latency_seconds", "Latency.", bounds, {{"path", "a\\b\"c\nd"}});
  latency.observe(0.5);
  latency.observe(0.75);
  latency.observe(3);
  metrics.histogram("trail_empty", "No observations.", bounds);

  EXPECT_EQ(metrics.render(),
            "# HELP trail_http_requests_total HTTP requests answered.\n"
            "# TYPE trail_http_requests_total counter\n"
            "trail_http_requests_total{route=\"/v1/events\",status=\"200\"} 3\n"
            "trail_http_requests_total{route=\"/v1/events\",status=\"409\"} 1\n"
            "# HELP trail_queue_depth Batches waiting.\\nSecond line \\\\ end.\n"
            "# TYPE trail_queue_depth gauge\n"
            "trail_queue_depth 2.5\n"
            "# HELP trail_http_open_connections Open connections.\n"
            "# TYPE trail_http_open_connections gauge\n"
            "trail_http_open_connections 7\n"
            "# HELP trail_latency_seconds Latency.\n"
            "# TYPE trail_latency_seconds histogram\n"
            "trail_latency_seconds_bucket{path=\"a\\\\b\\\"c\\nd\",le=\"0.5\"} 1\n"
            "trail_latency_seconds_bucket{path=\"a\\\\b\\\"c\\nd\",le=\"1\"} 2\n"
            "trail_latency_seconds_bucket{path=\"a\\\\b\\\"c\\nd\",le=\"2.5\"} 2\n"
            "trail_latency_seconds_bucket{path=\"a\\\\b\\\"c\\nd\",le=\"+Inf\"} 3\n"
            "trail_latency_seconds_sum{path=\"a\\\\b\\\"c\\nd\"} 4.25\n"
            "trail_latency_seconds_count{path=\"a\\\\b\\\"c\\nd\"} 3\n"
            "# HELP trail_empty No observations.\n"
            "# TYPE trail_empty histogram\n"
            "trail_empty_bucket{le=\"0.5\"} 0\n"
            "trail_empty_bucket{le=\"1\"} 0\n"
            "trail_empty_bucket{le=\"2.5\"} 0\n"
            "trail_empty_bucket{le=\"+Inf\"} 0\n"
            "trail_empty_sum 0\n"
            "trail_empty_count 0\n");
}

TEST(Metrics, RendersSpecialGaugeValues) {
  Metrics metrics;
  metrics.gauge("a", "A.").set(INFINITY);
  metrics.gauge("b", "B.").set(-INFINITY);
  metrics.gauge("c", "C.").set(NAN);
  metrics.gauge("d", "D.").set(-0.000125);
  EXPECT_EQ(metrics.render(),
            "# HELP a A.\n# TYPE a gauge\na +Inf\n"
            "# HELP b B.\n# TYPE b gauge\nb -Inf\n"
            "# HELP c C.\n# TYPE c gauge\nc NaN\n"
            "# HELP d D.\n# TYPE d gauge\nd -0.000125\n");
}

TEST(Metrics, SameNameAndLabelsIsTheSameSeries) {
  Metrics metrics;
  Counter& a = metrics.counter("c_total", "C.", {{"k", "1"}});
  Counter& b = metrics.counter("c_total", "C.", {{"k", "1"}});
  Counter& other = metrics.counter("c_total", "C.", {{"k", "2"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &other);
  a.inc();
  b.inc(2);
  EXPECT_EQ(a.value(), 3U);
  EXPECT_EQ(other.value(), 0U);
}

TEST(Metrics, GaugeCallbackIsReadAtRenderAndCanBeReplaced) {
  Metrics metrics;
  std::atomic<int> open{3};
  metrics.gauge_callback("open", "Open.", [&] { return static_cast<double>(open.load()); });
  EXPECT_EQ(metrics.render(), "# HELP open Open.\n# TYPE open gauge\nopen 3\n");
  open = 5;
  EXPECT_EQ(metrics.render(), "# HELP open Open.\n# TYPE open gauge\nopen 5\n");
  metrics.gauge_callback("open", "Open.", [] { return 0.0; });  // Before `open` goes away.
  EXPECT_EQ(metrics.render(), "# HELP open Open.\n# TYPE open gauge\nopen 0\n");
}

TEST(Metrics, GaugeCallbackMayUseTheRegistry) {
  Metrics metrics;
  metrics.gauge_callback("renders", "Renders so far.", [&metrics] {
    Counter& renders = metrics.counter("renders_total", "Renders.");
    renders.inc();
    return static_cast<double>(renders.value());
  });
  EXPECT_NE(metrics.render().find("renders 1\n"), std::string::npos);
  const std::string second = metrics.render();  // The counter is read before the callback runs.
  EXPECT_NE(second.find("\nrenders 2\n"), std::string::npos) << second;
  EXPECT_NE(second.find("\nrenders_total 1\n"), std::string::npos) << second;
}

TEST(Histogram, ValueEqualToABoundCountsInThatBucket) {
  Histogram histogram{server::kLatencyBoundsSeconds};
  for (const double bound : server::kLatencyBoundsSeconds) {
    histogram.observe(bound);
  }
  std::vector<std::uint64_t> expected(server::kLatencyBoundsSeconds.size() + 1, 1);
  expected.back() = 0;
  EXPECT_EQ(histogram.bucket_counts(), expected);

  // Just above a bound is the next bucket; above the last is +Inf; zero and below, the first.
  Histogram above{server::kLatencyBoundsSeconds};
  for (const double bound : server::kLatencyBoundsSeconds) {
    above.observe(std::nextafter(bound, INFINITY));
  }
  above.observe(0);
  above.observe(-1);
  expected.assign(server::kLatencyBoundsSeconds.size() + 1, 1);
  expected.front() = 2;
  EXPECT_EQ(above.bucket_counts(), expected);
  EXPECT_EQ(above.count(), server::kLatencyBoundsSeconds.size() + 2);
}

TEST(Histogram, EventsPerCommitBucketsIncludeTheirUpperBound) {
  Metrics metrics;
  const ServerMetrics server_metrics{metrics};
  Histogram& events = server_metrics.events_per_commit();
  events.observe(1);
  events.observe(3);
  events.observe(65536);
  events.observe(65537);
  const std::string text = metrics.render();
  EXPECT_NE(text.find("trail_events_per_commit_bucket{le=\"1\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("trail_events_per_commit_bucket{le=\"2\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("trail_events_per_commit_bucket{le=\"5\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("trail_events_per_commit_bucket{le=\"10000\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("trail_events_per_commit_bucket{le=\"65536\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("trail_events_per_commit_bucket{le=\"+Inf\"} 4\n"), std::string::npos);
  EXPECT_NE(text.find("trail_events_per_commit_sum 131077\n"), std::string::npos);
  EXPECT_NE(text.find("trail_events_per_commit_count 4\n"), std::string::npos);
}

TEST(Histogram, LatencyBoundsRenderAsWritten) {
  Metrics metrics;
  const ServerMetrics server_metrics{metrics};
  const std::string text = metrics.render();
  for (const char* le : {"0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
                         "0.25", "0.5", "1", "2.5", "5", "+Inf"}) {
    EXPECT_NE(text.find(std::string{"trail_commit_latency_seconds_bucket{le=\""} + le + "\"} 0\n"),
              std::string::npos)
        << le << "\n"
        << text;
  }
  EXPECT_NE(text.find("# TYPE trail_append_latency_seconds histogram\n"), std::string::npos);
}

TEST(ServerMetrics, NamesAndLabelsTrailSeries) {
  Metrics metrics;
  const ServerMetrics server_metrics{metrics};
  server_metrics.http_requests("/v1/projects/{project}/events", 201).inc();
  server_metrics.http_requests("/v1/projects/{project}/events", 201).inc();
  server_metrics.auth_failures("bad_token").inc();
  server_metrics.open_connections([] { return 4.0; });
  const std::string text = metrics.render();
  EXPECT_NE(text.find("# TYPE trail_http_requests_total counter\n"
                      "trail_http_requests_total{route=\"/v1/projects/{project}/events\","
                      "status=\"201\"} 2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("trail_auth_failures_total{reason=\"bad_token\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE trail_http_open_connections gauge\ntrail_http_open_connections 4\n"),
            std::string::npos);
}

// 8 threads each look the series up (racing to create them) and update them; no update may
// be lost, and render() may run alongside.
TEST(Metrics, ConcurrentUpdatesAreExact) {
  constexpr int kThreads = 8;
  constexpr int kIncrements = 100000;
  Metrics metrics;
  const std::array<double, 2> bounds = {0.5, 1.5};
  std::atomic<bool> done{false};
  std::thread renderer{[&] {
    while (!done.load()) {
      const std::string text = metrics.render();
      ASSERT_TRUE(text.empty() || text.back() == '\n');
    }
  }};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&metrics, &bounds, t] {
      Counter& shared = metrics.counter("shared_total", "Shared.", {{"kind", "all"}});
      Counter& own = metrics.counter("own_total", "Per thread.", {{"thread", std::to_string(t)}});
      server::Gauge& level = metrics.gauge("level", "Up then down.");
      Histogram& histogram = metrics.histogram("observed", "Observed.", bounds);
      for (int i = 0; i < kIncrements; ++i) {
        shared.inc();
        own.inc(2);
        level.inc();
        histogram.observe(static_cast<double>(i % 3));  // 0, 1, 2: exact in a double sum.
      }
      for (int i = 0; i < kIncrements; ++i) {
        level.dec();
      }
    });
  }
  for (std::thread& thread : threads) {
    thread.join();
  }
  done = true;
  renderer.join();

  EXPECT_EQ(metrics.counter("shared_total", "Shared.", {{"kind", "all"}}).value(),
            std::uint64_t{kThreads} * kIncrements);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(metrics.counter("own_total", "Per thread.", {{"thread", std::to_string(t)}}).value(),
              std::uint64_t{2} * kIncrements);
  }
  EXPECT_EQ(metrics.gauge("level", "Up then down.").value(), 0.0);
  const Histogram& histogram = metrics.histogram("observed", "Observed.", bounds);
  EXPECT_EQ(histogram.count(), std::uint64_t{kThreads} * kIncrements);
  // Per thread, i % 3 over 0..99999 gives 33334 zeros, 33333 ones and 33333 twos.
  const std::vector<std::uint64_t> per_bucket = {kThreads * 33334ULL, kThreads * 33333ULL,
                                                 kThreads * 33333ULL};
  EXPECT_EQ(histogram.bucket_counts(), per_bucket);
  EXPECT_EQ(histogram.sum(), kThreads * (33333.0 + 2 * 33333.0));
  EXPECT_NE(metrics.render().find("shared_total{kind=\"all\"} 800000\n"), std::string::npos);
}

using MetricsDeathTest = ::testing::Test;

TEST_F(MetricsDeathTest, OneNameIsOneFamily) {
  EXPECT_DEATH(
      {
        Metrics metrics;
        metrics.counter("x", "X.");
        metrics.gauge("x", "X.");
      },
      "assertion failed");
  EXPECT_DEATH(
      {
        Metrics metrics;
        metrics.counter("x", "X.", {{"a", "1"}});
        metrics.counter("x", "X.", {{"b", "1"}});
      },
      "assertion failed");
  const std::array<double, 1> one = {1};
  const std::array<double, 1> two = {2};
  EXPECT_DEATH(
      {
        Metrics metrics;
        metrics.histogram("h", "H.", one);
        metrics.histogram("h", "H.", two);
      },
      "assertion failed");
}

TEST_F(MetricsDeathTest, RejectsInvalidNamesAndBounds) {
  EXPECT_DEATH(Metrics{}.counter("bad-name", "B."), "assertion failed");
  EXPECT_DEATH(Metrics{}.counter("c", "C.", {{"__reserved", "1"}}), "assertion failed");
  const std::array<double, 1> bounds = {1};
  EXPECT_DEATH(Metrics{}.histogram("h", "H.", bounds, {{"le", "1"}}), "assertion failed");
  const std::array<double, 2> unsorted = {2, 1};
  EXPECT_DEATH(Histogram{unsorted}, "assertion failed");
}

}  // namespace
}  // namespace trail::testing
