// Tamper detection: stored bytes are changed behind the ledger's back (through the raw LMDB
// environment), then verify() must name exactly the event that was changed, both without keys
// (hash chain only) and with keys (payload tags checked too). The blame rule is at the top of
// ledger/verify.h.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/envelope.h"
#include "ledger/internal/layout.h"
#include "ledger/internal/lmdb_env.h"
#include "ledger/sha256.h"
#include "ledger/verify.h"
#include "tests/support/ledger_fixture.h"

namespace trail::testing {
namespace {

using ledger::DecodedEnvelope;
using ledger::detail::Env;
using ledger::detail::Table;
using ledger::detail::WriteTxn;

constexpr std::string_view kProject = "clinic-a";
constexpr std::uint64_t kChainLength = 10;
constexpr std::string_view kActor = "chw-017";  // make_draft()'s actor.

// Sets `at` to where `needle` lies in `haystack`; fails unless it lies there exactly once.
void find_once(std::string_view haystack, std::string_view needle, std::size_t& at) {
  at = haystack.find(needle);
  ASSERT_NE(at, std::string_view::npos) << "not found in the stored envelope";
  ASSERT_EQ(haystack.find(needle, at + 1), std::string_view::npos)
      << "found more than once in the stored envelope";
}

void decode_ok(const std::string& bytes, DecodedEnvelope& out) {
  const Status decoded = ledger::decode_envelope(as_bytes(bytes), out);
  ASSERT_TRUE(decoded.is_ok()) << decoded.to_string();
}

void flip_bit(std::string& bytes, std::size_t at) {
  bytes[at] = static_cast<char>(static_cast<std::uint8_t>(bytes[at]) ^ 0x01U);
}

// Changes one byte of the actor text ("chw-017" becomes "bhw-017"): a header field, so both
// the event's hash and its payload's associated data change.
void flip_header_byte(std::string& bytes) {
  std::size_t at = 0;
  ASSERT_NO_FATAL_FAILURE(find_once(bytes, kActor, at));
  flip_bit(bytes, at);
}

// Changes one byte in the middle of the sealed payload.
void flip_ciphertext_byte(std::string& bytes) {
  DecodedEnvelope env;
  ASSERT_NO_FATAL_FAILURE(decode_ok(bytes, env));
  ASSERT_FALSE(env.ciphertext.empty());
  std::size_t at = 0;
  ASSERT_NO_FATAL_FAILURE(find_once(bytes, as_chars(env.ciphertext), at));
  flip_bit(bytes, at + env.ciphertext.size() / 2);
}

// Changes one byte of the stored prevHash: the first byte whose flip leaves the envelope
// decodable with exactly one prevHash byte different (so a pointer that now points elsewhere
// does not count). Works for seq 1 too, whose all-zero prevHash cannot be found by value.
void flip_prev_hash_byte(std::string& bytes) {
  DecodedEnvelope original;
  ASSERT_NO_FATAL_FAILURE(decode_ok(bytes, original));
  DecodedEnvelope changed;
  for (std::size_t at = 0; at < bytes.size(); ++at) {
    std::string candidate = bytes;
    flip_bit(candidate, at);
    if (!ledger::decode_envelope(as_bytes(candidate), changed).is_ok()) continue;
    int differing = 0;
    for (std::size_t i = 0; i < original.prev_hash.size(); ++i) {
      if (original.prev_hash[i] != changed.prev_hash[i]) ++differing;
    }
    if (differing == 1) {
      bytes = std::move(candidate);
      return;
    }
  }
  FAIL() << "no byte of the envelope holds prevHash";
}

// Sets one clear bit between bit 24 and bit 47 of the stored server time: the event now claims
// to have been appended hours to years later. Only that one byte changes.
void raise_server_time(std::string& bytes) {
  DecodedEnvelope env;
  ASSERT_NO_FATAL_FAILURE(decode_ok(bytes, env));
  const auto time = static_cast<std::uint64_t>(env.server_time_us);
  std::array<char, 8> little_endian{};  // Cap'n Proto stores integers little-endian.
  for (std::size_t i = 0; i < little_endian.size(); ++i) {
    little_endian[i] = static_cast<char>((time >> (8U * i)) & 0xffU);
  }
  std::size_t at = 0;
  ASSERT_NO_FATAL_FAILURE(
      find_once(bytes, std::string_view(little_endian.data(), little_endian.size()), at));
  for (unsigned bit = 24; bit < 48; ++bit) {
    if (((time >> bit) & 1U) == 0) {
      const std::size_t byte = at + bit / 8;
      bytes[byte] = static_cast<char>(static_cast<std::uint8_t>(bytes[byte]) | (1U << (bit % 8)));
      DecodedEnvelope raised;
      ASSERT_NO_FATAL_FAILURE(decode_ok(bytes, raised));
      ASSERT_GT(raised.server_time_us, env.server_time_us);
      return;
    }
  }
  FAIL() << "server time " << time << " has no clear bit between 24 and 47";
}

// A copy of the stored envelope of `seq` of `project`.
void stored_event(const WriteTxn& txn, std::string_view project, std::uint64_t seq,
                  std::string& out) {
  const std::string key = ledger::detail::event_key(project, seq);
  auto got = txn.get(Table::kEvents, as_bytes(key));
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  ASSERT_TRUE(got->has_value()) << "no event " << seq << " in " << project;
  out.assign(as_chars(**got));
}

void put_event(WriteTxn& txn, std::string_view project, std::uint64_t seq,
               std::string_view bytes) {
  const std::string key = ledger::detail::event_key(project, seq);
  const Status put = txn.put(Table::kEvents, as_bytes(key), as_bytes(bytes));
  ASSERT_TRUE(put.is_ok()) << put.to_string();
}

void delete_event(WriteTxn& txn, std::string_view project, std::uint64_t seq) {
  const std::string key = ledger::detail::event_key(project, seq);
  const Status deleted = txn.del(Table::kEvents, as_bytes(key));
  ASSERT_TRUE(deleted.is_ok()) << deleted.to_string();
}

class VerifyTamper : public LedgerTest {
 protected:
  // Appends `count` events to `project` in one batch.
  void append_chain(std::string_view project, std::uint64_t count = kChainLength) {
    const auto receipts = append_ok(std::string(project), make_drafts(count));
    ASSERT_EQ(receipts.size(), count);
  }

  // Closes the ledger (LMDB refuses a second open of one environment in a process) and runs
  // `edit` in one write transaction on the raw environment, committed unless `edit` failed.
  // The ledger stays closed until the next reopen().
  void edit_store(const std::function<void(WriteTxn&)>& edit) {
    ledger_.reset();
    auto env = Env::open(data_dir(), {});
    ASSERT_TRUE(env.is_ok()) << env.status().to_string();
    auto txn = (*env)->begin_write();
    ASSERT_TRUE(txn.is_ok()) << txn.status().to_string();
    edit(*txn);
    if (HasFatalFailure()) return;  // The transaction aborts.
    const Status committed = txn->commit();
    ASSERT_TRUE(committed.is_ok()) << committed.to_string();
  }

  // Rewrites the stored bytes of event `seq` of `project` through `change`.
  void rewrite_event(std::string_view project, std::uint64_t seq,
                     const std::function<void(std::string&)>& change) {
    edit_store([&](WriteTxn& txn) {
      std::string bytes;
      ASSERT_NO_FATAL_FAILURE(stored_event(txn, project, seq, bytes));
      const std::string before = bytes;
      ASSERT_NO_FATAL_FAILURE(change(bytes));
      ASSERT_NE(bytes, before) << "the change left the event as it was";
      ASSERT_NO_FATAL_FAILURE(put_event(txn, project, seq, bytes));
    });
  }

  // Reopens read-only with or without keys, as `trailctl verify` does, and verifies; `report`
  // receives the outcome.
  void verify_store(bool with_keys, const ledger::VerifyOptions& options,
                    ledger::VerifyReport& report) {
    ASSERT_NO_FATAL_FAILURE(reopen(with_keys, /*read_only=*/true));
    auto verified = ledger::verify(*ledger_, options);
    ASSERT_TRUE(verified.is_ok()) << verified.status().to_string();
    report = std::move(*verified);
  }

  // Verifies without keys (chains only) and then with keys (payload tags too): each must name
  // event `seq` of `project` as the first bad event.
  void expect_blamed(std::string_view project, std::uint64_t seq,
                     const ledger::VerifyOptions& options = {}) {
    for (const bool with_keys : {false, true}) {
      SCOPED_TRACE(with_keys ? "verified with keys" : "verified without keys");
      ledger::VerifyReport report;
      ASSERT_NO_FATAL_FAILURE(verify_store(with_keys, options, report));
      ASSERT_TRUE(report.problem.has_value()) << "tampering went unnoticed";
      EXPECT_EQ(report.problem->project, project) << report.problem->reason;
      EXPECT_EQ(report.problem->seq, seq) << report.problem->reason;
    }
  }

  void expect_intact(std::uint64_t events, std::uint64_t projects,
                     const ledger::VerifyOptions& options = {}) {
    for (const bool with_keys : {false, true}) {
      SCOPED_TRACE(with_keys ? "verified with keys" : "verified without keys");
      ledger::VerifyReport report;
      ASSERT_NO_FATAL_FAILURE(verify_store(with_keys, options, report));
      EXPECT_FALSE(report.problem.has_value())
          << "seq " << report.problem->seq << ": " << report.problem->reason;
      EXPECT_EQ(report.events, events);
      EXPECT_EQ(report.projects, projects);
      EXPECT_EQ(report.payloads_opened, with_keys);
    }
  }
};

TEST_F(VerifyTamper, IntactChainVerifiesWithAndWithoutKeys) {
  ASSERT_NO_FATAL_FAILURE(append_chain(kProject));
  ASSERT_NO_FATAL_FAILURE(expect_intact(kChainLength, 1));
}

TEST_F(VerifyTamper, RewritingAnEventWithItsOwnBytesIsNotTampering) {
  ASSERT_NO_FATAL_FAILURE(append_chain(kProject));
  edit_store([](WriteTxn& txn) {
    std::string bytes;
    ASSERT_NO_FATAL_FAILURE(stored_event(txn, kProject, 5, bytes));
    ASSERT_NO_FATAL_FAILURE(put_event(txn, kProject, 5, bytes));
  });
  ASSERT_NO_FATAL_FAILURE(expect_intact(kChainLength, 1));
}

TEST_F(VerifyTamper, FlippedHeaderByteIsBlamedOnThatEvent) {
  ASSERT_NO_FATAL_FAILURE(append_chain(kProject));
  ASSERT_NO_FATAL_FAILURE(rewrite_event(kProject, 5, flip_header_byte));
  expect_blamed(kProject, 5);
}

TEST_F(VerifyTamper, FlippedCiphertextByteIsBlamedOnThatEvent) {
  ASSERT_NO_FATAL_FAILURE(append_chain(kProject));
  ASSERT_NO_FATAL_FAILURE(rewrite_event(kProject, 5, flip_ciphertext_byte));
  expect_blamed(kProject, 5);
}

TEST_F(VerifyTamper, FlippedPrevHashByteIsBlamedOnThatEventNotOnThePreviousOne) {
  ASSERT_NO_FATAL_FAILURE(append_chain(kProject));
  ASSERT_NO_FATAL_FAILURE(rewrite_event(kProject, 5, flip_prev_hash_byte));
  expect_blamed(kProject, 5);
}

TEST_F(VerifyTamper, DeletedMiddleEventIsReportedMissingAtItsSeq) {
  ASSERT_NO_FATAL_FAILURE(append_chain(kProject));
  edit_store([](WriteTxn& txn) { ASSERT_NO_FATAL_FAILURE(delete_event(txn, kProject, 5)); });
  expect_blamed(kProject, 5);
}

TEST_F(VerifyTamper, SwappedAdjacentEventsAreBlamedOnTheFirstOfThePair) {
  ASSERT_NO_FATAL_FAILURE(append_chain(kProject));
  edit_store([](WriteTxn& txn) {
    std::string fourth;
    std::string fifth;
    ASSERT_NO_FATAL_FAILURE(stored_event(txn, kProject, 4, fourth));
    ASSERT_NO_FATAL_FAILURE(stored_event(txn, kProject, 5, fifth));
    ASSERT_NO_FATAL_FAILURE(put_event(txn, kProject, 4, fifth));
    ASSERT_NO_FATAL_FAILURE(put_event(txn, kProject, 5, fourth));
  });
  expect_blamed(kProject, 4);
}

TEST_F(VerifyTamper, TruncatedChainEndIsReportedAtTheFirstMissingSeq) {
  ASSERT_NO_FATAL_FAILURE(append_chain(kProject));
  // The head still records seq 10.
  edit_store([](WriteTxn& txn) {
    ASSERT_NO_FATAL_FAILURE(delete_event(txn, kProject, kChainLength));
    ASSERT_NO_FATAL_FAILURE(delete_event(txn, kProject, kChainLength - 1));
  });
  expect_blamed(kProject, kChainLength - 1);
}

TEST_F(VerifyTamper, EventStoredBeyondTheHeadIsBlamed) {
  ASSERT_NO_FATAL_FAILURE(append_chain(kProject, kChainLength + 1));
  auto last_kept = ledger_->read(kProject, kChainLength);
  ASSERT_TRUE(last_kept.is_ok()) << last_kept.status().to_string();
  DecodedEnvelope env;
  ASSERT_NO_FATAL_FAILURE(decode_ok(last_kept->envelope, env));
  // Roll the head back one event: event 11 is well formed and chained, but the head never
  // committed to it.
  const std::string head = ledger::detail::encode_head(
      ledger::detail::HeadRecord{kChainLength, last_kept->hash, env.server_time_us});
  edit_store([&](WriteTxn& txn) {
    const std::string key = ledger::detail::project_key(kProject);
    const Status put = txn.put(Table::kHeads, as_bytes(key), as_bytes(head));
    ASSERT_TRUE(put.is_ok()) << put.to_string();
  });
  expect_blamed(kProject, kChainLength + 1);
}

TEST_F(VerifyTamper, ChainWhoseHeadRecordWasDeletedIsStillWalkedAndBlamed) {
  ASSERT_NO_FATAL_FAILURE(append_chain(kProject));
  ASSERT_NO_FATAL_FAILURE(append_chain("ward-7"));
  edit_store([&](WriteTxn& txn) {
    const Status del = txn.del(Table::kHeads, as_bytes(ledger::detail::project_key(kProject)));
    ASSERT_TRUE(del.is_ok()) << del.to_string();
  });
  expect_blamed(kProject, 1);
}

TEST_F(VerifyTamper, FlippedHeaderByteOfTheFirstEventIsBlamedOnSeqOne) {
  ASSERT_NO_FATAL_FAILURE(append_chain(kProject));
  ASSERT_NO_FATAL_FAILURE(rewrite_event(kProject, 1, flip_header_byte));
  expect_blamed(kProject, 1);
}

TEST_F(VerifyTamper, FlippedCiphertextByteOfTheFirstEventIsBlamedOnSeqOne) {
  ASSERT_NO_FATAL_FAILURE(append_chain(kProject));
  ASSERT_NO_FATAL_FAILURE(rewrite_event(kProject, 1, flip_ciphertext_byte));
  expect_blamed(kProject, 1);
}

TEST_F(VerifyTamper, NonZeroPrevHashOfTheFirstEventIsBlamedOnSeqOne) {
  ASSERT_NO_FATAL_FAILURE(append_chain(kProject));
  ASSERT_NO_FATAL_FAILURE(rewrite_event(kProject, 1, flip_prev_hash_byte));
  expect_blamed(kProject, 1);
}

TEST_F(VerifyTamper, FlippedHeaderByteOfTheLastEventIsBlamedOnIt) {
  ASSERT_NO_FATAL_FAILURE(append_chain(kProject));
  ASSERT_NO_FATAL_FAILURE(rewrite_event(kProject, kChainLength, flip_header_byte));
  expect_blamed(kProject, kChainLength);
}

TEST_F(VerifyTamper, FlippedCiphertextByteOfTheLastEventIsBlamedOnIt) {
  ASSERT_NO_FATAL_FAILURE(append_chain(kProject));
  ASSERT_NO_FATAL_FAILURE(rewrite_event(kProject, kChainLength, flip_ciphertext_byte));
  expect_blamed(kProject, kChainLength);
}

TEST_F(VerifyTamper, FlippedPrevHashByteOfTheLastEventIsBlamedOnIt) {
  ASSERT_NO_FATAL_FAILURE(append_chain(kProject));
  ASSERT_NO_FATAL_FAILURE(rewrite_event(kProject, kChainLength, flip_prev_hash_byte));
  expect_blamed(kProject, kChainLength);
}

// The last event still commits to the altered one; only the head record decides the blame.
TEST_F(VerifyTamper, FlippedHeaderByteOfTheSecondToLastEventIsBlamedOnIt) {
  ASSERT_NO_FATAL_FAILURE(append_chain(kProject));
  ASSERT_NO_FATAL_FAILURE(rewrite_event(kProject, kChainLength - 1, flip_header_byte));
  expect_blamed(kProject, kChainLength - 1);
}

TEST_F(VerifyTamper, OnlyTheTamperedProjectIsBlamedInAMultiProjectDataDir) {
  // "clinic" is a prefix of "clinic-b": their keys must not run into each other.
  constexpr std::string_view kIntactA = "clinic";
  constexpr std::string_view kTampered = "clinic-b";
  constexpr std::string_view kIntactB = "ward-7";
  ASSERT_NO_FATAL_FAILURE(append_chain(kIntactA));
  ASSERT_NO_FATAL_FAILURE(append_chain(kTampered));
  ASSERT_NO_FATAL_FAILURE(append_chain(kIntactB, 4));
  ASSERT_NO_FATAL_FAILURE(rewrite_event(kTampered, 7, flip_ciphertext_byte));

  expect_blamed(kTampered, 7);
  ledger::VerifyOptions only;
  only.project = std::string(kTampered);
  expect_blamed(kTampered, 7, only);
  only.project = std::string(kIntactA);
  ASSERT_NO_FATAL_FAILURE(expect_intact(kChainLength, 1, only));
  only.project = std::string(kIntactB);
  ASSERT_NO_FATAL_FAILURE(expect_intact(4, 1, only));
}

TEST_F(VerifyTamper, RaisedServerTimeIsBlamedOnThatEventNotOnItsSuccessor) {
  // Server time is not in the AEAD associated data, so only the chain catches this; the link
  // 5 -> 6 breaks and event 6's time looks earlier than event 5's, but event 7 still commits
  // to event 6, which clears it and convicts event 5 (a regression test: this blamed seq 6).
  ASSERT_NO_FATAL_FAILURE(append_chain(kProject));
  ASSERT_NO_FATAL_FAILURE(rewrite_event(kProject, 5, raise_server_time));
  expect_blamed(kProject, 5);
}

// Property: however one byte of one stored event changes, verify (with keys) names that event.
// The seed is gtest's: 0 unless run with --gtest_shuffle; rerun a failure with
// --gtest_shuffle --gtest_random_seed=<seed printed in the failure>.
TEST_F(VerifyTamper, AnySingleByteFlipIsBlamedOnTheEventItHit) {
  constexpr std::uint64_t kLength = 20;
  constexpr int kTrials = 300;
  const int seed = ::testing::UnitTest::GetInstance()->random_seed();
  SCOPED_TRACE("random seed " + std::to_string(seed));
  std::mt19937_64 rng{static_cast<std::uint64_t>(seed)};

  ASSERT_NO_FATAL_FAILURE(append_chain(kProject, kLength));
  std::vector<std::string> originals(kLength + 1);  // By seq; [0] unused.
  for (std::uint64_t seq = 1; seq <= kLength; ++seq) {
    auto stored = ledger_->read(kProject, seq);
    ASSERT_TRUE(stored.is_ok()) << stored.status().to_string();
    originals[seq] = stored->envelope;
  }

  std::uniform_int_distribution<std::uint64_t> pick_seq{1, kLength};
  std::uniform_int_distribution<unsigned> pick_mask{1, 255};
  std::uint64_t to_restore = 0;  // The event the previous trial changed.
  int checked = 0;
  for (int trial = 0; trial < kTrials && !HasFailure(); ++trial) {
    const std::uint64_t seq = pick_seq(rng);
    std::uniform_int_distribution<std::size_t> pick_offset{0, originals[seq].size() - 1};
    const std::size_t offset = pick_offset(rng);
    const auto mask = static_cast<std::uint8_t>(pick_mask(rng));
    SCOPED_TRACE("trial " + std::to_string(trial) + ": seq " + std::to_string(seq) +
                 ", byte " + std::to_string(offset) + " of " +
                 std::to_string(originals[seq].size()) + " xor " + std::to_string(mask));
    std::string tampered = originals[seq];
    tampered[offset] = static_cast<char>(static_cast<std::uint8_t>(tampered[offset]) ^ mask);

    edit_store([&](WriteTxn& txn) {
      if (to_restore != 0) {
        ASSERT_NO_FATAL_FAILURE(put_event(txn, kProject, to_restore, originals[to_restore]));
      }
      ASSERT_NO_FATAL_FAILURE(put_event(txn, kProject, seq, tampered));
    });
    ASSERT_FALSE(HasFatalFailure());
    to_restore = seq;

    ledger::VerifyReport report;
    ASSERT_NO_FATAL_FAILURE(verify_store(/*with_keys=*/true, {}, report));
    ASSERT_TRUE(report.problem.has_value()) << "tampering went unnoticed";
    EXPECT_EQ(report.problem->project, kProject) << report.problem->reason;
    EXPECT_EQ(report.problem->seq, seq) << report.problem->reason;
    ++checked;
  }
  EXPECT_GT(checked, kTrials * 9 / 10);
}

}  // namespace
}  // namespace trail::testing
