// The views live in an environment of their own, DATA/views, committed after the chain and not
// synced (ledger/internal/view_store.h). These tests cover what that design must still
// guarantee: a directory from before it moves its views over; a stop of the machine while views
// were being written (a writer's mark from another boot) rebuilds them from the chains; a
// process that died leaves them as they are; a failed views commit never loses an answer's
// events from the views.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "ledger/internal/lmdb_env.h"
#include "ledger/internal/view_store.h"
#include "projections/case_projector.h"
#include "tests/support/ledger_fixture.h"
#include "tests/support/lmdb_tables.h"

namespace trail::testing {
namespace {

namespace fs = std::filesystem;
using proj::CaseChangeData;
using schema::Kind;

class ViewStore : public LedgerTest {
 protected:
  std::vector<std::shared_ptr<ledger::Projector>> projectors() const override { return {view_}; }

  // `count` case events over three cases, one commit each.
  void append_cases(int count) {
    for (int i = 0; i < count; ++i) {
      ledger::EventDraft d = make_draft(0);
      d.kind = i < 3 ? Kind::CASE_CREATED : Kind::CASE_UPDATED;
      d.subject = cases_[static_cast<std::size_t>(i) % cases_.size()];
      CaseChangeData c;
      if (i < 3) c.case_type = "patient";
      c.fields.emplace_back("visit", std::to_string(i));
      d.payload = proj::encode_case_change(c);
      append_ok("p", {d});
    }
  }

  std::string digest() {
    auto d = ledger_->projection_digest();
    EXPECT_TRUE(d.is_ok()) << d.status().to_string();
    return d.is_ok() ? to_hex(*d) : std::string{};
  }

  std::string rebuilt_digest() {
    EXPECT_TRUE(ledger_->rebuild_projections({}).is_ok());
    return digest();
  }

  fs::path views() const { return ledger::detail::views_dir(data_dir()); }

  std::vector<std::string> marks() const {
    std::vector<std::string> out;
    for (const auto& entry : fs::directory_iterator(views())) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("writer.", 0) == 0) out.push_back(name);
    }
    return out;
  }

  void write_mark(long pid, const std::string& boot_id,
                  const std::string& pid_namespace = ledger::detail::current_pid_namespace())
      const {
    std::ofstream out(views() / ("writer." + std::to_string(pid)));
    out << boot_id << '\n' << pid_namespace << '\n';
  }

  Result<std::unique_ptr<ledger::Ledger>> open_read_only() const {
    ledger::LedgerOptions options;
    options.data_dir = data_dir();
    options.projectors = projectors();
    options.read_only = true;
    options.keys = keys_;
    return ledger::Ledger::open(options);
  }

  void configure(ledger::LedgerOptions& options) const override {
    options.catch_up_views = catch_up_views_;
  }

  // Re-sends `sent` (each appended before): every one must be a duplicate of its stored seq.
  void expect_duplicates(const std::vector<ledger::EventDraft>& sent,
                         const std::vector<ledger::Receipt>& first) {
    const std::uint64_t head = ledger_->head("p")->seq;
    auto again = ledger_->append("p", sent).get();
    ASSERT_TRUE(again.is_ok()) << again.status().to_string();
    ASSERT_EQ(again->size(), first.size());
    for (std::size_t i = 0; i < first.size(); ++i) {
      EXPECT_TRUE((*again)[i].duplicate) << i;
      EXPECT_EQ((*again)[i].seq, first[i].seq) << i;
      EXPECT_EQ((*again)[i].hash, first[i].hash) << i;
    }
    EXPECT_EQ(ledger_->head("p")->seq, head);
  }

  // An id already stored, sent with another body: refused, and nothing appended.
  void expect_conflict(ledger::EventDraft draft) {
    const std::uint64_t head = ledger_->head("p")->seq;
    draft.payload += "changed";
    auto refused = ledger_->append("p", {draft}).get();
    ASSERT_FALSE(refused.is_ok());
    EXPECT_EQ(refused.status().code(), Code::kConflict) << refused.status().to_string();
    EXPECT_EQ(ledger_->head("p")->seq, head);
  }

  bool catch_up_views_ = true;
  std::shared_ptr<proj::CaseProjector> view_ = std::make_shared<proj::CaseProjector>();
  std::vector<EventId> cases_{random_id(), random_id(), random_id()};
};

// Copies every entry of `tables` from one environment to another.
void copy_tables(ledger::detail::Env& from, ledger::detail::Env& to,
                 const std::vector<std::string>& tables) {
  auto read = from.begin_read();
  ASSERT_TRUE(read.is_ok());
  auto write = to.begin_write();
  ASSERT_TRUE(write.is_ok());
  for (const auto& name : tables) {
    const bool state = name == "projection_state";
    MDB_dbi source = 0;
    MDB_dbi target = 0;
    if (state) {
      source = from.dbi(ledger::detail::Table::kProjectionState);
      target = to.dbi(ledger::detail::Table::kProjectionState);
    } else {
      ASSERT_EQ(mdb_dbi_open(read->raw(), name.c_str(), 0U, &source), MDB_SUCCESS) << name;
      ASSERT_EQ(mdb_dbi_open(write->raw(), name.c_str(), MDB_CREATE, &target), MDB_SUCCESS);
    }
    auto cursor = read->cursor(source);
    auto more = cursor.first();
    ASSERT_TRUE(more.is_ok());
    while (*more) {
      ASSERT_TRUE(write->put(target, cursor.key(), cursor.value()).is_ok());
      more = cursor.next();
      ASSERT_TRUE(more.is_ok());
    }
  }
  ASSERT_TRUE(write->commit().is_ok());
}

TEST_F(ViewStore, AnOpenLedgerLeavesItsMarkAndACleanCloseRemovesIt) {
  append_cases(5);
  const std::string mark = "writer." + std::to_string(::getpid());
  ASSERT_EQ(marks(), std::vector<std::string>{mark});
  std::ifstream in(views() / mark);
  std::string boot_id;
  std::string pid_namespace;
  std::getline(in, boot_id);
  std::getline(in, pid_namespace);
  EXPECT_EQ(boot_id, ledger::detail::current_boot_id());
  EXPECT_FALSE(boot_id.empty());
  EXPECT_EQ(pid_namespace, ledger::detail::current_pid_namespace());
  EXPECT_FALSE(pid_namespace.empty());
  EXPECT_EQ(fs::status(views() / mark).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  ledger_.reset();
  EXPECT_TRUE(marks().empty());
  reopen();
  EXPECT_FALSE(ledger_->views_were_rebuilt());
  EXPECT_EQ(*ledger_->projection_seq(*view_, "p"), 5U);
}

TEST_F(ViewStore, AMarkFromAnotherBootMeansTheViewsAreRebuiltFromTheChains) {
  append_cases(40);
  const std::string before = digest();
  ledger_.reset();
  // The machine stopped while a writer had the views open: their file may hold anything.
  write_mark(4242, "00000000-0000-0000-0000-000000000000");
  {
    std::fstream file(views() / "data.mdb", std::ios::in | std::ios::out | std::ios::binary);
    const std::string garbage(64 << 10, '\x5a');
    file.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  // A read-only open may not read them, and says what to do.
  auto read_only = open_read_only();
  ASSERT_FALSE(read_only.is_ok());
  EXPECT_EQ(read_only.status().code(), Code::kBusy);
  EXPECT_NE(read_only.status().detail().find("open the data directory writable first"),
            std::string::npos);
  // A writable open deletes them and rebuilds them from the chain before it returns.
  reopen();
  EXPECT_TRUE(ledger_->views_were_rebuilt());
  EXPECT_EQ(marks(), std::vector<std::string>{"writer." + std::to_string(::getpid())});
  EXPECT_EQ(*ledger_->projection_seq(*view_, "p"), 40U);
  EXPECT_EQ(digest(), before);
  auto state = view_->get(*ledger_, "p", cases_[1]);
  ASSERT_TRUE(state.is_ok() && state->has_value());
  EXPECT_EQ((*state)->fields, (std::vector<std::pair<std::string, std::string>>{{"visit", "37"}}));
  append_cases(2);  // And appends go on.
  EXPECT_EQ(*ledger_->projection_seq(*view_, "p"), 42U);
}

TEST_F(ViewStore, AViewsFileThatDoesNotOpenIsRebuiltByAWritableOpen) {
  append_cases(12);
  const std::string before = digest();
  ledger_.reset();
  {
    std::ofstream file(views() / "data.mdb", std::ios::binary | std::ios::trunc);
    file << std::string(8192, '\x33');  // Not an LMDB file at all; no mark says why.
  }
  auto read_only = open_read_only();
  ASSERT_FALSE(read_only.is_ok());
  EXPECT_EQ(read_only.status().code(), Code::kCorrupt);
  reopen();
  EXPECT_TRUE(ledger_->views_were_rebuilt());
  EXPECT_EQ(*ledger_->projection_seq(*view_, "p"), 12U);
  EXPECT_EQ(digest(), before);
}

TEST_F(ViewStore, AMarkOfADeadProcessOfThisBootKeepsTheViews) {
  append_cases(10);
  const std::string before = digest();
  ledger_.reset();
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);
  // A writer of this boot died: its commits are all in the page cache, so nothing is lost.
  write_mark(child, ledger::detail::current_boot_id());
  reopen();
  EXPECT_FALSE(ledger_->views_were_rebuilt());
  EXPECT_EQ(marks(), std::vector<std::string>{"writer." + std::to_string(::getpid())});
  EXPECT_EQ(digest(), before);
  // The same pid written from another pid namespace may be a live process there: its mark
  // stays, so a later stop of the machine is still seen.
  ledger_.reset();
  write_mark(child, ledger::detail::current_boot_id(), "pid:[1]");
  reopen();
  EXPECT_FALSE(ledger_->views_were_rebuilt());
  EXPECT_EQ(marks().size(), 2U);
}

TEST_F(ViewStore, ViewsInTheChainsEnvironmentMoveToTheirOwnAtTheFirstWritableOpen) {
  append_cases(30);
  const std::string before = digest();
  auto names = view_->tables();
  ledger_.reset();
  // Make the layout before DATA/views: the views' tables, the id index and the views'
  // bookkeeping in the chain's environment, and no view environment.
  {
    auto chain = ledger::detail::Env::open(data_dir(), {});
    ASSERT_TRUE(chain.is_ok());
    ledger::detail::EnvOptions options;
    options.views = true;
    auto views_env = ledger::detail::Env::open(views(), options);
    ASSERT_TRUE(views_env.is_ok());
    auto all = names;
    all.emplace_back("event_ids");
    all.emplace_back("projection_state");
    copy_tables(**views_env, **chain, all);
  }
  fs::remove_all(views());
  // Read-only, the views are read where they are.
  {
    auto read_only = open_read_only();
    ASSERT_TRUE(read_only.is_ok()) << read_only.status().to_string();
    EXPECT_EQ(*(*read_only)->projection_seq(*view_, "p"), 30U);
    EXPECT_EQ(to_hex(*(*read_only)->projection_digest()), before);
    EXPECT_FALSE(fs::exists(views()));
  }
  // The first writable open moves them: rebuilt in DATA/views, deleted from the chain's.
  reopen();
  EXPECT_EQ(digest(), before);
  names.emplace_back("event_ids");
  for (const auto& name : names) {
    EXPECT_TRUE(has_table(ledger_->views_env(), name)) << name;
    EXPECT_FALSE(has_table(ledger_->env(), name)) << name;
  }
  {
    auto txn = ledger_->env().begin_read();
    ASSERT_TRUE(txn.is_ok());
    auto cursor = txn->cursor(ledger::detail::Table::kProjectionState);
    EXPECT_FALSE(*cursor.first());
  }
  EXPECT_EQ(rebuilt_digest(), before);
}

// Pages are written through a writable map: the file's blocks are allocated for the whole
// map, at open and as it grows, so a full disk is an error, never SIGBUS in a write.
class ViewStoreSmallMap : public ViewStore {
 protected:
  std::size_t initial_map_bytes() const override { return 256U << 10U; }
};

TEST_F(ViewStoreSmallMap, TheViewsFileHasBlocksForTheWholeMapAsItGrows) {
  const auto allocated = [this] {
    struct stat st {};
    EXPECT_EQ(::stat((views() / "data.mdb").c_str(), &st), 0);
    return static_cast<std::size_t>(st.st_blocks) * 512U;
  };
  const std::size_t before = ledger_->views_env().map_bytes();
  EXPECT_GE(allocated(), before);
  for (int i = 0; i < 40; ++i) {
    std::vector<ledger::EventDraft> batch;
    for (int j = 0; j < 20; ++j) {
      ledger::EventDraft d = make_draft(0);
      d.kind = Kind::CASE_CREATED;
      d.subject = random_id();
      CaseChangeData c;
      c.case_type = "patient";
      c.fields.emplace_back("note", std::string(500, 'n'));
      d.payload = proj::encode_case_change(c);
      batch.push_back(std::move(d));
    }
    append_ok("p", std::move(batch));
  }
  const std::size_t after = ledger_->views_env().map_bytes();
  ASSERT_GT(after, before);  // The map grew...
  EXPECT_GE(allocated(), after);  // ...and its blocks with it.
  EXPECT_EQ(*ledger_->projection_seq(*view_, "p"), 800U);
}

// The writer holds a transaction in each environment: a full map grows that map only, so the
// views' file does not double its allocated blocks whenever the chain's map grows.
TEST_F(ViewStoreSmallMap, OnlyTheMapThatIsFullGrows) {
  const std::size_t chain_before = ledger_->env().map_bytes();
  const std::size_t views_before = ledger_->views_env().map_bytes();
  // Payloads no view folds (not case changes): the chain grows, the views hardly at all.
  for (int i = 0; i < 10; ++i) append_ok("p", make_drafts(20, 4000));
  EXPECT_GT(ledger_->env().map_bytes(), chain_before);
  EXPECT_EQ(ledger_->views_env().map_bytes(), views_before);
  EXPECT_EQ(*ledger_->projection_seq(*view_, "p"), 200U);
}

TEST_F(ViewStore, AFailedViewsCommitIsCaughtUpBeforeTheAppendIsAnswered) {
  append_cases(5);
  ledger_->inject_view_commit_failures(1);
  append_cases(1);
  // Answered, and already in the views: the writer caught them up in a second commit.
  EXPECT_EQ(*ledger_->projection_seq(*view_, "p"), 6U);
  const std::string now = digest();
  EXPECT_EQ(rebuilt_digest(), now);
  append_cases(1);
  EXPECT_EQ(*ledger_->projection_seq(*view_, "p"), 7U);
}

TEST_F(ViewStore, WhenTheViewsCannotBeCommittedTheDurableAppendIsAnsweredAndTheLedgerStops) {
  append_cases(5);
  ledger_->inject_view_commit_failures(4);  // The commit and every catch-up attempt.
  append_cases(1);  // Durable in the chain: answered as such.
  EXPECT_EQ(ledger_->head("p")->seq, 6U);
  EXPECT_EQ(*ledger_->projection_seq(*view_, "p"), 5U);
  ledger::EventDraft d = make_draft(0);
  auto refused = ledger_->append("p", {d}).get();
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.status().code(), Code::kFatal);
  // The next open catches the views up.
  reopen();
  EXPECT_EQ(*ledger_->projection_seq(*view_, "p"), 6U);
  const std::string now = digest();
  EXPECT_EQ(rebuilt_digest(), now);
}

// The idempotency index (event_ids) is a view too: lost with the views, it is rebuilt from the
// chains, body MACs recomputed, so a re-sent event is still recognised, and an id re-used with
// another body still refused.
TEST_F(ViewStore, TheIdIndexIsRebuiltFromTheChainsSoReSentEventsAreStillDuplicates) {
  append_cases(4);
  std::vector<ledger::EventDraft> sent = make_drafts(25, 120);
  const auto first = append_ok("p", sent);
  ASSERT_EQ(first.size(), sent.size());
  append_cases(3);
  const std::string before = digest();
  EXPECT_TRUE(has_table(ledger_->views_env(), "event_ids"));
  EXPECT_FALSE(has_table(ledger_->env(), "event_ids"));
  ledger_.reset();
  fs::remove_all(views());
  reopen();
  EXPECT_EQ(digest(), before);  // The index among them, byte for byte.
  ASSERT_NO_FATAL_FAILURE(expect_duplicates(sent, first));
  ASSERT_NO_FATAL_FAILURE(expect_conflict(sent[7]));
  // A batch mixing new events and re-sent ones appends only the new.
  std::vector<ledger::EventDraft> mixed{sent[3], make_draft(50), sent[20]};
  auto receipts = ledger_->append("p", mixed).get();
  ASSERT_TRUE(receipts.is_ok()) << receipts.status().to_string();
  EXPECT_TRUE((*receipts)[0].duplicate);
  EXPECT_FALSE((*receipts)[1].duplicate);
  EXPECT_EQ((*receipts)[1].seq, 33U);
  EXPECT_TRUE((*receipts)[2].duplicate);
  EXPECT_EQ(rebuilt_digest(), digest());
}

// A writer that stopped after its chain commit and before its views commit leaves the index a
// commit behind; the writer catches it up before it checks any id, even on an open that does
// not catch views up itself.
TEST_F(ViewStore, AnIdIndexLeftACommitBehindIsCaughtUpBeforeIdsAreChecked) {
  append_cases(5);
  ledger_->inject_view_commit_failures(4);  // The commit and every catch-up attempt.
  std::vector<ledger::EventDraft> sent = make_drafts(3, 80);
  const auto first = append_ok("p", sent);  // Durable in the chain only.
  ASSERT_EQ(first.size(), sent.size());
  catch_up_views_ = false;
  reopen();
  EXPECT_EQ(*ledger_->projection_seq(*view_, "p"), 5U);
  ASSERT_NO_FATAL_FAILURE(expect_duplicates(sent, first));
  ASSERT_NO_FATAL_FAILURE(expect_conflict(sent[1]));
  EXPECT_EQ(*ledger_->projection_seq(*view_, "p"), 8U);
  const std::string now = digest();
  EXPECT_EQ(rebuilt_digest(), now);
}

}  // namespace
}  // namespace trail::testing
