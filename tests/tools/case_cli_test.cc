// trailctl case show / history / list and rebuild, driven as a process.
#include <gtest/gtest.h>

#include <sstream>

#include <boost/json.hpp>

#include "tests/support/trailctl_fixture.h"

namespace trail::testing {
namespace {

namespace json = boost::json;

class TrailctlCase : public TrailctlWithSample {};

constexpr const char* kPregnancy = "9a41f6e2-1c5b-4d37-8e90-3b7d2c6a5f02";
constexpr const char* kHousehold = "0d7c3b52-8e41-4f0a-b1c9-6a2f5e3d9c01";

TEST_F(TrailctlCase, ShowPrintsTheCurrentState) {
  auto r = run({"case", "--project", "demo", "show", kPregnancy});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto c = lines(r.out).at(0);
  EXPECT_EQ(c["case_type"].as_string(), "pregnancy");
  EXPECT_EQ(c["fields"].as_object().at("anc_visits").as_string(), "1");
  EXPECT_EQ(c["fields"].as_object().at("risk_level").as_string(), "high");
  EXPECT_EQ(c["last_user"].as_string(), "sup-002");
  EXPECT_FALSE(c["closed"].as_bool());
}

TEST_F(TrailctlCase, HistoryShowsWhoChangedWhatFromWhichPriorValue) {
  auto r = run({"case", "--project", "demo", "history", kPregnancy});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto h = lines(r.out);
  ASSERT_EQ(h.size(), 3U);
  const auto& update = h[1]["changes"].as_array().at(0).as_object();
  EXPECT_EQ(update.at("field").as_string(), "anc_visits");
  EXPECT_EQ(update.at("prior").as_string(), "0");
  EXPECT_EQ(update.at("value").as_string(), "1");
  EXPECT_EQ(h[1]["actor"].as_string(), "chw-017");
  EXPECT_EQ(h[1]["device_id"].as_string(), "phone-a3");
  EXPECT_EQ(h[1]["channel"].as_string(), "mobile-form");
  EXPECT_EQ(h[1]["client_time"].as_string(), "2026-04-05T07:02:11.000000Z");
  EXPECT_EQ(h[2]["actor"].as_string(), "sup-002");
  auto by_user = lines(run({"case", "--project", "demo", "history", "--user", "sup-002"}).out);
  ASSERT_EQ(by_user.size(), 1U);
  EXPECT_EQ(by_user[0]["case_id"].as_string(), kPregnancy);
}

TEST_F(TrailctlCase, ListFilters) {
  EXPECT_EQ(lines(run({"case", "--project", "demo", "list"}).out).size(), 2U);
  auto closed = lines(run({"case", "--project", "demo", "list", "--closed"}).out);
  ASSERT_EQ(closed.size(), 1U);
  EXPECT_EQ(closed[0]["case_id"].as_string(), kHousehold);
  auto typed = lines(run({"case", "--project", "demo", "list", "--type", "pregnancy"}).out);
  ASSERT_EQ(typed.size(), 1U);
  EXPECT_EQ(lines(run({"case", "--project", "demo", "list", "--owner", "nobody"}).out).size(), 0U);
}

TEST_F(TrailctlCase, UnknownCaseAndBadIdsAreClearErrors) {
  auto missing = run({"case", "--project", "demo", "show", "11111111-2222-4333-8444-555555555555"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("no case"), std::string::npos);
  auto bad = run({"case", "--project", "demo", "show", "not-a-uuid"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("not a UUID"), std::string::npos);
  EXPECT_EQ(run({"case", "--project", "demo", "list", "--open", "--closed"}).exit_code, 2);
}

TEST_F(TrailctlCase, RebuildReproducesTheSameViews) {
  auto first = run({"rebuild"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  // The 5 sample events and init's 2 `_system` events (the first administrator).
  EXPECT_NE(first.out.find("rebuilt views from 7 events"), std::string::npos) << first.out;
  auto second = run({"rebuild"});
  ASSERT_EQ(second.exit_code, 0);
  EXPECT_EQ(first.out, second.out);  // Same digest.
  EXPECT_EQ(lines(run({"case", "--project", "demo", "history", kPregnancy}).out).size(), 3U);
}

}  // namespace
}  // namespace trail::testing
