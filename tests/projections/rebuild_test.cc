// Views are a pure function of the chains: rebuilding them from the events reproduces the
// incrementally built sub-databases byte for byte, and a view that fell behind catches up.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>

#include "ledger/internal/lmdb_env.h"
#include "projections/case_projector.h"
#include "tests/support/ledger_fixture.h"
#include "tests/support/lmdb_tables.h"
#include "tests/support/views_check.h"

namespace trail::testing {
namespace {

using proj::CaseChangeData;
using schema::Kind;

class Rebuild : public LedgerTest {
 protected:
  std::vector<std::shared_ptr<ledger::Projector>> projectors() const override {
    std::vector<std::shared_ptr<ledger::Projector>> out = also_;
    if (with_view_) out.push_back(view_);
    return out;
  }
  void configure(ledger::LedgerOptions& options) const override {
    options.catch_up_views = catch_up_at_open_;
  }

  // A random stream of case events over a small set of cases, users and fields, including
  // updates of missing cases, closes of closed cases, re-opens, index changes and re-sends.
  void append_random_stream(std::mt19937_64& rng, int batches) {
    std::vector<EventId> cases(12);
    for (auto& id : cases) id = random_id();
    const Kind kinds[] = {Kind::CASE_CREATED, Kind::CASE_UPDATED, Kind::CASE_UPDATED,
                          Kind::CASE_CLOSED,  Kind::CASE_REOPENED, Kind::CASE_INDEXED,
                          Kind::CASE_REASSIGNED};
    std::vector<ledger::EventDraft> sent;
    for (int b = 0; b < batches; ++b) {
      std::vector<ledger::EventDraft> batch;
      const int size = static_cast<int>(rng() % 8) + 1;
      for (int i = 0; i < size; ++i) {
        if (!sent.empty() && rng() % 10 == 0) {  // A re-send of an earlier event.
          batch.push_back(sent[rng() % sent.size()]);
          continue;
        }
        ledger::EventDraft d = make_draft(0);
        d.kind = kinds[rng() % std::size(kinds)];
        d.subject = cases[rng() % cases.size()];
        d.actor = "user-" + std::to_string(rng() % 4);
        // Device clocks disagree with arrival order now and then: exercises the re-fold.
        d.client_time_us = 1'700'000'000'000'000 + static_cast<TimeUs>(rng() % 1000) * 1'000'000;
        CaseChangeData c;
        if (d.kind == Kind::CASE_CREATED) c.case_type = rng() % 2 ? "patient" : "household";
        if (d.kind == Kind::CASE_REASSIGNED || rng() % 5 == 0) c.owner = "owner-" + std::to_string(rng() % 3);
        if (d.kind == Kind::CASE_INDEXED) {
          c.indices.push_back({"parent", "household",
                               rng() % 3 ? std::optional<EventId>{cases[rng() % cases.size()]}
                                         : std::nullopt,
                               "child"});
        }
        for (unsigned f = 0; f < rng() % 4; ++f) {
          c.fields.emplace_back("f" + std::to_string(rng() % 5), std::to_string(rng() % 3));
        }
        d.payload = proj::encode_case_change(c);
        batch.push_back(d);
      }
      auto r = ledger_->append(rng() % 4 ? "p" : "q", batch).get();
      if (r.is_ok()) {
        for (const auto& d : batch) sent.push_back(d);
      } else {
        ASSERT_EQ(r.status().code(), Code::kConflict) << r.status().to_string();
      }
    }
  }

  bool with_view_ = true;
  bool catch_up_at_open_ = true;
  std::vector<std::shared_ptr<ledger::Projector>> also_;  // Registered besides the case view.
  std::shared_ptr<proj::CaseProjector> view_ = std::make_shared<proj::CaseProjector>();
};

TEST_F(Rebuild, RebuiltViewsAreByteIdenticalToIncrementalOnes) {
  const auto seed = static_cast<std::uint64_t>(::testing::UnitTest::GetInstance()->random_seed());
  SCOPED_TRACE("random seed " + std::to_string(seed));
  std::mt19937_64 rng{seed + 1};
  append_random_stream(rng, 150);
  auto incremental = ledger_->projection_digest();
  ASSERT_TRUE(incremental.is_ok());
  std::uint64_t last_done = 0;
  std::uint64_t last_total = 0;
  ASSERT_TRUE(ledger_->rebuild_projections([&](std::uint64_t done, std::uint64_t total) {
    EXPECT_GE(done, last_done);
    last_done = done;
    last_total = total;
  }).is_ok());
  EXPECT_EQ(last_done, last_total);
  EXPECT_EQ(last_total, ledger_->head("p")->seq + ledger_->head("q")->seq);
  auto rebuilt = ledger_->projection_digest();
  ASSERT_TRUE(rebuilt.is_ok());
  EXPECT_EQ(to_hex(*rebuilt), to_hex(*incremental));
  // And appends go on normally after a rebuild.
  append_random_stream(rng, 5);
  EXPECT_EQ(*ledger_->projection_seq(*view_, "p"), ledger_->head("p")->seq);
}

TEST_F(Rebuild, ReplayedHistoryReproducesTheState) {
  std::mt19937_64 rng{7};
  append_random_stream(rng, 100);
  // Fold every case's history entries by hand: the last value of each field, the owner and
  // the closed flag must equal the stored state.
  auto cases = view_->list(*ledger_, "p", {}, std::nullopt, 0);
  ASSERT_TRUE(cases.is_ok());
  ASSERT_FALSE(cases->empty());
  for (const auto& c : *cases) {
    proj::HistoryFilter f;
    f.case_id = c.case_id;
    auto history = view_->history(*ledger_, "p", f, 0);
    ASSERT_TRUE(history.is_ok());
    // The documented order: runs of one user's consecutive events within kReorderWindowUs of
    // the run's first are folded by device time (then seq); runs stay in arrival order.
    auto& entries = *history;
    for (std::size_t start = 0; start < entries.size();) {
      std::size_t end = start + 1;
      while (end < entries.size() && entries[end].actor == entries[start].actor &&
             entries[end].server_time_us - entries[start].server_time_us <=
                 proj::kReorderWindowUs) {
        ++end;
      }
      std::stable_sort(entries.begin() + static_cast<std::ptrdiff_t>(start),
                       entries.begin() + static_cast<std::ptrdiff_t>(end),
                       [](const auto& a, const auto& b) { return a.client_time_us < b.client_time_us; });
      start = end;
    }
    std::map<std::string, std::string> fields;
    std::string owner;
    bool closed = false;
    for (const auto& entry : *history) {
      for (const auto& change : entry.changes) {
        if (change.action == schema::Action::UPDATE) fields[change.field] = change.value;
        if (change.action == schema::Action::OWNER) owner = change.value;
        if (change.action == schema::Action::CLOSE ||
            change.action == schema::Action::CLOSE_CLOSED) {
          closed = true;
        }
        if (change.action == schema::Action::REOPEN) closed = false;
      }
    }
    EXPECT_EQ(owner, c.owner);
    EXPECT_EQ(closed, c.closed);
    std::map<std::string, std::string> state_fields(c.fields.begin(), c.fields.end());
    EXPECT_EQ(fields, state_fields);
    std::uint64_t last_seq = 0;
    for (const auto& entry : entries) last_seq = std::max(last_seq, entry.seq);
    EXPECT_EQ(last_seq, c.last_seq);
  }
}

TEST_F(Rebuild, AViewRegisteredLateCatchesUpBeforeFoldingNewEvents) {
  catch_up_at_open_ = false;  // So that the appends must do it.
  with_view_ = false;
  reopen();
  std::mt19937_64 rng{11};
  append_random_stream(rng, 40);  // Appended with no view registered.
  with_view_ = true;
  reopen();
  EXPECT_EQ(*ledger_->projection_seq(*view_, "p"), 0U);
  // The first append to each project brings its view up to date before folding the new event.
  append_ok("p", make_drafts(1, 0));
  append_ok("q", make_drafts(1, 0));
  EXPECT_EQ(*ledger_->projection_seq(*view_, "p"), ledger_->head("p")->seq);
  EXPECT_EQ(*ledger_->projection_seq(*view_, "q"), ledger_->head("q")->seq);
  expect_views_match_a_rebuild(*ledger_);
}

// A view behind its chain at a writable open (registered since, or renamed for a new layout)
// is complete when open() returns: no read sees it partial, and no append waits for it.
TEST_F(Rebuild, AViewBehindItsChainIsCaughtUpAtOpen) {
  with_view_ = false;
  reopen();
  std::mt19937_64 rng{12};
  append_random_stream(rng, 40);
  with_view_ = true;
  reopen();
  EXPECT_EQ(*ledger_->projection_seq(*view_, "p"), ledger_->head("p")->seq);
  EXPECT_EQ(*ledger_->projection_seq(*view_, "q"), ledger_->head("q")->seq);
  expect_views_match_a_rebuild(*ledger_);
}

// Counts, per project and seq, how often it was folded (key: project || u64 seq, value: u64).
class FoldCounter final : public ledger::Projector {
 public:
  explicit FoldCounter(std::string name) : name_{std::move(name)} {}
  std::string_view name() const override { return name_; }
  std::vector<std::string> tables() const override { return {name_ + ".folds"}; }
  Status apply(ledger::ProjectionTables& tables, const ledger::AppendedEvent& event) override {
    std::string key(event.project);
    std::uint8_t seq[8];
    put_u64_be(seq, event.seq);
    key.append(reinterpret_cast<const char*>(seq), 8);
    TRAIL_ASSIGN_OR_RETURN(auto stored, tables.get(0, as_bytes(key)));
    std::uint8_t count[8];
    put_u64_be(count, (stored ? get_u64_be(stored->data()) : 0) + 1);
    return tables.put(0, as_bytes(key), count);
  }

 private:
  std::string name_;
};

// Each seq of `project` that `counter` folded, and how often.
std::map<std::uint64_t, std::uint64_t> folds(const ledger::Ledger& ledger,
                                             const FoldCounter& counter,
                                             const std::string& project) {
  std::map<std::uint64_t, std::uint64_t> out;
  const Status read = ledger.read_projection(counter, [&](const ledger::ProjectionTables& tables) {
    return tables.scan(0, as_bytes(project), [&](ByteView key, ByteView value) {
      if (key.size() != project.size() + 8 || as_chars(key.first(project.size())) != project) {
        return false;
      }
      out[get_u64_be(key.data() + project.size())] = get_u64_be(value.data());
      return true;
    });
  });
  EXPECT_TRUE(read.is_ok()) << read.to_string();
  return out;
}

// Views that stand at different points of a chain at a writable open (registered at different
// times) are caught up in one pass: each folds every event after its own point exactly once.
TEST_F(Rebuild, ViewsBehindByDifferentAmountsEachFoldEveryMissingEventOnce) {
  auto early = std::make_shared<FoldCounter>("early");
  auto middle = std::make_shared<FoldCounter>("middle");
  auto late = std::make_shared<FoldCounter>("late");
  std::mt19937_64 rng{15};
  with_view_ = false;
  also_ = {early};
  reopen();
  append_random_stream(rng, 20);  // early folds these as they come.
  also_ = {};
  reopen();
  append_random_stream(rng, 20);  // Nobody folds these.
  also_ = {middle};
  reopen();                       // middle catches up to here...
  append_random_stream(rng, 20);  // ...and folds these.
  also_ = {};
  reopen();
  append_random_stream(rng, 20);
  const std::uint64_t early_at = *ledger_->projection_seq(*early, "p");
  const std::uint64_t middle_at = *ledger_->projection_seq(*middle, "p");
  const std::uint64_t head = ledger_->head("p")->seq;
  ASSERT_LT(early_at, middle_at);
  ASSERT_LT(middle_at, head);

  with_view_ = true;  // Never registered: behind by the whole chain.
  also_ = {late, middle, early};
  reopen();
  for (const std::string project : {"p", "q"}) {
    const std::uint64_t size = ledger_->head(project)->seq;
    for (const auto* counter : {early.get(), middle.get(), late.get()}) {
      EXPECT_EQ(*ledger_->projection_seq(*counter, project), size) << counter->name();
      const auto folded = folds(*ledger_, *counter, project);
      EXPECT_EQ(folded.size(), size) << counter->name() << " " << project;
      for (const auto& [seq, times] : folded) {
        EXPECT_EQ(times, 1U) << counter->name() << " folded " << project << " seq " << seq;
      }
    }
    EXPECT_EQ(*ledger_->projection_seq(*view_, project), size);
  }
  expect_views_match_a_rebuild(*ledger_);  // The case view caught up alongside the counters.
}

// A directory written before the case view's layout change (view "case", sub-databases
// case.state and case.history) opens with the view caught up in case.records and the earlier
// sub-databases deleted.
TEST_F(Rebuild, TheEarlierLayoutIsCaughtUpAndItsSubDatabasesDeleted) {
  with_view_ = false;
  reopen();
  std::mt19937_64 rng{13};
  append_random_stream(rng, 30);
  // The earlier layout's sub-databases, where such a directory has them: in the chain's
  // environment (before DATA/views) and in the views' own.
  for (ledger::detail::Env* env : {&ledger_->env(), &ledger_->views_env()}) {
    for (const std::string name : {"case.state", "case.history"}) {
      auto dbi = env->open_named(name);
      ASSERT_TRUE(dbi.is_ok());
      auto txn = env->begin_write();
      ASSERT_TRUE(txn.is_ok());
      ASSERT_TRUE(txn->put(*dbi, as_bytes(std::string("k")), as_bytes(std::string("v"))).is_ok());
      ASSERT_TRUE(txn->commit().is_ok());
    }
  }
  ASSERT_TRUE(has_table(ledger_->env(), "case.state"));
  ASSERT_TRUE(has_table(ledger_->views_env(), "case.state"));
  with_view_ = true;
  reopen();
  for (const ledger::detail::Env* env : {&ledger_->env(), &ledger_->views_env()}) {
    EXPECT_FALSE(has_table(*env, "case.state"));
    EXPECT_FALSE(has_table(*env, "case.history"));
  }
  EXPECT_TRUE(has_table(ledger_->views_env(), "case.records"));
  EXPECT_FALSE(has_table(ledger_->env(), "case.records"));
  EXPECT_EQ(*ledger_->projection_seq(*view_, "p"), ledger_->head("p")->seq);
  reopen();  // Nothing left to delete or catch up.
  EXPECT_EQ(*ledger_->projection_seq(*view_, "p"), ledger_->head("p")->seq);
}

// A view that has applied nothing of any chain (renamed for a new layout) starts from empty
// tables: an entry its earlier layout left in a table it keeps is gone after the catch-up.
TEST_F(Rebuild, AViewThatAppliedNothingStartsFromEmptyTables) {
  std::mt19937_64 rng{14};
  append_random_stream(rng, 30);
  {
    auto by_owner = ledger_->views_env().open_named("case.by_owner");
    ASSERT_TRUE(by_owner.is_ok());
    auto txn = ledger_->views_env().begin_write();
    ASSERT_TRUE(txn.is_ok());
    ASSERT_TRUE(txn->put(*by_owner, as_bytes(std::string("left by an earlier layout")), {}).is_ok());
    // As if the view had been renamed: its bookkeeping names nothing it applied.
    ASSERT_TRUE(
        txn->clear(ledger_->views_env().dbi(ledger::detail::Table::kProjectionState)).is_ok());
    ASSERT_TRUE(txn->commit().is_ok());
  }
  reopen();
  EXPECT_EQ(*ledger_->projection_seq(*view_, "p"), ledger_->head("p")->seq);
  expect_views_match_a_rebuild(*ledger_);
}

}  // namespace
}  // namespace trail::testing

namespace trail::testing {
namespace {

// A full map mid-commit makes the writer grow it and redo the whole drain: what the views kept
// back for the abandoned transaction must be forgotten, or the redo would fold twice.
class RebuildSmallMap : public Rebuild {
 protected:
  std::size_t initial_map_bytes() const override { return 256U << 10U; }
};

TEST_F(RebuildSmallMap, ViewsStayExactWhenACommitIsRedoneAfterTheMapGrows) {
  const std::size_t before = ledger_->map_bytes();
  std::vector<EventId> cases(10);
  for (auto& c : cases) c = random_id();
  for (int b = 0; b < 20; ++b) {
    std::vector<ledger::EventDraft> batch;
    for (int i = 0; i < 50; ++i) {
      ledger::EventDraft d = make_draft(0);
      d.subject = cases[static_cast<std::size_t>(i) % cases.size()];
      CaseChangeData c;
      c.fields.emplace_back("note", std::string(2000, static_cast<char>('a' + b % 26)));
      c.fields.emplace_back("n", std::to_string(b * 50 + i));
      d.payload = proj::encode_case_change(c);
      batch.push_back(std::move(d));
    }
    // Not idempotent: folded twice, a close would be recorded as a close of a closed case.
    ledger::EventDraft close = make_draft(0);
    close.kind = b % 2 == 0 ? schema::Kind::CASE_CLOSED : schema::Kind::CASE_REOPENED;
    close.subject = cases[0];
    close.payload = proj::encode_case_change({});
    batch.push_back(std::move(close));
    append_ok("p", std::move(batch));
  }
  ASSERT_GT(ledger_->map_bytes(), before);  // The map did grow, so drains were redone.
  proj::HistoryFilter f;
  f.case_id = cases[3];
  auto history = view_->history(*ledger_, "p", f, 0);
  ASSERT_TRUE(history.is_ok());
  EXPECT_EQ(history->size(), 100U);  // Folded exactly once each.
  auto state = view_->get(*ledger_, "p", cases[3]);
  ASSERT_TRUE(state.is_ok() && state->has_value());
  ASSERT_EQ((*state)->fields.size(), 2U);
  EXPECT_EQ((*state)->fields.front(), (std::pair<std::string, std::string>{"n", "993"}));
  auto incremental = ledger_->projection_digest();
  ASSERT_TRUE(ledger_->rebuild_projections({}).is_ok());
  EXPECT_EQ(to_hex(*ledger_->projection_digest()), to_hex(*incremental));
}

// Drains large enough to have their records sealed on the writer's side thread, in a map that
// keeps filling: a views flush that finds the map full comes after the chain's commit, so the
// views are caught up from the chain (not the drain redone), and still folded exactly once.
TEST_F(RebuildSmallMap, ViewsStayExactWhenALargeDrainsFlushFindsTheMapFull) {
  const std::size_t before = ledger_->views_env().map_bytes();
  std::vector<EventId> cases(40);
  for (auto& c : cases) c = random_id();
  constexpr int kBatches = 6;
  constexpr int kPerBatch = 300;
  for (int b = 0; b < kBatches; ++b) {
    std::vector<ledger::EventDraft> batch;
    for (int i = 0; i < kPerBatch; ++i) {
      ledger::EventDraft d = make_draft(0);
      d.subject = cases[static_cast<std::size_t>(i) % cases.size()];
      CaseChangeData c;
      c.fields.emplace_back("note", std::string(1500, static_cast<char>('a' + b)));
      c.fields.emplace_back("n", std::to_string(b * kPerBatch + i));
      d.payload = proj::encode_case_change(c);
      batch.push_back(std::move(d));
    }
    append_ok("p", std::move(batch));
  }
  ASSERT_GT(ledger_->views_env().map_bytes(), before);  // The views' map did grow.
  proj::HistoryFilter f;
  f.case_id = cases[7];
  auto history = view_->history(*ledger_, "p", f, 0);
  ASSERT_TRUE(history.is_ok());
  std::size_t updates = 0;  // Of cases[7], and the last one's number.
  int last = 0;
  for (int n = 0; n < kBatches * kPerBatch; ++n) {
    if (static_cast<std::size_t>(n % kPerBatch) % cases.size() == 7) {
      ++updates;
      last = n;
    }
  }
  EXPECT_EQ(history->size(), updates);  // Folded exactly once each.
  auto state = view_->get(*ledger_, "p", cases[7]);
  ASSERT_TRUE(state.is_ok() && state->has_value());
  ASSERT_EQ((*state)->fields.size(), 2U);
  EXPECT_EQ((*state)->fields.front().second, std::to_string(last));
  auto incremental = ledger_->projection_digest();
  ASSERT_TRUE(ledger_->rebuild_projections({}).is_ok());
  EXPECT_EQ(to_hex(*ledger_->projection_digest()), to_hex(*incremental));
}

}  // namespace
}  // namespace trail::testing
