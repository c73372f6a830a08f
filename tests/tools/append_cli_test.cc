// trailctl init / append / cat / verify driven as a process: the operator's view.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <boost/json.hpp>

#include "tests/support/run_process.h"
#include "tests/support/temp_dir.h"

namespace trail::testing {
namespace {

namespace json = boost::json;

constexpr const char* kCase = "11111111-2222-4333-8444-555555555555";

std::string line(int n, const std::string& extra = "", const std::string& kind = "case.updated") {
  char id[40];
  std::snprintf(id, sizeof id, "7f1e2a40-0000-4000-8000-%012d", n);
  std::string out = std::string("{\"event_id\":\"") + id + "\",\"kind\":\"" + kind +
                    "\",\"case_id\":\"" + kCase +
                    "\",\"actor\":\"u-17\",\"device_id\":\"phone-3\","
                    "\"client_time\":\"2024-05-01T09:30:00Z\",\"fields\":{\"n\":\"" +
                    std::to_string(n) + "\"}" + extra + "}\n";
  return out;
}

std::string lines(int from, int to) {
  std::string out;
  for (int i = from; i <= to; ++i) out += line(i);
  return out;
}

std::vector<json::object> parse_lines(const std::string& text) {
  std::vector<json::object> out;
  std::istringstream in(text);
  std::string l;
  while (std::getline(in, l)) {
    if (!l.empty()) out.push_back(json::parse(l).as_object());
  }
  return out;
}

class Trailctl : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = ctl({"init"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  ProcessResult ctl(std::vector<std::string> args, const std::string& input = "") {
    std::vector<std::string> argv{TRAILCTL_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    if (args[0] != "verify") {
      argv.insert(argv.end(), {"--data", (dir_ / "data").string(), "--keys", (dir_ / "keys").string()});
    } else {
      argv.insert(argv.end(), {"--data", (dir_ / "data").string()});
    }
    return run_process(argv, input);
  }
  ProcessResult append(const std::string& input, const std::string& project = "demo") {
    return ctl({"append", "--project", project}, input);
  }
  // Events in the demo chain, counted by verify (cat would record a read and so add one); 0
  // when it has none. init's own `_system` events (the first administrator) are not counted.
  std::uint64_t head_seq() {
    auto r = ctl({"verify", "--project", "demo"});
    const auto at = r.out.find("intact: ");
    if (at == std::string::npos) return 0;
    return std::stoull(r.out.substr(at + 8));
  }
  TempDir dir_;
};

TEST_F(Trailctl, InitCreatesPrivateDirectoriesAndRefusesASecondInit) {
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "keys").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777U, 0700U);
  ASSERT_EQ(::stat((dir_ / "data").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777U, 0700U);
  auto again = ctl({"init"});
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.err.find("already initialised"), std::string::npos) << again.err;
}

TEST_F(Trailctl, AppendPrintsOneReceiptPerLine) {
  auto r = append(lines(1, 3));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto receipts = parse_lines(r.out);
  ASSERT_EQ(receipts.size(), 3U);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(receipts[i]["seq"].as_int64(), static_cast<std::int64_t>(i + 1));
    EXPECT_EQ(receipts[i]["duplicate"].as_bool(), false);
    EXPECT_EQ(receipts[i]["hash"].as_string().size(), 64U);
  }
  EXPECT_EQ(receipts[2]["event_id"].as_string(), "7f1e2a40-0000-4000-8000-000000000003");
}

TEST_F(Trailctl, ReappendingReportsDuplicatesWithTheOriginalReceipts) {
  auto first = parse_lines(append(lines(1, 3)).out);
  auto r = append(lines(1, 4));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto again = parse_lines(r.out);
  ASSERT_EQ(again.size(), 4U);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(again[i]["duplicate"].as_bool());
    EXPECT_EQ(again[i]["hash"], first[i]["hash"]);
  }
  EXPECT_FALSE(again[3]["duplicate"].as_bool());
  EXPECT_EQ(again[3]["seq"].as_int64(), 4);
}

TEST_F(Trailctl, StreamsBatchesOfAtMostTheBatchSize) {
  auto r = ctl({"append", "--project", "demo", "--batch", "2"}, lines(1, 5));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(parse_lines(r.out).size(), 5U);
}

TEST_F(Trailctl, CatPrintsDecryptedEventsInOrder) {
  ASSERT_EQ(append(lines(1, 2)).exit_code, 0);
  auto r = ctl({"cat", "--project", "demo"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto events = parse_lines(r.out);
  ASSERT_EQ(events.size(), 2U);
  EXPECT_EQ(events[0]["kind"].as_string(), "case.updated");
  EXPECT_EQ(events[0]["case_id"].as_string(), kCase);
  EXPECT_EQ(events[1]["fields"].as_object().at("n").as_string(), "2");
  EXPECT_EQ(events[1]["prev_hash"], events[0]["hash"]);
  EXPECT_EQ(events[0]["client_time"].as_string(), "2024-05-01T09:30:00.000000Z");
  // Reading them was itself recorded, in the same chain, before they were shown.
  auto from = parse_lines(ctl({"cat", "--project", "demo", "--from", "2"}).out);
  ASSERT_EQ(from.size(), 2U);
  EXPECT_EQ(from[0]["seq"].as_int64(), 2);
  EXPECT_EQ(from[1]["seq"].as_int64(), 3);
  EXPECT_EQ(from[1]["kind"].as_string(), "record.read");
  EXPECT_EQ(from[1]["channel"].as_string(), "system");
  auto one = parse_lines(ctl({"cat", "--project", "demo", "--from", "2", "--limit", "1"}).out);
  ASSERT_EQ(one.size(), 1U);
  EXPECT_EQ(one[0]["seq"].as_int64(), 2);
}

// Each bad line: exit 1, an error naming the line and the problem, nothing of its batch appended.
struct BadLine {
  const char* name;
  std::string text;
  const char* message;
};

class TrailctlBadInput : public Trailctl, public ::testing::WithParamInterface<BadLine> {};

TEST_P(TrailctlBadInput, IsReportedWithItsLineNumberAndNothingOfTheBatchIsAppended) {
  const BadLine& bad = GetParam();
  // Lines 1-2 good, line 3 bad, line 4 good: one batch (all arrive together), all refused.
  auto r = append(line(1) + line(2) + bad.text + "\n" + line(4));
  EXPECT_EQ(r.exit_code, 1) << bad.name;
  EXPECT_NE(r.err.find("line 3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(bad.message), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(head_seq(), 0U);
}

const std::string kId = "\"event_id\":\"7f1e2a40-0000-4000-8000-000000000099\"";
const std::string kRest = std::string(",\"case_id\":\"") + kCase +
                          "\",\"actor\":\"u\",\"client_time\":\"2024-05-01T09:30:00Z\"";

INSTANTIATE_TEST_SUITE_P(
    Lines, TrailctlBadInput,
    ::testing::Values(
        BadLine{"not_json", "{\"event_id\": ", "malformed JSON"},
        BadLine{"not_object", "[1,2,3]", "one JSON object"},
        BadLine{"unknown_kind", "{" + kId + ",\"kind\":\"case.exploded\"" + kRest + "}", "unknown kind"},
        BadLine{"system_kind", "{" + kId + ",\"kind\":\"user.created\"" + kRest + "}", "not a case event"},
        BadLine{"bad_uuid",
                "{\"event_id\":\"not-a-uuid\",\"kind\":\"case.created\"" + kRest + "}", "not a UUID"},
        BadLine{"nil_uuid",
                "{\"event_id\":\"00000000-0000-0000-0000-000000000000\",\"kind\":\"case.created\"" +
                    kRest + "}",
                "not a UUID"},
        BadLine{"missing_actor",
                "{" + kId + ",\"kind\":\"case.created\",\"case_id\":\"" + kCase +
                    "\",\"client_time\":\"2024-05-01T09:30:00Z\"}",
                "missing \"actor\""},
        BadLine{"bad_time",
                "{" + kId + ",\"kind\":\"case.created\",\"case_id\":\"" + kCase +
                    "\",\"actor\":\"u\",\"client_time\":\"2024-02-30T00:00:00Z\"}",
                "RFC 3339"},
        BadLine{"unknown_key", "{" + kId + ",\"kind\":\"case.created\"" + kRest + ",\"colour\":1}",
                "unknown key \"colour\""},
        BadLine{"oversized_field",
                "{" + kId + ",\"kind\":\"case.created\"" + kRest + ",\"fields\":{\"note\":\"" +
                    std::string(70000, 'x') + "\"}}",
                "exceeds 65536 bytes"},
        BadLine{"nested_field",
                "{" + kId + ",\"kind\":\"case.created\"" + kRest + ",\"fields\":{\"a\":{\"b\":1}}}",
                "must be a string, number or boolean"},
        BadLine{"long_actor",
                "{" + kId + ",\"kind\":\"case.created\",\"case_id\":\"" + kCase + "\",\"actor\":\"" +
                    std::string(200, 'a') + "\",\"client_time\":\"2024-05-01T09:30:00Z\"}",
                "\"actor\" exceeds 128 bytes"}),
    [](const ::testing::TestParamInfo<BadLine>& p) { return std::string(p.param.name); });

TEST_F(Trailctl, EarlierBatchesStayAppendedWhenALaterLineIsBad) {
  auto r = ctl({"append", "--project", "demo", "--batch", "2"}, lines(1, 4) + "garbage\n" + line(6));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("line 5"), std::string::npos) << r.err;
  EXPECT_EQ(parse_lines(r.out).size(), 4U);  // Batches 1-2 and 3-4 were durable and receipted.
  EXPECT_EQ(head_seq(), 4U);
}

TEST_F(Trailctl, ConflictingEventIdIsRefused) {
  ASSERT_EQ(append(line(1)).exit_code, 0);
  std::string changed = line(1);
  changed.replace(changed.find("\"n\":\"1\""), 7, "\"n\":\"9\"");
  auto r = append(changed);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("conflict"), std::string::npos) << r.err;
  EXPECT_EQ(head_seq(), 1U);
}

TEST_F(Trailctl, UsageErrorsExitTwo) {
  EXPECT_EQ(run_process({TRAILCTL_PATH}).exit_code, 2);
  EXPECT_EQ(run_process({TRAILCTL_PATH, "frobnicate"}).exit_code, 2);
  EXPECT_EQ(ctl({"append"}, "").exit_code, 2);  // --project is required.
  EXPECT_EQ(append(line(1), "Bad Project").exit_code, 2);
  auto missing = run_process({TRAILCTL_PATH, "cat", "--data", (dir_ / "nope").string(), "--keys",
                              (dir_ / "keys").string(), "--project", "demo"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("trailctl init"), std::string::npos) << missing.err;
}

TEST_F(Trailctl, VerifyAfterAppendIsIntact) {
  ASSERT_EQ(append(lines(1, 10)).exit_code, 0);
  auto r = ctl({"verify"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // The demo chain and init's `_system` chain (the first administrator's two events).
  EXPECT_NE(r.out.find("intact: 12 events in 2 projects "), std::string::npos) << r.out;
}

}  // namespace
}  // namespace trail::testing
