#include "server/listener.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <exception>
#include <random>
#include <type_traits>
#include <utility>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <spdlog/spdlog.h>

#include "server/log.h"

namespace trail::server {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
template <typename Stream>
constexpr bool kIsTls = std::is_same_v<Stream, TlsStream>;

// How long a closing TLS connection waits for the peer's close_notify. Ours is sent at once;
// the wait only keeps a connection slot, and RFC 8446 §6.1 does not require it.
constexpr std::chrono::seconds kTlsCloseTimeout{1};
// The most room a connection's read buffer is given for a body: Beast reads at most 64 KiB at
// a time, so more would not be used. Kept between requests (1,024 connections: 64 MiB at most).
constexpr std::size_t kBodyReadBytesMax = 64U << 10U;
// The route logged when the handler named none, and for answers the listener gives itself.
constexpr std::string_view kNoRoute = "-";
// TLS 1.2 suites with forward secrecy and AEAD (Mozilla "intermediate"); TLS 1.3 keeps
// OpenSSL's defaults, which are all of that kind.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// 16 hex digits, unique in this process: splitmix64's finaliser is a bijection, so distinct
// counter values give distinct ids, and the random seed keeps them from being guessable
// across restarts.
std::string new_request_id() {
  static const std::uint64_t seed = [] {
    std::random_device device;
    return (std::uint64_t{device()} << 32U) ^ std::uint64_t{device()};
  }();
  static std::atomic<std::uint64_t> counter{0};
  std::uint64_t z = seed + counter.fetch_add(1, std::memory_order_relaxed) * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30U)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27U)) * 0x94D049BB133111EBULL;
  z ^= z >> 31U;
  static constexpr std::string_view kHex = "0123456789abcdef";
  std::string id(16, '0');
  for (auto it = id.rbegin(); it != id.rend(); ++it, z >>= 4U) *it = kHex[z & 0xFU];
  return id;
}

bool is_loopback(const asio::ip::address& address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6()).is_loopback();
  }
  return address.is_loopback();
}

// Errors: kInvalid naming the file that could not be used.
Result<std::unique_ptr<ssl::context>> load_tls(const TlsConfig& config) {
  auto context = std::make_unique<ssl::context>(ssl::context::tls_server);
  context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                       ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
  SSL_CTX* native = context->native_handle();
  const long min_set = SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  TRAIL_ASSERT(min_set == 1);
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  const int ciphers_set = SSL_CTX_set_cipher_list(native, kTls12Ciphers);
  TRAIL_ASSERT(ciphers_set == 1);
  boost::system::error_code ec;
  context->use_certificate_chain_file(config.cert_file, ec);
  if (ec) {
    ERR_clear_error();
    return Status::error(Code::kInvalid, "cannot load TLS certificate '" + config.cert_file +
                                             "': " + ec.message());
  }
  context->use_private_key_file(config.key_file, ssl::context::pem, ec);
  const bool mismatch = ec && ec.category() == asio::error::get_ssl_category() &&
                        ERR_GET_REASON(static_cast<unsigned long>(ec.value())) ==
                            X509_R_KEY_VALUES_MISMATCH;
  if (ec && !mismatch) {
    ERR_clear_error();
    return Status::error(Code::kInvalid,
                         "cannot load TLS key '" + config.key_file + "': " + ec.message());
  }
  if (mismatch || SSL_CTX_check_private_key(native) != 1) {
    ERR_clear_error();
    return Status::error(Code::kInvalid, "TLS key '" + config.key_file +
                                             "' does not match certificate '" + config.cert_file +
                                             "'");
  }
  return Result<std::unique_ptr<ssl::context>>{std::move(context)};
}

template <typename Stream>
Stream make_stream(tcp::socket socket, ssl::context* tls) {
  if constexpr (kIsTls<Stream>) {
    TRAIL_ASSERT(tls != nullptr);
    return Stream{std::move(socket), *tls};
  } else {
    TRAIL_ASSERT(tls == nullptr);
    return Stream{std::move(socket)};
  }
}

// What a client gets when its handler dropped the Responder without answering (a handler bug).
Response abandoned_response() {
  Request request;
  request.version(11);
  request.keep_alive(false);
  return error_response(request, http::status::internal_server_error, "internal",
                        "the request was not answered");
}

}  // namespace

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

bool valid_request_id(std::string_view id) {
  if (id.empty() || id.size() > kRequestIdBytesMax) return false;
  for (const char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

// The face of a session that the Server and Responders use, whatever its stream type.
class Server::SessionBase {
 public:
  virtual ~SessionBase() = default;
  // The session's strand; the two calls below must run on it.
  virtual asio::any_io_executor executor() = 0;
  // The handler's answer to the request in flight.
  virtual void on_response(Response response) = 0;
  // The Server is draining: drop the connection unless a request is being answered.
  virtual void on_drain() = 0;
};

// Sessions waiting on their handler, owned here so that a Responder needs only a key, and one
// that fires after the Server is gone finds `open` false and does nothing.
struct Server::Waiting {
  std::mutex mutex;
  bool open = true;  // False once the Server is being destroyed.
  std::uint64_t next_key = 0;
  std::unordered_map<std::uint64_t, std::shared_ptr<SessionBase>> sessions;
};

// One Responder's shared state: every copy of the std::function points here.
class Server::ResponderState {
 public:
  ResponderState(std::shared_ptr<Waiting> waiting, std::uint64_t key)
      : waiting_{std::move(waiting)}, key_{key} {}
  ResponderState(const ResponderState&) = delete;
  ResponderState& operator=(const ResponderState&) = delete;
  // The last copy of the Responder went away unanswered: answer 500 so the client and the
  // connection are not left hanging.
  ~ResponderState() {
    if (!answered_.load()) deliver(abandoned_response());
  }

  void respond(Response response) {
    const bool answered_before = answered_.exchange(true);
    TRAIL_ASSERT(!answered_before);  // A Responder answers exactly once.
    deliver(std::move(response));
  }

 private:
  // Hands the session back to its strand with the response. Under the lock so the Server
  // cannot be torn down between the check and the post; once it is gone, does nothing.
  void deliver(Response response) {
    const std::lock_guard lock{waiting_->mutex};
    if (!waiting_->open) return;
    auto node = waiting_->sessions.extract(key_);
    TRAIL_ASSERT(!node.empty());
    std::shared_ptr<SessionBase> session = std::move(node.mapped());
    TRAIL_ASSERT(session != nullptr);
    asio::any_io_executor strand = session->executor();
    asio::post(strand, [session = std::move(session), response = std::move(response)]() mutable {
      session->on_response(std::move(response));
    });
  }

  std::shared_ptr<Waiting> waiting_;
  const std::uint64_t key_;
  std::atomic<bool> answered_{false};
};

// One connection: [handshake], read a request (bounded in size and time), hand it to the
// handler, write the answer, repeat while kept alive. Everything runs on the connection's
// strand. Invariant: state_ == kHandling exactly while the session is in waiting_->sessions,
// and then no I/O is pending on the stream.
template <typename Stream>
class Server::Session final : public Server::SessionBase,
                              public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(tcp::socket socket, Server& server, std::string remote_address, bool loopback)
      : stream_{make_stream<Stream>(std::move(socket), server.tls_context_.get())},
        server_{server} {
    context_.remote_address = std::move(remote_address);
    context_.loopback = loopback;
    context_.tls = kIsTls<Stream>;
    ++server_.connections_;
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() override {
    {
      const std::lock_guard lock{server_.sessions_mutex_};
      server_.sessions_.erase(static_cast<const SessionBase*>(this));
    }
    server_.on_session_closed();
  }

  void start() {
    {
      const std::lock_guard lock{server_.sessions_mutex_};
      server_.sessions_.emplace(static_cast<const SessionBase*>(this), this->weak_from_this());
    }
    asio::dispatch(stream_.get_executor(),
                   beast::bind_front_handler(&Session::on_start, this->shared_from_this()));
  }

  asio::any_io_executor executor() override { return stream_.get_executor(); }

  void on_response(Response response) override {
    TRAIL_ASSERT(state_ == State::kHandling);
    TRAIL_ASSERT(server_.requests_in_flight_.load() > 0);
    --server_.requests_in_flight_;
    write(std::move(response));
  }

  void on_drain() override {
    if (state_ == State::kHandshaking || state_ == State::kReading) {
      // Cancelling alone missed a read whose data had just come in: its handler was queued,
      // Beast then read on for the rest of the header, and the stop waited out its limit.
      // With the receiving side shut, any read from here on ends at once.
      boost::system::error_code ignored;
      lowest().socket().shutdown(tcp::socket::shutdown_receive, ignored);
      lowest().cancel();
    }
    // kHandling and kWriting finish their request and then close (draining_ is set).
  }

 private:
  enum class State : std::uint8_t { kStarting, kHandshaking, kReading, kHandling, kWriting, kClosing };

  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }
  const Limits& limits() const { return server_.limits_; }

  void on_start() {
    if constexpr (kIsTls<Stream>) {
      if (server_.draining_.load()) return close();
      state_ = State::kHandshaking;
      lowest().expires_after(limits().read_timeout);
      stream_.async_handshake(ssl::stream_base::server,
                              beast::bind_front_handler(&Session::on_handshake,
                                                        this->shared_from_this()));
    } else {
      do_read(/*first=*/true);
    }
  }

  void on_handshake(beast::error_code ec) {
    if (ec) {
      lowest().close();  // Not TLS, or not a version we speak: nothing to shut down.
      state_ = State::kClosing;
      return;
    }
    handshake_done_ = true;
    do_read(/*first=*/true);
  }

  void do_read(bool first) {
    if (server_.draining_.load()) return close();
    state_ = State::kReading;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(limits().header_bytes_max));
    parser_->body_limit(limits().body_bytes_max);
    lowest().expires_after(first ? limits().read_timeout : limits().idle_timeout);
    http::async_read_header(
        stream_, buffer_, *parser_,
        beast::bind_front_handler(&Session::on_header, this->shared_from_this()));
  }

  // Beast reads as much as the buffer has room for, and a flat_buffer keeps the capacity of
  // its first read (512 bytes): a 40 KB batch came in 80 reads, each a system call and a timer.
  // With the header in, the buffer is given room for the body (up to Beast's 64 KiB a read).
  void on_header(beast::error_code ec, std::size_t bytes) {
    if (ec || parser_->is_done()) return on_read(ec, bytes);
    // A chunked body's length is not known: it gets the most room.
    const auto length = parser_->content_length_remaining();
    const std::size_t room = length ? std::min<std::uint64_t>(*length, kBodyReadBytesMax)
                                    : kBodyReadBytesMax;
    if (buffer_.capacity() - buffer_.size() < room) buffer_.reserve(buffer_.size() + room);
    // A client that asked to be told to go on (curl does for bodies over 1 MiB) would wait a
    // second for it before sending the body (RFC 9110 §10.1.1). A body too large for the limit
    // never gets here: its Content-Length fails the header with 413.
    const auto& header = parser_->get();
    if (header.version() >= 11 && beast::iequals(header[http::field::expect], "100-continue")) {
      continue_ = {http::status::continue_, header.version()};
      http::async_write(stream_, continue_,
                        beast::bind_front_handler(&Session::on_continue, this->shared_from_this()));
      return;
    }
    read_body();
  }

  void on_continue(beast::error_code ec, std::size_t /*bytes*/) {
    if (ec) return close();
    read_body();
  }

  void read_body() {
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::on_read, this->shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t /*bytes*/) {
    if (ec == http::error::body_limit || ec == http::error::header_limit) return reject(ec);
    // End of stream, timeout, reset, malformed, or cancelled by drain(): nothing to answer.
    if (ec) return close();
    lowest().expires_never();  // The handler may take as long as a commit takes.
    Request request = parser_->release();
    begin_request(request);
    hand_to_handler(std::move(request));
  }

  void begin_request(const Request& request) {
    started_ = Clock::now();
    const std::string_view method = request.method_string();
    method_.assign(method);
    const std::string_view incoming = request[kRequestIdHeader];
    if (valid_request_id(incoming)) {
      context_.request_id.assign(incoming);
    } else {
      context_.request_id = new_request_id();
    }
  }

  void hand_to_handler(Request request) {
    std::uint64_t key = 0;
    {
      const std::lock_guard lock{server_.waiting_->mutex};
      key = server_.waiting_->next_key++;
      const bool added = server_.waiting_->sessions.emplace(key, this->shared_from_this()).second;
      TRAIL_ASSERT(added);
    }
    state_ = State::kHandling;
    ++server_.requests_in_flight_;
    auto responder = std::make_shared<ResponderState>(server_.waiting_, key);
    Responder respond = [responder](Response response) { responder->respond(std::move(response)); };
    responder.reset();  // The Responder's copies alone keep the state.
    try {
      server_.handler_.handle(std::move(request), context_, std::move(respond));
    } catch (const std::exception& e) {
      // A handler broke its no-throw contract; the dropped Responder answers 500.
      spdlog::error("handler threw for request {}: {}", context_.request_id, e.what());
    }
  }

  // 413 or 431: the request was not read whole, so the connection cannot be reused.
  void reject(beast::error_code ec) {
    Request stub;
    stub.version(11);
    stub.keep_alive(false);
    if (parser_->is_header_done()) {
      begin_request(parser_->get());
    } else {
      begin_request(stub);
      method_.assign(kNoRoute);
    }
    const bool body = ec == http::error::body_limit;
    Response response =
        error_response(stub,
                       body ? http::status::payload_too_large
                            : http::status::request_header_fields_too_large,
                       "too_large", ec.message());
    response.keep_alive(false);
    write(std::move(response));
  }

  void write(Response response) {
    route_.assign(std::string_view{response[kRouteHeader]});
    user_.assign(std::string_view{response[kUserHeader]});
    response.erase(kRouteHeader);
    response.erase(kUserHeader);
    response.set(kRequestIdHeader, context_.request_id);
    if (server_.draining_.load()) response.keep_alive(false);
    response_ = std::move(response);
    state_ = State::kWriting;
    lowest().expires_after(limits().read_timeout);
    http::async_write(stream_, response_,
                      beast::bind_front_handler(&Session::on_write, this->shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t /*bytes*/) {
    const auto duration_us = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started_).count());
    ++server_.requests_total_;
    const std::string_view route = route_.empty() ? kNoRoute : std::string_view{route_};
    const unsigned status = response_.result_int();
    if (limits().access_log) {
      log_request(context_, method_, route, status, response_.body().size(), duration_us, user_);
    }
    if (server_.on_request_) server_.on_request_(route, status, duration_us);
    const bool keep_alive = response_.keep_alive();
    response_ = {};
    if (ec || !keep_alive) return close();
    do_read(/*first=*/false);
  }

  void close() {
    if (state_ == State::kClosing) return;
    state_ = State::kClosing;
    if constexpr (kIsTls<Stream>) {
      if (!handshake_done_ || !lowest().socket().is_open()) return lowest().close();
      lowest().expires_after(kTlsCloseTimeout);
      stream_.async_shutdown(
          beast::bind_front_handler(&Session::on_shutdown, this->shared_from_this()));
    } else {
      beast::error_code ignored;
      lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    }
  }

  void on_shutdown(beast::error_code /*ec*/) { lowest().close(); }

  Stream stream_;
  Server& server_;
  State state_ = State::kStarting;
  bool handshake_done_ = false;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  // The request being answered: what the handler sees and what the access line reports.
  RequestContext context_;
  std::string method_;
  std::string route_;
  std::string user_;
  Clock::time_point started_;
  Response response_;  // Being written; Beast needs it alive until on_write.
  http::response<http::empty_body> continue_;  // "100 Continue", while it is written.
};

Server::Server(Handler& handler, Limits limits, std::optional<TlsConfig> tls)
    : handler_{handler},
      limits_{limits},
      tls_enabled_{tls.has_value()},
      waiting_{std::make_shared<Waiting>()},
      io_{std::make_unique<asio::io_context>()},
      control_{asio::make_strand(*io_)} {
  if (tls) {
    auto context = load_tls(*tls);
    if (context.is_ok()) {
      tls_context_ = std::move(*context);
    } else {
      tls_status_ = std::move(context).take_status();
    }
  }
}

Server::~Server() {
  destroying_.store(true);
  std::unordered_map<std::uint64_t, std::shared_ptr<SessionBase>> waiting;
  {
    const std::lock_guard lock{waiting_->mutex};
    waiting_->open = false;  // Late Responders now do nothing.
    waiting.swap(waiting_->sessions);
  }
  waiting.clear();  // Their sockets close while the io_context still exists.
  signals_.reset();
  drain_timer_.reset();
  acceptors_.clear();
  control_.reset();
  io_.reset();  // Destroys queued handlers, and with them the sessions they hold.
  TRAIL_ASSERT(connections_.load() == 0);
}

Result<unsigned short> Server::listen(const std::string& host, unsigned short port) {
  TRAIL_TRY(tls_status_);
  TRAIL_TRY(check_listen_address(host, tls_enabled_));
  boost::system::error_code ec;
  const tcp::endpoint endpoint{asio::ip::make_address(host), port};
  auto acceptor = std::make_unique<tcp::acceptor>(*control_);
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

// The accept handler runs on control_; each new socket gets a strand of its own.
void Server::do_accept(std::size_t index) {
  acceptors_[index]->async_accept(
      asio::make_strand(*io_), [this, index](beast::error_code ec, tcp::socket socket) {
        if (ec == asio::error::operation_aborted || draining_.load()) return;
        if (!ec) {
          if (connections_.load() >= limits_.connections_max) {
            socket.close();  // Over the cap: refuse rather than queue without bound.
          } else {
            start_session(std::move(socket));
          }
        }
        do_accept(index);
      });
}

void Server::start_session(tcp::socket socket) {
  boost::system::error_code ec;
  const tcp::endpoint peer = socket.remote_endpoint(ec);
  if (ec) return;  // Gone before we looked.
  std::string remote = peer.address().to_string();
  const bool loopback = is_loopback(peer.address());
  if (tls_enabled_) {
    std::make_shared<Session<TlsStream>>(std::move(socket), *this, std::move(remote), loopback)
        ->start();
  } else {
    std::make_shared<Session<PlainStream>>(std::move(socket), *this, std::move(remote), loopback)
        ->start();
  }
}

void Server::run() { io_->run(); }

void Server::stop() { drain(limits_.drain_timeout); }

void Server::drain(std::chrono::seconds max) {
  asio::post(*control_, [this, max] { begin_drain(max); });
}

void Server::begin_drain(std::chrono::seconds max) {
  TRAIL_ASSERT(control_->running_in_this_thread());
  if (draining_.exchange(true)) return;
  for (auto& acceptor : acceptors_) {
    boost::system::error_code ignored;
    acceptor->close(ignored);  // New connections are refused from here on.
  }
  drain_timer_ = std::make_unique<asio::steady_timer>(*control_, max);
  drain_timer_->async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    spdlog::warn("drain limit reached with {} requests unanswered; stopping anyway",
                 requests_in_flight_.load());
    io_->stop();
  });
  std::vector<std::shared_ptr<SessionBase>> open;
  {
    const std::lock_guard lock{sessions_mutex_};
    open.reserve(sessions_.size());
    for (const auto& entry : sessions_) {
      if (auto session = entry.second.lock()) open.push_back(std::move(session));
    }
  }
  for (auto& session : open) {
    asio::post(session->executor(), [session] { session->on_drain(); });
  }
  if (connections_.load() == 0) io_->stop();
}

void Server::on_session_closed() {
  const std::size_t left = --connections_;
  // The last connection of a drain ends run(); the drain timer would otherwise keep it going.
  if (left == 0 && draining_.load() && !destroying_.load()) io_->stop();
}

void Server::stop_on_signals() {
  signals_ = std::make_unique<asio::signal_set>(*control_, SIGINT, SIGTERM);
  wait_for_signal();
}

void Server::wait_for_signal() {
  signals_->async_wait([this](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    if (draining_.load()) {
      spdlog::warn("signal {} during drain: stopping now", signal);
      io_->stop();
      return;
    }
    spdlog::info("signal {}: draining for up to {} s", signal, limits_.drain_timeout.count());
    begin_drain(limits_.drain_timeout);
    wait_for_signal();
  });
}

}  // namespace trail::server
