// The ledger's Merkle trees and checkpoints through the Ledger API: the tree grows inside every
// append's commit, roots and proofs agree with a tree streamed from the receipts, checkpoints
// are issued by count, by timer and on demand, signed with the keys dir's key, and a chain
// from before the trees gets its tree from the stored events.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "ledger/checkpoint.h"
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
