// trailctl verify, driven as a process as an auditor would: exit 0 and "intact:" on an intact
// data directory, exit 1 and "TAMPERED project=<p> seq=<n>: ..." once an event's stored bytes
// change (with and without --keys), exit 2 when the data directory is missing.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/bytes.h"
#include "ledger/internal/layout.h"
#include "ledger/internal/lmdb_env.h"
#include "ledger/status.h"
#include "tests/support/run_process.h"
#include "tests/support/temp_dir.h"


namespace trail::testing {
namespace verify_cli {
namespace {

using Outcome = ProcessResult;

// One case.updated JSON line (see tools/trailctl/event_json.h), with a distinct event id.
std::string event_line(int n) {
  char event_id[40];
  std::snprintf(event_id, sizeof event_id, "5b0e9c1a-3f6d-4c11-9a2e-%012d", n);
  return std::string(R"({"event_id":")") + event_id +
         R"(","kind":"case.updated","case_id":"9a41f6e2-1c5b-4d37-8e90-3b7d2c6a5f02",)"
         R"("actor":"chw-017","device_id":"phone-a3","channel":"mobile-form",)"
         R"("client_time":"2026-04-05T10:02:11+03:00","fields":{"anc_visits":")" +
         std::to_string(n) + "\"}}\n";
}

std::string event_lines(int first, int count) {
  std::string lines;
  for (int n = first; n < first + count; ++n) lines += event_line(n);
  return lines;
}

constexpr std::string_view kProject = "clinic-a";
constexpr std::string_view kOtherProject = "ward-7";
constexpr int kEvents = 5;

class TrailctlVerify : public ::testing::Test {
 protected:
  void SetUp() override {
    const Outcome init = trailctl({"init", "--data", data(), "--keys", keys(), "--key-name", "t"});
    ASSERT_EQ(init.exit_code, 0) << init.err;
    ASSERT_NO_FATAL_FAILURE(append(kProject, event_lines(1, kEvents)));
    ASSERT_NO_FATAL_FAILURE(append(kOtherProject, event_lines(100, 3)));
  }

  std::string data() const { return (dir_ / "data").string(); }
  std::string keys() const { return (dir_ / "keys").string(); }

  Outcome trailctl(std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(), TRAILCTL_PATH);
    return run_process(args, input);
  }

  void append(std::string_view project, const std::string& lines) {
    const Outcome appended = trailctl(
        {"append", "--data", data(), "--keys", keys(), "--project", std::string(project)}, lines);
    ASSERT_EQ(appended.exit_code, 0) << appended.err;
  }

  // Flips one byte of the actor text stored in event `seq` of `project`, in this process,
  // directly in LMDB (no trailctl is running, so the environment is not open elsewhere).
  void flip_actor_byte(std::string_view project, std::uint64_t seq) {
    auto env = ledger::detail::Env::open(data(), {});
    ASSERT_TRUE(env.is_ok()) << env.status().to_string();
    auto txn = (*env)->begin_write();
    ASSERT_TRUE(txn.is_ok()) << txn.status().to_string();
    const std::string key = ledger::detail::event_key(project, seq);
    auto stored = txn->get(ledger::detail::Table::kEvents, as_bytes(key));
    ASSERT_TRUE(stored.is_ok()) << stored.status().to_string();
    ASSERT_TRUE(stored->has_value()) << "no event " << seq;
    std::string bytes(as_chars(**stored));
    const std::size_t at = bytes.find("chw-017");
    ASSERT_NE(at, std::string::npos);
    bytes[at] = static_cast<char>(static_cast<unsigned char>(bytes[at]) ^ 0x01U);
    const Status put = txn->put(ledger::detail::Table::kEvents, as_bytes(key), as_bytes(bytes));
    ASSERT_TRUE(put.is_ok()) << put.to_string();
    const Status committed = txn->commit();
    ASSERT_TRUE(committed.is_ok()) << committed.to_string();
  }

  TempDir dir_;
};

TEST_F(TrailctlVerify, IntactDataDirExitsZeroAndSaysIntact) {
  for (const bool with_keys : {false, true}) {
    SCOPED_TRACE(with_keys ? "with --keys" : "without --keys");
    std::vector<std::string> args = {"verify", "--data", data()};
    if (with_keys) args.insert(args.end(), {"--keys", keys()});
    const Outcome verified = trailctl(args);
    EXPECT_EQ(verified.exit_code, 0) << verified.out << verified.err;
    // Both projects and init's `_system` chain (the first administrator's two events).
    EXPECT_TRUE(verified.out.starts_with("intact: " + std::to_string(kEvents + 3 + 2) +
                                         " events in 3 projects"))
        << verified.out;
  }
}

TEST_F(TrailctlVerify, TamperedEventExitsOneAndNamesItsProjectAndSeq) {
  ASSERT_NO_FATAL_FAILURE(flip_actor_byte(kProject, 3));
  for (const bool with_keys : {false, true}) {
    SCOPED_TRACE(with_keys ? "with --keys" : "without --keys");
    std::vector<std::string> args = {"verify", "--data", data()};
    if (with_keys) args.insert(args.end(), {"--keys", keys()});
    const Outcome verified = trailctl(args);
    EXPECT_EQ(verified.exit_code, 1) << verified.out << verified.err;
    EXPECT_TRUE(verified.out.starts_with("TAMPERED project=clinic-a seq=3: ")) << verified.out;
  }
}

TEST_F(TrailctlVerify, TamperedLastEventIsNamed) {
  ASSERT_NO_FATAL_FAILURE(flip_actor_byte(kProject, kEvents));
  for (const bool with_keys : {false, true}) {
    SCOPED_TRACE(with_keys ? "with --keys" : "without --keys");
    std::vector<std::string> args = {"verify", "--data", data()};
    if (with_keys) args.insert(args.end(), {"--keys", keys()});
    const Outcome verified = trailctl(args);
    EXPECT_EQ(verified.exit_code, 1) << verified.out << verified.err;
    EXPECT_TRUE(verified.out.starts_with("TAMPERED project=clinic-a seq=" +
                                         std::to_string(kEvents) + ": "))
        << verified.out;
  }
}

TEST_F(TrailctlVerify, OnlyTheNamedProjectIsCheckedWithProject) {
  ASSERT_NO_FATAL_FAILURE(flip_actor_byte(kProject, 2));
  const Outcome other = trailctl({"verify", "--data", data(), "--keys", keys(), "--project",
                                  std::string(kOtherProject)});
  EXPECT_EQ(other.exit_code, 0) << other.out << other.err;
  EXPECT_TRUE(other.out.starts_with("intact: 3 events in 1 project")) << other.out;
  const Outcome tampered = trailctl({"verify", "--data", data(), "--keys", keys(), "--project",
                                     std::string(kProject)});
  EXPECT_EQ(tampered.exit_code, 1) << tampered.out << tampered.err;
  EXPECT_TRUE(tampered.out.starts_with("TAMPERED project=clinic-a seq=2: ")) << tampered.out;
}

TEST_F(TrailctlVerify, MissingDataDirExitsTwo) {
  std::vector<std::string> missing = {(dir_ / "nonexistent").string()};
  std::error_code ec;
  if (!std::filesystem::exists("/nonexistent", ec) && !ec) missing.emplace_back("/nonexistent");
  for (const auto& path : missing) {
    SCOPED_TRACE(path);
    const Outcome verified = trailctl({"verify", "--data", path});
    EXPECT_EQ(verified.exit_code, 2) << verified.out << verified.err;
    EXPECT_TRUE(verified.err.starts_with("trailctl: ")) << verified.err;
    EXPECT_EQ(verified.out.find("intact"), std::string::npos) << verified.out;
  }
}

}  // namespace
}  // namespace verify_cli
}  // namespace trail::testing
