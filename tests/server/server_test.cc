// traild's front door over real loopback sockets: routing, JSON errors, limits, timeouts.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include "server/listener.h"
#include "server/router.h"

namespace trail::testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

TEST(ListenAddress, PlainHttpOnlyOnLoopback) {
  EXPECT_TRUE(server::check_listen_address("127.0.0.1", false).is_ok());
  EXPECT_TRUE(server::check_listen_address("::1", false).is_ok());
  EXPECT_EQ(server::check_listen_address("0.0.0.0", false).code(), Code::kInvalid);
  EXPECT_EQ(server::check_listen_address("10.1.2.3", false).code(), Code::kInvalid);
  EXPECT_TRUE(server::check_listen_address("10.1.2.3", true).is_ok());
  EXPECT_EQ(server::check_listen_address("localhost", false).code(), Code::kInvalid);
}

class Loopback : public ::testing::Test {
 protected:
  void SetUp() override {
    server::Limits limits;
    limits.body_bytes_max = 1024;
    limits.read_timeout = std::chrono::seconds(1);
    limits.idle_timeout = std::chrono::seconds(1);
    server_ = std::make_unique<server::Server>(router_, limits);
    auto port = server_->listen("127.0.0.1", 0);
    ASSERT_TRUE(port.is_ok()) << port.status().to_string();
    port_ = *port;
    thread_ = std::thread([this] { server_->run(); });
  }
  void TearDown() override {
    server_->stop();
    thread_.join();
  }
  http::response<http::string_body> send(http::verb verb, const std::string& target,
                                         const std::string& body = "") {
    asio::io_context io;
    beast::tcp_stream stream(io);
    stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
    http::request<http::string_body> request{verb, target, 11};
    request.set(http::field::host, "127.0.0.1");
    request.body() = body;
    request.prepare_payload();
    http::write(stream, request);
    beast::flat_buffer buffer;
    http::response<http::string_body> response;
    http::read(stream, buffer, response);
    return response;
  }

  server::Router router_;
  std::unique_ptr<server::Server> server_;
  unsigned short port_ = 0;
  std::thread thread_;
};

TEST_F(Loopback, HealthzAnswersJson) {
  auto r = send(http::verb::get, "/healthz");
  EXPECT_EQ(r.result(), http::status::ok);
  EXPECT_EQ(r[http::field::content_type], "application/json");
  EXPECT_EQ(boost::json::parse(r.body()).at("status").as_string(), "ok");
}

TEST_F(Loopback, UnknownPathsAndMethodsGetJsonErrors) {
  auto missing = send(http::verb::get, "/v1/nothing-here");
  EXPECT_EQ(missing.result(), http::status::not_found);
  EXPECT_EQ(boost::json::parse(missing.body()).at("error").at("code").as_string(), "not_found");
  auto wrong = send(http::verb::delete_, "/healthz");
  EXPECT_EQ(wrong.result(), http::status::method_not_allowed);
}

TEST_F(Loopback, OversizedBodyIs413WithJson) {
  auto r = send(http::verb::post, "/healthz", std::string(5000, 'x'));
  EXPECT_EQ(r.result(), http::status::payload_too_large);
  EXPECT_EQ(boost::json::parse(r.body()).at("error").at("code").as_string(), "too_large");
}

TEST_F(Loopback, KeepAliveServesSeveralRequestsOnOneConnection) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
  for (int i = 0; i < 3; ++i) {
    http::request<http::string_body> request{http::verb::get, "/healthz", 11};
    request.set(http::field::host, "127.0.0.1");
    http::write(stream, request);
    beast::flat_buffer buffer;
    http::response<http::string_body> response;
    http::read(stream, buffer, response);
    EXPECT_EQ(response.result(), http::status::ok);
  }
}

TEST_F(Loopback, AStalledClientIsCutOff) {
  asio::io_context io;
  tcp::socket socket(io);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
  const std::string partial = "GET /healthz HTTP/1.1\r\nHost: x\r\n";  // Never finished.
  asio::write(socket, asio::buffer(partial));
  const auto start = std::chrono::steady_clock::now();
  char byte = 0;
  boost::system::error_code ec;
  socket.read_some(asio::buffer(&byte, 1), ec);  // Returns when the server gives up.
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(ec) << "the server should close a stalled connection";
  EXPECT_LT(waited, std::chrono::seconds(5));
}

}  // namespace
}  // namespace trail::testing
