// The sync index: per owner set, the cases changed since a seq and the cases that left the
// set, so that a phone can sync and purge; a restore is the same query from 0.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "projections/access_projector.h"
#include "projections/case_payload.h"
#include "projections/case_projector.h"
#include "projections/sync_projector.h"
#include "tests/support/ledger_fixture.h"

namespace trail::testing {
namespace {

using proj::CaseChangeData;
using proj::SyncChanges;
using proj::SyncProjector;
using schema::Kind;
using Ids = std::vector<EventId>;
using Owners = std::set<std::string>;

Ids sorted(Ids ids) {
  std::sort(ids.begin(), ids.end());
  return ids;
}

class SyncView : public LedgerTest {
 protected:
  std::vector<std::shared_ptr<ledger::Projector>> projectors() const override {
    return {cases_, view_, access_};
  }

  static ledger::EventDraft event(Kind kind, const EventId& case_id, const std::string& owner = "",
                                  std::vector<std::pair<std::string, std::string>> fields = {}) {
    ledger::EventDraft d = make_draft(0);
    d.kind = kind;
    d.subject = case_id;
    CaseChangeData c;
    if (kind == Kind::CASE_CREATED) c.case_type = "patient";
    c.owner = owner;
    c.fields = std::move(fields);
    d.payload = proj::encode_case_change(c);
    return d;
  }
  std::uint64_t send(Kind kind, const EventId& case_id, const std::string& owner = "") {
    const auto r =
        append_ok("p", {event(kind, case_id, owner, {{"visit", std::to_string(++visits_)}})});
    return r.empty() ? 0 : r[0].seq;
  }
  EventId create(const std::string& owner) {
    const EventId id = random_id();
    send(Kind::CASE_CREATED, id, owner);
    return id;
  }
  SyncChanges sync(const Owners& owners, std::uint64_t since, const std::string& project = "p") {
    auto got = view_->changes(*ledger_, project, owners, since);
    EXPECT_TRUE(got.is_ok()) << got.status().to_string();
    return got.is_ok() ? *got : SyncChanges{};
  }
  std::uint64_t head() { return ledger_->head("p")->seq; }

  std::shared_ptr<proj::CaseProjector> cases_ = std::make_shared<proj::CaseProjector>();
  std::shared_ptr<SyncProjector> view_ = std::make_shared<SyncProjector>();
  std::shared_ptr<proj::AccessProjector> access_ = std::make_shared<proj::AccessProjector>();
  int visits_ = 0;
};

TEST_F(SyncView, RestoreThenIncrementalSyncGivesExactlyTheChangedAndLeftSets) {
  const EventId a1 = create("A");
  const EventId a2 = create("A");
  const EventId a3 = create("A");
  const EventId a4 = create("A");
  const EventId a5 = create("A");
  const EventId a6 = create("A");
  const EventId a8 = create("A");
  const EventId b1 = create("B");
  const EventId b2 = create("B");
  const EventId c1 = create("C");
  send(Kind::CASE_CLOSED, a5);  // Closed before the phone syncs.
  send(Kind::CASE_CLOSED, a6);

  // A's phone restores: A's open cases only; nothing to purge.
  const auto restore = sync({"A"}, 0);
  EXPECT_EQ(restore.changed, sorted({a1, a2, a3, a4, a8}));
  EXPECT_TRUE(restore.left.empty());
  EXPECT_EQ(restore.head_seq, head());
  EXPECT_EQ(sync({"B"}, 0).changed, sorted({b1, b2}));
  EXPECT_EQ(sync({"A", "B"}, 0).changed, sorted({a1, a2, a3, a4, a8, b1, b2}));
  const std::uint64_t since = restore.head_seq;

  send(Kind::CASE_UPDATED, a1);             // Changed, still A's.
  send(Kind::CASE_CLOSED, a2);              // Closed: leaves.
  send(Kind::CASE_REASSIGNED, a3, "B");     // A -> B: leaves A, enters B.
  send(Kind::CASE_REASSIGNED, b1, "A");     // B -> A: enters A, leaves B.
  send(Kind::CASE_REOPENED, a5);            // Closed before `since`, reopened: enters A.
  send(Kind::CASE_UPDATED, a6);             // Closed before `since`, changed while closed.
  send(Kind::CASE_REASSIGNED, a6, "B");     // ... and moved while closed: in no answer.
  send(Kind::CASE_REASSIGNED, a8, "B");     // A -> B -> A: changed, never left.
  send(Kind::CASE_REASSIGNED, a8, "A");
  const EventId a9 = create("A");           // Created and closed after `since`: nothing.
  send(Kind::CASE_CLOSED, a9);
  const EventId a10 = random_id();          // Implicitly created (owner ""), then assigned.
  send(Kind::CASE_UPDATED, a10);
  send(Kind::CASE_REASSIGNED, a10, "A");
  const EventId u1 = random_id();           // Never owned: in nobody's set.
  const auto u1_seq = send(Kind::CASE_UPDATED, u1);
  send(Kind::CASE_UPDATED, b2);             // B's business.
  send(Kind::CASE_UPDATED, c1);             // C's business.
  append_ok("p", {proj::make_record_read("A", "phone", schema::Channel::MOBILE_FORM, "sync",
                                          {a1, a4}, "sync", 0)});  // Not a case event.

  const auto a = sync({"A"}, since);
  EXPECT_EQ(a.changed, sorted({a1, a5, a8, a10, b1}));
  EXPECT_EQ(a.left, sorted({a2, a3}));
  EXPECT_EQ(a.head_seq, head());
  const auto b = sync({"B"}, since);
  EXPECT_EQ(b.changed, sorted({a3, b2}));
  EXPECT_EQ(b.left, sorted({b1}));
  const auto ab = sync({"A", "B"}, since);
  EXPECT_EQ(ab.changed, sorted({a1, a3, a5, a8, a10, b1, b2}));
  EXPECT_EQ(ab.left, sorted({a2}));
  const auto with_empty = sync({"A", ""}, since);  // Owner "" matches nothing.
  EXPECT_EQ(with_empty.changed, a.changed);
  EXPECT_EQ(with_empty.left, a.left);

  // The phone's set after applying the answer is what a restore gives now.
  std::set<EventId> phone(restore.changed.begin(), restore.changed.end());
  for (const auto& id : a.left) phone.erase(id);
  phone.insert(a.changed.begin(), a.changed.end());
  const auto again = sync({"A"}, 0);
  EXPECT_EQ(again.changed, Ids(phone.begin(), phone.end()));
  EXPECT_EQ(again.changed, sorted({a1, a4, a5, a8, a10, b1}));
  EXPECT_TRUE(again.left.empty());

  // Nothing since the head; a seq beyond it is refused; the view's own record.
  const auto none = sync({"A"}, a.head_seq);
  EXPECT_TRUE(none.changed.empty());
  EXPECT_TRUE(none.left.empty());
  EXPECT_EQ(none.head_seq, a.head_seq);
  EXPECT_EQ(view_->changes(*ledger_, "p", {"A"}, a.head_seq + 1).status().code(),
            Code::kConflict);
  const auto rec = view_->get(*ledger_, "p", a3);
  ASSERT_TRUE(rec.is_ok() && rec->has_value());
  EXPECT_EQ((*rec)->owner, "B");
  EXPECT_FALSE((*rec)->closed);
  const auto unowned = view_->get(*ledger_, "p", u1);
  ASSERT_TRUE(unowned.is_ok() && unowned->has_value());
  EXPECT_EQ((*unowned)->owner, "");
  EXPECT_EQ((*unowned)->last_seq, u1_seq);
  EXPECT_FALSE(view_->get(*ledger_, "p", random_id())->has_value());

  // Unknown project: empty at seq 0.
  const auto unknown = sync({"A"}, 0, "q");
  EXPECT_TRUE(unknown.changed.empty());
  EXPECT_EQ(unknown.head_seq, 0U);
}

TEST_F(SyncView, ClosedBeforeSinceNeverReappearsAndCloseThenReassignIsOneLeave) {
  const EventId x = create("A");
  const EventId y = create("A");
  send(Kind::CASE_CLOSED, x);
  const auto s1 = sync({"A"}, 0);
  EXPECT_EQ(s1.changed, Ids{y});
  send(Kind::CASE_CLOSED, x);  // Close of a closed case.
  send(Kind::CASE_UPDATED, x);
  const auto s2 = sync({"A"}, s1.head_seq);
  EXPECT_TRUE(s2.changed.empty());
  EXPECT_TRUE(s2.left.empty());
  send(Kind::CASE_CLOSED, y);
  send(Kind::CASE_REASSIGNED, y, "B");
  const auto s3 = sync({"A"}, s2.head_seq);
  EXPECT_TRUE(s3.changed.empty());
  EXPECT_EQ(s3.left, Ids{y});
  // y is closed at s3's head: the next sync does not name it again, nor does B's restore.
  send(Kind::CASE_UPDATED, y);
  const auto s4 = sync({"A"}, s3.head_seq);
  EXPECT_TRUE(s4.changed.empty());
  EXPECT_TRUE(s4.left.empty());
  EXPECT_TRUE(sync({"B"}, 0).changed.empty());
}

// The view's own record is rewritten only when a case enters, moves, closes or reopens: a plain
// update leaves it (and its seq) alone, yet still reaches the owner's next sync.
TEST_F(SyncView, APlainUpdateLeavesTheCaseRecordAsItWas) {
  const EventId x = random_id();
  const std::uint64_t created = send(Kind::CASE_CREATED, x, "A");
  const auto before = sync({"A"}, 0);
  const std::uint64_t updated = send(Kind::CASE_UPDATED, x);
  ASSERT_GT(updated, created);
  auto rec = view_->get(*ledger_, "p", x);
  ASSERT_TRUE(rec.is_ok() && rec->has_value());
  EXPECT_EQ((*rec)->last_seq, created);
  EXPECT_EQ(sync({"A"}, before.head_seq).changed, Ids{x});
  const std::uint64_t moved = send(Kind::CASE_REASSIGNED, x, "B");
  rec = view_->get(*ledger_, "p", x);
  ASSERT_TRUE(rec.is_ok() && rec->has_value());
  EXPECT_EQ((*rec)->owner, "B");
  EXPECT_EQ((*rec)->last_seq, moved);
  const std::uint64_t closed = send(Kind::CASE_CLOSED, x);
  rec = view_->get(*ledger_, "p", x);
  ASSERT_TRUE(rec.is_ok() && rec->has_value());
  EXPECT_TRUE((*rec)->closed);
  EXPECT_EQ((*rec)->last_seq, closed);
}

// The writer keeps the records and log buckets it wrote for the next events. A views commit
// that fails after the chain's must forget them: the catch-up folds the same events again, and
// a kept bucket would then hold their entries twice.
TEST_F(SyncView, AFailedViewsCommitLeavesNoEntryTwice) {
  const EventId x = create("A");
  const EventId y = create("A");
  ledger_->inject_view_commit_failures(1);
  send(Kind::CASE_UPDATED, x);
  send(Kind::CASE_REASSIGNED, y, "B");
  send(Kind::CASE_UPDATED, x);
  EXPECT_EQ(sync({"A"}, 0).changed, Ids{x});
  EXPECT_EQ(sync({"B"}, 0).changed, Ids{y});
  expect_rebuild_reproduces_views();
}

// Batches of one owner's events span several buckets and several commits; a sync from any
// seq, including one inside a bucket, names exactly the cases changed after it.
TEST_F(SyncView, ASyncFromInsideABucketNamesOnlyWhatChangedAfterIt) {
  const auto bucket = SyncProjector::kBucketSeqs;
  std::vector<EventId> ids;
  for (std::uint64_t i = 0; i < 2 * bucket + 5; ++i) ids.push_back(random_id());
  std::vector<ledger::EventDraft> batch;
  for (const auto& id : ids) batch.push_back(event(Kind::CASE_CREATED, id, "A"));
  const auto created = append_ok("p", batch);
  ASSERT_EQ(created.size(), ids.size());
  // One update per case, in three commits, in case order.
  std::vector<std::uint64_t> seq_of(ids.size());
  for (std::size_t from = 0; from < ids.size(); from += bucket - 7) {
    std::vector<ledger::EventDraft> updates;
    const std::size_t to = std::min(ids.size(), from + bucket - 7);
    for (std::size_t i = from; i < to; ++i) {
      updates.push_back(event(Kind::CASE_UPDATED, ids[i], "", {{"v", std::to_string(i)}}));
    }
    const auto receipts = append_ok("p", updates);
    ASSERT_EQ(receipts.size(), to - from);
    for (std::size_t i = from; i < to; ++i) seq_of[i] = receipts[i - from].seq;
  }
  for (const std::size_t cut : {std::size_t{0}, std::size_t{1}, std::size_t{30},
                                static_cast<std::size_t>(bucket), ids.size() - 1}) {
    const std::uint64_t since = seq_of[cut] - 1;  // Just before case `cut`'s update.
    Ids expected(ids.begin() + static_cast<std::ptrdiff_t>(cut), ids.end());
    const auto got = sync({"A"}, since);
    EXPECT_EQ(got.changed, sorted(expected)) << "since " << since;
    EXPECT_TRUE(got.left.empty());
  }
  EXPECT_TRUE(sync({"A"}, head()).changed.empty());
}

// A random stream of case events over three owners; a phone for {A, B} syncs now and then and
// must always hold exactly what a restore gives. Then a rebuild reproduces the views exactly.
TEST_F(SyncView, RandomStreamPhoneMatchesRestoreAndRebuildIsByteIdentical) {
  const auto seed = static_cast<std::uint64_t>(::testing::UnitTest::GetInstance()->random_seed());
  SCOPED_TRACE("random seed " + std::to_string(seed));
  std::mt19937_64 rng{seed + 7};
  std::vector<EventId> ids(15);
  for (auto& id : ids) id = random_id();
  const Kind kinds[] = {Kind::CASE_CREATED, Kind::CASE_UPDATED,  Kind::CASE_CLOSED,
                        Kind::CASE_REOPENED, Kind::CASE_INDEXED, Kind::CASE_REASSIGNED};
  const std::string owners[] = {"A", "B", "C", ""};
  const Owners mine = {"A", "B"};
  std::set<EventId> phone;
  std::uint64_t since = 0;
  // Model: owner and closed per case, to check the restore itself.
  std::map<EventId, std::pair<std::string, bool>> model;
  for (int round = 0; round < 40; ++round) {
    std::vector<ledger::EventDraft> batch;
    const bool to_p = rng() % 5 != 0;
    const auto size = rng() % 6 + 1;
    for (std::size_t i = 0; i < size; ++i) {
      const Kind kind = kinds[rng() % std::size(kinds)];
      const EventId& id = ids[rng() % ids.size()];
      const std::string owner = kind == Kind::CASE_REASSIGNED || rng() % 4 == 0
                                    ? owners[rng() % std::size(owners)]
                                    : std::string{};
      batch.push_back(event(kind, id, owner, {{"f", std::to_string(rng() % 3)}}));
      if (!to_p) continue;
      auto& m = model[id];
      if (!owner.empty()) m.first = owner;
      if (kind == Kind::CASE_CLOSED) m.second = true;
      if (kind == Kind::CASE_REOPENED) m.second = false;
    }
    append_ok(to_p ? "p" : "q", batch);
    if (rng() % 3 == 0) {
      const auto s = sync(mine, since);
      for (const auto& id : s.left) {
        EXPECT_EQ(phone.erase(id), 1U) << "left names a case the phone does not hold";
      }
      phone.insert(s.changed.begin(), s.changed.end());
      since = s.head_seq;
      const auto restore = sync(mine, 0);
      EXPECT_TRUE(restore.left.empty());
      EXPECT_EQ(restore.head_seq, since);
      EXPECT_EQ(restore.changed, Ids(phone.begin(), phone.end())) << "round " << round;
    }
  }
  std::set<EventId> expected;
  for (const auto& [id, m] : model) {
    if (!m.second && mine.count(m.first) != 0) expected.insert(id);
  }
  EXPECT_EQ(sync(mine, 0).changed, Ids(expected.begin(), expected.end()));

  auto incremental = ledger_->projection_digest();
  ASSERT_TRUE(incremental.is_ok());
  const auto before = sync(mine, 0);
  ASSERT_TRUE(ledger_->rebuild_projections({}).is_ok());
  auto rebuilt = ledger_->projection_digest();
  ASSERT_TRUE(rebuilt.is_ok());
  EXPECT_EQ(*incremental, *rebuilt);
  const auto after = sync(mine, 0);
  EXPECT_EQ(after.changed, before.changed);
  EXPECT_EQ(after.head_seq, before.head_seq);
}

}  // namespace
}  // namespace trail::testing
