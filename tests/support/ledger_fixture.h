// Test helpers: a fresh key directory and data directory, an open ledger, and event drafts.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <sodium.h>

#include "ledger/key_ring.h"
#include "ledger/ledger.h"
#include "tests/support/temp_dir.h"

namespace trail::testing {

// A random v4 UUID.
inline EventId random_id() {
  EventId id{};
  randombytes_buf(id.data(), id.size());
  id[6] = static_cast<std::uint8_t>((id[6] & 0x0fU) | 0x40U);
  id[8] = static_cast<std::uint8_t>((id[8] & 0x3fU) | 0x80U);
  return id;
}

// A case.updated draft with a payload of `payload_bytes` opaque bytes.
inline ledger::EventDraft make_draft(std::size_t payload_bytes = 300) {
  ledger::EventDraft d;
  d.event_id = random_id();
  d.kind = schema::Kind::CASE_UPDATED;
  d.actor = "chw-017";
  d.device_id = "phone-a3";
  d.channel = schema::Channel::MOBILE_FORM;
  d.client_time_us = 1'700'000'000'000'000;
  d.subject = random_id();
  d.payload.assign(payload_bytes, 'p');
  for (std::size_t i = 0; i < payload_bytes; ++i) d.payload[i] = static_cast<char>('a' + i % 26);
  return d;
}

inline std::vector<ledger::EventDraft> make_drafts(std::size_t count, std::size_t payload_bytes = 300) {
  std::vector<ledger::EventDraft> out;
  out.reserve(count);
  for (std::size_t i = 0; i < count; ++i) out.push_back(make_draft(payload_bytes));
  return out;
}

// Keys in dir/keys, ledger in dir/data.
class LedgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GE(sodium_init(), 0);
    ASSERT_TRUE(ledger::KeyRing::create(keys_dir(), "test-key").is_ok());
    auto keys = ledger::KeyRing::load(keys_dir());
    ASSERT_TRUE(keys.is_ok()) << keys.status().to_string();
    keys_ = *keys;
    ASSERT_TRUE(ledger::Ledger::create(data_dir(), *keys_, initial_map_bytes()).is_ok());
    reopen();
  }

  virtual std::size_t initial_map_bytes() const { return 64U << 20U; }
  // Views to register with the ledger on every (re)open.
  virtual std::vector<std::shared_ptr<ledger::Projector>> projectors() const { return {}; }
  // Further options for every (re)open.
  virtual void configure(ledger::LedgerOptions& options) const { (void)options; }

  // Read-only as `trailctl verify` opens: no writer, nothing caught up or moved.
  void reopen(bool with_keys = true, bool read_only = false) {
    ledger_.reset();
    ledger::LedgerOptions options;
    options.data_dir = data_dir();
    options.keys = with_keys ? keys_ : nullptr;
    options.read_only = read_only;
    options.initial_map_bytes = initial_map_bytes();
    options.projectors = projectors();
    configure(options);
    auto opened = ledger::Ledger::open(options);
    ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
    ledger_ = std::move(*opened);
  }

  std::vector<ledger::Receipt> append_ok(const std::string& project,
                                         std::vector<ledger::EventDraft> drafts) {
    auto result = ledger_->append(project, std::move(drafts)).get();
    EXPECT_TRUE(result.is_ok()) << result.status().to_string();
    if (!result.is_ok()) return {};
    return std::move(result).value();
  }

  // The views as folded event by event must be byte for byte what a rebuild from the chains
  // writes (ends with the rebuilt views).
  void expect_rebuild_reproduces_views() {
    auto incremental = ledger_->projection_digest();
    ASSERT_TRUE(incremental.is_ok()) << incremental.status().to_string();
    ASSERT_TRUE(ledger_->rebuild_projections({}).is_ok());
    auto rebuilt = ledger_->projection_digest();
    ASSERT_TRUE(rebuilt.is_ok()) << rebuilt.status().to_string();
    EXPECT_EQ(*incremental, *rebuilt);
  }

  std::filesystem::path keys_dir() const { return dir_ / "keys"; }
  std::filesystem::path data_dir() const { return dir_ / "data"; }

  // Every byte the data directory stores: the chain's LMDB file, then the views' (DATA/views).
  // Both must be non-empty (the ledger closed, so the views' pages are written back).
  std::string stored_bytes() const {
    std::string all;
    for (const auto& path : {data_dir() / "data.mdb", data_dir() / "views" / "data.mdb"}) {
      std::ifstream in(path, std::ios::binary);
      const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      EXPECT_GT(file.size(), 0U) << path;
      all += file;
    }
    return all;
  }

  TempDir dir_;
  std::shared_ptr<const ledger::KeyRing> keys_;
  std::unique_ptr<ledger::Ledger> ledger_;
};

}  // namespace trail::testing
