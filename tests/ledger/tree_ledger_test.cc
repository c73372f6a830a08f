// The ledger's Merkle trees and checkpoints through the Ledger API: the tree grows inside every
// append's commit, roots and proofs agree with a tree streamed from the receipts, checkpoints
// are issued by count, by timer and on demand, signed with the keys dir's key, and a chain
// from before the trees gets its tree from the stored events.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "ledger/checkpoint.h"
#include "ledger/internal/lmdb_env.h"
#include "ledger/internal/tree_store.h"
#include "ledger/merkle.h"
#include "tests/support/ledger_fixture.h"

namespace trail::testing {
namespace {

using ledger::merkle::StreamingRoot;

class TreeLedgerTest : public LedgerTest {
 protected:
  void configure(ledger::LedgerOptions& options) const override {
    options.merkle_trees = trees_;
    options.checkpoint_every_events = every_;
    options.checkpoint_interval = interval_;
  }

  // Appends `count` events to `project` in batches of `batch`; returns their hashes.
  std::vector<Digest> append_events(const std::string& project, std::size_t count,
                                    std::size_t batch) {
    std::vector<Digest> out;
    while (out.size() < count) {
      const std::size_t n = std::min(batch, count - out.size());
      for (const auto& r : append_ok(project, make_drafts(n, 40))) out.push_back(r.hash);
    }
    return out;
  }

  ledger::Checkpoint open_checkpoint(const std::string& note) const {
    const ledger::note::Verifier verifier = keys_->signer().verifier();
    auto opened = ledger::open_checkpoint(note, std::span{&verifier, 1});
    EXPECT_TRUE(opened.is_ok()) << opened.status().to_string() << "\n" << note;
    return opened.is_ok() ? *opened : ledger::Checkpoint{};
  }

  bool trees_ = true;
  std::uint64_t every_ = 0;
  std::chrono::milliseconds interval_{3'600'000};
};

TEST_F(TreeLedgerTest, EveryCommitGrowsTheTreeAndProofsVerify) {
  std::vector<Digest> a;
  for (std::size_t batch : {1U, 3U, 7U, 16U, 1U, 40U}) {
    auto more = append_events("clinic-a", batch * 2, batch);
    a.insert(a.end(), more.begin(), more.end());
    append_events("clinic-b", batch, batch);  // Interleaved: trees are per project.
  }
  auto size = ledger_->tree_size("clinic-a");
  ASSERT_TRUE(size.is_ok()) << size.status().to_string();
  ASSERT_EQ(*size, a.size());
  StreamingRoot streamed;
  std::vector<Digest> roots{ledger::merkle::empty_root()};
  for (const auto& h : a) {
    streamed.add(h);
    roots.push_back(streamed.root());
  }
  for (std::uint64_t n = 1; n <= a.size(); ++n) {
    auto root = ledger_->tree_root("clinic-a", n);
    ASSERT_TRUE(root.is_ok()) << root.status().to_string();
    ASSERT_EQ(*root, roots[n]) << "size " << n;
  }
  for (std::uint64_t n : {std::uint64_t{1}, std::uint64_t{5}, std::uint64_t{64}, a.size()}) {
    for (std::uint64_t i = 0; i < n; i += 3) {
      auto proof = ledger_->inclusion_proof("clinic-a", i, n);
      ASSERT_TRUE(proof.is_ok()) << proof.status().to_string();
      EXPECT_TRUE(ledger::merkle::verify_inclusion(i, n, a[i], *proof, roots[n]).is_ok())
          << i << " in " << n;
    }
    for (std::uint64_t m = 1; m <= n; m += 7) {
      auto proof = ledger_->consistency_proof("clinic-a", m, n);
      ASSERT_TRUE(proof.is_ok()) << proof.status().to_string();
      EXPECT_TRUE(ledger::merkle::verify_consistency(m, n, roots[m], roots[n], *proof).is_ok())
          << m << " to " << n;
    }
  }
  EXPECT_EQ(ledger_->tree_root("clinic-a", a.size() + 1).status().code(), Code::kInvalid);
  EXPECT_EQ(ledger_->inclusion_proof("clinic-a", a.size(), a.size()).status().code(),
            Code::kInvalid);
  EXPECT_EQ(ledger_->consistency_proof("clinic-a", 0, 3).status().code(), Code::kInvalid);
  EXPECT_EQ(ledger_->consistency_proof("clinic-a", 4, 3).status().code(), Code::kInvalid);
  EXPECT_EQ(*ledger_->tree_size("nobody"), 0U);
  // The tree outlives the process.
  reopen();
  EXPECT_EQ(*ledger_->tree_root("clinic-a", a.size()), roots.back());
}

TEST_F(TreeLedgerTest, CheckpointsByCountAndOnDemandAreSignedOverTheRoot) {
  every_ = 10;
  reopen();
  auto hashes = append_events("clinic-a", 25, 5);
  auto all = ledger_->checkpoints("clinic-a");
  ASSERT_TRUE(all.is_ok());
  std::vector<std::uint64_t> sizes;
  for (const auto& c : *all) sizes.push_back(c.size);
  EXPECT_EQ(sizes, (std::vector<std::uint64_t>{10, 20}));
  ASSERT_TRUE(ledger_->checkpoint_now("clinic-a").is_ok());
  auto latest = ledger_->checkpoint("clinic-a");
  ASSERT_TRUE(latest.is_ok() && latest->has_value());
  EXPECT_EQ((*latest)->size, 25U);
  const auto checkpoint = open_checkpoint((*latest)->note);
  EXPECT_EQ(checkpoint.origin, keys_->signer().name() + "/clinic-a");
  EXPECT_EQ(checkpoint.size, 25U);
  EXPECT_EQ(checkpoint.root, ledger::merkle::root_of(hashes));
  // Nothing new: on demand issues nothing more.
  ASSERT_TRUE(ledger_->checkpoint_now("clinic-a").is_ok());
  EXPECT_EQ(ledger_->checkpoints("clinic-a")->size(), 3U);
  // A page: sizes from 11 on, at most one; then the rest.
  const auto page = ledger_->checkpoints("clinic-a", 11, 1);
  ASSERT_TRUE(page.is_ok());
  ASSERT_EQ(page->size(), 1U);
  EXPECT_EQ((*page)[0].size, 20U);
  EXPECT_EQ(ledger_->checkpoints("clinic-a", 21, 5)->size(), 1U);
  EXPECT_TRUE(ledger_->checkpoints("clinic-a", 26)->empty());
  EXPECT_TRUE(ledger_->checkpoints("clinic-b")->empty());
  auto at10 = ledger_->checkpoint("clinic-a", 10);
  ASSERT_TRUE(at10.is_ok() && at10->has_value());
  EXPECT_EQ(open_checkpoint((*at10)->note).root,
            ledger::merkle::root_of(std::span{hashes}.first(10)));
  EXPECT_FALSE(ledger_->checkpoint("clinic-a", 11)->has_value());
  EXPECT_EQ(ledger_->checkpoint_now("empty").code(), Code::kNotFound);
  // Another key does not open it.
  auto other = ledger::note::Signer::generate("trail");
  ASSERT_TRUE(other.is_ok());
  const ledger::note::Verifier foreign = other->verifier();
  EXPECT_FALSE(ledger::open_checkpoint((*latest)->note, std::span{&foreign, 1}).is_ok());
}

TEST_F(TreeLedgerTest, TheTimerCheckpointsSoonAfterAnAppend) {
  interval_ = std::chrono::milliseconds{100};
  reopen();
  append_events("clinic-a", 3, 3);
  append_events("clinic-b", 2, 1);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
  std::uint64_t a = 0;
  std::uint64_t b = 0;
  while (std::chrono::steady_clock::now() < deadline && (a != 3 || b != 2)) {
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
    if (auto c = ledger_->checkpoint("clinic-a"); c.is_ok() && c->has_value()) a = (*c)->size;
    if (auto c = ledger_->checkpoint("clinic-b"); c.is_ok() && c->has_value()) b = (*c)->size;
  }
  EXPECT_EQ(a, 3U);
  EXPECT_EQ(b, 2U);
}

TEST_F(TreeLedgerTest, AChainFromBeforeTheTreesGetsItsTreeFromTheStoredEvents) {
  trees_ = false;
  reopen();
  auto hashes = append_events("clinic-a", 37, 9);
  EXPECT_FALSE(ledger_->has_trees());
  trees_ = true;
  reopen();
  ASSERT_TRUE(ledger_->checkpoint_now("clinic-a").is_ok());
  EXPECT_EQ(*ledger_->tree_size("clinic-a"), 37U);
  auto more = append_events("clinic-a", 5, 5);
  hashes.insert(hashes.end(), more.begin(), more.end());
  EXPECT_EQ(*ledger_->tree_root("clinic-a", hashes.size()), ledger::merkle::root_of(hashes));
  EXPECT_EQ(*ledger_->tree_root("clinic-a", 37), ledger::merkle::root_of(std::span{hashes}.first(37)));
}

TEST_F(TreeLedgerTest, AppendsMadeWithTheTreesOffAreCaughtUp) {
  auto hashes = append_events("clinic-a", 20, 5);
  trees_ = false;
  reopen();
  auto off = append_events("clinic-a", 13, 13);
  hashes.insert(hashes.end(), off.begin(), off.end());
  trees_ = true;
  reopen();
  EXPECT_EQ(*ledger_->tree_size("clinic-a"), 20U);  // Behind until the writer next touches it.
  auto on = append_events("clinic-a", 3, 1);  // The writer's cached right edge starts cold.
  hashes.insert(hashes.end(), on.begin(), on.end());
  ASSERT_EQ(*ledger_->tree_size("clinic-a"), 36U);
  for (std::size_t n : {1U, 16U, 17U, 20U, 33U, 36U}) {
    EXPECT_EQ(*ledger_->tree_root("clinic-a", n), ledger::merkle::root_of(std::span{hashes}.first(n)))
        << "size " << n;
  }
  const Digest root = ledger::merkle::root_of(hashes);
  for (std::uint64_t i : {0U, 15U, 16U, 29U, 35U}) {
    auto proof = ledger_->inclusion_proof("clinic-a", i, 36);
    ASSERT_TRUE(proof.is_ok()) << proof.status().to_string();
    EXPECT_TRUE(ledger::merkle::verify_inclusion(i, 36, hashes[i], *proof, root).is_ok()) << i;
  }
}

TEST_F(TreeLedgerTest, ATreeInTheEarlierLayoutIsRebuilt) {
  // The layout before the size record stored every level, leaves included.
  auto hashes = append_events("clinic-a", 40, 8);
  ledger_.reset();
  const auto entries = [this] {
    auto env = ledger::detail::Env::open(data_dir(), {}).value();
    const MDB_dbi merkle = *env->open_named("merkle");
    auto txn = env->begin_read().value();
    std::vector<std::string> keys;
    auto cursor = txn.cursor(merkle);
    for (bool more = *cursor.first(); more; more = *cursor.next()) {
      keys.emplace_back(as_chars(cursor.key()));
    }
    return keys;
  };
  {
    auto env = ledger::detail::Env::open(data_dir(), {}).value();
    const MDB_dbi merkle = *env->open_named("merkle");
    auto txn = env->begin_write().value();
    ASSERT_TRUE(txn.erase(merkle, as_bytes(ledger::detail::tree_size_key("clinic-a"))).is_ok());
    std::map<std::pair<unsigned, std::uint64_t>, Digest> nodes;
    const ledger::merkle::NodeGet get = [&](unsigned level, std::uint64_t index) -> Result<Digest> {
      return nodes.at({level, index});
    };
    const ledger::merkle::NodePut put = [&](unsigned level, std::uint64_t index, const Digest& h) {
      nodes[{level, index}] = h;
      return txn.put(merkle, as_bytes(ledger::detail::merkle_key("clinic-a", level, index)), h);
    };
    for (std::size_t i = 0; i < hashes.size(); ++i) {
      ASSERT_TRUE(ledger::merkle::append(i, hashes[i], get, put).is_ok());
    }
    ASSERT_TRUE(txn.commit().is_ok());
  }
  EXPECT_EQ(entries().size(), 78U);  // 40 + 20 + 10 + 5 + 2 + 1 nodes, no size record.
  interval_ = std::chrono::milliseconds{100};
  reopen();
  // No size record: no tree, until the checkpoint timer's first sweep rebuilds it.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
  while (*ledger_->tree_size("clinic-a") != 40U && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
  ASSERT_EQ(*ledger_->tree_size("clinic-a"), 40U);
  EXPECT_EQ(*ledger_->tree_root("clinic-a", 40), ledger::merkle::root_of(hashes));
  auto more = append_events("clinic-a", 8, 8);
  hashes.insert(hashes.end(), more.begin(), more.end());
  EXPECT_EQ(*ledger_->tree_root("clinic-a", 48), ledger::merkle::root_of(hashes));
  ledger_.reset();
  // Nodes 4/0, 4/1, 4/2 and 5/0, and the size record.
  const auto now = entries();
  ASSERT_EQ(now.size(), 5U);
  EXPECT_EQ(now[0], ledger::detail::merkle_key("clinic-a", 4, 0));
  EXPECT_EQ(now[3], ledger::detail::merkle_key("clinic-a", 5, 0));
  EXPECT_EQ(now[4], ledger::detail::tree_size_key("clinic-a"));
}

TEST_F(TreeLedgerTest, ReadOnlyWithoutKeysServesRootsProofsAndCheckpoints) {
  auto hashes = append_events("clinic-a", 12, 4);
  ASSERT_TRUE(ledger_->checkpoint_now("clinic-a").is_ok());
  auto note = ledger_->checkpoint("clinic-a");
  ASSERT_TRUE(note.is_ok() && note->has_value());
  reopen(/*with_keys=*/false);
  EXPECT_EQ(*ledger_->tree_root("clinic-a", 12), ledger::merkle::root_of(hashes));
  EXPECT_EQ((*ledger_->checkpoint("clinic-a"))->note, (*note)->note);
  EXPECT_EQ(ledger_->checkpoint_now("clinic-a").code(), Code::kBusy);
  EXPECT_EQ(ledger_->verifier_key().status().code(), Code::kInvalid);
}

}  // namespace
}  // namespace trail::testing
