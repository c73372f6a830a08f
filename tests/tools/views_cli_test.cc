// trailctl submit, audit and report, driven as a process: intake to views to the operator.
#include <gtest/gtest.h>

#include <sstream>

#include <boost/json.hpp>

#include "tests/support/trailctl_fixture.h"

namespace trail::testing {
namespace {

namespace json = boost::json;

constexpr const char* kPregnancy = "9a41f6e2-1c5b-4d37-8e90-3b7d2c6a5f02";

class TrailctlViews : public TrailctlWithSample {};

TEST_F(TrailctlViews, SubmitAppendsTheFormAndItsCaseEventsOnceOnly) {
  const std::string form = source("tests/fixtures/casexml/hq_receiverwrapper_form_with_case.xml");
  auto first = run({"submit", "--project", "demo", form});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  auto receipt = lines(first.out).at(0);
  EXPECT_EQ(receipt["xmlns"].as_string(), "http://commcarehq.org/test/submit");
  EXPECT_EQ(receipt["events"].as_int64(), 3);
  EXPECT_FALSE(receipt["duplicate"].as_bool());
  auto again = run({"submit", "--project", "demo", form});
  ASSERT_EQ(again.exit_code, 0);
  EXPECT_TRUE(lines(again.out).at(0)["duplicate"].as_bool());
  auto typed = lines(run({"case", "--project", "demo", "list", "--type", "test_case_type"}).out);
  ASSERT_EQ(typed.size(), 1U);
  EXPECT_EQ(typed[0]["fields"].as_object().at("external_id").as_string(), "someexternal");
  auto history = lines(run({"case", "--project", "demo", "history",
                            std::string(typed[0]["case_id"].as_string())}).out);
  ASSERT_FALSE(history.empty());
  EXPECT_EQ(history[0]["form_xmlns"].as_string(), "http://commcarehq.org/test/submit");
  EXPECT_EQ(history[0]["via"], receipt["form_event_id"]);
}

TEST_F(TrailctlViews, HostileOrBrokenSubmissionsAppendNothing) {
  const std::string bomb = (dir_ / "bomb.xml").string();
  {
    std::ofstream out(bomb);
    out << "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
           "<!ENTITY lol2 \"&lol;&lol;&lol;&lol;\">]><data><meta><instanceID>uuid:"
           "5b0e9c1a-3f6d-4c11-9a2e-0000000000aa</instanceID></meta>&lol2;</data>";
  }
  auto r = run({"submit", "--project", "demo", bomb});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("DOCTYPE"), std::string::npos) << r.err;
  auto missing = run({"submit", "--project", "demo", (dir_ / "nope.xml").string()});
  EXPECT_EQ(missing.exit_code, 2);
  auto no_meta = run({"submit", "--project", "demo", source("tests/fixtures/casexml/v2_basic_create.xml")});
  EXPECT_EQ(no_meta.exit_code, 1);
  EXPECT_NE(no_meta.err.find("instanceID"), std::string::npos) << no_meta.err;
  EXPECT_NE(run({"verify", "--project", "demo"}).out.find("intact: 5 events"), std::string::npos);
}

TEST_F(TrailctlViews, EveryReadOfACaseIsInTheAccessAuditBeforeItIsShown) {
  ASSERT_EQ(run({"case", "--project", "demo", "--as", "auditor-7", "--reason", "complaint 42",
                 "show", kPregnancy})
                .exit_code,
            0);
  ASSERT_EQ(run({"case", "--project", "demo", "list", "--type", "household"}).exit_code, 0);
  auto reads = lines(run({"audit", "access", "--project", "demo", "--case", kPregnancy}).out);
  ASSERT_EQ(reads.size(), 1U);
  EXPECT_EQ(reads[0]["reader"].as_string(), "auditor-7");
  EXPECT_EQ(reads[0]["what"].as_string(), "case");
  EXPECT_EQ(reads[0]["reason"].as_string(), "complaint 42");
  EXPECT_EQ(reads[0]["endpoint"].as_string(), "trailctl case show");
  auto by_reader = lines(run({"audit", "access", "--project", "demo", "--user", "auditor-7"}).out);
  EXPECT_EQ(by_reader.size(), 1U);
  auto all = lines(run({"audit", "access", "--project", "demo"}).out);
  EXPECT_EQ(all.size(), 2U);  // The show and the list.
  EXPECT_EQ(all[1]["what"].as_string(), "search");
  EXPECT_EQ(all[1]["endpoint"].as_string(), "trailctl case list");
}

TEST_F(TrailctlViews, AuditChangesFiltersByUserAndTime) {
  auto by_user = lines(run({"audit", "changes", "--project", "demo", "--user", "sup-002"}).out);
  ASSERT_EQ(by_user.size(), 1U);
  EXPECT_EQ(by_user[0]["changes"].as_array().at(0).as_object().at("field").as_string(), "risk_level");
  EXPECT_TRUE(lines(run({"audit", "changes", "--project", "demo", "--to", "2000-01-01"}).out).empty());
  EXPECT_EQ(lines(run({"audit", "changes", "--project", "demo", "--from", "2000-01-01"}).out).size(), 5U);
  EXPECT_EQ(run({"audit", "changes", "--project", "demo", "--from", "yesterday"}).exit_code, 2);
  // Showing changes is itself a recorded read.
  EXPECT_FALSE(lines(run({"audit", "access", "--project", "demo"}).out).empty());
}

TEST_F(TrailctlViews, ReportsAsCsvAndJson) {
  auto cases = run({"report", "cases", "--project", "demo", "--format", "csv"});
  ASSERT_EQ(cases.exit_code, 0) << cases.err;
  EXPECT_EQ(cases.out, "case_type,owner,open,closed\r\nhousehold,chw-017,0,1\r\npregnancy,chw-017,1,0\r\n");
  const std::string form = source("tests/fixtures/casexml/hq_receiverwrapper_form_with_case.xml");
  ASSERT_EQ(run({"submit", "--project", "demo", form}).exit_code, 0);
  auto submissions = json::parse(run({"report", "submissions", "--project", "demo"}).out).as_array();
  ASSERT_EQ(submissions.size(), 1U);
  EXPECT_EQ(submissions[0].as_object().at("count").as_int64(), 1);
  auto activity = json::parse(run({"report", "activity", "--project", "demo"}).out).as_array();
  ASSERT_EQ(activity.size(), 1U);
  EXPECT_EQ(activity[0].as_object().at("last_7_days").as_int64(), 1);
  EXPECT_EQ(run({"report", "everything", "--project", "demo"}).exit_code, 2);
}

}  // namespace
}  // namespace trail::testing
