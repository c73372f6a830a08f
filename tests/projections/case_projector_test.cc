// The case view: state, lookups and field-level history, folded inside the append's commit.
#include <gtest/gtest.h>

#include <map>

#include <fstream>
#include <future>
#include <memory>

#include <capnp/message.h>
#include <capnp/serialize.h>

#include "projections/case_projector.h"
#include "tests/support/ledger_fixture.h"

namespace trail::testing {
namespace {

using proj::CaseChangeData;
using proj::CaseProjector;
using schema::Action;
using schema::Kind;

class CaseView : public LedgerTest {
 protected:
  std::vector<std::shared_ptr<ledger::Projector>> projectors() const override { return {view_}; }

  ledger::EventDraft event(Kind kind, const EventId& case_id, CaseChangeData change,
                           const std::string& actor = "chw-017") {
    ledger::EventDraft d;
    d.event_id = random_id();
    d.kind = kind;
    d.actor = actor;
    d.device_id = "phone-a3";
    d.channel = schema::Channel::MOBILE_FORM;
    d.client_time_us = 1'700'000'000'000'000;
    d.subject = case_id;
    d.payload = proj::encode_case_change(change);
    return d;
  }
  static CaseChangeData fields(std::vector<std::pair<std::string, std::string>> f) {
    CaseChangeData c;
    c.fields = std::move(f);
    return c;
  }
  proj::CaseState state(const EventId& id) {
    auto got = view_->get(*ledger_, "p", id);
    EXPECT_TRUE(got.is_ok()) << got.status().to_string();
    EXPECT_TRUE(got->has_value());
    return got->value_or(proj::CaseState{});
  }
  std::vector<proj::HistoryItem> history_of(const EventId& id) {
    proj::HistoryFilter f;
    f.case_id = id;
    auto got = view_->history(*ledger_, "p", f, 0);
    EXPECT_TRUE(got.is_ok()) << got.status().to_string();
    return got.is_ok() ? *got : std::vector<proj::HistoryItem>{};
  }
  EventId create(const std::string& type = "patient", const std::string& owner = "chw-017") {
    const EventId id = random_id();
    CaseChangeData c = fields({{"age", "34"}, {"village", "Kisumu"}});
    c.case_type = type;
    c.case_name = "case " + format_uuid(id).substr(0, 4);
    c.owner = owner;
    append_ok("p", {event(Kind::CASE_CREATED, id, c)});
    return id;
  }

  std::shared_ptr<CaseProjector> view_ = std::make_shared<CaseProjector>();
};

TEST_F(CaseView, CreateSetsStateAndRecordsEveryFieldWithoutPrior) {
  const EventId id = create();
  const auto s = state(id);
  EXPECT_EQ(s.case_type, "patient");
  EXPECT_EQ(s.owner, "chw-017");
  EXPECT_FALSE(s.closed);
  EXPECT_FALSE(s.implicit);
  ASSERT_EQ(s.fields.size(), 2U);
  EXPECT_EQ(s.fields[0], (std::pair<std::string, std::string>{"age", "34"}));
  EXPECT_EQ(s.last_user, "chw-017");
  EXPECT_EQ(s.last_seq, 1U);
  const auto h = history_of(id);
  ASSERT_EQ(h.size(), 1U);
  EXPECT_EQ(h[0].changes.front().action, Action::CREATE);
  bool saw_age = false;
  for (const auto& c : h[0].changes) {
    if (c.field == "age") {
      saw_age = true;
      EXPECT_FALSE(c.prior.has_value());
      EXPECT_EQ(c.value, "34");
    }
  }
  EXPECT_TRUE(saw_age);
}

TEST_F(CaseView, UpdateRecordsPriorValuesAndUnchangedSets) {
  const EventId id = create();
  append_ok("p", {event(Kind::CASE_UPDATED, id, fields({{"age", "35"}, {"village", "Kisumu"}, {"hiv", "neg"}}),
                        "sup-002")});
  const auto s = state(id);
  EXPECT_EQ(s.fields, (std::vector<std::pair<std::string, std::string>>{
                          {"age", "35"}, {"hiv", "neg"}, {"village", "Kisumu"}}));
  EXPECT_EQ(s.last_user, "sup-002");
  const auto h = history_of(id);
  ASSERT_EQ(h.size(), 2U);
  EXPECT_EQ(h[1].actor, "sup-002");
  EXPECT_EQ(h[1].seq, 2U);
  ASSERT_EQ(h[1].changes.size(), 3U);
  // Sorted by field name in the payload: age, hiv, village.
  EXPECT_EQ(h[1].changes[0].field, "age");
  EXPECT_EQ(h[1].changes[0].prior, "34");
  EXPECT_EQ(h[1].changes[0].value, "35");
  EXPECT_FALSE(h[1].changes[0].unchanged);
  EXPECT_EQ(h[1].changes[1].field, "hiv");
  EXPECT_FALSE(h[1].changes[1].prior.has_value());
  EXPECT_EQ(h[1].changes[2].field, "village");
  EXPECT_EQ(h[1].changes[2].prior, "Kisumu");
  EXPECT_TRUE(h[1].changes[2].unchanged);  // Set to the value it had: recorded, flagged.
}

TEST_F(CaseView, UpdateOfAMissingCaseCreatesItImplicitly) {
  const EventId id = random_id();
  append_ok("p", {event(Kind::CASE_UPDATED, id, fields({{"x", "1"}}))});
  const auto s = state(id);
  EXPECT_TRUE(s.implicit);
  EXPECT_EQ(s.fields.size(), 1U);
  EXPECT_EQ(history_of(id)[0].changes[0].action, Action::IMPLICIT_CREATE);
}

TEST_F(CaseView, CloseOfAClosedCaseIsRecordedButChangesNothing) {
  const EventId id = create();
  append_ok("p", {event(Kind::CASE_CLOSED, id, {})});
  const auto closed = state(id);
  EXPECT_TRUE(closed.closed);
  append_ok("p", {event(Kind::CASE_CLOSED, id, {})});
  const auto again = state(id);
  EXPECT_TRUE(again.closed);
  EXPECT_EQ(again.closed_us, closed.closed_us);
  const auto h = history_of(id);
  ASSERT_EQ(h.size(), 3U);
  EXPECT_EQ(h[1].changes.back().action, Action::CLOSE);
  EXPECT_EQ(h[2].changes.back().action, Action::CLOSE_CLOSED);
  EXPECT_TRUE(h[2].changes.back().unchanged);
  append_ok("p", {event(Kind::CASE_REOPENED, id, {})});
  EXPECT_FALSE(state(id).closed);
}

// An append's guard runs inside the commit: it sees an owner change queued ahead of its
// append, whether that change commits earlier or sits folded but unflushed in the same commit.
TEST_F(CaseView, AnAppendGuardSeesOwnerChangesQueuedAheadOfIt) {
  using Outcome = Result<std::vector<ledger::Receipt>>;
  const auto submit = [this](const std::string& project, std::vector<ledger::EventDraft> drafts,
                             ledger::AppendGuard guard) {
    auto promise = std::make_shared<std::promise<Outcome>>();
    auto future = promise->get_future();
    ledger_->append_async(project, std::move(drafts),
                          [promise](Outcome r) { promise->set_value(std::move(r)); },
                          std::move(guard));
    return future;
  };
  // Goes ahead only while chw-017 owns `id` (what the server's capture check asks).
  const auto owned_by_017 = [this](const EventId& id) -> ledger::AppendGuard {
    return [this, id](const ledger::GuardContext& context) -> Status {
      auto got = view_->get_in(context, "p", id);
      if (!got.is_ok()) return got.status();
      if (!*got || (*got)->owner != "chw-017") return Status::error(Code::kConflict, "not yours");
      return Status::ok();
    };
  };
  for (int round = 0; round < 10; ++round) {
    const EventId id = create();
    CaseChangeData reassign;
    reassign.owner = "chw-099";
    // A large batch of another project keeps the writer busy, so the reassignment and the
    // guarded update usually share the next commit (and the guard reads the unflushed state).
    auto busy = submit("q", make_drafts(500, 300), {});
    auto moved = submit("p", {event(Kind::CASE_REASSIGNED, id, reassign, "supervisor")}, {});
    auto update = submit("p", {event(Kind::CASE_UPDATED, id, fields({{"age", "35"}}))},
                         owned_by_017(id));
    ASSERT_TRUE(busy.get().is_ok());
    ASSERT_TRUE(moved.get().is_ok());
    const Outcome refused = update.get();
    ASSERT_FALSE(refused.is_ok()) << "round " << round;
    EXPECT_EQ(refused.status().code(), Code::kConflict);
    EXPECT_EQ(refused.status().detail(), "not yours");
    EXPECT_EQ(state(id).owner, "chw-099");
    EXPECT_EQ(history_of(id).size(), 2U);  // Created and reassigned: the update wrote nothing.
  }
  // While chw-017 still owns the case the guard lets the update through.
  const EventId kept = create();
  ASSERT_TRUE(submit("p", {event(Kind::CASE_UPDATED, kept, fields({{"age", "35"}}))},
                     owned_by_017(kept))
                  .get()
                  .is_ok());
  EXPECT_EQ(history_of(kept).size(), 2U);
  // A guard asking for a view this ledger does not have is refused, and so is its append.
  const CaseProjector stranger;
  const auto before = ledger_->head("p")->seq;
  const Outcome odd = submit("p", {event(Kind::CASE_UPDATED, kept, fields({{"age", "36"}}))},
                             [&stranger](const ledger::GuardContext& context) -> Status {
                               return context.tables(stranger).status();
                             })
                          .get();
  EXPECT_EQ(odd.status().code(), Code::kNotFound);
  EXPECT_EQ(ledger_->head("p")->seq, before);
}

TEST_F(CaseView, IndicesAndOwnersMaintainTheirLookups) {
  const EventId mother = create("mother");
  const EventId child = create("child");
  CaseChangeData index;
  index.indices.push_back({"parent", "mother", mother, "child"});
  append_ok("p", {event(Kind::CASE_INDEXED, child, index)});
  proj::CaseFilter by_parent;
  by_parent.parent = mother;
  auto children = view_->list(*ledger_, "p", by_parent, std::nullopt, 0);
  ASSERT_TRUE(children.is_ok());
  ASSERT_EQ(children->size(), 1U);
  EXPECT_EQ((*children)[0].case_id, child);
  // Removing the index (empty case id) removes the lookup; the history keeps the prior value.
  CaseChangeData remove;
  remove.indices.push_back({"parent", "mother", std::nullopt, "child"});
  append_ok("p", {event(Kind::CASE_INDEXED, child, remove)});
  EXPECT_TRUE(view_->list(*ledger_, "p", by_parent, std::nullopt, 0)->empty());
  const auto h = history_of(child);
  EXPECT_EQ(h.back().changes[0].prior, format_uuid(mother));
  EXPECT_EQ(h.back().changes[0].value, "");

  CaseChangeData reassign;
  reassign.owner = "chw-099";
  append_ok("p", {event(Kind::CASE_REASSIGNED, mother, reassign)});
  proj::CaseFilter old_owner;
  old_owner.owner = "chw-017";
  proj::CaseFilter new_owner;
  new_owner.owner = "chw-099";
  EXPECT_EQ(view_->list(*ledger_, "p", old_owner, std::nullopt, 0)->size(), 1U);  // The child.
  ASSERT_EQ(view_->list(*ledger_, "p", new_owner, std::nullopt, 0)->size(), 1U);
  EXPECT_EQ(history_of(mother).back().changes[0].action, Action::OWNER);
  EXPECT_EQ(history_of(mother).back().changes[0].prior, "chw-017");
}

TEST_F(CaseView, ListFiltersByTypeAndOpenAndPages) {
  std::vector<EventId> patients;
  for (int i = 0; i < 5; ++i) patients.push_back(create("patient"));
  create("household");
  append_ok("p", {event(Kind::CASE_CLOSED, patients[0], {})});
  proj::CaseFilter open_patients;
  open_patients.case_type = "patient";
  open_patients.open = true;
  auto all = view_->list(*ledger_, "p", open_patients, std::nullopt, 0);
  ASSERT_TRUE(all.is_ok());
  EXPECT_EQ(all->size(), 4U);
  auto page1 = view_->list(*ledger_, "p", open_patients, std::nullopt, 2);
  ASSERT_EQ(page1->size(), 2U);
  auto page2 = view_->list(*ledger_, "p", open_patients, page1->back().case_id, 2);
  ASSERT_EQ(page2->size(), 2U);
  EXPECT_NE(page2->front().case_id, page1->back().case_id);
  EXPECT_EQ(view_->list(*ledger_, "p", {}, std::nullopt, 0)->size(), 6U);
}

// States and history entries share case.records: listing every case (no index narrows it)
// steps from case to case over their entries, pages by case id, and a case's history holds
// its entries only, however many there are.
TEST_F(CaseView, ListingEveryCasePagesOverCasesWithLongHistories) {
  std::vector<EventId> ids;
  std::map<EventId, std::size_t> events_of;
  for (int i = 0; i < 7; ++i) {
    ids.push_back(create(i % 2 ? "patient" : "household"));
    events_of[ids.back()] = 1 + static_cast<std::size_t>(i) * 3;
    for (int u = 0; u < i * 3; ++u) {
      append_ok("p", {event(Kind::CASE_UPDATED, ids.back(), fields({{"visit", std::to_string(u)}}))});
    }
  }
  append_ok("q", {event(Kind::CASE_CREATED, random_id(), fields({{"age", "1"}}))});
  std::sort(ids.begin(), ids.end());
  std::vector<EventId> paged;
  std::optional<EventId> after;
  for (;;) {
    auto page = view_->list(*ledger_, "p", {}, after, 3);
    ASSERT_TRUE(page.is_ok()) << page.status().to_string();
    for (const auto& c : *page) paged.push_back(c.case_id);
    if (page->size() < 3) break;
    after = page->back().case_id;
  }
  EXPECT_EQ(paged, ids);
  for (const auto& id : ids) {
    const auto entries = history_of(id);
    ASSERT_FALSE(entries.empty());
    EXPECT_EQ(entries.front().kind, Kind::CASE_CREATED);
    EXPECT_EQ(entries.size(), events_of[id]);
    EXPECT_EQ(state(id).last_seq, entries.back().seq);
  }
}

TEST_F(CaseView, HistoryByUserAndByTime) {
  const EventId a = create();
  append_ok("p", {event(Kind::CASE_UPDATED, a, fields({{"x", "1"}}), "sup-002")});
  append_ok("p", {event(Kind::CASE_UPDATED, a, fields({{"x", "2"}}), "sup-002")});
  proj::HistoryFilter by_user;
  by_user.actor = "sup-002";
  auto h = view_->history(*ledger_, "p", by_user, 0);
  ASSERT_TRUE(h.is_ok());
  ASSERT_EQ(h->size(), 2U);
  EXPECT_EQ((*h)[1].changes[0].prior, "1");
  proj::HistoryFilter in_time;
  in_time.from_us = (*h)[1].server_time_us;
  EXPECT_GE(view_->history(*ledger_, "p", in_time, 0)->size(), 1U);
  proj::HistoryFilter none;
  none.to_us = 0;
  EXPECT_TRUE(view_->history(*ledger_, "p", none, 0)->empty());
}

// A user's entries are kept in buckets of aligned seqs, written once per commit: across many
// buckets and commits, interleaved with another user's, the user's history is exactly its
// events in seq order, a limit takes the first of them, and a rebuild writes the same bytes.
TEST_F(CaseView, HistoryByUserAcrossBucketsAndCommitsIsExactlyTheUsersEvents) {
  const EventId a = create();
  const EventId b = create();
  std::vector<std::uint64_t> mine;
  for (int commit = 0; commit < 7; ++commit) {
    std::vector<ledger::EventDraft> batch;
    std::vector<bool> is_mine;
    for (int i = 0; i < 30; ++i) {
      const bool sup = (i + commit) % 3 != 0;
      batch.push_back(event(Kind::CASE_UPDATED, i % 2 == 0 ? a : b,
                            fields({{"n", std::to_string(commit * 100 + i)}}),
                            sup ? "sup-002" : "chw-017"));
      is_mine.push_back(sup);
    }
    const auto receipts = append_ok("p", batch);
    ASSERT_EQ(receipts.size(), batch.size());
    for (std::size_t i = 0; i < receipts.size(); ++i) {
      if (is_mine[i]) mine.push_back(receipts[i].seq);
    }
  }
  ASSERT_GT(mine.back() / CaseProjector::kUserBucketSeqs, 2U);
  proj::HistoryFilter by_user;
  by_user.actor = "sup-002";
  auto h = view_->history(*ledger_, "p", by_user, 0);
  ASSERT_TRUE(h.is_ok()) << h.status().to_string();
  std::vector<std::uint64_t> got;
  for (const auto& item : *h) {
    EXPECT_EQ(item.actor, "sup-002");
    got.push_back(item.seq);
  }
  EXPECT_EQ(got, mine);
  auto first = view_->history(*ledger_, "p", by_user, 70);
  ASSERT_TRUE(first.is_ok());
  ASSERT_EQ(first->size(), 70U);
  EXPECT_EQ(first->back().seq, mine[69]);

  expect_rebuild_reproduces_views();
}

TEST_F(CaseView, HistoryByTimeRangeIsExactlyTheEntriesInTheRange) {
  std::vector<EventId> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(create());
  for (int round = 0; round < 6; ++round) {  // Separate commits: server times spread out.
    append_ok("p", {event(Kind::CASE_UPDATED, ids[static_cast<std::size_t>(round) % 4],
                          fields({{"round", std::to_string(round)}}))});
    ledger::EventDraft other = make_draft(10);  // Not a case change: never in the history.
    append_ok("p", {other});
  }
  std::vector<proj::HistoryItem> all;
  for (const auto& id : ids) {
    auto h = history_of(id);
    all.insert(all.end(), h.begin(), h.end());
  }
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.seq < b.seq; });
  ASSERT_EQ(all.size(), 10U);
  for (std::size_t i = 0; i < all.size(); ++i) {
    for (std::size_t j = i; j <= all.size(); ++j) {
      proj::HistoryFilter f;
      f.from_us = all[i].server_time_us;
      if (j < all.size()) f.to_us = all[j].server_time_us;
      auto got = view_->history(*ledger_, "p", f, 0);
      ASSERT_TRUE(got.is_ok());
      std::vector<std::uint64_t> expected;
      for (const auto& e : all) {
        if (e.server_time_us >= *f.from_us && (!f.to_us || e.server_time_us < *f.to_us)) {
          expected.push_back(e.seq);
        }
      }
      std::vector<std::uint64_t> seqs;
      for (const auto& e : *got) seqs.push_back(e.seq);
      EXPECT_EQ(seqs, expected) << "from entry " << i << " to entry " << j;
    }
  }
  proj::HistoryFilter limited;
  limited.from_us = all[2].server_time_us;
  auto two = view_->history(*ledger_, "p", limited, 2);
  ASSERT_TRUE(two.is_ok());
  ASSERT_EQ(two->size(), 2U);
  std::size_t first = 0;  // Entries may share a server time (the clock's resolution).
  while (all[first].server_time_us < all[2].server_time_us) ++first;
  EXPECT_EQ((*two)[0].seq, all[first].seq);
  EXPECT_EQ((*two)[1].seq, all[first + 1].seq);
}

TEST_F(CaseView, DuplicatesAndRejectedBatchesLeaveTheViewAlone) {
  const EventId id = create();
  auto update = event(Kind::CASE_UPDATED, id, fields({{"age", "40"}}));
  append_ok("p", {update});
  append_ok("p", {update});  // A re-send: duplicate, folded once.
  EXPECT_EQ(history_of(id).size(), 2U);
  auto conflicting = update;
  conflicting.payload = proj::encode_case_change(fields({{"age", "41"}}));
  auto other = event(Kind::CASE_UPDATED, id, fields({{"weight", "60"}}));
  auto rejected = ledger_->append("p", {other, conflicting}).get();
  ASSERT_FALSE(rejected.is_ok());
  EXPECT_EQ(history_of(id).size(), 2U);
  EXPECT_EQ(state(id).fields.size(), 2U);  // No "weight".
  EXPECT_EQ(*ledger_->projection_seq(*view_, "p"), ledger_->head("p")->seq);
}

TEST_F(CaseView, HistoryNamesTheSubmissionAndItsFormXmlns) {
  ledger::EventDraft form = make_draft(0);
  form.kind = Kind::FORM_SUBMITTED;
  form.subject.reset();
  {
    capnp::MallocMessageBuilder message;
    auto f = message.initRoot<schema::Payload>().initForm();
    f.setXmlns("http://openrosa.org/formdesigner/anc-visit");
    f.setContentType("text/xml");
    const auto words = capnp::messageToFlatArray(message);
    form.payload.assign(reinterpret_cast<const char*>(words.asBytes().begin()),
                        words.asBytes().size());
  }
  const EventId id = random_id();
  auto change = event(Kind::CASE_CREATED, id, fields({{"anc_visits", "1"}}));
  change.via = form.event_id;
  append_ok("p", {form, change});  // One submission and the change it causes: one batch.
  const auto h = history_of(id);
  ASSERT_EQ(h.size(), 1U);
  EXPECT_EQ(h[0].via, form.event_id);
  EXPECT_EQ(h[0].form_xmlns, "http://openrosa.org/formdesigner/anc-visit");
  auto plain = event(Kind::CASE_UPDATED, id, fields({{"anc_visits", "2"}}));
  append_ok("p", {plain});
  EXPECT_EQ(history_of(id)[1].form_xmlns, "");
}

TEST_F(CaseView, AUsersBacklogArrivingOutOfOrderIsFoldedInDeviceTimeOrder) {
  const EventId id = random_id();
  auto later = event(Kind::CASE_UPDATED, id, fields({{"weight", "61"}}));
  later.client_time_us = 2'000'000;
  auto earlier = event(Kind::CASE_UPDATED, id, fields({{"weight", "60"}, {"height", "150"}}));
  earlier.client_time_us = 1'000'000;
  append_ok("p", {later});
  append_ok("p", {earlier});  // Same user, older device time, arrives second.
  const auto s = state(id);
  EXPECT_EQ(s.fields, (std::vector<std::pair<std::string, std::string>>{{"height", "150"},
                                                                         {"weight", "61"}}));
  EXPECT_EQ(s.last_seq, 2U);
  EXPECT_EQ(s.last_client_us, 2'000'000);
  const auto h = history_of(id);  // Arrival order, priors as the server held them.
  ASSERT_EQ(h.size(), 2U);
  EXPECT_EQ(h[1].changes[1].field, "weight");
  EXPECT_EQ(h[1].changes[1].prior, "61");
  EXPECT_EQ(h[1].changes[1].value, "60");
}

// A case's history is kept in chunks of seqs once it is long: every event is listed, in
// arrival order with the priors the server held, and a late event from a phone's backlog
// re-folds the case across every chunk, whether the events came one per commit or many in one.
TEST_F(CaseView, AHistoryLongerThanSeveralChunksIsCompleteAndRefoldsAcrossThem) {
  const EventId id = create();
  const EventId other = create();
  TimeUs device = 1'700'000'000'000'000;
  for (int i = 0; i < 100; ++i) {
    auto mine = event(Kind::CASE_UPDATED, id, fields({{"n", std::to_string(i)}}));
    mine.client_time_us = device += 1'000'000;
    auto theirs = event(Kind::CASE_UPDATED, other, fields({{"n", std::to_string(i)}}), "sup-002");
    append_ok("p", {mine});
    append_ok("p", {theirs});  // Interleaved: the case's seqs are not contiguous.
  }
  std::vector<ledger::EventDraft> batch;  // 70 events of one case in one commit.
  for (int i = 100; i < 170; ++i) {
    batch.push_back(event(Kind::CASE_UPDATED, id, fields({{"n", std::to_string(i)}})));
    batch.back().client_time_us = device += 1'000'000;
  }
  append_ok("p", batch);
  auto late = event(Kind::CASE_UPDATED, id, fields({{"n", "late"}, {"m", "1"}}));
  late.client_time_us = device - 500'000;  // Older than the last event: folded before it.
  append_ok("p", {late});

  const auto s = state(id);
  EXPECT_EQ(s.fields, (std::vector<std::pair<std::string, std::string>>{
                          {"age", "34"}, {"m", "1"}, {"n", "169"}, {"village", "Kisumu"}}));
  const auto h = history_of(id);
  ASSERT_EQ(h.size(), 172U);  // The create, 170 updates and the late one.
  for (std::size_t i = 1; i < h.size(); ++i) {
    ASSERT_LT(h[i - 1].seq, h[i].seq) << i;
  }
  for (int i = 0; i < 170; ++i) {
    const auto& changes = h[static_cast<std::size_t>(i) + 1].changes;
    ASSERT_EQ(changes.size(), 1U) << i;
    EXPECT_EQ(changes[0].value, std::to_string(i));
    if (i > 0) {
      EXPECT_EQ(changes[0].prior, std::to_string(i - 1));
    }
  }
  EXPECT_EQ(h.back().changes[1].field, "n");
  EXPECT_EQ(h.back().changes[1].prior, "169");  // Arrival order: what the server held then.
  EXPECT_EQ(history_of(other).size(), 101U);

  proj::HistoryFilter page;  // A limited page of a long history starts at its beginning.
  page.case_id = id;
  auto first = view_->history(*ledger_, "p", page, 40);
  ASSERT_TRUE(first.is_ok());
  ASSERT_EQ(first->size(), 40U);
  EXPECT_EQ((*first)[39].seq, h[39].seq);

  auto before = ledger_->projection_digest();  // And a rebuild writes the same bytes.
  ASSERT_TRUE(before.is_ok());
  ASSERT_TRUE(ledger_->rebuild_projections({}).is_ok());
  auto rebuilt = ledger_->projection_digest();
  ASSERT_TRUE(rebuilt.is_ok());
  EXPECT_EQ(to_hex(*before), to_hex(*rebuilt));
}

TEST_F(CaseView, OtherUsersChangesStayInArrivalOrder) {
  const EventId id = random_id();
  auto first = event(Kind::CASE_UPDATED, id, fields({{"weight", "61"}}), "chw-017");
  first.client_time_us = 2'000'000;
  auto second = event(Kind::CASE_UPDATED, id, fields({{"weight", "60"}}), "sup-002");
  second.client_time_us = 1'000'000;  // Another user's clock: no reconciliation across users.
  append_ok("p", {first});
  append_ok("p", {second});
  EXPECT_EQ(state(id).fields, (std::vector<std::pair<std::string, std::string>>{{"weight", "60"}}));
}

TEST_F(CaseView, NoFieldValueIsReadableInTheLmdbFile) {
  const EventId id = random_id();
  CaseChangeData c = fields({{"patient_name", "Achieng Otieno"}, {"phone", "+254700000001"}});
  c.case_type = "patient";
  c.case_name = "Achieng Otieno";
  append_ok("p", {event(Kind::CASE_CREATED, id, c)});
  append_ok("p", {event(Kind::CASE_UPDATED, id, fields({{"phone", "+254700000002"}}))});
  ledger_.reset();
  const std::string file = stored_bytes();
  EXPECT_EQ(file.find("Achieng"), std::string::npos);
  EXPECT_EQ(file.find("+2547000000"), std::string::npos);
  EXPECT_EQ(file.find("patient_name"), std::string::npos);
  reopen();
  EXPECT_EQ(state(id).name, "Achieng Otieno");
}

}  // namespace
}  // namespace trail::testing
