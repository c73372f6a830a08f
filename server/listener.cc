#include "server/listener.h"

#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace trail::server {
namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

Status check_listen_address(const std::string& host, bool tls) {
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) return Status::error(Code::kInvalid, "listen address '" + host + "' is not an IP address");
  if (!address.is_loopback() && !tls) {
    return Status::error(Code::kInvalid, "plain HTTP is allowed only on loopback; " + host +
                                             " needs TLS (--tls-cert and --tls-key)");
  }
  return Status::ok();
}

// One connection: read a request (bounded in size and time), answer it, repeat while kept
// alive. All handlers run on the connection's strand.
class Server::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Server& server)
      : stream_{std::move(socket)}, server_{server} {
    ++server_.connections_;
  }
  ~Session() { --server_.connections_; }

  void start() { do_read(/*first=*/true); }

 private:
  void do_read(bool first) {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server_.limits_.header_bytes_max));
    parser_->body_limit(server_.limits_.body_bytes_max);
    stream_.expires_after(first ? server_.limits_.read_timeout : server_.limits_.idle_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec == http::error::end_of_stream) return close();
    if (ec == http::error::body_limit || ec == http::error::header_limit) {
      Request request;
      request.version(11);
      request.keep_alive(false);
      return write(error_response(request, ec == http::error::body_limit
                                               ? http::status::payload_too_large
                                               : http::status::request_header_fields_too_large,
                                  "too_large", ec.message()));
    }
    if (ec) return close();  // Timeout, reset or malformed: nothing more to say.
    Request request = parser_->release();
    write(server_.router_.handle(request));
  }

  void write(Response response) {
    response_ = std::make_shared<Response>(std::move(response));
    stream_.expires_after(server_.limits_.read_timeout);
    http::async_write(stream_, *response_,
                      beast::bind_front_handler(&Session::on_write, shared_from_this(),
                                                response_->keep_alive()));
  }

  void on_write(bool keep_alive, beast::error_code ec, std::size_t) {
    if (ec || !keep_alive) return close();
    response_.reset();
    do_read(/*first=*/false);
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  beast::tcp_stream stream_;
  Server& server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<Response> response_;
};

Server::Server(const Router& router, Limits limits) : router_{router}, limits_{limits} {}

Server::~Server() { stop(); }

Result<unsigned short> Server::listen(const std::string& host, unsigned short port) {
  TRAIL_TRY(check_listen_address(host, /*tls=*/false));
  boost::system::error_code ec;
  const tcp::endpoint endpoint{asio::ip::make_address(host), port};
  auto acceptor = std::make_unique<tcp::acceptor>(asio::make_strand(io_));
  acceptor->open(endpoint.protocol(), ec);
  if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor->bind(endpoint, ec);
  if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status::error(Code::kIo, "cannot listen on " + host + ":" +
                                              std::to_string(port) + ": " + ec.message());
  const unsigned short bound = acceptor->local_endpoint().port();
  acceptors_.push_back(std::move(acceptor));
  do_accept(acceptors_.size() - 1);
  return bound;
}

void Server::do_accept(std::size_t index) {
  acceptors_[index]->async_accept(
      asio::make_strand(io_), [this, index](beast::error_code ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted) return;
        if (!ec) {
          if (connections_.load() >= limits_.connections_max) {
            socket.close();  // Over the cap: refuse rather than queue without bound.
          } else {
            std::make_shared<Session>(std::move(socket), *this)->start();
          }
        }
        do_accept(index);
      });
}

void Server::run() { io_.run(); }

void Server::stop_on_signals() {
  signals_ = std::make_unique<asio::signal_set>(io_, SIGINT, SIGTERM);
  signals_->async_wait([this](const boost::system::error_code& ec, int) {
    if (!ec) stop();
  });
}

void Server::stop() { io_.stop(); }

}  // namespace trail::server
