// The HTTP/1.1 front door: an acceptor per listen address, one session per connection on its
// own strand, keep-alive, and a limit on everything a client controls (header and body size,
// read and idle time, open connections). Handling is delegated to the Router.
// Thread safety: run() may be called from several threads (one io_context); stop() from any.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>

#include "ledger/status.h"
#include "server/router.h"

namespace trail::server {

struct Limits {
  std::size_t body_bytes_max = 16U << 20U;
  std::size_t header_bytes_max = 16U << 10U;
  std::chrono::seconds read_timeout{30};  // A request must arrive whole within this.
  std::chrono::seconds idle_timeout{60};  // A kept-alive connection may wait this long.
  std::size_t connections_max = 1024;
};

// Plain HTTP is allowed only on loopback. Errors: kInvalid naming the problem (not an IP
// address, or not loopback without TLS).
Status check_listen_address(const std::string& host, bool tls);

class Server {
 public:
  Server(const Router& router, Limits limits);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Starts accepting on host:port (port 0 picks a free one) and returns the bound port.
  // Errors: kInvalid for a bad or non-loopback address; kIo when the bind fails.
  Result<unsigned short> listen(const std::string& host, unsigned short port);
  // Serves until stop(); call from as many threads as should do I/O.
  void run();
  // Stops accepting and ends the event loop; in-flight responses are abandoned.
  void stop();
  // SIGINT and SIGTERM call stop().
  void stop_on_signals();
  std::size_t open_connections() const { return connections_.load(); }

 private:
  class Session;
  void do_accept(std::size_t index);

  const Router& router_;
  Limits limits_;
  boost::asio::io_context io_;
  std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> acceptors_;
  std::atomic<std::size_t> connections_{0};
  std::unique_ptr<boost::asio::signal_set> signals_;
};

}  // namespace trail::server
