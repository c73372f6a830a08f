// An attacker with write access to a COPY of the data directory (data.mdb copied while no
// trailctl had it open) rewrites history, truncates, rolls back, forges and re-signs
// checkpoints; `trailctl verify --pubkey` and `trailctl verify --against` (a checkpoint the
// auditor saved earlier) must say so, naming what differs. The attacker works through LMDB
// directly, as one holding data.mdb would: valid prevHash links and a matching head record.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "ledger/envelope.h"
#include "ledger/internal/layout.h"
#include "ledger/internal/lmdb_env.h"
#include "ledger/internal/tree_store.h"
#include "ledger/merkle.h"
#include "ledger/sha256.h"
#include "tests/tools/audit_cli_fixture.h"

namespace trail::testing::audit_cli {
namespace {

using ledger::detail::Table;

// LMDB opened on a data directory copy, with the tree sub-databases.
class Attacker {
 public:
  explicit Attacker(const fs::path& dir) : dir_{dir} {
    auto env = ledger::detail::Env::open(dir, {});
    EXPECT_TRUE(env.is_ok()) << env.status().to_string();
    env_ = std::move(*env);
    merkle_ = *env_->open_named("merkle");
    checkpoints_ = *env_->open_named("checkpoints");
  }

  // Flips a byte of event k's actor text, then re-chains every later event (its prevHash
  // bytes replaced by the new hash of the one before) and rewrites the head record.
  void rewrite_from(std::uint64_t k) {
    auto txn = env_->begin_write().value();
    const std::uint64_t n = head_seq(txn);
    Digest old_prev{};
    Digest new_prev{};
    ledger::DecodedEnvelope decoded;
    for (std::uint64_t seq = k; seq <= n; ++seq) {
      std::string bytes = event(txn, seq);
      const Digest old_hash = leaf_hash(as_bytes(bytes));
      if (seq == k) {
        const std::size_t at = bytes.find("chw-017");
        ASSERT_NE(at, std::string::npos);
        bytes[at] = static_cast<char>(static_cast<unsigned char>(bytes[at]) ^ 0x01U);
      } else {
        const std::string old_link(reinterpret_cast<const char*>(old_prev.data()), 32);
        const std::size_t at = bytes.find(old_link);
        ASSERT_NE(at, std::string::npos) << "prevHash of seq " << seq;
        std::memcpy(bytes.data() + at, new_prev.data(), 32);
      }
      ASSERT_TRUE(txn.put(Table::kEvents, as_bytes(ledger::detail::event_key(ledger_project(), seq)),
                          as_bytes(bytes)).is_ok());
      old_prev = old_hash;
      new_prev = leaf_hash(as_bytes(bytes));
      ASSERT_TRUE(ledger::decode_envelope(as_bytes(bytes), decoded).is_ok());
    }
    put_head(txn, n, new_prev, decoded.server_time_us);
    ASSERT_TRUE(txn.commit().is_ok());
  }

  // Replaces every Merkle node of the project by the tree of the events as they are now.
  void recompute_tree() {
    auto txn = env_->begin_write().value();
    erase_where(txn, merkle_, [](ByteView) { return true; });
    const std::uint64_t n = head_seq(txn);
    const auto get = ledger::detail::node_reader(txn, merkle_, ledger_project());
    const ledger::merkle::NodePut put = [&](unsigned level, std::uint64_t index, const Digest& h) {
      return ledger::detail::put_node(txn, merkle_, ledger_project(), level, index, h);
    };
    for (std::uint64_t seq = 1; seq <= n; ++seq) {
      ASSERT_TRUE(ledger::merkle::append(seq - 1, leaf_hash(as_bytes(event(txn, seq))), get, put)
                      .is_ok());
    }
    ASSERT_TRUE(ledger::detail::put_tree_size(txn, merkle_, ledger_project(), n).is_ok());
    ASSERT_TRUE(txn.commit().is_ok());
  }

  // Flips a bit of stored Merkle node (level, index).
  void flip_node(unsigned level, std::uint64_t index) {
    auto txn = env_->begin_write().value();
    const std::string key = ledger::detail::merkle_key(ledger_project(), level, index);
    auto stored = *txn.get(merkle_, as_bytes(key));
    ASSERT_TRUE(stored.has_value()) << "no node " << level << "/" << index;
    std::string value(as_chars(*stored));
    value[7] = static_cast<char>(static_cast<unsigned char>(value[7]) ^ 0x10U);
    ASSERT_TRUE(txn.put(merkle_, as_bytes(key), as_bytes(value)).is_ok());
    ASSERT_TRUE(txn.commit().is_ok());
  }

  // Stores `value` under the project's merkle key with `suffix` (after project_key).
  void put_merkle_entry(const std::string& suffix, const std::string& value) {
    auto txn = env_->begin_write().value();
    ASSERT_TRUE(txn.put(merkle_, as_bytes(ledger::detail::project_key(kProject) + suffix),
                        as_bytes(value))
                    .is_ok());
    ASSERT_TRUE(txn.commit().is_ok());
  }

  // Deletes the views (the id index among them): derived from the chain, they are rebuilt by
  // the next writable open, so an attacker who rewrites the chain need not forge them.
  void forget_views() { fs::remove_all(dir_ / "views"); }

  // Deletes the stored checkpoints of sizes above `keep`.
  void delete_checkpoints_above(std::uint64_t keep) {
    auto txn = env_->begin_write().value();
    erase_where(txn, checkpoints_,
                [&](ByteView suffix) { return get_u64_be(suffix.data()) > keep; });
    ASSERT_TRUE(txn.commit().is_ok());
  }

  // Deletes events after `keep` (and their nodes and checkpoints, and the views) and fixes
  // the head.
  void truncate_to(std::uint64_t keep) {
    forget_views();
    auto txn = env_->begin_write().value();
    ASSERT_NO_FATAL_FAILURE(delete_events_after(txn, keep));
    erase_where(txn, merkle_, [&](ByteView suffix) {
      if (suffix.size() != 9) return false;  // The size record, rewritten below.
      const unsigned level = suffix[0];
      return ((get_u64_be(suffix.data() + 1) + 1) << level) > keep;
    });
    ASSERT_TRUE(ledger::detail::put_tree_size(txn, merkle_, ledger_project(), keep).is_ok());
    erase_where(txn, checkpoints_,
                [&](ByteView suffix) { return get_u64_be(suffix.data()) > keep; });
    const std::string last = event(txn, keep);
    ledger::DecodedEnvelope decoded;
    ASSERT_TRUE(ledger::decode_envelope(as_bytes(last), decoded).is_ok());
    put_head(txn, keep, leaf_hash(as_bytes(last)), decoded.server_time_us);
    ASSERT_TRUE(txn.commit().is_ok());
  }

  // Deletes the whole chain: events, head record, Merkle nodes and the views (not the
  // checkpoints).
  void delete_chain() {
    forget_views();
    auto txn = env_->begin_write().value();
    ASSERT_NO_FATAL_FAILURE(delete_events_after(txn, 0));
    ASSERT_TRUE(txn.del(Table::kHeads, as_bytes(ledger::detail::project_key(kProject))).is_ok());
    erase_where(txn, merkle_, [](ByteView) { return true; });
    ASSERT_TRUE(txn.commit().is_ok());
  }

  std::string checkpoint(std::uint64_t size) {
    auto txn = env_->begin_read().value();
    auto note = *txn.get(checkpoints_, as_bytes(ledger::detail::checkpoint_key(ledger_project(), size)));
    EXPECT_TRUE(note.has_value()) << "no checkpoint at " << size;
    return note ? std::string(as_chars(*note)) : std::string();
  }

  void put_checkpoint(std::uint64_t size, const std::string& note) {
    auto txn = env_->begin_write().value();
    ASSERT_TRUE(txn.put(checkpoints_, as_bytes(ledger::detail::checkpoint_key(ledger_project(), size)),
                        as_bytes(note))
                    .is_ok());
    ASSERT_TRUE(txn.commit().is_ok());
  }

 private:
  static std::string ledger_project() { return kProject; }

  // Deletes the events after seq `keep` (not the head).
  static void delete_events_after(ledger::detail::WriteTxn& txn, std::uint64_t keep) {
    for (std::uint64_t seq = keep + 1, n = head_seq(txn); seq <= n; ++seq) {
      ASSERT_TRUE(txn.del(Table::kEvents, as_bytes(ledger::detail::event_key(ledger_project(), seq)))
                      .is_ok());
    }
  }

  static std::uint64_t head_seq(const ledger::detail::WriteTxn& txn) {
    auto stored = *txn.get(Table::kHeads, as_bytes(ledger::detail::project_key(kProject)));
    EXPECT_TRUE(stored.has_value());
    return stored ? ledger::detail::decode_head(*stored)->seq : 0;
  }

  static std::string event(const ledger::detail::WriteTxn& txn, std::uint64_t seq) {
    auto stored = *txn.get(Table::kEvents, as_bytes(ledger::detail::event_key(kProject, seq)));
    EXPECT_TRUE(stored.has_value()) << "no event " << seq;
    return stored ? std::string(as_chars(*stored)) : std::string();
  }

  static void put_head(ledger::detail::WriteTxn& txn, std::uint64_t seq, const Digest& hash,
                       TimeUs time) {
    const std::string head = ledger::detail::encode_head({seq, hash, time});
    ASSERT_TRUE(txn.put(Table::kHeads, as_bytes(ledger::detail::project_key(kProject)),
                        as_bytes(head))
                    .is_ok());
  }

  // Erases the project's keys in `dbi` whose suffix (after project_key) `pick` chooses.
  static void erase_where(ledger::detail::WriteTxn& txn, MDB_dbi dbi,
                          const std::function<bool(ByteView)>& pick) {
    const std::string prefix = ledger::detail::project_key(kProject);
    std::vector<std::string> doomed;
    {
      auto cursor = txn.cursor(dbi);
      bool more = *cursor.seek(as_bytes(prefix));
      while (more && cursor.key().size() > prefix.size() &&
             as_chars(cursor.key().subspan(0, prefix.size())) == prefix) {
        if (pick(cursor.key().subspan(prefix.size()))) doomed.emplace_back(as_chars(cursor.key()));
        more = *cursor.next();
      }
    }
    for (const auto& key : doomed) ASSERT_TRUE(txn.erase(dbi, as_bytes(key)).is_ok());
  }

  fs::path dir_;
  std::unique_ptr<ledger::detail::Env> env_;
  MDB_dbi merkle_ = 0;
  MDB_dbi checkpoints_ = 0;
};

class TamperCli : public AuditCli {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(AuditCli::SetUp());
    ASSERT_NO_FATAL_FAILURE(append(1, 6));
    saved6_ = path("saved-6.note");
    write_file(saved6_, checkpoint_now());
    backup6_ = copy_data("backup-6");  // An operator's backup, taken at size 6.
    ASSERT_NO_FATAL_FAILURE(append(7, 4));
    saved10_ = path("saved-10.note");
    write_file(saved10_, checkpoint_now());
    key_ = vkey();
  }

  ProcessResult verify(const fs::path& dir, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"verify", "--data", dir.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return ctl(args);
  }
  ProcessResult against(const fs::path& dir, const fs::path& saved) {
    return verify(dir, {"--against", saved.string(), "--pubkey", key_});
  }

  static void expect_tampered(const ProcessResult& r, const std::string& reason) {
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    EXPECT_TRUE(r.out.starts_with("TAMPERED project=clinic-a")) << r.out;
    EXPECT_NE(r.out.find(reason), std::string::npos) << r.out;
  }
  static void expect_intact(const ProcessResult& r) {
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    EXPECT_TRUE(r.out.starts_with("intact: ")) << r.out;
  }

  fs::path saved6_;
  fs::path saved10_;
  fs::path backup6_;
  std::string key_;
};

TEST_F(TamperCli, IntactCopyExtendsEverySavedCheckpoint) {
  const auto copy = copy_data("copy");
  for (const auto& saved : {saved6_, saved10_}) {
    const ProcessResult r = against(copy, saved);
    expect_intact(r);
    EXPECT_NE(r.out.find("extends: " + saved.string() + " at size "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("is a prefix of the current tree of size 10"), std::string::npos) << r.out;
  }
  // Without --pubkey, the key directory's own key checks the saved note.
  const ProcessResult own = verify(copy, {"--keys", keys(), "--against", saved6_.string()});
  expect_intact(own);
  EXPECT_NE(own.out.find("checkpoint signatures checked with " + std::string(kKeyName)),
            std::string::npos)
      << own.out;
  expect_intact(verify(copy, {"--pubkey", key_}));
}

TEST_F(TamperCli, RewrittenHistoryWithStaleTreeFails) {
  const auto copy = copy_data("rewritten");
  Attacker{copy}.rewrite_from(3);
  // The chain alone is consistent again: only the trees and a saved checkpoint tell.
  expect_intact(verify(copy));
  expect_tampered(against(copy, saved6_),
                  "history was rewritten: the first 6 events hash to root ");
  expect_tampered(against(copy, saved10_), "history was rewritten: the first 10 events");
  // The stored checkpoints' roots no longer match the events.
  expect_tampered(verify(copy, {"--pubkey", key_}),
                  "checkpoint at size 6: its root ");
}

TEST_F(TamperCli, StoredNodesAreCheckedAgainstTheEvents) {
  // 20 events: node 4/0 (events 1..16) is the one stored node.
  const auto copy = copy_data("nodes");
  ASSERT_NO_FATAL_FAILURE(append(11, 10, "-more", copy.string()));
  expect_intact(verify(copy, {"--pubkey", key_}));
  {  // A rewrite that keeps the stale tree and drops the checkpoints: node 4/0 tells.
    const auto rewritten = path("nodes-rewritten");
    fs::copy(copy, rewritten, fs::copy_options::recursive);
    Attacker attacker{rewritten};
    attacker.rewrite_from(3);
    attacker.delete_checkpoints_above(0);
    expect_tampered(verify(rewritten, {"--pubkey", key_}),
                    "seq=1: Merkle node 4/0 (events 1..16) does not equal the node recomputed");
  }
  {
    const auto flipped = path("nodes-flipped");
    fs::copy(copy, flipped, fs::copy_options::recursive);
    Attacker{flipped}.flip_node(4, 0);
    expect_tampered(verify(flipped, {"--pubkey", key_}), "seq=1: Merkle node 4/0 (events 1..16)");
  }
  const std::string node(32, 'x');
  const auto entry = [](unsigned level, std::uint64_t index) {
    std::string suffix(1, static_cast<char>(level));
    std::uint8_t b[8];
    put_u64_be(b, index);
    suffix.append(reinterpret_cast<const char*>(b), 8);
    return suffix;
  };
  struct Stray {
    const char* name;
    std::string suffix;
    std::string value;
    const char* reason;
  };
  const std::vector<Stray> strays{
      {"low", entry(2, 0), node, "Merkle node 2/0 lies outside the stored levels 4..63"},
      {"beyond", entry(4, 1), node, "Merkle node 4/1 lies beyond the tree's 20 leaves"},
      {"high", entry(70, 0), node, "Merkle node 70/0 lies outside the stored levels"},
      {"size-long", std::string(1, '\xFF'), std::string(8, '\0') + "x",
       "the Merkle tree's size record is malformed"},
      {"size-ahead", std::string(1, '\xFF'), std::string(7, '\0') + "\x15",
       "the Merkle tree says 21 leaves but the chain has 20 events"},
  };
  for (const auto& stray : strays) {
    const auto dir = path(std::string("nodes-") + stray.name);
    fs::copy(copy, dir, fs::copy_options::recursive);
    Attacker{dir}.put_merkle_entry(stray.suffix, stray.value);
    expect_tampered(verify(dir, {"--pubkey", key_}), stray.reason);
  }
}

TEST_F(TamperCli, RewrittenHistoryWithRecomputedTreeFails) {
  {  // The attacker recomputes the nodes and keeps the old checkpoints, which they cannot sign.
    const auto copy = copy_data("recomputed");
    Attacker attacker{copy};
    attacker.rewrite_from(3);
    attacker.recompute_tree();
    expect_tampered(verify(copy, {"--pubkey", key_}),
                    ": checkpoint at size 6: its root ");
    expect_tampered(against(copy, saved6_), "history was rewritten");
  }
  {  // ... or deletes them too: then only the auditor's saved checkpoint tells.
    const auto copy = copy_data("recomputed-bare");
    Attacker attacker{copy};
    attacker.rewrite_from(3);
    attacker.recompute_tree();
    attacker.delete_checkpoints_above(0);
    expect_intact(verify(copy, {"--pubkey", key_}));
    expect_tampered(against(copy, saved6_), "history was rewritten: the first 6 events");
    expect_tampered(against(copy, saved10_), "history was rewritten: the first 10 events");
  }
}

TEST_F(TamperCli, TruncationFails) {
  const auto copy = copy_data("truncated");
  Attacker{copy}.truncate_to(8);
  // A careful truncation leaves a consistent chain, tree and checkpoints ...
  expect_intact(verify(copy, {"--pubkey", key_}));
  // ... that still extend the checkpoint saved at size 6, but not the one at size 10.
  expect_intact(against(copy, saved6_));
  expect_tampered(against(copy, saved10_),
                  "the chain has 8 events but the saved checkpoint covers 10: events were "
                  "removed (truncated or rolled back)");
  // A truncation that leaves the checkpoint of size 10 behind is caught without a saved one.
  const auto careless = copy_data("truncated-careless");
  Attacker attacker{careless};
  const std::string note10 = attacker.checkpoint(10);
  attacker.truncate_to(8);
  attacker.put_checkpoint(10, note10);
  expect_tampered(verify(careless, {"--pubkey", key_}),
                  "checkpoint at size 10: it lies beyond the 8 events of the chain");
}

TEST_F(TamperCli, DeletedChainFails) {
  const auto copy = copy_data("deleted");
  Attacker attacker{copy};
  attacker.delete_chain();
  expect_intact(verify(copy));  // Nothing of the chain is left to walk.
  // Its checkpoints are still there, beyond a chain of no events.
  expect_tampered(verify(copy, {"--pubkey", key_}),
                  "checkpoint at size 6: it lies beyond the 0 events of the chain");
  attacker.delete_checkpoints_above(0);
  expect_intact(verify(copy, {"--pubkey", key_}));
  expect_tampered(against(copy, saved10_),
                  "the chain has 0 events but the saved checkpoint covers 10");
}

TEST_F(TamperCli, RollbackToAnOlderBackupFails) {
  // The backup itself is an intact ledger of 6 events ...
  expect_intact(verify(backup6_, {"--pubkey", key_}));
  expect_intact(against(backup6_, saved6_));
  // ... but not the one the auditor saw at size 10.
  expect_tampered(against(backup6_, saved10_),
                  "the chain has 6 events but the saved checkpoint covers 10");
  // Appending other events to the restored backup past size 10 does not hide it.
  ASSERT_NO_FATAL_FAILURE(append(7, 5, "-after-rollback", backup6_.string()));
  expect_intact(verify(backup6_, {"--pubkey", key_}));
  expect_tampered(against(backup6_, saved10_), "history was rewritten: the first 10 events");
  expect_intact(against(backup6_, saved6_));
}

TEST_F(TamperCli, ForgedSignatureInAStoredCheckpointFails) {
  const auto copy = copy_data("forged");
  Attacker attacker{copy};
  attacker.put_checkpoint(6, with_flipped_signature(attacker.checkpoint(6)));
  expect_intact(verify(copy));  // The chain is untouched.
  expect_tampered(verify(copy, {"--pubkey", key_}),
                  "TAMPERED project=clinic-a: checkpoint at size 6: its signature does not "
                  "verify with the checkpoint key (forged or altered)");

  // A saved checkpoint with a forged signature is refused before the chain is read.
  write_file(path("forged.note"), with_flipped_signature(slurp(saved10_)));
  const ProcessResult r = against(copy_data("intact"), path("forged.note"));
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_TRUE(r.out.starts_with("REJECTED saved checkpoint ")) << r.out;
  EXPECT_NE(r.out.find("its signature does not verify"), std::string::npos) << r.out;
}

TEST_F(TamperCli, CheckpointFromAnotherKeyFails) {
  const auto copy = copy_data("foreign");
  Attacker attacker{copy};
  const std::string foreign = resigned_by_other_key(attacker.checkpoint(10));
  attacker.put_checkpoint(10, foreign);
  const std::string other = other_keys().signer().verifier_key();
  const std::string other_id = key_label(other);
  expect_tampered(verify(copy, {"--pubkey", key_}),
                  "checkpoint at size 10: it is not signed by the checkpoint key " +
                      key_label(key_) + " (signed by " + other_id + ")");
  // Checked with the other key, the genuine checkpoint at size 6 fails instead.
  expect_tampered(verify(copy, {"--pubkey", other}), "checkpoint at size 6: it is not signed");

  // A saved checkpoint from another key is refused as foreign.
  write_file(path("foreign.note"), foreign);
  const ProcessResult r = against(copy_data("intact"), path("foreign.note"));
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_TRUE(r.out.starts_with("REJECTED saved checkpoint ")) << r.out;
  EXPECT_NE(r.out.find("(signed by " + other_id + "): a foreign key"), std::string::npos) << r.out;
  // And a genuine one checked with the other key likewise.
  const ProcessResult wrong_key =
      verify(copy_data("intact-2"), {"--against", saved6_.string(), "--pubkey", other});
  EXPECT_EQ(wrong_key.exit_code, 1) << wrong_key.out << wrong_key.err;
  EXPECT_NE(wrong_key.out.find("a foreign key"), std::string::npos) << wrong_key.out;
}

}  // namespace
}  // namespace trail::testing::audit_cli
