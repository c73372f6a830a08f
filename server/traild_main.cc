// traild: the Trail server. Opens the ledger with every view, serves the v1 API (api.h) over
// HTTP/1.1 (TLS with --tls-cert/--tls-key; plain HTTP only on loopback), logs JSON lines to
// stderr, and on SIGTERM/SIGINT stops accepting, finishes in-flight requests (their appends
// commit and are answered) and exits 0.
#include <pthread.h>
#include <sodium.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "ledger/key_ring.h"
#include "ledger/ledger.h"
#include "server/api.h"
#include "server/listener.h"
#include "server/log.h"
#include "server/metrics.h"

namespace {

int fail(const std::string& message) {
  std::fprintf(stderr, "traild: %s\n", message.c_str());
  return 2;
}

// Splits "HOST:PORT" (IPv6 as "[::1]:PORT").
bool split_listen(const std::string& text, std::string& host, unsigned short& port) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 >= text.size()) return false;
  host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string digits = text.substr(colon + 1);
  if (digits.empty() || digits.size() > 5 || digits.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  const unsigned long value = std::stoul(digits);
  if (value > 65535) return false;
  port = static_cast<unsigned short>(value);
  return !host.empty();
}

}  // namespace

int main(int argc, char** argv) {
  if (sodium_init() < 0) return fail("libsodium failed to initialise");
  CLI::App app{"traild: the Trail audit ledger server"};
  std::string data_dir = "./var/data";
  std::string keys_dir = "./var/keys";
  std::vector<std::string> listen{"127.0.0.1:8080"};
  std::string tls_cert;
  std::string tls_key;
  // One I/O thread per core but one: the ledger's writer thread, which every append and every
  // audited read waits on, keeps a core to itself (on 2 cores, 1 I/O thread doubles batch
  // throughput over 2; see README, Benchmarks).
  unsigned threads = std::max(1U, std::thread::hardware_concurrency() - 1U);
  unsigned token_hours = 12;
  std::size_t body_max_mib = 16;
  std::size_t connections_max = 1024;
  unsigned read_timeout_s = 30;
  unsigned idle_timeout_s = 60;
  bool no_access_log = false;
  std::uint64_t checkpoint_every = 10'000;
  unsigned checkpoint_seconds = 2;
  std::string log_level = "info";
  app.add_option("--data", data_dir, "data directory")->capture_default_str();
  app.add_option("--keys", keys_dir, "key directory")->capture_default_str();
  app.add_option("--listen", listen, "HOST:PORT to listen on (repeatable)")->capture_default_str();
  app.add_option("--tls-cert", tls_cert, "PEM certificate chain; enables TLS on every address");
  app.add_option("--tls-key", tls_key, "PEM private key of --tls-cert");
  app.add_option("--threads", threads, "I/O threads (default: cores - 1)")
      ->check(CLI::Range(1U, 256U))
      ->capture_default_str();
  app.add_option("--token-hours", token_hours, "bearer token lifetime")
      ->check(CLI::Range(1U, 24U * 30U))
      ->capture_default_str();
  app.add_option("--body-max-mib", body_max_mib, "largest request body")
      ->check(CLI::Range(std::size_t{1}, std::size_t{64}))
      ->capture_default_str();
  app.add_option("--connections-max", connections_max, "open connections at most")
      ->check(CLI::Range(std::size_t{1}, std::size_t{100000}))
      ->capture_default_str();
  app.add_option("--read-timeout", read_timeout_s, "seconds a request may take to arrive")
      ->check(CLI::Range(1U, 3600U))
      ->capture_default_str();
  app.add_option("--idle-timeout", idle_timeout_s, "seconds a kept-alive connection may idle")
      ->check(CLI::Range(1U, 3600U))
      ->capture_default_str();
  app.add_flag("--no-access-log", no_access_log, "do not log one line per request");
  app.add_option("--checkpoint-every", checkpoint_every,
                 "also sign a checkpoint every N events of a project (0: only by time)")
      ->capture_default_str();
  app.add_option("--checkpoint-seconds", checkpoint_seconds,
                 "sign a checkpoint of every grown project within this many seconds")
      ->check(CLI::Range(1U, 3600U))
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return fail(std::string(e.what()) + "\nRun with --help for usage.");
  }
  if (tls_cert.empty() != tls_key.empty()) return fail("--tls-cert and --tls-key go together");
  const bool tls = !tls_cert.empty();

  std::vector<std::pair<std::string, unsigned short>> endpoints;
  for (const auto& text : listen) {
    std::string host;
    unsigned short port = 0;
    if (!split_listen(text, host, port)) return fail("--listen " + text + " is not HOST:PORT");
    if (auto s = trail::server::check_listen_address(host, tls); !s.is_ok()) return fail(s.detail());
    endpoints.emplace_back(host, port);
  }

  trail::server::LogOptions log_options;
  log_options.level = spdlog::level::from_str(log_level);
  trail::server::init_json_logging(log_options);

  trail::server::Metrics registry;
  trail::server::ServerMetrics metrics{registry};

  auto keys = trail::ledger::KeyRing::load(keys_dir);
  if (!keys.is_ok()) return fail(keys.status().detail());
  trail::server::Views views{std::make_shared<trail::proj::CaseProjector>(),
                             std::make_shared<trail::proj::ReportProjector>(),
                             std::make_shared<trail::proj::AccessProjector>(),
                             std::make_shared<trail::proj::SyncProjector>(),
                             std::make_shared<trail::proj::IdentityProjector>()};
  trail::ledger::LedgerOptions options;
  options.data_dir = data_dir;
  options.keys = *keys;
  options.projectors = {views.cases, views.reports, views.access, views.sync, views.identity};
  options.checkpoint_every_events = checkpoint_every;
  options.checkpoint_interval = std::chrono::seconds(checkpoint_seconds);
  options.on_commit = [&metrics](std::size_t events, std::uint64_t commit_us) {
    metrics.events_per_commit().observe(static_cast<double>(events));
    metrics.commit_latency_seconds().observe(static_cast<double>(commit_us) / 1e6);
  };
  auto ledger = trail::ledger::Ledger::open(options);
  if (!ledger.is_ok()) return fail(ledger.status().detail());

  trail::server::ApiOptions api_options;
  api_options.token_lifetime = std::chrono::hours(token_hours);
  api_options.body_bytes_max = body_max_mib << 20U;
  auto api = std::make_unique<trail::server::Api>(**ledger, views, metrics, api_options);

  trail::server::Limits limits;
  limits.body_bytes_max = body_max_mib << 20U;
  limits.connections_max = connections_max;
  limits.read_timeout = std::chrono::seconds(read_timeout_s);
  limits.idle_timeout = std::chrono::seconds(idle_timeout_s);
  limits.access_log = !no_access_log;
  std::optional<trail::server::TlsConfig> tls_config;
  if (tls) tls_config = trail::server::TlsConfig{tls_cert, tls_key};
  auto server = std::make_unique<trail::server::Server>(*api, limits, tls_config);
  server->set_on_request([&metrics](std::string_view route, unsigned status, std::uint64_t) {
    metrics.http_requests(route, status).inc();
  });
  metrics.open_connections([s = server.get()] { return static_cast<double>(s->open_connections()); });
  for (const auto& [host, port] : endpoints) {
    auto bound = server->listen(host, port);
    if (!bound.is_ok()) return fail(bound.status().detail());
    const bool v6 = host.find(':') != std::string::npos;
    std::printf("traild: listening on %s://%s%s%s:%u\n", tls ? "https" : "http", v6 ? "[" : "",
                host.c_str(), v6 ? "]" : "", *bound);
  }
  std::fflush(stdout);
  server->stop_on_signals();
  std::vector<std::thread> workers;
  for (unsigned i = 1; i < threads; ++i) {
    workers.emplace_back([&] {
      pthread_setname_np(pthread_self(), "trail-io");
      server->run();
    });
  }
  server->run();
  for (auto& w : workers) w.join();
  // Responses are written. Password checks still running finish; then the ledger commits
  // what is queued as it closes, calling back into the Api, which is still alive.
  server.reset();
  api->quiesce();
  ledger->reset();
  api.reset();
  trail::server::shutdown_logging();
  std::printf("traild: stopped\n");
  return 0;
}
