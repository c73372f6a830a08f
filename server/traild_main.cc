// traild: the Trail server. This first cut serves GET /healthz on loopback; the API of issue 4
// grows on the same router.
#include <sodium.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "ledger/key_ring.h"
#include "ledger/ledger.h"
#include "projections/access_projector.h"
#include "projections/case_projector.h"
#include "projections/report_projector.h"
#include "projections/sync_projector.h"
#include "server/listener.h"
#include "server/router.h"

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
  try {
    const unsigned long value = std::stoul(text.substr(colon + 1));
    if (value > 65535) return false;
    port = static_cast<unsigned short>(value);
  } catch (...) {
    return false;
  }
  return !host.empty();
}

}  // namespace

int main(int argc, char** argv) {
  if (sodium_init() < 0) return fail("libsodium failed to initialise");
  CLI::App app{"traild: the Trail audit ledger server"};
  std::string data_dir = "./var/data";
  std::string keys_dir = "./var/keys";
  std::vector<std::string> listen{"127.0.0.1:8080"};
  unsigned threads = std::max(1U, std::thread::hardware_concurrency());
  app.add_option("--data", data_dir, "data directory")->capture_default_str();
  app.add_option("--keys", keys_dir, "key directory")->capture_default_str();
  app.add_option("--listen", listen, "HOST:PORT to listen on (repeatable)")->capture_default_str();
  app.add_option("--threads", threads, "I/O threads")->check(CLI::Range(1U, 256U));
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return fail(std::string(e.what()) + "\nRun with --help for usage.");
  }

  std::vector<std::pair<std::string, unsigned short>> endpoints;
  for (const auto& text : listen) {
    std::string host;
    unsigned short port = 0;
    if (!split_listen(text, host, port)) return fail("--listen " + text + " is not HOST:PORT");
    if (auto s = trail::server::check_listen_address(host, /*tls=*/false); !s.is_ok()) {
      return fail(s.detail());
    }
    endpoints.emplace_back(host, port);
  }

  auto keys = trail::ledger::KeyRing::load(keys_dir);
  if (!keys.is_ok()) return fail(keys.status().detail());
  trail::ledger::LedgerOptions options;
  options.data_dir = data_dir;
  options.keys = *keys;
  options.projectors = {std::make_shared<trail::proj::CaseProjector>(),
                        std::make_shared<trail::proj::ReportProjector>(),
                        std::make_shared<trail::proj::AccessProjector>(),
                        std::make_shared<trail::proj::SyncProjector>()};
  auto ledger = trail::ledger::Ledger::open(options);
  if (!ledger.is_ok()) return fail(ledger.status().detail());

  trail::server::Router router;
  trail::server::Server server{router, trail::server::Limits{}};
  for (const auto& [host, port] : endpoints) {
    auto bound = server.listen(host, port);
    if (!bound.is_ok()) return fail(bound.status().detail());
    std::printf("traild: listening on http://%s:%u\n", host.c_str(), *bound);
  }
  std::fflush(stdout);
  server.stop_on_signals();
  std::vector<std::thread> workers;
  for (unsigned i = 1; i < threads; ++i) workers.emplace_back([&] { server.run(); });
  server.run();
  for (auto& w : workers) w.join();
  std::printf("traild: stopped\n");
  return 0;  // The ledger commits what is queued as it closes.
}
