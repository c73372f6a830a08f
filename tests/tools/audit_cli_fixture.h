// Shared by proof_cli_test.cc and tamper_cli_test.cc: a data and key directory made by the
// real trailctl, events appended with `trailctl append`, checkpoints forced with
// `trailctl checkpoint --now`, and a second key directory whose key signs forgeries.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "ledger/bytes.h"
#include "ledger/checkpoint.h"
#include "ledger/key_ring.h"
#include "ledger/signed_note.h"
#include "ledger/verify.h"
#include "tests/support/run_process.h"
#include "tests/support/temp_dir.h"

namespace trail::testing::audit_cli {

namespace fs = std::filesystem;
namespace json = boost::json;

inline constexpr const char* kProject = "clinic-a";
inline constexpr const char* kKeyName = "audit-test";

// One case.updated JSON line with a distinct event id (`tag` keeps rewritten histories apart).
inline std::string event_line(int n, const std::string& tag = "") {
  char event_id[40];
  std::snprintf(event_id, sizeof event_id, "5b0e9c1a-3f6d-4c11-9a2e-%012d", n);
  return std::string(R"({"event_id":")") + event_id +
         R"(","kind":"case.updated","case_id":"9a41f6e2-1c5b-4d37-8e90-3b7d2c6a5f02",)"
         R"("actor":"chw-017","device_id":"phone-a3","channel":"mobile-form",)"
         R"("client_time":"2026-04-05T10:02:11+03:00","fields":{"anc_visits":")" +
         std::to_string(n) + tag + "\"}}\n";
}

// "name+keyid" of a vkey "name+keyid+base64" (whose base64 may hold '+' too).
inline std::string key_label(const std::string& vkey) {
  return vkey.substr(0, vkey.find('+', vkey.find('+') + 1));
}

inline std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

inline void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

inline Digest digest_of_hex(const std::string& hex) {
  Digest d{};
  EXPECT_TRUE(from_hex(hex, d)) << hex;
  return d;
}

inline std::vector<Digest> digests_of_base64(const json::array& hashes) {
  std::vector<Digest> out;
  for (const auto& h : hashes) {
    auto bytes = from_base64(h.as_string());
    EXPECT_TRUE(bytes && bytes->size() == 32) << h;
    Digest d{};
    if (bytes && bytes->size() == 32) std::copy(bytes->begin(), bytes->end(), d.begin());
    out.push_back(d);
  }
  return out;
}

class AuditCli : public ::testing::Test {
 protected:
  void SetUp() override {
    const ProcessResult init = ctl({"init", "--data", data(), "--keys", keys(), "--key-name", kKeyName});
    ASSERT_EQ(init.exit_code, 0) << init.err;
  }

  std::string data() const { return (dir_ / "data").string(); }
  std::string keys() const { return (dir_ / "keys").string(); }
  fs::path path(const std::string& name) const { return dir_ / name; }

  static ProcessResult ctl(std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(), TRAILCTL_PATH);
    return run_process(args, input);
  }

  // Appends events first..first+count-1 to kProject; their hashes (hex) by seq.
  void append(int first, int count, const std::string& tag = "", std::string data_dir = "") {
    if (data_dir.empty()) data_dir = data();
    std::string lines;
    for (int n = first; n < first + count; ++n) lines += event_line(n, tag);
    const ProcessResult appended =
        ctl({"append", "--data", data_dir, "--keys", keys(), "--project", kProject}, lines);
    ASSERT_EQ(appended.exit_code, 0) << appended.err;
    for (const auto& line : split_lines(appended.out)) {
      const json::object receipt = json::parse(line).as_object();
      const auto seq = static_cast<std::size_t>(receipt.at("seq").as_int64());
      if (hashes_.size() < seq + 1) hashes_.resize(seq + 1);
      hashes_[seq] = digest_of_hex(std::string(receipt.at("hash").as_string()));
    }
  }

  // `trailctl checkpoint --now`: the note of kProject at its head, as signed.
  std::string checkpoint_now() {
    const ProcessResult made = ctl({"checkpoint", "--data", data(), "--keys", keys(), "--project",
                                    kProject, "--now"});
    EXPECT_EQ(made.exit_code, 0) << made.err;
    return made.out;
  }

  // The checkpoint key, as `trailctl keys show` prints it.
  std::string vkey() {
    const ProcessResult shown = ctl({"keys", "show", "--keys", keys()});
    EXPECT_EQ(shown.exit_code, 0) << shown.err;
    std::string key = shown.out;
    while (!key.empty() && key.back() == '\n') key.pop_back();
    return key;
  }

  // A second key directory (another `trailctl init`), its signing key under the same name.
  const ledger::KeyRing& other_keys() {
    if (!other_keys_) {
      const ProcessResult init =
          ctl({"init", "--data", path("other-data").string(), "--keys",
               path("other-keys").string(), "--key-name", kKeyName});
      EXPECT_EQ(init.exit_code, 0) << init.err;
      auto loaded = ledger::KeyRing::load(path("other-keys"));
      EXPECT_TRUE(loaded.is_ok()) << loaded.status().to_string();
      other_keys_ = *loaded;
    }
    return *other_keys_;
  }

  // `note`'s checkpoint (signature unchecked) signed again by the other key directory's key.
  std::string resigned_by_other_key(const std::string& note) {
    auto body = ledger::open_saved_checkpoint(note, nullptr);
    EXPECT_TRUE(body.is_ok()) << body.status().to_string();
    auto signed_note = ledger::sign_checkpoint(*body, other_keys().signer());
    EXPECT_TRUE(signed_note.is_ok()) << signed_note.status().to_string();
    return *signed_note;
  }

  // The checkpoint in `note` (signature unchecked).
  static ledger::Checkpoint body_of(const std::string& note) {
    auto body = ledger::open_saved_checkpoint(note, nullptr);
    EXPECT_TRUE(body.is_ok()) << body.status().to_string();
    return body.is_ok() ? *body : ledger::Checkpoint{};
  }

  // `note` with one character of its signature changed to another base64 character.
  static std::string with_flipped_signature(std::string note) {
    const std::size_t last_space = note.rfind(' ');
    EXPECT_NE(last_space, std::string::npos);
    const std::size_t at = last_space + 40;  // Inside the 64 signature bytes.
    EXPECT_LT(at, note.size() - 3);
    note[at] = note[at] == 'A' ? 'B' : 'A';
    return note;
  }

  // A copy of the data directory (data.mdb only: no trailctl has it open).
  fs::path copy_data(const std::string& name) const {
    const fs::path to = path(name);
    fs::create_directories(to);
    fs::permissions(to, fs::perms::owner_all);
    fs::copy_file(fs::path(data()) / "data.mdb", to / "data.mdb");
    return to;
  }

  std::vector<Digest> hashes_;  // hashes_[seq]: the event hashes appended receipts gave.
  TempDir dir_;
  std::shared_ptr<const ledger::KeyRing> other_keys_;
};

}  // namespace trail::testing::audit_cli
