// The HTTP side of trail-bench: resolving the target, the set-up conversation (login, project,
// cases), and the closed-loop connections that make the load.
//
// Each worker thread runs its own io_context with its share of the connections; a connection
// is one C++20 coroutine that keeps one keep-alive HTTP/1.1 (or TLS) connection and sends its
// next request as soon as the previous answer is read. Transport errors close the connection
// and the next request reconnects; they are counted, never thrown.
//
// Thread safety: RunShared is read by every worker; only `phase` changes during a run (set by
// the main thread). Everything else a worker touches is its own.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include "bench/trail_bench/options.h"
#include "bench/trail_bench/stats.h"

namespace trail::bench {

// How to reach the server; fixed for the whole run.
struct Transport {
  Target target;
  std::vector<boost::asio::ip::tcp::endpoint> endpoints;  // Tried in order on each connect.
  boost::asio::ssl::context* tls = nullptr;       // Non-null exactly when target.tls; configured.
  bool insecure = false;                          // No certificate or host name verification.
  std::chrono::steady_clock::duration timeout{};  // Per connect+handshake, write and read.
};

// Resolves the target's host and port.
// Errors: nullopt with `error` set when the name does not resolve.
std::optional<std::vector<boost::asio::ip::tcp::endpoint>> resolve(const Target& target,
                                                                   std::string& error);

// A TLS client context: system trust store, peer verification unless `insecure`.
boost::asio::ssl::context make_tls_context(bool insecure);

struct SetupOutcome {
  std::string token;                  // The bearer token the run uses.
  std::string user_id;                // From the login answer; empty with --token.
  std::string error;                  // Empty on success; else why set-up failed.
  std::vector<std::string> warnings;  // Things worth saying that did not stop the run.
};

// Before the run, over one connection: logs in (unless options.token is set), creates the
// project (an answer of 409, already exists, is fine; 403 is a warning: the project may exist
// but this user cannot create it), and in read and mixed modes creates every case in
// `case_ids` with case.created events in batches, owned by the logged-in user (so that roles
// limited to their own cases can read them). Shows progress on a terminal.
SetupOutcome set_up(const Options& options, const Transport& transport,
                    std::span<const std::string> case_ids);

enum class Phase : std::uint8_t {
  kWarmup,   // Requests run but are not counted (only the live counters see them).
  kMeasure,  // Requests that complete now are counted.
  kDone,     // Connections finish their request in flight, then close.
};

struct RunShared {
  const Options& options;
  const Transport& transport;
  std::string authorization;  // "Bearer <token>".
  std::span<const std::string> case_ids;
  std::atomic<Phase> phase{Phase::kWarmup};
};

// Runs connections first_connection .. first_connection + connection_count - 1 on the calling
// thread until `shared.phase` is kDone and each has finished its last request, recording into
// `stats` (measurement window only) and `live` (always). `seed` seeds this thread's events.
void run_worker(const RunShared& shared, std::size_t first_connection, std::size_t connection_count,
                std::uint64_t seed, Stats& stats, LiveCounters& live);

}  // namespace trail::bench
