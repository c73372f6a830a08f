// The fixture of the API integration tests: a fresh data directory made by `trailctl init`,
// the real traild on an ephemeral loopback port, two projects and a user per role, each with
// its own logged-in client.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <random>
#include <memory>
#include <string>

#include <boost/json.hpp>

#include "tests/support/http_client.h"
#include "tests/support/run_process.h"
#include "tests/support/temp_dir.h"
#include "tests/support/traild_process.h"

namespace trail::testing {

class ApiTest : public ::testing::Test {
 protected:
  static constexpr const char* kPassword = "correct horse battery staple 42";

  void SetUp() override {
    auto init = trailctl({"init"});
    ASSERT_EQ(init.exit_code, 0) << init.err;
    const auto at = init.out.find("admin password: ");
    ASSERT_NE(at, std::string::npos) << init.out;
    admin_password_ = init.out.substr(at + 16, init.out.find('\n', at) - at - 16);
    start();
    admin_ = login("admin", admin_password_);
    ASSERT_NE(admin_, nullptr);
    for (const char* p : {"clinic-a", "clinic-b"}) {
      auto r = admin_->post_json("/v1/projects", {{"id", p}, {"name", std::string("Clinic ") + p}});
      ASSERT_EQ(r.status, 201U) << r.body;
    }
    add_user("chw", "clinic-a", "mobile_worker");
    add_user("chw2", "clinic-a", "mobile_worker");
    add_user("sup", "clinic-a", "supervisor");
    add_user("aud", "clinic-a", "auditor");
    add_user("viewer", "clinic-a", "report_viewer");
    add_user("padmin", "clinic-a", "project_admin");
    add_user("supb", "clinic-b", "supervisor");
  }

  void TearDown() override {
    if (server_ && server_->ok()) {
      EXPECT_EQ(server_->stop(), 0) << server_->err();
    }
  }

  virtual std::vector<std::string> extra_server_args() const { return {}; }
  // Set when the server speaks TLS: the certificate to verify it against.
  virtual std::optional<std::string> ca_file() const { return std::nullopt; }

  void start() {
    std::vector<std::string> args{"--data", data_dir(), "--keys", keys_dir(), "--threads", "2"};
    auto extra = extra_server_args();
    args.insert(args.end(), extra.begin(), extra.end());
    server_ = std::make_unique<TraildProcess>(TRAILD_PATH, args);
    ASSERT_TRUE(server_->ok());
  }

  ProcessResult trailctl(std::vector<std::string> args, const std::string& input = "") {
    std::vector<std::string> argv{TRAILCTL_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--data", data_dir(), "--keys", keys_dir()});
    return run_process(argv, input);
  }

  // Adds `name` with kPassword and `role` in `project` through trailctl; remembers its id.
  void add_user(const std::string& name, const std::string& project, const std::string& role) {
    auto r = trailctl({"user", "add", name, "--project", project, "--role", role},
                      std::string(kPassword) + "\n");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::string id = r.out.substr(0, r.out.find('\n'));
    ids_[name] = id;
  }

  std::unique_ptr<HttpClient> client() {
    return std::make_unique<HttpClient>(server_->port(), ca_file());
  }

  // A client logged in as `name`, or null (with a test failure).
  std::unique_ptr<HttpClient> login(const std::string& name, const std::string& password = kPassword) {
    auto c = client();
    auto r = c->post_json("/v1/auth/login", {{"username", name}, {"password", password}});
    EXPECT_EQ(r.status, 200U) << name << ": " << r.body;
    if (r.status != 200U) return nullptr;
    c->set_token(std::string(r.json().at("token").as_string()));
    return c;
  }

  std::string data_dir() const { return (dir_ / "data").string(); }
  std::string keys_dir() const { return (dir_ / "keys").string(); }

  TempDir dir_;
  std::string admin_password_;
  std::unique_ptr<TraildProcess> server_;
  std::unique_ptr<HttpClient> admin_;
  std::map<std::string, std::string> ids_;
};

// A case event in the API's JSON shape.
inline boost::json::object case_event(const std::string& event_id, const std::string& kind,
                                      const std::string& case_id, const std::string& owner,
                                      boost::json::object fields) {
  boost::json::object e{{"event_id", event_id},   {"kind", kind},
                        {"case_id", case_id},     {"client_time", "2026-03-02T08:15:00Z"},
                        {"fields", std::move(fields)}};
  if (kind == "case.created") e["case_type"] = "household";
  if (!owner.empty()) e["owner"] = owner;
  return e;
}

// A random v4 UUID text.
inline std::string uuid() {
  static std::mt19937_64 rng{std::random_device{}()};
  char out[37];
  const std::uint64_t a = rng();
  const std::uint64_t b = rng();
  std::snprintf(out, sizeof out, "%08x-%04x-4%03x-%04x-%012llx",
                static_cast<unsigned>(a >> 32U), static_cast<unsigned>((a >> 16U) & 0xffffU),
                static_cast<unsigned>(a & 0xfffU), static_cast<unsigned>(0x8000U | (b >> 48U & 0x3fffU)),
                static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return out;
}

}  // namespace trail::testing
