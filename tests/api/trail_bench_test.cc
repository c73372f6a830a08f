// trail-bench, the load generator of issue 4, against the real traild: what it reports as
// acknowledged is in the ledger, reads read, its JSON report has the promised fields, and bad
// input or a refused log-in is an error with a message and a non-zero exit.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "tests/api/api_fixture.h"

namespace trail::testing {
namespace {

namespace json = boost::json;

class TrailBenchTest : public ApiTest {
 protected:
  // trail-bench against this test's traild, as admin, with `extra` arguments.
  ProcessResult bench(std::vector<std::string> extra) const {
    std::vector<std::string> argv{TRAIL_BENCH_PATH,
                                  "--url",
                                  "http://127.0.0.1:" + std::to_string(server_->port()),
                                  "--user",
                                  "admin",
                                  "--password",
                                  admin_password_,
                                  "--threads",
                                  "1",
                                  "--warmup",
                                  "0.2",
                                  "--duration",
                                  "1"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run_process(argv);
  }

  static json::object report(const ProcessResult& r) {
    json::error_code ec;
    json::value v = json::parse(r.out, ec);
    EXPECT_FALSE(ec) << r.out << r.err;
    return ec || !v.is_object() ? json::object{} : v.as_object();
  }

  static std::uint64_t u64(const json::object& o, std::string_view key) {
    const json::value* v = o.if_contains(key);
    EXPECT_NE(v, nullptr) << key;
    return v != nullptr && v->is_number() ? v->to_number<std::uint64_t>() : 0;
  }
};

TEST_F(TrailBenchTest, AppendsItReportsAreInTheLedger) {
  const ProcessResult r =
      bench({"--project", "bench-a", "--connections", "4", "--batch", "5", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const json::object out = report(r);
  EXPECT_EQ(out.at("mode").as_string(), "append");
  const std::uint64_t requests = u64(out, "requests");
  const std::uint64_t events = u64(out, "events");
  EXPECT_GT(requests, 0U);
  EXPECT_EQ(events, requests * 5);
  EXPECT_EQ(u64(out.at("errors").as_object(), "total"), 0U);
  for (const char* p : {"p50", "p90", "p99", "max"}) {
    EXPECT_TRUE(out.at("latency_ms").as_object().contains(p)) << p;
  }
  // Every acknowledged event is durable in the project's chain (the warm-up's too, so at
  // least as many as were measured).
  auto head = admin_->get("/v1/projects/bench-a/ledger/head");
  ASSERT_EQ(head.status, 200U) << head.body;
  EXPECT_GE(head.json().at("size").to_number<std::uint64_t>(), events);
  // The updates went to cases created first and owned, as a phone's are: none was created
  // implicitly by its first update, ownerless (which would spare the sync view its log).
  auto cases = admin_->get("/v1/projects/bench-a/cases?limit=1000");
  ASSERT_EQ(cases.status, 200U) << cases.body;
  const auto& listed = cases.json().at("cases").as_array();
  EXPECT_EQ(listed.size(), 1000U);  // trail-bench's default --cases.
  for (const auto& c : listed) {
    EXPECT_FALSE(c.as_object().contains("implicit")) << c;  // Shown only when true.
    EXPECT_FALSE(c.at("owner").as_string().empty()) << c;
    EXPECT_EQ(c.at("case_type").as_string(), "bench") << c;
  }
}

// --own-cases: each connection (device) updates only its own share of the cases, so every
// case's changes come from one device; without it they come from any.
TEST_F(TrailBenchTest, OwnCasesKeepsEachCaseOnOneDevice) {
  const auto devices_per_case = [this](const std::string& project) {
    auto changes = admin_->get("/v1/projects/" + project + "/audit/changes?limit=1000");
    EXPECT_EQ(changes.status, 200U) << changes.body;
    std::map<std::string, std::set<std::string>> devices;
    for (const auto& c : changes.json().at("changes").as_array()) {
      if (c.at("device_id").as_string() == "trail-bench-setup") continue;  // Created them.
      devices[std::string(c.at("case_id").as_string())].insert(
          std::string(c.at("device_id").as_string()));
    }
    return devices;
  };
  const ProcessResult own = bench({"--project", "bench-own", "--own-cases", "--connections", "4",
                                   "--cases", "8", "--batch", "5", "--json"});
  ASSERT_EQ(own.exit_code, 0) << own.out << own.err;
  EXPECT_TRUE(report(own).at("own_cases").as_bool());
  const auto owned = devices_per_case("bench-own");
  EXPECT_GE(owned.size(), 4U);
  EXPECT_LE(owned.size(), 8U);
  for (const auto& [id, devices] : owned) EXPECT_EQ(devices.size(), 1U) << id;

  const ProcessResult shared = bench(
      {"--project", "bench-shared", "--connections", "4", "--cases", "8", "--batch", "5"});
  ASSERT_EQ(shared.exit_code, 0) << shared.out << shared.err;
  std::size_t most = 0;
  for (const auto& [id, devices] : devices_per_case("bench-shared")) {
    most = std::max(most, devices.size());
  }
  EXPECT_GT(most, 1U);
  // Fewer cases than connections cannot be shared out.
  const ProcessResult few = bench({"--own-cases", "--connections", "4", "--cases", "2"});
  EXPECT_EQ(few.exit_code, 2);
  EXPECT_NE(few.err.find("--own-cases"), std::string::npos) << few.err;
}

TEST_F(TrailBenchTest, ReadsAreAnsweredAndAudited) {
  const ProcessResult r = bench(
      {"--project", "bench-r", "--mode", "read", "--connections", "2", "--cases", "20", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const json::object out = report(r);
  EXPECT_EQ(out.at("mode").as_string(), "read");
  const std::uint64_t reads = u64(out.at("reads").as_object(), "requests");
  EXPECT_GT(reads, 0U);
  EXPECT_EQ(u64(out, "events"), 0U);
  // Each read left its record.read: the access audit holds at least one per measured read.
  auto audit = admin_->get("/v1/projects/bench-r/audit/access?limit=1000");
  ASSERT_EQ(audit.status, 200U) << audit.body;
  EXPECT_GE(audit.json().at("reads").as_array().size(), std::min<std::uint64_t>(reads, 1000));
}

TEST_F(TrailBenchTest, TheTextReportNamesThroughputAndLatency) {
  const ProcessResult r = bench({"--project", "bench-t", "--connections", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  for (const char* line : {"events", "latency ms", "p50", "p99", "errors"}) {
    EXPECT_NE(r.out.find(line), std::string::npos) << line << "\n" << r.out;
  }
}

TEST_F(TrailBenchTest, BadInputAndARefusedLogInAreErrors) {
  const ProcessResult mode = bench({"--mode", "sideways"});
  EXPECT_EQ(mode.exit_code, 2) << mode.out;
  EXPECT_NE(mode.err.find("--mode"), std::string::npos) << mode.err;
  const ProcessResult refused =
      run_process({TRAIL_BENCH_PATH, "--url", "http://127.0.0.1:" + std::to_string(server_->port()),
                   "--user", "admin", "--password", "not the password", "--duration", "0.2"});
  EXPECT_EQ(refused.exit_code, 2) << refused.out;
  EXPECT_NE(refused.err.find("trail-bench: "), std::string::npos) << refused.err;
  EXPECT_EQ(refused.err.find("not the password"), std::string::npos) << refused.err;
}

}  // namespace
}  // namespace trail::testing
