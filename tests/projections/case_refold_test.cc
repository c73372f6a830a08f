// A late event (one its user's device dated before the case's latest) changes the order in
// which the case view folds the case's events. The view folds in place what follows the late
// event in that order, rather than the whole case again; these tests hold that to the reference
// (CaseProjector(true): every event folded again from nothing) over random histories: users
// taking turns, device times out of order, server times across the reorder window, closes,
// reopens, owners, types and indices. Every table must hold the same bytes after every event.
#include <gtest/gtest.h>

#include <sodium.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <random>

#include "projections/case_payload.h"
#include "projections/case_projector.h"
#include "tests/support/ledger_fixture.h"
#include "tests/support/mem_tables.h"

namespace trail::testing {
namespace {

using proj::CaseChangeData;
using proj::CaseProjector;
using schema::Kind;

constexpr TimeUs kMinute = 60'000'000;

class LateEvents : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = random_data_key(3);
    ASSERT_NE(key_, nullptr);
  }

  // Folds one stored event into both views and compares their tables.
  void fold_both(std::uint64_t seq) {
    const ledger::LoadedEvent& stored = events_.at(seq);
    const ledger::EventLoader load = [this](std::uint64_t s) -> Result<ledger::LoadedEvent> {
      auto it = events_.find(s);
      if (it == events_.end()) return Status::error(Code::kCorrupt, "no event");
      return it->second;
    };
    const ledger::AppendedEvent event{"p",        seq,   stored.server_time_us, &stored.draft,
                                      key_.get(), &load, key_.get()};
    for (const auto& [view, tables] : {fast_, reference_}) {
      ASSERT_TRUE(view->apply(*tables, event).is_ok());
      ASSERT_TRUE(view->flush(*tables).is_ok());
    }
  }

  std::unique_ptr<ledger::DataKey> key_;
  std::map<std::uint64_t, ledger::LoadedEvent> events_;
  CaseProjector fast_view_;
  CaseProjector reference_view_{/*refold_from_scratch=*/true};
  MemTables fast_tables_{fast_view_.tables().size()};
  MemTables reference_tables_{reference_view_.tables().size()};
  std::pair<CaseProjector*, MemTables*> fast_{&fast_view_, &fast_tables_};
  std::pair<CaseProjector*, MemTables*> reference_{&reference_view_, &reference_tables_};
};

TEST_F(LateEvents, FoldingInPlaceGivesTheStatesOfFoldingEverythingAgain) {
  const unsigned seed =
      GTEST_FLAG_GET(random_seed) != 0 ? static_cast<unsigned>(GTEST_FLAG_GET(random_seed))
                                       : std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (replay with --gtest_random_seed=" +
               std::to_string(seed) + ")");
  std::mt19937_64 rng{seed};
  const auto chance = [&](unsigned percent) { return rng() % 100 < percent; };
  const auto pick = [&](std::initializer_list<const char*> from) {
    return std::string(*(from.begin() + static_cast<std::ptrdiff_t>(rng() % from.size())));
  };
  std::uint64_t seq = 0;
  std::uint64_t late = 0;
  for (int history = 0; history < 150; ++history) {
    const std::vector<EventId> cases{random_id(), random_id()};  // New cases each time.
    std::map<EventId, TimeUs> latest_device;  // Per case, the latest device time so far.
    TimeUs server = 1'700'000'000'000'000 + history * 10'000 * kMinute;
    std::map<EventId, bool> seen;
    // Every tenth history is long enough for its cases to fill several history chunks.
    const int length = history % 10 == 0 ? 240 : 60;
    for (int i = 0; i < length; ++i) {
      const EventId& case_id = cases[rng() % cases.size()];
      const auto step = rng() % 100;
      server += step < 70 ? static_cast<TimeUs>(rng() % 60'000'000)
                : step < 90 ? static_cast<TimeUs>(rng() % (30 * kMinute))
                            : 50 * kMinute + static_cast<TimeUs>(rng() % (80 * kMinute));
      ledger::EventDraft d;
      d.event_id = random_id();
      d.subject = case_id;
      d.actor = chance(70) ? "u1" : pick({"u2", "u3"});
      d.client_time_us = chance(55) ? server - static_cast<TimeUs>(rng() % 5'000'000)
                                    : server - static_cast<TimeUs>(rng() % (90 * kMinute));
      if (!seen[case_id]) {
        d.kind = chance(70) ? Kind::CASE_CREATED : Kind::CASE_UPDATED;
      } else {
        const auto k = rng() % 100;
        d.kind = k < 80 ? Kind::CASE_UPDATED
                 : k < 87 ? Kind::CASE_CLOSED
                 : k < 94 ? Kind::CASE_REOPENED
                          : Kind::CASE_CREATED;
      }
      seen[case_id] = true;
      CaseChangeData c;
      for (const char* field : {"a", "b", "c", "d"}) {
        if (chance(40)) c.fields.emplace_back(field, std::to_string(rng() % 5));
      }
      if (chance(20)) c.owner = pick({"o1", "o2", "o3"});
      if (chance(10)) c.case_type = pick({"t1", "t2"});
      if (chance(10)) c.case_name = pick({"n1", "n2"});
      if (chance(10)) {
        proj::CaseIndexData index;
        index.name = pick({"parent", "host"});
        index.case_type = "t1";
        index.relationship = "child";
        if (chance(70)) index.case_id = cases[rng() % cases.size()];
        c.indices.push_back(index);
      }
      d.payload = proj::encode_case_change(c);
      late += d.client_time_us < latest_device[case_id] ? 1U : 0U;
      latest_device[case_id] = std::max(latest_device[case_id], d.client_time_us);
      events_[++seq] = ledger::LoadedEvent{d, server};
      ASSERT_NO_FATAL_FAILURE(fold_both(seq));
      ASSERT_TRUE(fast_tables_ == reference_tables_)
          << "history " << history << ", event " << i << " (seq " << seq << ", " << d.actor
          << ", kind " << static_cast<int>(d.kind) << "): the views differ";
    }
  }
  // The comparison meant something: many late events, most of them folded in place.
  std::printf("[ stats    ] %llu events, %llu late, %llu folded in place\n",
              static_cast<unsigned long long>(seq), static_cast<unsigned long long>(late),
              static_cast<unsigned long long>(fast_view_.late_events_folded_in_place()));
  EXPECT_GT(late, seq / 5);
  EXPECT_GT(fast_view_.late_events_folded_in_place(), late / 4);
  EXPECT_EQ(reference_view_.late_events_folded_in_place(), 0U);
}

TEST_F(LateEvents, ALateEventOfALongHistoryReadsOnlyItsRun) {
  const EventId case_id = random_id();
  const auto names = fast_view_.tables();
  const auto chunks = static_cast<std::size_t>(
      std::find(names.begin(), names.end(), "case.chunks") - names.begin());
  ASSERT_LT(chunks, names.size());
  TimeUs server = 1'700'000'000'000'000;
  std::uint64_t seq = 0;
  const auto add = [&](const char* actor, Kind kind, TimeUs client_us, const char* value) {
    ledger::EventDraft d;
    d.event_id = random_id();
    d.subject = case_id;
    d.kind = kind;
    d.actor = actor;
    d.client_time_us = client_us;
    CaseChangeData c;
    c.fields.emplace_back("visit", value);
    d.payload = proj::encode_case_change(c);
    events_[++seq] = ledger::LoadedEvent{d, server};
    fold_both(seq);
  };
  // Three chunks of one user's visits, a run each (two hours apart).
  add("u1", Kind::CASE_CREATED, server, "0");
  for (int i = 1; i < 100; ++i) {
    server += 120 * kMinute;
    add("u1", Kind::CASE_UPDATED, server, std::to_string(i).c_str());
  }
  // Another user's backlog, the later-dated visit first.
  server += 120 * kMinute;
  add("u2", Kind::CASE_UPDATED, server - 2 * kMinute, "late-1");
  server += kMinute;
  const std::size_t chunk_scans = fast_tables_.scans(chunks);
  const std::uint64_t in_place = fast_view_.late_events_folded_in_place();
  add("u2", Kind::CASE_UPDATED, server - 30 * kMinute, "late-0");
  EXPECT_EQ(fast_view_.late_events_folded_in_place(), in_place + 1);
  EXPECT_EQ(fast_tables_.scans(chunks), chunk_scans) << "the case's chunks were read";
  EXPECT_TRUE(fast_tables_ == reference_tables_);
  // The reference read them (and so does a run that began in an earlier chunk).
  EXPECT_GT(reference_tables_.scans(chunks), 0U);
}

}  // namespace
}  // namespace trail::testing
