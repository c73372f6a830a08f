// The HTTP/1.1 front door: an acceptor per listen address, one session per connection on its
// own strand, optional TLS, keep-alive, and a limit on everything a client controls (header
// and body size, read and idle time, open connections). Handling is delegated to a Handler,
// which may answer later from another thread through its Responder.
//
// Life of a connection: [TLS handshake] -> read a request (bounded by read_timeout, or
// idle_timeout between kept-alive requests) -> handle (no timeout: an append answers after its
// commit; the connection is not read meanwhile, so no pipelining) -> write (bounded by
// read_timeout) -> access log line and on_request hook -> read again or close.
//
// Every response carries X-Request-Id: the client's own when it sent a valid one (1 to 64 of
// [A-Za-z0-9_-]), else 16 hex digits unique in this process.
//
// Handler-private response headers, read by the session and ERASED before the response is
// written, so they never reach the client:
//   X-Trail-Route  the route template that matched ("/v1/cases/{id}"), for the access log and
//                  metrics. Never the raw target: paths and query strings carry personal data.
//                  "-" when the handler sets none.
//   X-Trail-User   the authenticated user id, for the access log; absent means anonymous.
//
// Invariants: (1) a session has at most one request in the handler at a time; (2) a Responder
//             delivers at most once; (3) a session waiting on its handler has no I/O pending and
//             is owned by the Server, so a Responder that fires after the Server is gone does
//             nothing.
// Thread safety: run() may be called from several threads (one io_context); stop(), drain()
//   and the counters from any thread. listen(), set_on_request() and stop_on_signals() are
//   set-up calls: before run(). The Server must outlive every run() call; Responders may outlive
//   the Server.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "ledger/status.h"
#include "server/handler.h"

namespace boost::asio::ssl {
class context;
}  // namespace boost::asio::ssl

namespace trail::server {

// Response headers a handler sets for the session; erased before writing (see above).
inline constexpr std::string_view kRouteHeader = "X-Trail-Route";
inline constexpr std::string_view kUserHeader = "X-Trail-User";
inline constexpr std::string_view kRequestIdHeader = "X-Request-Id";
inline constexpr std::size_t kRequestIdBytesMax = 64;

struct Limits {
  std::size_t body_bytes_max = 16U << 20U;
  std::size_t header_bytes_max = 16U << 10U;
  std::chrono::seconds read_timeout{30};  // A request must arrive whole within this (and a
                                          // TLS handshake, and a response be written).
  std::chrono::seconds idle_timeout{60};  // A kept-alive connection may wait this long.
  std::size_t connections_max = 1024;
  std::chrono::seconds drain_timeout{10};  // What stop() gives in-flight requests.
  bool access_log = true;                  // One JSON line per request (log.h); off for benches.
};

// A PEM certificate chain (leaf first) and its unencrypted PEM private key.
// scripts/make-dev-cert.sh makes a self-signed pair for local use.
struct TlsConfig {
  std::string cert_file;
  std::string key_file;
};

// Plain HTTP is allowed only on loopback. Errors: kInvalid naming the problem (not an IP
// address, or not loopback without TLS).
Status check_listen_address(const std::string& host, bool tls);

// Whether `id` may be used as a request id: 1 to kRequestIdBytesMax of [A-Za-z0-9_-].
bool valid_request_id(std::string_view id);

// Called after each response is written (or failed to be), on the connection's strand: from
// several threads at once. `route` is as in the access log.
using RequestHook =
    std::function<void(std::string_view route, unsigned status, std::uint64_t duration_us)>;

class Server {
 public:
  // `handler` must outlive the Server. With `tls`, every connection on every listen address
  // is TLS (1.2 or later); the certificate and key are loaded here and a failure to load them
  // is returned by listen().
  Server(Handler& handler, Limits limits, std::optional<TlsConfig> tls = std::nullopt);
  // Abandons whatever is in flight: call after run() has returned on every thread.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Starts accepting on host:port (port 0 picks a free one) and returns the bound port.
  // Errors: kInvalid for a bad address, for a non-loopback address without TLS, or when the
  // TLS certificate or key could not be loaded (naming the file); kIo when the bind fails.
  Result<unsigned short> listen(const std::string& host, unsigned short port);
  // Serves until stopped; call from as many threads as should do I/O.
  void run();
  // Graceful stop, same as drain(limits.drain_timeout).
  void stop();
  // Stops accepting, closes connections that are idle or still sending a request (such a
  // request was never handled), lets requests already in a handler finish and their responses
  // be written (then closes those connections), and ends run() once no connection is left or
  // `max` has passed, whichever is first. After `max`, pending responses are abandoned.
  // Returns at once; later calls do nothing.
  void drain(std::chrono::seconds max);
  // First SIGINT or SIGTERM: stop(); a second one ends run() at once.
  void stop_on_signals();
  // See RequestHook. Call before run().
  void set_on_request(RequestHook hook) { on_request_ = std::move(hook); }

  bool tls() const { return tls_enabled_; }
  std::size_t open_connections() const { return connections_.load(); }
  // Responses written (or attempted) since start, including 413/431 from the listener.
  std::uint64_t requests_total() const { return requests_total_.load(); }
  // Requests handed to the handler and not yet answered.
  std::size_t requests_in_flight() const { return requests_in_flight_.load(); }

 private:
  class SessionBase;
  template <typename Stream>
  class Session;
  class ResponderState;
  struct Waiting;  // Sessions waiting on their handler; shared with every Responder.

  void do_accept(std::size_t index);
  void start_session(boost::asio::ip::tcp::socket socket);
  void begin_drain(std::chrono::seconds max);
  void wait_for_signal();
  void on_session_closed();

  Handler& handler_;
  const Limits limits_;
  const bool tls_enabled_;
  Status tls_status_ = Status::ok();
  std::unique_ptr<boost::asio::ssl::context> tls_context_;
  RequestHook on_request_;
  std::atomic<std::size_t> connections_{0};
  std::atomic<std::uint64_t> requests_total_{0};
  std::atomic<std::size_t> requests_in_flight_{0};
  std::atomic<bool> draining_{false};
  std::atomic<bool> destroying_{false};
  std::shared_ptr<Waiting> waiting_;
  std::mutex sessions_mutex_;  // Guards sessions_: every open session, for drain().
  std::unordered_map<const SessionBase*, std::weak_ptr<SessionBase>> sessions_;
  // I/O objects last: ~Server tears them down explicitly, io_ after the objects that use it.
  std::unique_ptr<boost::asio::io_context> io_;
  // Serialises accepting, draining and signals, so drain can close acceptors directly.
  std::optional<boost::asio::strand<boost::asio::io_context::executor_type>> control_;
  std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> acceptors_;
  std::unique_ptr<boost::asio::signal_set> signals_;
  std::unique_ptr<boost::asio::steady_timer> drain_timer_;
};

}  // namespace trail::server
