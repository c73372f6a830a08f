// trail-bench: an HTTP load generator for traild. It logs in, makes sure the project exists,
// then keeps --connections keep-alive connections busy (closed loop: each sends its next
// request as soon as the previous answer arrives) for --warmup plus --duration seconds, and
// reports throughput, latency percentiles and errors of the measured part.
//
// Exit codes: 0 every measured request succeeded; 1 some failed (or none succeeded);
// 2 usage, resolution or set-up error.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "bench/trail_bench/check.h"
#include "bench/trail_bench/client.h"
#include "bench/trail_bench/options.h"
#include "bench/trail_bench/report.h"
#include "bench/trail_bench/stats.h"
#include "bench/trail_bench/workload.h"

namespace trail::bench {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitFailures = 1;
constexpr int kExitUsage = 2;
constexpr auto kPollInterval = std::chrono::milliseconds(20);
constexpr auto kProgressInterval = std::chrono::milliseconds(1000);

volatile std::sig_atomic_t g_interrupted = 0;

extern "C" void on_signal(int signal) {
  g_interrupted = 1;
  std::signal(signal, SIG_DFL);  // A second one ends the process at once.
}

int fail(const std::string& message) {
  std::fprintf(stderr, "trail-bench: %s\n", message.c_str());
  return kExitUsage;
}

void add_options(CLI::App& app, Options& o) {
  app.add_option("--url", o.url, "server base URL, http:// or https://")->capture_default_str();
  app.add_flag("--insecure", o.insecure, "https: do not verify the certificate (self-signed)");
  app.add_option("--user", o.user, "user to log in as")->envname("TRAIL_BENCH_USER");
  app.add_option("--password", o.password, "password (better: $TRAIL_BENCH_PASSWORD)")
      ->envname("TRAIL_BENCH_PASSWORD");
  app.add_option("--token", o.token, "bearer token instead of logging in ($TRAIL_BENCH_TOKEN)")
      ->envname("TRAIL_BENCH_TOKEN");
  app.add_option("--project", o.project, "project to load (created if missing)")
      ->capture_default_str();
  app.add_option("--actor", o.actor, "\"actor\" to send in events (default: none: the caller)");
  app.add_option_function<std::string>(
         "--mode",
         [&o](const std::string& name) {
           o.mode = name == "read" ? Mode::kRead : name == "mixed" ? Mode::kMixed : Mode::kAppend;
         },
         "append: POST events; read: GET cases; mixed: both (see --read-percent)")
      ->check(CLI::IsMember({"append", "read", "mixed"}))
      ->default_str("append");
  app.add_option("--connections", o.connections, "concurrent keep-alive connections")
      ->check(CLI::Range(std::size_t{1}, kConnectionsMax))
      ->capture_default_str();
  app.add_option("--threads", o.threads, "I/O threads (default: hardware concurrency)")
      ->check(CLI::Range(std::size_t{1}, kThreadsMax));
  app.add_option("--duration", o.duration_s, "measured seconds")
      ->check(CLI::Range(0.1, kDurationSecondsMax))
      ->capture_default_str();
  app.add_option("--warmup", o.warmup_s, "seconds before measuring (not counted)")
      ->check(CLI::Range(0.0, kDurationSecondsMax))
      ->capture_default_str();
  app.add_option("--batch", o.batch, "events per append request")
      ->check(CLI::Range(std::size_t{1}, kBatchMax))
      ->capture_default_str();
  app.add_option("--payload-bytes", o.payload_bytes, "approximate JSON size of each event's fields")
      ->check(CLI::Range(std::size_t{0}, kPayloadBytesMax))
      ->capture_default_str();
  app.add_option("--cases", o.cases, "distinct case ids (created first, owned by the bench's user)")
      ->check(CLI::Range(std::size_t{1}, kCasesMax))
      ->capture_default_str();
  app.add_flag("--v7", o.v7_ids, "time-ordered UUIDv7 event ids (phones that mint them append faster)");
  app.add_flag("--own-cases", o.own_cases,
               "each connection updates only its own share of the --cases, as a phone updates "
               "the cases it holds (default: any case from any connection)");
  app.add_option("--read-percent", o.read_percent, "mixed mode: share of requests that read")
      ->check(CLI::Range(0U, 100U))
      ->capture_default_str();
  app.add_option("--timeout", o.timeout_s, "seconds per request (and per connect)")
      ->check(CLI::Range(0.1, kTimeoutSecondsMax))
      ->capture_default_str();
  app.add_flag("--json", o.json, "print the result as one JSON object on standard output");
}

// The connections of thread `index` of `threads`: as even a split as there is.
std::size_t share_of(std::size_t connections, std::size_t threads, std::size_t index) {
  return connections / threads + (index < connections % threads ? 1 : 0);
}

struct Window {
  double measured_s = 0.0;
  bool interrupted = false;
};

// Drives the phases (warm-up, measure, done) from the main thread, printing a line a second on
// a terminal, until the measured window has passed or a signal arrives.
Window drive(RunShared& shared, const Options& options, std::vector<LiveCounters>& live) {
  using Clock = std::chrono::steady_clock;
  const bool tty = ::isatty(STDERR_FILENO) == 1;
  const auto start = Clock::now();
  const auto warmup =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.warmup_s));
  const auto duration = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(options.duration_s));
  Clock::time_point measure_start = start;
  if (warmup.count() == 0) shared.phase.store(Phase::kMeasure);
  auto next_tick = start + kProgressInterval;
  std::uint64_t last_requests = 0, last_events = 0, last_failures = 0;
  Window window;
  for (;;) {
    std::this_thread::sleep_for(kPollInterval);
    const auto now = Clock::now();
    if (shared.phase.load() == Phase::kWarmup && now - start >= warmup) {
      measure_start = now;
      shared.phase.store(Phase::kMeasure);
    }
    const bool measuring = shared.phase.load() == Phase::kMeasure;
    if (g_interrupted != 0 || (measuring && now - measure_start >= duration)) {
      shared.phase.store(Phase::kDone);
      window.interrupted = g_interrupted != 0;
      window.measured_s =
          measuring ? std::chrono::duration<double>(now - measure_start).count() : 0.0;
      return window;
    }
    if (tty && now >= next_tick) {
      std::uint64_t requests = 0, events = 0, failures = 0;
      for (const auto& l : live) {
        requests += l.requests.load(std::memory_order_relaxed);
        events += l.events.load(std::memory_order_relaxed);
        failures += l.failures.load(std::memory_order_relaxed);
      }
      const double seconds = std::chrono::duration<double>(kProgressInterval).count();
      std::fprintf(stderr, "%5.0fs %-8s %10.0f req/s %10.0f events/s %8.0f errors/s\n",
                   std::chrono::duration<double>(now - start).count(),
                   now - kProgressInterval / 2 - start < warmup ? "warm-up" : "measure",
                   static_cast<double>(requests - last_requests) / seconds,
                   static_cast<double>(events - last_events) / seconds,
                   static_cast<double>(failures - last_failures) / seconds);
      last_requests = requests;
      last_events = events;
      last_failures = failures;
      next_tick += kProgressInterval;
    }
  }
}

int run(Options& options) {
  std::string error;
  const auto target = parse_url(options.url, error);
  if (!target) return fail(error);
  if (options.token.empty() && (options.user.empty() || options.password.empty())) {
    return fail("give --user and --password (or --token)");
  }
  if (!is_valid_project(options.project)) {
    return fail("--project must be 1 to " + std::to_string(kProjectBytesMax) +
                " characters of [A-Za-z0-9._-]");
  }
  if (options.own_cases && options.cases < options.connections) {
    return fail("--own-cases needs at least one case per connection (--cases >= --connections)");
  }
  const auto endpoints = resolve(*target, error);
  if (!endpoints) return fail(error);
  options.threads = std::min(options.threads, options.connections);

  boost::asio::ssl::context tls = make_tls_context(options.insecure);
  Transport transport{*target, *endpoints, target->tls ? &tls : nullptr, options.insecure,
                      std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                          std::chrono::duration<double>(options.timeout_s))};

  auto rng = seeded_rng();
  const std::vector<std::string> case_ids = make_case_ids(options.cases, rng);
  const SetupOutcome setup = set_up(options, transport, case_ids);
  for (const auto& warning : setup.warnings) {
    std::fprintf(stderr, "trail-bench: %s\n", warning.c_str());
  }
  if (!setup.error.empty()) return fail(setup.error);

  RunShared shared{options, transport, "Bearer " + setup.token, case_ids};
  std::vector<Stats> stats(options.threads);
  std::vector<LiveCounters> live(options.threads);
  std::vector<std::thread> threads;
  std::size_t first = 0;
  for (std::size_t i = 0; i < options.threads; ++i) {
    const std::size_t count = share_of(options.connections, options.threads, i);
    threads.emplace_back(run_worker, std::cref(shared), first, count, rng(), std::ref(stats[i]),
                         std::ref(live[i]));
    first += count;
  }
  TRAIL_BENCH_CHECK(first == options.connections);
  const Window window = drive(shared, options, live);
  for (auto& thread : threads) thread.join();

  RunSummary summary{options, options.threads, window.measured_s, window.interrupted, {}};
  for (const auto& s : stats) summary.stats.merge(s);
  if (options.json) {
    std::printf("%s\n", format_json(summary).c_str());
  } else {
    std::fputs(format_text(summary).c_str(), stdout);
  }
  const std::uint64_t succeeded = summary.stats.append.requests + summary.stats.read.requests;
  return summary.stats.failures() == 0 && succeeded > 0 ? kExitOk : kExitFailures;
}

}  // namespace
}  // namespace trail::bench

int main(int argc, char** argv) {
  using namespace trail::bench;
  Options options;
  options.threads = std::max(1U, std::thread::hardware_concurrency());
  CLI::App app{"trail-bench: HTTP load generator for traild"};
  add_options(app, options);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : kExitUsage;
  }
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  try {
    return run(options);
  } catch (const std::exception& e) {  // Out of memory or threads: nothing to measure.
    return fail(std::string("stopped: ") + e.what());
  }
}
