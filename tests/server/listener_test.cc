// traild's front door over real loopback sockets, with a test Handler standing in for the
// router: limits, timeouts, keep-alive, asynchronous answers, request ids, graceful stop, TLS
// and the JSON access log.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include "server/handler.h"
#include "server/http.h"
#include "server/listener.h"
#include "server/log.h"

namespace trail::testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using HttpResponse = http::response<http::string_body>;

// FNV-1a (64-bit) of `bytes`: what /echo reports, to check a body arrived whole and in order.
std::uint64_t fnv1a(std::string_view bytes) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (const char c : bytes) {
    hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  }
  return hash;
}

// ---------------------------------------------------------------------------------------------
// A Handler with one route per behaviour the listener must cope with.
//   GET /healthz        {"status":"ok"} at once
//   POST /echo          {"bytes": <body size>}
//   GET /context        the RequestContext as JSON
//   GET /slow?ms=N      answers after N ms from another thread
//   GET /never          keeps its Responder until answer_held() (or its destruction)
//   GET /drop           drops its Responder unanswered
//   GET /users/<id>     names route "/users/{id}" and user "u-42" through private headers
class TestHandler final : public server::Handler {
 public:
  ~TestHandler() override {
    std::vector<std::thread> threads;
    {
      const std::lock_guard lock{mutex_};
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
  }

  void handle(server::Request request, const server::RequestContext& context,
              server::Responder respond) override {
    calls_.fetch_add(1);
    const int active = active_.fetch_add(1) + 1;
    for (int seen = max_active_.load(); active > seen && !max_active_.compare_exchange_weak(seen, active);) {
    }
    const std::string target{request.target()};
    const std::string path = target.substr(0, target.find('?'));
    if (path == "/slow") {
      const int ms = std::stoi(target.substr(target.find("ms=") + 3));
      const std::lock_guard lock{mutex_};
      threads_.emplace_back([this, ms, request = std::move(request), respond = std::move(respond)] {
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        answer(respond, request, route("/slow", ok(request, R"({"slow":true})")));
      });
      return;
    }
    if (path == "/never") {
      const std::lock_guard lock{mutex_};
      held_.emplace_back(std::move(respond), std::move(request));
      return;
    }
    if (path == "/drop") {
      active_.fetch_sub(1);
      return;  // The Responder dies here unanswered.
    }
    server::Response response = answer_now(request, context, path);
    answer(respond, request, std::move(response));
  }

  // Answers every /never request now (the Server may be long gone).
  void answer_held() {
    std::vector<std::pair<server::Responder, server::Request>> held;
    {
      const std::lock_guard lock{mutex_};
      held.swap(held_);
    }
    for (auto& [respond, request] : held) answer(respond, request, ok(request, "{}"));
  }

  int calls() const { return calls_.load(); }
  int max_active() const { return max_active_.load(); }

 private:
  static server::Response ok(const server::Request& request, std::string body) {
    return server::json_response(request, http::status::ok, std::move(body));
  }
  static server::Response route(std::string_view name, server::Response response) {
    response.set(server::kRouteHeader, name);
    return response;
  }

  void answer(const server::Responder& respond, const server::Request&, server::Response response) {
    active_.fetch_sub(1);
    respond(std::move(response));
  }

  static server::Response answer_now(const server::Request& request,
                                     const server::RequestContext& context,
                                     const std::string& path) {
    if (path == "/healthz") return route("/healthz", ok(request, R"({"status":"ok"})"));
    if (path == "/echo") {
      boost::json::object body;
      body["bytes"] = request.body().size();
      body["fnv1a"] = fnv1a(request.body());  // Of the bytes, in their order.
      return route("/echo", ok(request, boost::json::serialize(body)));
    }
    if (path == "/context") {
      boost::json::object body;
      body["remote_address"] = context.remote_address;
      body["request_id"] = context.request_id;
      body["tls"] = context.tls;
      body["loopback"] = context.loopback;
      return route("/context", ok(request, boost::json::serialize(body)));
    }
    if (path.rfind("/users/", 0) == 0) {
      server::Response response = route("/users/{id}", ok(request, "{}"));
      response.set(server::kUserHeader, "u-42");
      return response;
    }
    return server::error_response(request, http::status::not_found, "not_found", "no such resource");
  }

  std::atomic<int> calls_{0};
  std::atomic<int> active_{0};
  std::atomic<int> max_active_{0};
  std::mutex mutex_;
  std::vector<std::thread> threads_;
  std::vector<std::pair<server::Responder, server::Request>> held_;
};

// ---------------------------------------------------------------------------------------------
// A Server on 127.0.0.1:<free port> with one run() thread.
class Running {
 public:
  Running(server::Handler& handler, server::Limits limits,
          std::optional<server::TlsConfig> tls = std::nullopt)
      : server_{std::make_unique<server::Server>(handler, limits, std::move(tls))} {}
  ~Running() { stop_and_join(); }

  // Listens and starts the run() thread; false (with the failure recorded) if listen fails.
  ::testing::AssertionResult start() {
    auto port = server_->listen("127.0.0.1", 0);
    if (!port.is_ok()) return ::testing::AssertionFailure() << port.status().to_string();
    port_ = *port;
    thread_ = std::thread([this] { server_->run(); });
    return ::testing::AssertionSuccess();
  }
  // Stops gracefully and returns how long run() took to end.
  std::chrono::milliseconds stop_and_join() {
    if (!thread_.joinable()) return 0ms;
    const auto start = std::chrono::steady_clock::now();
    server_->stop();
    thread_.join();
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start);
  }
  void join() { thread_.join(); }
  server::Server& server() { return *server_; }
  unsigned short port() const { return port_; }
  void destroy() {
    if (thread_.joinable()) stop_and_join();
    server_.reset();
  }

 private:
  std::unique_ptr<server::Server> server_;
  unsigned short port_ = 0;
  std::thread thread_;
};

server::Limits test_limits() {
  server::Limits limits;
  limits.body_bytes_max = 1024;
  limits.header_bytes_max = 2048;
  limits.read_timeout = 1s;
  limits.idle_timeout = 1s;
  limits.drain_timeout = 5s;
  return limits;
}

// Blocking reads on `socket` give up after `timeout`, so a broken server fails a test instead
// of hanging it.
void set_receive_timeout(tcp::socket& socket, std::chrono::seconds timeout) {
  timeval tv{};
  tv.tv_sec = static_cast<decltype(tv.tv_sec)>(timeout.count());
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

// A plain HTTP/1.1 client connection.
class Client {
 public:
  explicit Client(unsigned short port) : stream_{io_} {
    stream_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    set_receive_timeout(stream_.socket(), 10s);
  }
  void write(http::verb verb, const std::string& target, const std::string& body = "",
             const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    http::request<http::string_body> request{verb, target, 11};
    request.set(http::field::host, "127.0.0.1");
    for (const auto& [name, value] : headers) request.set(name, value);
    request.body() = body;
    request.prepare_payload();
    http::write(stream_, request);
  }
  HttpResponse read() {
    HttpResponse response;
    http::read(stream_, buffer_, response);
    return response;
  }
  beast::error_code try_read(HttpResponse& response) {
    beast::error_code ec;
    http::read(stream_, buffer_, response, ec);
    return ec;
  }
  HttpResponse send(http::verb verb, const std::string& target, const std::string& body = "",
                    const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    write(verb, target, body, headers);
    return read();
  }
  tcp::socket& socket() { return stream_.socket(); }

 private:
  asio::io_context io_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

HttpResponse get(unsigned short port, const std::string& target,
                 const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  Client client{port};
  return client.send(http::verb::get, target, "", headers);
}

boost::json::value json(const HttpResponse& response) { return boost::json::parse(response.body()); }

// Waits up to `limit` for `condition`.
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds limit = 3000ms) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
TEST(ListenAddress, PlainHttpOnlyOnLoopback) {
  EXPECT_TRUE(server::check_listen_address("127.0.0.1", false).is_ok());
  EXPECT_TRUE(server::check_listen_address("::1", false).is_ok());
  EXPECT_EQ(server::check_listen_address("0.0.0.0", false).code(), Code::kInvalid);
  EXPECT_EQ(server::check_listen_address("10.1.2.3", false).code(), Code::kInvalid);
  EXPECT_TRUE(server::check_listen_address("10.1.2.3", true).is_ok());
  EXPECT_EQ(server::check_listen_address("localhost", false).code(), Code::kInvalid);
}

TEST(ListenAddress, ListenRefusesNonLoopbackWithoutTls) {
  TestHandler handler;
  server::Server server{handler, test_limits()};
  auto port = server.listen("0.0.0.0", 0);
  ASSERT_FALSE(port.is_ok());
  EXPECT_EQ(port.status().code(), Code::kInvalid);
}

TEST(RequestId, AcceptsOneToSixtyFourSafeCharacters) {
  EXPECT_TRUE(server::valid_request_id("a"));
  EXPECT_TRUE(server::valid_request_id("Abc-123_xyz"));
  EXPECT_TRUE(server::valid_request_id(std::string(64, 'x')));
  EXPECT_FALSE(server::valid_request_id(""));
  EXPECT_FALSE(server::valid_request_id(std::string(65, 'x')));
  EXPECT_FALSE(server::valid_request_id("has space"));
  EXPECT_FALSE(server::valid_request_id("quote\""));
  EXPECT_FALSE(server::valid_request_id("new\nline"));
  EXPECT_FALSE(server::valid_request_id("caf\xc3\xa9"));
}

// ---------------------------------------------------------------------------------------------
class Listener : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(running_.start()); }
  unsigned short port() const { return running_.port(); }

  TestHandler handler_;
  Running running_{handler_, test_limits()};
};

TEST_F(Listener, HealthzAnswersJson) {
  auto r = get(port(), "/healthz");
  EXPECT_EQ(r.result(), http::status::ok);
  EXPECT_EQ(r[http::field::content_type], "application/json");
  EXPECT_EQ(json(r).at("status").as_string(), "ok");
}

TEST_F(Listener, HandlerErrorsReachTheClientUnchanged) {
  auto r = get(port(), "/v1/nothing-here");
  EXPECT_EQ(r.result(), http::status::not_found);
  EXPECT_EQ(json(r).at("error").at("code").as_string(), "not_found");
}

TEST_F(Listener, OversizedBodyIs413WithJson) {
  Client client{port()};
  auto r = client.send(http::verb::post, "/echo", std::string(5000, 'x'));
  EXPECT_EQ(r.result(), http::status::payload_too_large);
  EXPECT_EQ(json(r).at("error").at("code").as_string(), "too_large");
  EXPECT_FALSE(r.keep_alive());
  EXPECT_TRUE(server::valid_request_id(r[server::kRequestIdHeader]));
  EXPECT_EQ(handler_.calls(), 0);
}

TEST_F(Listener, OversizedHeaderIs431WithJson) {
  auto r = get(port(), "/healthz", {{"X-Padding", std::string(4000, 'p')}});
  EXPECT_EQ(r.result(), http::status::request_header_fields_too_large);
  EXPECT_EQ(json(r).at("error").at("code").as_string(), "too_large");
  EXPECT_EQ(handler_.calls(), 0);
}

TEST_F(Listener, EchoHandlerSeesTheWholeBody) {
  Client client{port()};
  auto r = client.send(http::verb::post, "/echo", std::string(1000, 'b'));
  EXPECT_EQ(r.result(), http::status::ok);
  EXPECT_EQ(json(r).at("bytes").as_int64(), 1000);
}

// A listener that takes bodies of up to 1 MiB.
class ListenerBodies : public ::testing::Test {
 protected:
  static server::Limits limits() {
    server::Limits limits = test_limits();
    limits.body_bytes_max = 1U << 20U;
    return limits;
  }
  void SetUp() override { ASSERT_TRUE(running_.start()); }

  TestHandler handler_;
  Running running_{handler_, limits()};
};

// The listener gives a connection's buffer room for a body once its header is read (up to
// 64 KiB a read): bodies larger than that room, smaller after larger on one connection, and
// sent in slow pieces must all arrive whole.
TEST_F(ListenerBodies, ArriveWholeWhateverTheirSizeAndPace) {
  std::string pattern;
  for (int i = 0; pattern.size() < 300'000; ++i) pattern += std::to_string(i) + ",";
  Client client{running_.port()};
  for (const std::size_t size : {std::size_t{300'000}, std::size_t{10}, std::size_t{65'536},
                                 std::size_t{65'537}, std::size_t{700}, std::size_t{200'000}}) {
    const std::string body = pattern.substr(0, size);
    auto r = client.send(http::verb::post, "/echo", body);
    ASSERT_EQ(r.result(), http::status::ok) << size;
    EXPECT_EQ(json(r).at("bytes").as_int64(), static_cast<std::int64_t>(size));
    EXPECT_EQ(json(r).at("fnv1a").to_number<std::uint64_t>(), fnv1a(body)) << size;
  }
  // The header alone first, then the body in three pieces.
  const std::string body = pattern.substr(0, 150'000);
  const std::string head = "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n";
  asio::write(client.socket(), asio::buffer(head));
  for (std::size_t at = 0; at < body.size(); at += 50'000) {
    std::this_thread::sleep_for(50ms);
    asio::write(client.socket(), asio::buffer(body.substr(at, 50'000)));
  }
  auto r = client.read();
  ASSERT_EQ(r.result(), http::status::ok);
  EXPECT_EQ(json(r).at("fnv1a").to_number<std::uint64_t>(), fnv1a(body));
  // Chunked, so of no announced length: three chunks, then the last.
  std::string chunked =
      "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (std::size_t at = 0; at < body.size(); at += 50'000) {
    chunked += (std::stringstream{} << std::hex << 50'000).str() + "\r\n" +
               body.substr(at, 50'000) + "\r\n";
  }
  chunked += "0\r\n\r\n";
  asio::write(client.socket(), asio::buffer(chunked));
  r = client.read();
  ASSERT_EQ(r.result(), http::status::ok);
  EXPECT_EQ(json(r).at("fnv1a").to_number<std::uint64_t>(), fnv1a(body));
  EXPECT_EQ(running_.server().open_connections(), 1U);
}

// A client that sends "Expect: 100-continue" holds its body back until told to go on (curl
// waits a second, then sends it anyway); a body over the limit is refused at its header.
TEST_F(ListenerBodies, AClientExpectingContinueIsToldToGoOn) {
  Client client{running_.port()};
  const std::string body(5000, 'e');
  const std::string head =
      "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n";
  asio::write(client.socket(), asio::buffer(head));
  asio::streambuf interim;  // The server sends nothing more until the body comes.
  beast::error_code ec;
  asio::read_until(client.socket(), interim, "\r\n\r\n", ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(beast::buffers_to_string(interim.data()), "HTTP/1.1 100 Continue\r\n\r\n");
  asio::write(client.socket(), asio::buffer(body));
  auto r = client.read();
  ASSERT_EQ(r.result(), http::status::ok);
  EXPECT_EQ(json(r).at("fnv1a").to_number<std::uint64_t>(), fnv1a(body));

  Client big{running_.port()};
  asio::write(big.socket(),
              asio::buffer(std::string{"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                       "Expect: 100-continue\r\nContent-Length: 2000000\r\n\r\n"}));
  EXPECT_EQ(big.read().result(), http::status::payload_too_large);
  EXPECT_EQ(handler_.calls(), 1);
}

TEST_F(Listener, KeepAliveServesSeveralRequestsOnOneConnection) {
  Client client{port()};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(client.send(http::verb::get, "/healthz").result(), http::status::ok);
  }
  EXPECT_EQ(running_.server().open_connections(), 1U);
}

TEST_F(Listener, AStalledClientIsCutOff) {
  asio::io_context io;
  tcp::socket socket(io);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port()));
  set_receive_timeout(socket, 10s);
  const std::string partial = "GET /healthz HTTP/1.1\r\nHost: x\r\n";  // Never finished.
  asio::write(socket, asio::buffer(partial));
  const auto start = std::chrono::steady_clock::now();
  char byte = 0;
  boost::system::error_code ec;
  socket.read_some(asio::buffer(&byte, 1), ec);  // Returns when the server gives up.
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(ec) << "the server should close a stalled connection";
  EXPECT_LT(waited, 5s);
}

TEST_F(Listener, ContextNamesTheLoopbackPeerWithoutTls) {
  auto body = json(get(port(), "/context"));
  EXPECT_EQ(body.at("remote_address").as_string(), "127.0.0.1");
  EXPECT_TRUE(body.at("loopback").as_bool());
  EXPECT_FALSE(body.at("tls").as_bool());
}

TEST_F(Listener, EveryResponseCarriesAFreshRequestId) {
  auto first = get(port(), "/context");
  auto second = get(port(), "/nothing");  // A 404 too.
  const std::string id1{first[server::kRequestIdHeader]};
  const std::string id2{second[server::kRequestIdHeader]};
  EXPECT_TRUE(std::regex_match(id1, std::regex("[0-9a-f]{16}"))) << id1;
  EXPECT_TRUE(std::regex_match(id2, std::regex("[0-9a-f]{16}"))) << id2;
  EXPECT_NE(id1, id2);
  EXPECT_EQ(json(first).at("request_id").as_string(), id1);  // What the handler saw.
}

TEST_F(Listener, AValidIncomingRequestIdIsKept) {
  auto r = get(port(), "/context", {{"X-Request-Id", "client-Trace_42"}});
  EXPECT_EQ(r[server::kRequestIdHeader], "client-Trace_42");
  EXPECT_EQ(json(r).at("request_id").as_string(), "client-Trace_42");
}

TEST_F(Listener, AnInvalidIncomingRequestIdIsReplaced) {
  for (const std::string& bad : {std::string(65, 'a'), std::string("a b"), std::string("x;y")}) {
    auto r = get(port(), "/context", {{"X-Request-Id", bad}});
    EXPECT_TRUE(std::regex_match(std::string{r[server::kRequestIdHeader]},
                                 std::regex("[0-9a-f]{16}")))
        << bad;
  }
}

TEST_F(Listener, HandlerPrivateHeadersNeverReachTheClient) {
  auto r = get(port(), "/users/alice?email=alice@example.org");
  EXPECT_EQ(r.result(), http::status::ok);
  EXPECT_EQ(r.find(server::kRouteHeader), r.end());
  EXPECT_EQ(r.find(server::kUserHeader), r.end());
}

TEST_F(Listener, ASlowAnswerIsNotCutByTheReadTimeout) {
  // read_timeout is 1 s; the answer takes 1.5 s, as a commit might under load.
  auto r = get(port(), "/slow?ms=1500");
  EXPECT_EQ(r.result(), http::status::ok);
  EXPECT_TRUE(json(r).at("slow").as_bool());
}

TEST_F(Listener, PipelinedRequestsAreHandledOneAtATime) {
  Client client{port()};
  client.write(http::verb::get, "/slow?ms=200", "", {{"X-Request-Id", "first"}});
  client.write(http::verb::get, "/slow?ms=10", "", {{"X-Request-Id", "second"}});
  auto a = client.read();
  auto b = client.read();
  EXPECT_EQ(a[server::kRequestIdHeader], "first");
  EXPECT_EQ(b[server::kRequestIdHeader], "second");
  EXPECT_EQ(handler_.max_active(), 1) << "the connection was read while a request was handled";
}

TEST_F(Listener, AnAnswerAfterTheClientLeftIsHarmless) {
  {
    Client client{port()};
    client.write(http::verb::get, "/slow?ms=200");
  }  // Gone before the answer.
  EXPECT_TRUE(eventually([&] { return running_.server().requests_in_flight() == 0; }));
  EXPECT_TRUE(eventually([&] { return running_.server().open_connections() == 0; }));
  EXPECT_EQ(get(port(), "/healthz").result(), http::status::ok);
}

TEST_F(Listener, ADroppedResponderAnswers500) {
  auto r = get(port(), "/drop");
  EXPECT_EQ(r.result(), http::status::internal_server_error);
  EXPECT_EQ(json(r).at("error").at("code").as_string(), "internal");
  EXPECT_FALSE(r.keep_alive());
}

TEST(ListenerLimits, ConnectionsOverTheCapAreRefused) {
  TestHandler handler;
  server::Limits limits = test_limits();
  limits.connections_max = 1;
  limits.idle_timeout = 10s;
  Running running{handler, limits};
  ASSERT_TRUE(running.start());
  Client first{running.port()};
  EXPECT_EQ(first.send(http::verb::get, "/healthz").result(), http::status::ok);
  Client second{running.port()};
  HttpResponse response;
  try {
    second.write(http::verb::get, "/healthz");
  } catch (const boost::system::system_error&) {  // Already closed: refused all the same.
  }
  EXPECT_TRUE(second.try_read(response)) << "a connection over the cap must be closed";
  EXPECT_EQ(first.send(http::verb::get, "/healthz").result(), http::status::ok);
}

TEST(ListenerHook, CountsRequestsAndReportsRouteTemplates) {
  TestHandler handler;
  Running running{handler, test_limits()};
  std::mutex mutex;
  std::vector<std::pair<std::string, unsigned>> seen;
  running.server().set_on_request([&](std::string_view route, unsigned status, std::uint64_t) {
    const std::lock_guard lock{mutex};
    seen.emplace_back(std::string{route}, status);
  });
  ASSERT_TRUE(running.start());
  get(running.port(), "/users/bob");
  get(running.port(), "/nothing");
  Client big{running.port()};
  big.send(http::verb::post, "/echo", std::string(5000, 'x'));
  ASSERT_TRUE(eventually([&] { return running.server().requests_total() == 3; }));
  running.stop_and_join();
  const std::lock_guard lock{mutex};
  ASSERT_EQ(seen.size(), 3U);
  EXPECT_EQ(seen[0], (std::pair<std::string, unsigned>{"/users/{id}", 200}));
  EXPECT_EQ(seen[1], (std::pair<std::string, unsigned>{"-", 404}));
  EXPECT_EQ(seen[2], (std::pair<std::string, unsigned>{"-", 413}));
}

// ---------------------------------------------------------------------------------------------
TEST(GracefulStop, AnInFlightRequestStillGetsItsResponse) {
  TestHandler handler;
  Running running{handler, test_limits()};
  ASSERT_TRUE(running.start());
  Client client{running.port()};
  client.write(http::verb::get, "/slow?ms=300");
  ASSERT_TRUE(eventually([&] { return running.server().requests_in_flight() == 1; }));
  const auto took = running.stop_and_join();
  HttpResponse response;
  EXPECT_FALSE(client.try_read(response));
  EXPECT_EQ(response.result(), http::status::ok);
  EXPECT_FALSE(response.keep_alive()) << "a draining server closes after the answer";
  EXPECT_LT(took, 3000ms);
  EXPECT_EQ(running.server().open_connections(), 0U);
}

TEST(GracefulStop, IdleConnectionsDoNotDelayTheStop) {
  TestHandler handler;
  server::Limits limits = test_limits();
  limits.idle_timeout = 30s;
  limits.read_timeout = 30s;  // Neither timeout may be what ends them.
  Running running{handler, limits};
  ASSERT_TRUE(running.start());
  Client idle{running.port()};
  EXPECT_EQ(idle.send(http::verb::get, "/healthz").result(), http::status::ok);
  asio::io_context io;
  tcp::socket half(io);  // Connected, request half sent.
  half.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), running.port()));
  asio::write(half, asio::buffer(std::string{"GET /healthz HTTP/1.1\r\n"}));
  ASSERT_TRUE(eventually([&] { return running.server().open_connections() == 2; }));
  // Well under the 5 s drain limit and the 30 s timeouts, with room for a loaded machine.
  EXPECT_LT(running.stop_and_join(), 3000ms);
}

// The stop can come as a connection's first bytes arrive: a read that completed, its handler
// not yet run, is past cancelling. Many rounds, so the race is met.
TEST(GracefulStop, AHeaderArrivingAsTheStopBeginsDoesNotDelayIt) {
  for (int round = 0; round < 30; ++round) {
    TestHandler handler;
    server::Limits limits = test_limits();
    limits.idle_timeout = 30s;
    limits.read_timeout = 30s;
    Running running{handler, limits};
    ASSERT_TRUE(running.start());
    asio::io_context io;
    tcp::socket half(io);
    half.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), running.port()));
    ASSERT_TRUE(eventually([&] { return running.server().open_connections() == 1; }));
    asio::write(half, asio::buffer(std::string{"GET /healthz HTTP/1.1\r\n"}));
    ASSERT_LT(running.stop_and_join(), 3000ms) << "round " << round;
  }
}

TEST(GracefulStop, NewConnectionsAreRefusedOnceStopped) {
  TestHandler handler;
  Running running{handler, test_limits()};
  ASSERT_TRUE(running.start());
  const unsigned short port = running.port();
  running.stop_and_join();
  asio::io_context io;
  tcp::socket socket(io);
  boost::system::error_code ec;
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
  EXPECT_EQ(ec, asio::error::connection_refused);
}

TEST(GracefulStop, GivesUpAfterTheDrainLimitAndLateAnswersAreHarmless) {
  TestHandler handler;
  Running running{handler, test_limits()};
  ASSERT_TRUE(running.start());
  Client client{running.port()};
  client.write(http::verb::get, "/never");
  ASSERT_TRUE(eventually([&] { return running.server().requests_in_flight() == 1; }));
  const auto start = std::chrono::steady_clock::now();
  running.server().drain(1s);
  running.join();
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, 900ms);
  EXPECT_LT(took, 3000ms);
  running.destroy();  // The Server is gone; its in-flight session with it.
  HttpResponse response;
  EXPECT_TRUE(client.try_read(response)) << "abandoned: closed without an answer";
  handler.answer_held();  // A Responder firing after the Server died does nothing.
}

// ---------------------------------------------------------------------------------------------
// A certificate made once per test binary with scripts/make-dev-cert.sh.
class Tls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() /
                        ("trail-listener-test-" + std::to_string(::getpid())));
    make_cert(*dir_ / "a");
    make_cert(*dir_ / "b");
  }
  static void TearDownTestSuite() {
    std::error_code ignored;
    fs::remove_all(*dir_, ignored);
    delete dir_;
    dir_ = nullptr;
  }
  static void make_cert(const fs::path& dir) {
    const std::string command = std::string{"bash '"} + TRAIL_SOURCE_DIR +
                                "/scripts/make-dev-cert.sh' '" + dir.string() + "' >/dev/null";
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
  }
  static server::TlsConfig config(const std::string& name = "a") {
    return server::TlsConfig{(*dir_ / name / "cert.pem").string(),
                             (*dir_ / name / "key.pem").string()};
  }

  // One HTTPS request, verifying the server against cert `name` and host "localhost".
  // `tls_max` caps the client's protocol version (0: no cap).
  static beast::error_code https_get(unsigned short port, const std::string& target,
                                     HttpResponse& response, int tls_max = 0) {
    ssl::context context{ssl::context::tls_client};
    context.load_verify_file(config().cert_file);
    context.set_verify_mode(ssl::verify_peer);
    if (tls_max != 0) {
      SSL_CTX_set_security_level(context.native_handle(), 0);
      SSL_CTX_set_min_proto_version(context.native_handle(), 0);
      SSL_CTX_set_max_proto_version(context.native_handle(), tls_max);
    }
    asio::io_context io;
    beast::ssl_stream<beast::tcp_stream> stream{io, context};
    SSL_set_tlsext_host_name(stream.native_handle(), "localhost");
    stream.set_verify_callback(ssl::host_name_verification("localhost"));
    beast::error_code ec;
    beast::get_lowest_layer(stream).connect(
        tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
    if (ec) return ec;
    set_receive_timeout(beast::get_lowest_layer(stream).socket(), 10s);
    stream.handshake(ssl::stream_base::client, ec);
    if (ec) return ec;
    http::request<http::string_body> request{http::verb::get, target, 11};
    request.set(http::field::host, "localhost");
    http::write(stream, request, ec);
    if (ec) return ec;
    beast::flat_buffer buffer;
    http::read(stream, buffer, response, ec);
    if (ec) return ec;
    beast::error_code ignored;
    stream.shutdown(ignored);
    return {};
  }

  static fs::path* dir_;
};
fs::path* Tls::dir_ = nullptr;

TEST_F(Tls, ServesHttpsVerifiedAgainstTheDevCertificate) {
  TestHandler handler;
  Running running{handler, test_limits(), config()};
  ASSERT_TRUE(running.start());
  EXPECT_TRUE(running.server().tls());
  HttpResponse response;
  const auto ec = https_get(running.port(), "/context", response);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(response.result(), http::status::ok);
  EXPECT_TRUE(json(response).at("tls").as_bool());
  EXPECT_TRUE(json(response).at("loopback").as_bool());
}

TEST_F(Tls, PlainHttpToTheTlsPortGetsNoAnswer) {
  TestHandler handler;
  Running running{handler, test_limits(), config()};
  ASSERT_TRUE(running.start());
  Client client{running.port()};
  HttpResponse response;
  client.write(http::verb::get, "/healthz");
  const auto ec = client.try_read(response);
  EXPECT_TRUE(ec || response.result() != http::status::ok);
  EXPECT_EQ(handler.calls(), 0);
  // And the TLS port still serves TLS.
  HttpResponse good;
  EXPECT_FALSE(https_get(running.port(), "/healthz", good));
}

TEST_F(Tls, RefusesTls11) {
  TestHandler handler;
  Running running{handler, test_limits(), config()};
  ASSERT_TRUE(running.start());
  HttpResponse response;
  EXPECT_TRUE(https_get(running.port(), "/healthz", response, TLS1_1_VERSION));
  EXPECT_EQ(handler.calls(), 0);
}

TEST_F(Tls, UnreadableCertificateIsInvalidNamingTheFile) {
  TestHandler handler;
  server::TlsConfig tls = config();
  tls.cert_file = (*dir_ / "missing" / "cert.pem").string();
  server::Server server{handler, test_limits(), tls};
  auto port = server.listen("127.0.0.1", 0);
  ASSERT_FALSE(port.is_ok());
  EXPECT_EQ(port.status().code(), Code::kInvalid);
  EXPECT_NE(port.status().detail().find(tls.cert_file), std::string::npos)
      << port.status().detail();
}

TEST_F(Tls, UnreadableKeyIsInvalidNamingTheFile) {
  TestHandler handler;
  server::TlsConfig tls = config();
  tls.key_file = tls.cert_file;  // A certificate is not a key.
  server::Server server{handler, test_limits(), tls};
  auto port = server.listen("127.0.0.1", 0);
  ASSERT_FALSE(port.is_ok());
  EXPECT_EQ(port.status().code(), Code::kInvalid);
  EXPECT_NE(port.status().detail().find(tls.key_file), std::string::npos)
      << port.status().detail();
}

TEST_F(Tls, KeyOfAnotherCertificateIsInvalid) {
  TestHandler handler;
  server::TlsConfig tls{config("a").cert_file, config("b").key_file};
  server::Server server{handler, test_limits(), tls};
  auto port = server.listen("127.0.0.1", 0);
  ASSERT_FALSE(port.is_ok());
  EXPECT_EQ(port.status().code(), Code::kInvalid);
  EXPECT_NE(port.status().detail().find("does not match"), std::string::npos)
      << port.status().detail();
}

TEST_F(Tls, TheScriptLeavesAValidPairAlone) {
  const fs::path cert = *dir_ / "a" / "cert.pem";
  const auto before = fs::last_write_time(cert);
  make_cert(*dir_ / "a");
  EXPECT_EQ(fs::last_write_time(cert), before);
  const auto perms = fs::status(*dir_ / "a" / "key.pem").permissions();
  EXPECT_EQ(perms & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
}

// ---------------------------------------------------------------------------------------------
// Collects formatted lines; safe to read while the server logs.
class CaptureSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::vector<std::string> lines() {
    const std::lock_guard lock{mutex_};
    return lines_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    lines_.emplace_back(formatted.data(), formatted.size());
  }
  void flush_() override {}

 private:
  std::vector<std::string> lines_;
};

class AccessLog : public ::testing::Test {
 protected:
  void SetUp() override {
    sink_ = std::make_shared<CaptureSink>();
    server::LogOptions options;
    options.async = false;
    options.sink = sink_;
    server::init_json_logging(options);
  }
  void TearDown() override {
    server::LogOptions options;
    options.async = false;  // Back to stderr for the other tests.
    server::init_json_logging(options);
  }
  std::vector<boost::json::object> request_lines() {
    std::vector<boost::json::object> out;
    for (const auto& line : sink_->lines()) {
      auto object = boost::json::parse(line).as_object();
      if (object.at("msg") == "request") out.push_back(std::move(object));
    }
    return out;
  }

  std::shared_ptr<CaptureSink> sink_;
};

TEST_F(AccessLog, RequestLineIsOneJsonObjectWithEveryField) {
  server::RequestContext context;
  context.remote_address = "127.0.0.1";
  context.request_id = "abc";
  server::log_request(context, "GET", "/v1/cases/{id}", 200, 1234, 5678, "u-\"7\"");
  server::log_request(context, "GET", "/healthz", 200, 2, 10, "");
  const auto lines = sink_->lines();
  ASSERT_EQ(lines.size(), 2U);
  EXPECT_EQ(lines[0].back(), '\n');
  EXPECT_EQ(lines[0].find('\n'), lines[0].size() - 1) << "one object per line";
  const auto object = boost::json::parse(lines[0]).as_object();
  EXPECT_TRUE(std::regex_match(std::string{object.at("ts").as_string()},
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
      << object.at("ts");
  EXPECT_EQ(object.at("level"), "info");
  EXPECT_EQ(object.at("msg"), "request");
  EXPECT_EQ(object.at("request_id"), "abc");
  EXPECT_EQ(object.at("method"), "GET");
  EXPECT_EQ(object.at("route"), "/v1/cases/{id}");
  EXPECT_EQ(object.at("status"), 200);
  EXPECT_DOUBLE_EQ(object.at("duration_ms").to_number<double>(), 5.678);
  EXPECT_EQ(object.at("bytes"), 1234);
  EXPECT_EQ(object.at("remote"), "127.0.0.1");
  EXPECT_EQ(object.at("user"), "u-\"7\"");
  EXPECT_TRUE(boost::json::parse(lines[1]).as_object().at("user").is_null());
}

TEST_F(AccessLog, ServerLogsTheRouteTemplateNotTheTarget) {
  TestHandler handler;
  Running running{handler, test_limits()};
  ASSERT_TRUE(running.start());
  auto r = get(running.port(), "/users/secret-patient-id?email=alice@example.org");
  ASSERT_TRUE(eventually([&] { return !request_lines().empty(); }));
  const auto line = request_lines().front();
  EXPECT_EQ(line.at("route"), "/users/{id}");
  EXPECT_EQ(line.at("user"), "u-42");
  EXPECT_EQ(line.at("status"), 200);
  EXPECT_EQ(boost::json::value_to<std::string>(line.at("request_id")),
            std::string{r[server::kRequestIdHeader]});
  for (const auto& raw : sink_->lines()) {
    EXPECT_EQ(raw.find("secret-patient-id"), std::string::npos) << raw;
    EXPECT_EQ(raw.find("alice@"), std::string::npos) << raw;
  }
}

TEST_F(AccessLog, QuietLimitsWriteNoAccessLines) {
  TestHandler handler;
  server::Limits limits = test_limits();
  limits.access_log = false;
  Running running{handler, limits};
  ASSERT_TRUE(running.start());
  EXPECT_EQ(get(running.port(), "/healthz").result(), http::status::ok);
  ASSERT_TRUE(eventually([&] { return running.server().requests_total() == 1; }));
  running.stop_and_join();
  EXPECT_TRUE(request_lines().empty());
}

TEST_F(AccessLog, PlainSpdlogMessagesBecomeEscapedJson) {
  spdlog::warn("said \"{}\"\n\ttab \x01", "hi");
  const auto lines = sink_->lines();
  ASSERT_EQ(lines.size(), 1U);
  const auto object = boost::json::parse(lines[0]).as_object();
  EXPECT_EQ(object.at("level"), "warning");
  EXPECT_EQ(object.at("msg"), "said \"hi\"\n\ttab \x01");
}

TEST_F(AccessLog, StructuredFieldsAreMergedIntoTheLine) {
  boost::json::object fields;
  fields["seq"] = 5;
  fields["project"] = "p\"1";
  server::log_fields(spdlog::level::info, "appended", fields);
  const auto lines = sink_->lines();
  ASSERT_EQ(lines.size(), 1U);
  const auto object = boost::json::parse(lines[0]).as_object();
  EXPECT_EQ(object.at("msg"), "appended");
  EXPECT_EQ(object.at("seq"), 5);
  EXPECT_EQ(object.at("project"), "p\"1");
}

}  // namespace
}  // namespace trail::testing
