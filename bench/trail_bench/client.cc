#include "bench/trail_bench/client.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <type_traits>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>

#include "bench/trail_bench/check.h"
#include "bench/trail_bench/workload.h"

namespace trail::bench {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;
using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kAwait = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kSetupBatchEvents = 100;     // case.created events per set-up request.
constexpr std::size_t kBodyExcerptBytesMax = 200;  // Of an unexpected answer, in messages.
constexpr auto kReconnectBackoff = std::chrono::milliseconds(100);
constexpr auto kTlsShutdownTimeout = std::chrono::seconds(1);
constexpr std::size_t kReadBufferBytes = 64U << 10U;  // The most Beast reads at a time.

// The outcome of one exchange: ok when `ec` is clear; else the step that failed.
struct IoError {
  beast::error_code ec;
  std::string_view step;  // "connect", "tls", "handshake", "write" or "read".
};

std::string describe(const IoError& io) { return std::string(io.step) + ": " + io.ec.message(); }

std::string describe(const Response& response) {
  std::string text = std::to_string(response.result_int());
  const auto reason = http::obsolete_reason(response.result());
  text.append(" ").append(reason.data(), reason.size());
  std::string_view body = response.body();
  if (!body.empty()) {
    text += ": ";
    for (const char c : body.substr(0, kBodyExcerptBytesMax)) text.push_back(c == '\n' ? ' ' : c);
    if (body.size() > kBodyExcerptBytesMax) text += "...";
  }
  return text;
}

bool is_ip_literal(const std::string& host) {
  beast::error_code ec;
  (void)asio::ip::make_address(host, ec);
  return !ec;
}

// One keep-alive connection to the server, made when first needed and again after any error.
template <class Stream>
class Connection {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

  Connection(asio::any_io_executor executor, const Transport& transport)
      : executor_{std::move(executor)}, transport_{transport} {
    TRAIL_BENCH_CHECK(kTls == (transport_.tls != nullptr));
    // Beast reads at most what the buffer has room for, and a flat_buffer keeps the capacity
    // of its first read (512 bytes): a batch's receipts came in 20-odd reads without this.
    buffer_.reserve(kReadBufferBytes);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() { close(); }

  std::uint64_t connects() const { return connects_; }

  // Writes `request` and reads the answer into `response` (which must be empty), connecting
  // first when not connected. On an error the connection is closed, so the next call
  // reconnects; so is it when the server answers without keep-alive.
  asio::awaitable<IoError> exchange(Request& request, Response& response) {
    if (!stream_) {
      if (IoError failed = co_await connect(); failed.ec) co_return failed;
    }
    TRAIL_BENCH_CHECK(stream_.has_value());
    auto& lowest = beast::get_lowest_layer(*stream_);
    lowest.expires_after(transport_.timeout);
    auto [write_ec, written] = co_await http::async_write(*stream_, request, kAwait);
    if (write_ec) {
      close();
      co_return IoError{write_ec, "write"};
    }
    lowest.expires_after(transport_.timeout);
    auto [read_ec, read] = co_await http::async_read(*stream_, buffer_, response, kAwait);
    if (read_ec) {
      close();
      co_return IoError{read_ec, "read"};
    }
    lowest.expires_never();
    if (!response.keep_alive()) close();
    co_return IoError{};
  }

  // Closes gracefully: a TLS close_notify (waiting at most kTlsShutdownTimeout for the peer's),
  // then the socket.
  asio::awaitable<void> shut_down() {
    if constexpr (kTls) {
      if (stream_) {
        beast::get_lowest_layer(*stream_).expires_after(kTlsShutdownTimeout);
        auto [ec] = co_await stream_->async_shutdown(kAwait);
        (void)ec;  // The peer may just close; either way the connection is over.
      }
    }
    close();
  }

 private:
  asio::awaitable<IoError> connect() {
    close();
    if constexpr (kTls) {
      stream_.emplace(executor_, *transport_.tls);
    } else {
      stream_.emplace(executor_);
    }
    buffer_.clear();
    auto& lowest = beast::get_lowest_layer(*stream_);
    lowest.expires_after(transport_.timeout);
    auto [connect_ec, endpoint] = co_await lowest.async_connect(transport_.endpoints, kAwait);
    if (connect_ec) {
      close();
      co_return IoError{connect_ec, "connect"};
    }
    ++connects_;
    beast::error_code ignored;
    lowest.socket().set_option(tcp::no_delay(true), ignored);  // Small requests, back to back.
    if constexpr (kTls) {
      const std::string& host = transport_.target.host;
      if (!is_ip_literal(host) &&
          SSL_set_tlsext_host_name(stream_->native_handle(), host.c_str()) != 1) {
        const beast::error_code ec{static_cast<int>(::ERR_get_error()),
                                   asio::error::get_ssl_category()};
        close();
        co_return IoError{ec, "tls"};
      }
      if (!transport_.insecure) stream_->set_verify_callback(ssl::host_name_verification(host));
      lowest.expires_after(transport_.timeout);
      auto [handshake_ec] = co_await stream_->async_handshake(ssl::stream_base::client, kAwait);
      if (handshake_ec) {
        close();
        co_return IoError{handshake_ec, "handshake"};
      }
    }
    lowest.expires_never();
    co_return IoError{};
  }

  void close() {
    if (!stream_) return;
    beast::error_code ignored;
    auto& socket = beast::get_lowest_layer(*stream_).socket();
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    stream_.reset();
  }

  asio::any_io_executor executor_;
  const Transport& transport_;
  std::optional<Stream> stream_;
  beast::flat_buffer buffer_;  // Bytes read past the last answer; cleared on reconnect.
  std::uint64_t connects_ = 0;
};

// A request with the headers every request carries; the caller sets the body.
Request make_request(http::verb verb, std::string_view target, const Transport& transport,
                     const std::string& authorization) {
  Request request{verb, target, 11};
  request.set(http::field::host, transport.target.host_header);
  request.set(http::field::user_agent, "trail-bench");
  request.set(http::field::accept, "application/json");
  if (!authorization.empty()) request.set(http::field::authorization, authorization);
  if (verb == http::verb::post) request.set(http::field::content_type, "application/json");
  request.keep_alive(true);
  return request;
}

std::string project_path(const Options& options, const Transport& transport) {
  return transport.target.path_prefix + "/v1/projects/" + options.project;
}

bool is_success(unsigned status) { return status >= 200 && status < 300; }

// Reports the exception a coroutine ended with: there should be none (I/O errors are values).
void report_exception(const std::exception_ptr& failure, const char* what) {
  if (!failure) return;
  try {
    std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "trail-bench: %s ended with an exception: %s\n", what, e.what());
  } catch (...) {
    std::fprintf(stderr, "trail-bench: %s ended with an unknown exception\n", what);
  }
}

// ---- Set-up ----

template <class Stream>
asio::awaitable<void> log_in(Connection<Stream>& conn, const Options& options,
                             const Transport& transport, SetupOutcome& out) {
  Request request = make_request(http::verb::post, transport.target.path_prefix + "/v1/auth/login",
                                 transport, "");
  request.body() =
      json::serialize(json::object{{"username", options.user}, {"password", options.password}});
  request.prepare_payload();
  Response response;
  const IoError io = co_await conn.exchange(request, response);
  if (io.ec) {
    out.error = "login: " + describe(io);
    co_return;
  }
  if (!is_success(response.result_int())) {
    out.error = "login: " + describe(response);
    co_return;
  }
  boost::system::error_code ec;
  const json::value doc = json::parse(response.body(), ec);
  const json::value* token = doc.is_object() ? doc.get_object().if_contains("token") : nullptr;
  if (ec || token == nullptr || !token->is_string() || token->get_string().empty()) {
    out.error = "login: the answer carries no \"token\": " + describe(response);
    co_return;
  }
  out.token = std::string(token->get_string());
  const json::value* user_id = doc.get_object().if_contains("user_id");
  if (user_id != nullptr && user_id->is_string()) out.user_id = std::string(user_id->get_string());
}

template <class Stream>
asio::awaitable<void> create_project(Connection<Stream>& conn, const Options& options,
                                     const Transport& transport, const std::string& authorization,
                                     SetupOutcome& out) {
  Request request = make_request(http::verb::post, transport.target.path_prefix + "/v1/projects",
                                 transport, authorization);
  request.body() =
      json::serialize(json::object{{"id", options.project}, {"name", options.project}});
  request.prepare_payload();
  Response response;
  const IoError io = co_await conn.exchange(request, response);
  if (io.ec) {
    out.error = "creating project: " + describe(io);
    co_return;
  }
  const unsigned status = response.result_int();
  if (is_success(status) || status == 409) co_return;  // Created, or there already.
  if (status == 403) {
    out.warnings.push_back("not allowed to create project \"" + options.project +
                           "\" (403); assuming it exists");
    co_return;
  }
  out.error = "creating project: " + describe(response);
}

template <class Stream>
asio::awaitable<void> create_cases(Connection<Stream>& conn, const Options& options,
                                   const Transport& transport, const std::string& authorization,
                                   std::span<const std::string> case_ids, SetupOutcome& out) {
  const bool tty = ::isatty(STDERR_FILENO) == 1;
  Workload workload(options, case_ids, seeded_rng()(), out.user_id);
  Request request = make_request(http::verb::post, project_path(options, transport) + "/events",
                                 transport, authorization);
  for (std::size_t first = 0; first < case_ids.size(); first += kSetupBatchEvents) {
    const auto batch =
        case_ids.subspan(first, std::min(kSetupBatchEvents, case_ids.size() - first));
    workload.create_batch(request.body(), batch);
    request.prepare_payload();
    Response response;
    const IoError io = co_await conn.exchange(request, response);
    if (io.ec) {
      out.error = "creating cases: " + describe(io);
      co_return;
    }
    if (!is_success(response.result_int())) {
      out.error = "creating cases: " + describe(response);
      co_return;
    }
    if (tty) {
      std::fprintf(stderr, "\rcreating cases %zu/%zu", first + batch.size(), case_ids.size());
    }
  }
  if (tty) std::fputc('\n', stderr);
}

template <class Stream>
asio::awaitable<void> set_up_over(const Options& options, const Transport& transport,
                                  std::span<const std::string> case_ids, SetupOutcome& out) {
  Connection<Stream> conn(co_await asio::this_coro::executor, transport);
  if (options.token.empty()) {
    co_await log_in(conn, options, transport, out);
    if (!out.error.empty()) co_return;
  } else {
    out.token = options.token;
  }
  const std::string authorization = "Bearer " + out.token;
  co_await create_project(conn, options, transport, authorization, out);
  if (!out.error.empty()) co_return;
  // Every mode updates or reads cases that exist and have an owner, as a phone's cases do: an
  // update of an unknown case would create it implicitly, ownerless, and skip the sync view's
  // per-owner log that a real case's every change writes.
  co_await create_cases(conn, options, transport, authorization, case_ids, out);
  co_await conn.shut_down();
}

// ---- The run ----

// What the connections of one thread share: all of it is touched by that thread only.
struct Worker {
  const RunShared& shared;
  Workload workload;
  Stats& stats;
  LiveCounters& live;
  std::string events_target;  // POST here.
  std::string cases_prefix;   // GET this + case id.
};

void record(Worker& worker, Op op, std::size_t events, const IoError& io,
            const Response& response, Clock::duration latency) {
  const unsigned status = io.ec ? 0U : response.result_int();
  const bool ok = !io.ec && is_success(status);
  if (ok) {
    worker.live.requests.fetch_add(1, std::memory_order_relaxed);
    worker.live.events.fetch_add(events, std::memory_order_relaxed);
  } else {
    worker.live.failures.fetch_add(1, std::memory_order_relaxed);
  }
  if (worker.shared.phase.load(std::memory_order_relaxed) != Phase::kMeasure) return;
  if (ok) {
    OpStats& op_stats = worker.stats.of(op);
    ++op_stats.requests;
    op_stats.events += events;
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(latency).count();
    op_stats.latency_us.record(static_cast<std::uint64_t>(std::max<std::int64_t>(us, 0)));
  } else if (io.ec) {
    ++worker.stats.failed_by_io[describe(io)];
  } else {
    ++worker.stats.failed_by_status[status];
    worker.stats.sample_by_status.try_emplace(status, describe(response));
  }
}

// One connection: requests back to back until the run is done.
template <class Stream>
asio::awaitable<void> closed_loop(Worker& worker, std::size_t connection_index) {
  const auto executor = co_await asio::this_coro::executor;
  const Options& options = worker.shared.options;
  const Transport& transport = worker.shared.transport;
  Connection<Stream> conn(executor, transport);
  Request append =
      make_request(http::verb::post, worker.events_target, transport, worker.shared.authorization);
  Request read =
      make_request(http::verb::get, worker.cases_prefix, transport, worker.shared.authorization);
  const std::string device = "trail-bench-" + std::to_string(connection_index);
  asio::steady_timer backoff(executor);
  while (worker.shared.phase.load(std::memory_order_relaxed) != Phase::kDone) {
    const Op op = worker.workload.next_is_read() ? Op::kRead : Op::kAppend;
    Request& request = op == Op::kRead ? read : append;
    std::size_t events = 0;
    if (op == Op::kRead) {
      request.target(worker.cases_prefix + worker.workload.random_case());
    } else {
      worker.workload.update_batch(request.body(), options.batch, device, connection_index);
      request.prepare_payload();
      events = options.batch;
    }
    Response response;
    const auto start = Clock::now();
    const IoError io = co_await conn.exchange(request, response);
    const auto latency = Clock::now() - start;
    record(worker, op, events, io, response, latency);
    if (io.ec && io.step == "connect") {  // Do not spin while the server is away.
      backoff.expires_after(kReconnectBackoff);
      auto [ignored] = co_await backoff.async_wait(kAwait);
      (void)ignored;
    }
  }
  co_await conn.shut_down();
  worker.stats.connects += conn.connects();
}

}  // namespace

std::optional<std::vector<tcp::endpoint>> resolve(const Target& target, std::string& error) {
  asio::io_context io;
  tcp::resolver resolver(io);
  beast::error_code ec;
  const auto results = resolver.resolve(target.host, target.port, ec);
  if (ec || results.empty()) {
    error = "cannot resolve " + target.host + ":" + target.port + ": " +
            (ec ? ec.message() : std::string("no addresses"));
    return std::nullopt;
  }
  std::vector<tcp::endpoint> endpoints;
  for (const auto& entry : results) endpoints.push_back(entry.endpoint());
  return endpoints;
}

ssl::context make_tls_context(bool insecure) {
  ssl::context context(ssl::context::tls_client);
  context.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                      ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  beast::error_code ec;
  context.set_default_verify_paths(ec);  // Without a trust store, verification fails later.
  context.set_verify_mode(insecure ? ssl::verify_none : ssl::verify_peer);
  return context;
}

SetupOutcome set_up(const Options& options, const Transport& transport,
                    std::span<const std::string> case_ids) {
  SetupOutcome out;
  asio::io_context io(1);
  auto done = [&out](const std::exception_ptr& failure) {
    report_exception(failure, "set-up");
    if (failure && out.error.empty()) out.error = "set-up failed with an exception";
  };
  if (transport.target.tls) {
    asio::co_spawn(io, set_up_over<TlsStream>(options, transport, case_ids, out), done);
  } else {
    asio::co_spawn(io, set_up_over<PlainStream>(options, transport, case_ids, out), done);
  }
  io.run();
  if (out.error.empty()) TRAIL_BENCH_CHECK(!out.token.empty());
  return out;
}

void run_worker(const RunShared& shared, std::size_t first_connection, std::size_t connection_count,
                std::uint64_t seed, Stats& stats, LiveCounters& live) {
  TRAIL_BENCH_CHECK(connection_count >= 1);
  asio::io_context io(1);  // One thread runs it: no locking inside Asio.
  const std::string project = project_path(shared.options, shared.transport);
  Worker worker{shared,
                Workload(shared.options, shared.case_ids, seed),
                stats,
                live,
                project + "/events",
                project + "/cases/"};
  for (std::size_t i = 0; i < connection_count; ++i) {
    auto done = [](const std::exception_ptr& failure) {
      report_exception(failure, "a connection");
    };
    if (shared.transport.target.tls) {
      asio::co_spawn(io, closed_loop<TlsStream>(worker, first_connection + i), done);
    } else {
      asio::co_spawn(io, closed_loop<PlainStream>(worker, first_connection + i), done);
    }
  }
  io.run();
}

}  // namespace trail::bench
