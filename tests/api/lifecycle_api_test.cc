// traild as a process: limits with clear errors, graceful shutdown that loses no acknowledged
// event, TLS with a self-signed certificate made by scripts/make-dev-cert.sh, and refusing
// plain HTTP off loopback.
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "tests/api/api_fixture.h"

namespace trail::testing {
namespace {

namespace json = boost::json;

TEST_F(ApiTest, OversizedAndMalformedBodiesGet4xxAndTheServerStaysUp) {
  auto sup = login("sup");
  ASSERT_NE(sup, nullptr);
  // The limit is checked against Content-Length before the body is read.
  auto huge = sup->raw("POST /v1/projects/clinic-a/events HTTP/1.1\r\nHost: x\r\n"
                       "Content-Type: application/json\r\nContent-Length: " +
                       std::to_string((16U << 20U) + 1) + "\r\n\r\n{\"events\": [");
  EXPECT_EQ(huge.status, 413U);
  auto headers = sup->raw("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') +
                          "\r\n\r\n");
  EXPECT_EQ(headers.status, 431U);
  for (const std::string& body : {std::string("null"), std::string("[]"), std::string("{\"events\": 5}"),
                                  std::string("{\"events\": [1]}"), std::string("\xff\xfe"),
                                  std::string(100000, '[')}) {
    auto r = sup->post("/v1/projects/clinic-a/events", body, {{"Content-Type", "application/json"}});
    EXPECT_EQ(r.status, 400U) << body.substr(0, 20) << " " << r.body;
  }
  EXPECT_EQ(sup->get("/healthz").status, 200U);
}

TEST_F(ApiTest, SigtermFinishesInFlightAppendsAndLosesNoAcknowledgedEvent) {
  std::atomic<bool> stop{false};
  std::mutex mutex;
  std::vector<std::string> acknowledged;
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&] {
      auto c = login("sup");
      if (!c) return;
      c->set_quiet(true);
      while (!stop) {
        const std::string id = uuid();
        auto r = c->post_json("/v1/projects/clinic-a/events",
                              {{"events", json::array{case_event(id, "case.created", uuid(), "t", {{"a", "1"}})}}});
        if (r.status == 201U) {
          std::lock_guard lock{mutex};
          acknowledged.push_back(id);
        } else if (r.status == 0 || r.status >= 500) {
          break;  // The server went away.
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  EXPECT_EQ(server_->stop(), 0) << server_->err();
  stop = true;
  for (auto& w : writers) w.join();
  EXPECT_NE(server_->out().find("traild: stopped"), std::string::npos);
  ASSERT_GT(acknowledged.size(), 10U);
  auto cat = trailctl({"cat", "--project", "clinic-a"});
  ASSERT_EQ(cat.exit_code, 0) << cat.err;
  for (const auto& id : acknowledged) EXPECT_NE(cat.out.find(id), std::string::npos) << id;
  auto verify = trailctl({"verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  start();  // For TearDown.
}

// The views are committed unsynced (docs/FORMAT.md §4.1). A traild killed while the machine
// stops leaves its mark in DATA/views from an earlier boot: the next traild rebuilds the views
// from the chains before it listens, and answers as before.
TEST_F(ApiTest, AfterAMachineStopTheViewsAreRebuiltBeforeTraildListens) {
  auto sup = login("sup");
  ASSERT_NE(sup, nullptr);
  const std::string c = uuid();
  json::array batch{case_event(uuid(), "case.created", c, ids_["sup"], {{"hh_size", "5"}}),
                    case_event(uuid(), "case.updated", c, "", {{"hh_size", "6"}})};
  ASSERT_EQ(sup->post_json("/v1/projects/clinic-a/events", json::object{{"events", batch}}).status,
            201U);
  const std::string before = sup->get("/v1/projects/clinic-a/cases/" + c).body;
  ASSERT_NE(before.find("\"hh_size\":\"6\""), std::string::npos) << before;

  const pid_t killed = server_->pid();
  server_->signal(SIGKILL);
  server_->wait();
  const std::filesystem::path mark =
      std::filesystem::path(data_dir()) / "views" / ("writer." + std::to_string(killed));
  ASSERT_TRUE(std::filesystem::exists(mark));
  {
    std::ifstream in(mark);
    std::string boot_id;
    std::string pid_namespace;
    std::getline(in, boot_id);
    std::getline(in, pid_namespace);
    in.close();
    std::ofstream out(mark, std::ios::trunc);  // As if the machine had restarted since.
    out << "00000000-0000-0000-0000-000000000000\n" << pid_namespace << '\n';
  }
  start();
  EXPECT_NE(server_->err().find("were being written when the machine stopped"), std::string::npos)
      << server_->err();
  EXPECT_FALSE(std::filesystem::exists(mark));
  sup = login("sup");  // Sessions are views too: they came back with the rebuild.
  ASSERT_NE(sup, nullptr);
  EXPECT_EQ(sup->get("/v1/projects/clinic-a/cases/" + c).body, before);
}

TEST_F(ApiTest, PlainHttpOffLoopbackIsRefused) {
  auto r = run_process({TRAILD_PATH, "--data", data_dir(), "--keys", keys_dir(), "--listen", "0.0.0.0:0"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("TLS"), std::string::npos) << r.err;
  auto half = run_process({TRAILD_PATH, "--data", data_dir(), "--keys", keys_dir(), "--tls-cert", "x.pem"});
  EXPECT_EQ(half.exit_code, 2);
}

class TlsApiTest : public ApiTest {
 protected:
  void SetUp() override {
    auto made = run_process({"/bin/bash", std::string(TRAIL_SOURCE_DIR) + "/scripts/make-dev-cert.sh",
                             (cert_dir_ / "tls").string()});
    ASSERT_EQ(made.exit_code, 0) << made.err;
    ApiTest::SetUp();
  }
  std::optional<std::string> ca_file() const override {
    return (cert_dir_ / "tls" / "cert.pem").string();
  }
  std::vector<std::string> extra_server_args() const override {
    return {"--tls-cert", (cert_dir_ / "tls" / "cert.pem").string(), "--tls-key",
            (cert_dir_ / "tls" / "key.pem").string()};
  }
  TempDir cert_dir_;
};

TEST_F(TlsApiTest, HttpsWorksEndToEndAndPlainHttpDoesNotReachTheApi) {
  // SetUp logged in and opened projects over TLS; a bearer and a Basic client both work.
  auto sup = login("sup");
  ASSERT_NE(sup, nullptr);
  EXPECT_EQ(sup->get("/v1/projects").status, 200U);
  auto basic = client();
  basic->set_basic("admin", admin_password_);
  EXPECT_EQ(basic->get("/v1/projects").status, 200U);
  // A plain-HTTP request to the TLS port gets no API answer.
  HttpClient plain(server_->port());
  plain.set_quiet(true);
  const auto r = plain.get("/healthz");
  EXPECT_NE(r.status, 200U);
}

}  // namespace
}  // namespace trail::testing

namespace trail::testing {
namespace {

class ShortTimeoutApiTest : public ApiTest {
 protected:
  std::vector<std::string> extra_server_args() const override {
    return {"--read-timeout", "1", "--idle-timeout", "1"};
  }
};

TEST_F(ShortTimeoutApiTest, AClientThatStallsMidRequestIsCutOffAndOthersAreServed) {
  namespace asio = boost::asio;
  asio::io_context io;
  asio::ip::tcp::socket slow(io);
  slow.connect({asio::ip::make_address("127.0.0.1"), server_->port()});
  // Half a request, then silence.
  asio::write(slow, asio::buffer(std::string("POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")));
  const auto started = std::chrono::steady_clock::now();
  char byte = 0;
  boost::system::error_code ec;
  slow.read_some(asio::buffer(&byte, 1), ec);  // Returns when the server closes.
  const auto waited = std::chrono::steady_clock::now() - started;
  EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();
  EXPECT_LT(waited, std::chrono::seconds(5));
  EXPECT_EQ(client()->get("/healthz").status, 200U);
}

}  // namespace
}  // namespace trail::testing
