// A small blocking HTTP/1.1 client for integration tests (Boost.Beast): one keep-alive
// connection, reopened when the server closes it; optional TLS verified against a given CA.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>

namespace trail::testing {

namespace http = boost::beast::http;

struct HttpResult {
  unsigned status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // Lower-case names.
  // The body parsed as JSON (null when it is not JSON), parsed once and kept with the result.
  const boost::json::value& json() const {
    if (!parsed_) {
      boost::system::error_code ec;
      auto v = boost::json::parse(body, ec);
      parsed_ = std::make_shared<boost::json::value>(ec ? boost::json::value{} : std::move(v));
    }
    return *parsed_;
  }
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
  // The error code of a JSON error body, or "".
  std::string error_code() const {
    const auto& v = json();
    if (!v.is_object() || !v.as_object().contains("error")) return "";
    const auto& e = v.as_object().at("error");
    if (!e.is_object() || !e.as_object().contains("code")) return "";
    return std::string(e.as_object().at("code").as_string());
  }

 private:
  mutable std::shared_ptr<boost::json::value> parsed_;
};

class HttpClient {
 public:
  // `ca_file` set: speak TLS and verify the server against that certificate.
  explicit HttpClient(unsigned short port, std::optional<std::string> ca_file = std::nullopt)
      : port_{port}, ca_file_{std::move(ca_file)} {}

  void set_token(std::string token) { token_ = std::move(token); }
  void set_basic(const std::string& user, const std::string& password) {
    std::string plain = user + ":" + password;
    static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    std::size_t i = 0;
    for (; i + 2 < plain.size(); i += 3) {
      const unsigned n = (static_cast<unsigned char>(plain[i]) << 16U) |
                         (static_cast<unsigned char>(plain[i + 1]) << 8U) |
                         static_cast<unsigned char>(plain[i + 2]);
      out += table[(n >> 18U) & 63U];
      out += table[(n >> 12U) & 63U];
      out += table[(n >> 6U) & 63U];
      out += table[n & 63U];
    }
    if (i + 1 == plain.size()) {
      const unsigned n = static_cast<unsigned char>(plain[i]) << 16U;
      out += table[(n >> 18U) & 63U];
      out += table[(n >> 12U) & 63U];
      out += "==";
    } else if (i + 2 == plain.size()) {
      const unsigned n = (static_cast<unsigned char>(plain[i]) << 16U) |
                         (static_cast<unsigned char>(plain[i + 1]) << 8U);
      out += table[(n >> 18U) & 63U];
      out += table[(n >> 12U) & 63U];
      out += table[(n >> 6U) & 63U];
      out += '=';
    }
    authorization_ = "Basic " + out;
    token_.clear();
  }
  // A failure to connect or to exchange is then a status 0 result, not a test failure (for
  // tests that stop the server under load).
  void set_quiet(bool quiet) { quiet_ = quiet; }

  // Writes `bytes` as they are on a new connection and reads one response (status 0 when the
  // server closes without one).
  HttpResult raw(const std::string& bytes) {
    reset();
    HttpResult out;
    try {
      connect();
      if (tls_) {
        boost::asio::write(*tls_, boost::asio::buffer(bytes));
      } else {
        boost::asio::write(plain_->socket(), boost::asio::buffer(bytes));
      }
      http::response<http::string_body> res;
      boost::beast::flat_buffer buffer;
      if (tls_) {
        http::read(*tls_, buffer, res);
      } else {
        http::read(*plain_, buffer, res);
      }
      out.status = res.result_int();
      out.body = res.body();
    } catch (const std::exception&) {
    }
    reset();
    return out;
  }

  void clear_auth() {
    token_.clear();
    authorization_.clear();
  }

  HttpResult get(const std::string& target, const std::map<std::string, std::string>& headers = {}) {
    return request(http::verb::get, target, "", headers);
  }
  HttpResult post(const std::string& target, const std::string& body,
                  const std::map<std::string, std::string>& headers = {}) {
    return request(http::verb::post, target, body, headers);
  }
  HttpResult post_json(const std::string& target, const boost::json::value& body) {
    return request(http::verb::post, target, boost::json::serialize(body),
                   {{"Content-Type", "application/json"}});
  }

  HttpResult request(http::verb verb, const std::string& target, const std::string& body,
                     const std::map<std::string, std::string>& headers = {}) {
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.keep_alive(true);
    if (!token_.empty()) req.set(http::field::authorization, "Bearer " + token_);
    if (!authorization_.empty()) req.set(http::field::authorization, authorization_);
    for (const auto& [k, v] : headers) req.set(k, v);
    req.body() = body;
    req.prepare_payload();
    for (int attempt = 0; attempt < 2; ++attempt) {
      try {
        connect();
        http::response<http::string_body> res;
        boost::beast::flat_buffer buffer;
        if (tls_) {
          http::write(*tls_, req);
          http::read(*tls_, buffer, res);
        } else {
          http::write(*plain_, req);
          http::read(*plain_, buffer, res);
        }
        HttpResult out;
        out.status = res.result_int();
        out.body = res.body();
        for (const auto& field : res) {
          std::string name(field.name_string());
          for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          out.headers[name] = std::string(field.value());
        }
        if (!res.keep_alive()) reset();
        return out;
      } catch (const std::exception& e) {
        reset();  // The server closed a kept-alive connection: retry once on a new one.
        if (attempt == 1 && !quiet_) ADD_FAILURE() << "HTTP " << target << ": " << e.what();
      }
    }
    return {};
  }

 private:
  void connect() {
    if (plain_ || tls_) return;
    auto endpoint = boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port_);
    if (!ca_file_) {
      plain_ = std::make_unique<boost::beast::tcp_stream>(io_);
      plain_->connect(endpoint);
      return;
    }
    ssl_ = std::make_unique<boost::asio::ssl::context>(boost::asio::ssl::context::tls_client);
    ssl_->load_verify_file(*ca_file_);
    ssl_->set_verify_mode(boost::asio::ssl::verify_peer);
    tls_ = std::make_unique<boost::beast::ssl_stream<boost::beast::tcp_stream>>(io_, *ssl_);
    boost::beast::get_lowest_layer(*tls_).connect(endpoint);
    tls_->handshake(boost::asio::ssl::stream_base::client);
  }
  void reset() {
    plain_.reset();
    tls_.reset();
    ssl_.reset();
  }

  unsigned short port_;
  std::optional<std::string> ca_file_;
  std::string token_;
  std::string authorization_;
  bool quiet_ = false;
  boost::asio::io_context io_;
  std::unique_ptr<boost::beast::tcp_stream> plain_;
  std::unique_ptr<boost::asio::ssl::context> ssl_;
  std::unique_ptr<boost::beast::ssl_stream<boost::beast::tcp_stream>> tls_;
};

}  // namespace trail::testing
