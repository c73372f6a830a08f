// What a trail-bench run does, as the command line says it, and where its requests go.
// Every limit on an option is a named constant here; main.cc enforces them with CLI11.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace trail::bench {

enum class Mode : std::uint8_t {
  kAppend,  // POST /v1/projects/{p}/events, `batch` case.updated events per request.
  kRead,    // GET /v1/projects/{p}/cases/{id} of cases created before the run.
  kMixed,   // Each request is a read with probability read_percent / 100, else an append.
};

std::string_view mode_name(Mode mode);

inline constexpr std::size_t kConnectionsMax = 10000;
inline constexpr std::size_t kThreadsMax = 256;
inline constexpr std::size_t kBatchMax = 10000;             // Events in one request.
inline constexpr std::size_t kPayloadBytesMax = 1U << 20U;  // Fields of one event, approx.
inline constexpr std::size_t kCasesMax = 10'000'000;
inline constexpr double kDurationSecondsMax = 24.0 * 3600.0;
inline constexpr double kTimeoutSecondsMax = 3600.0;
inline constexpr std::size_t kProjectBytesMax = 128;

struct Options {
  std::string url = "http://127.0.0.1:8080";
  bool insecure = false;  // Skip TLS certificate and host name verification.
  std::string user;
  std::string password;
  std::string token;  // When set, no login.
  std::string project = "bench";
  std::string actor;  // "actor" to send in events; empty: none (traild fills in the caller).
  Mode mode = Mode::kAppend;
  std::size_t connections = 64;
  std::size_t threads = 1;  // main.cc defaults it to the hardware concurrency.
  double duration_s = 10.0;
  double warmup_s = 1.0;
  std::size_t batch = 1;
  std::size_t payload_bytes = 200;
  std::size_t cases = 1000;
  unsigned read_percent = 50;  // Mixed mode only.
  bool v7_ids = false;         // Event ids as time-ordered UUIDv7 (RFC 9562) instead of v4.
  bool own_cases = false;      // Each connection updates only its own share of the cases.
  double timeout_s = 30.0;     // Per request, and per connect + handshake.
  bool json = false;
};

// Where requests go, parsed from --url.
struct Target {
  bool tls = false;
  std::string host;         // Name or address; an IPv6 address without its brackets.
  std::string port;         // Decimal.
  std::string host_header;  // What the Host header carries: host, and :port when not default.
  std::string path_prefix;  // "" or "/a/b": prepended to every /v1 path, no trailing slash.
};

// Parses "http[s]://host[:port][/prefix]" (IPv6 as "[::1]"). Query, fragment and user info are
// refused. Returns nullopt and sets `error` when the URL is malformed.
std::optional<Target> parse_url(std::string_view url, std::string& error);

// Whether `project` can go into a URL path as is: 1 to kProjectBytesMax of [A-Za-z0-9._-].
bool is_valid_project(std::string_view project);

}  // namespace trail::bench
