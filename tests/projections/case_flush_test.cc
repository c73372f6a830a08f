// The case view's records sealed ahead of its flush (Projector::prepare_flush, which the writer
// runs on a side thread while the chain commits) are the records flush() would have sealed
// itself; a prepared flush that more folding outdated is sealed again.
#include <gtest/gtest.h>

#include <sodium.h>

#include <algorithm>
#include <map>
#include <memory>

#include "projections/case_payload.h"
#include "projections/case_projector.h"
#include "projections/report_projector.h"
#include "projections/sync_projector.h"
#include "tests/support/ledger_fixture.h"
#include "ledger/internal/writer.h"
#include "tests/support/mem_tables.h"

namespace trail::testing {
namespace {

using proj::CaseChangeData;
using proj::CaseProjector;
using schema::Kind;

ledger::EventDraft case_event(Kind kind, const EventId& case_id, const std::string& visit) {
  ledger::EventDraft d;
  d.event_id = random_id();
  d.kind = kind;
  d.actor = "chw-017";
  d.device_id = "phone-a3";
  d.channel = schema::Channel::MOBILE_FORM;
  d.client_time_us = 1'700'000'000'000'000;
  d.subject = case_id;
  CaseChangeData change;
  if (kind == Kind::CASE_CREATED) {
    change.case_type = "patient";
    change.owner = "chw-017";
  }
  change.fields = {{"visit", visit}};
  d.payload = proj::encode_case_change(change);
  return d;
}

class PreparedFlush : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = random_data_key(3);
    ASSERT_NE(key_, nullptr);
  }
  // Folds the next event into `view`.
  void fold(CaseProjector& view, MemTables& tables, const ledger::EventDraft& draft) {
    const ledger::AppendedEvent event{"p", ++seqs_[&view], 1'700'000'000'000'000, &draft,
                                      key_.get(), nullptr, key_.get()};
    ASSERT_TRUE(view.apply(tables, event).is_ok());
  }

  std::unique_ptr<ledger::DataKey> key_;
  std::map<const CaseProjector*, std::uint64_t> seqs_;
  CaseProjector prepared_;
  CaseProjector inline_;
  MemTables prepared_tables_{prepared_.tables().size()};
  MemTables inline_tables_{inline_.tables().size()};
};

TEST_F(PreparedFlush, WritesWhatAFlushSealingItselfWrites) {
  const EventId a = random_id();
  const EventId b = random_id();
  for (const auto& draft : {case_event(Kind::CASE_CREATED, a, "1"),
                            case_event(Kind::CASE_CREATED, b, "1"),
                            case_event(Kind::CASE_UPDATED, a, "2")}) {
    fold(prepared_, prepared_tables_, draft);
    fold(inline_, inline_tables_, draft);
  }
  prepared_.prepare_flush();
  ASSERT_TRUE(prepared_.flush(prepared_tables_).is_ok());
  ASSERT_TRUE(inline_.flush(inline_tables_).is_ok());
  EXPECT_TRUE(prepared_tables_ == inline_tables_);
  EXPECT_FALSE(prepared_tables_.table(0).empty());
}

TEST_F(PreparedFlush, FoldingAfterThePreparationSealsAgain) {
  const EventId a = random_id();
  const EventId b = random_id();
  // After the preparation: a further change to a case already prepared (same count of
  // records), then a new case (one more record).
  const std::vector<ledger::EventDraft> before{case_event(Kind::CASE_CREATED, a, "1")};
  const std::vector<ledger::EventDraft> after{case_event(Kind::CASE_UPDATED, a, "2"),
                                              case_event(Kind::CASE_CREATED, b, "1")};
  for (const auto& draft : before) {
    fold(prepared_, prepared_tables_, draft);
    fold(inline_, inline_tables_, draft);
  }
  prepared_.prepare_flush();
  fold(prepared_, prepared_tables_, after[0]);
  fold(inline_, inline_tables_, after[0]);
  ASSERT_TRUE(prepared_.flush(prepared_tables_).is_ok());
  ASSERT_TRUE(inline_.flush(inline_tables_).is_ok());
  EXPECT_TRUE(prepared_tables_ == inline_tables_);

  fold(prepared_, prepared_tables_, after[1]);
  fold(inline_, inline_tables_, after[1]);
  prepared_.prepare_flush();
  fold(prepared_, prepared_tables_, case_event(Kind::CASE_UPDATED, a, "3"));
  fold(inline_, inline_tables_, case_event(Kind::CASE_UPDATED, a, "3"));
  ASSERT_TRUE(prepared_.flush(prepared_tables_).is_ok());
  ASSERT_TRUE(inline_.flush(inline_tables_).is_ok());
  EXPECT_TRUE(prepared_tables_ == inline_tables_);
}

// Through the ledger: a drain this large has its records sealed on the writer's side thread.
class LargeDrain : public LedgerTest {
 protected:
  std::vector<std::shared_ptr<ledger::Projector>> projectors() const override {
    return {cases_, std::make_shared<proj::SyncProjector>(),
            std::make_shared<proj::ReportProjector>()};
  }
  std::shared_ptr<CaseProjector> cases_ = std::make_shared<CaseProjector>();
};

TEST_F(LargeDrain, ItsViewsAreWhatARebuildWrites) {
  std::vector<EventId> ids;
  std::vector<ledger::EventDraft> batch;
  for (int i = 0; i < 40; ++i) {
    ids.push_back(random_id());
    batch.push_back(case_event(Kind::CASE_CREATED, ids.back(), "0"));
  }
  for (int i = 0; batch.size() < 2 * ledger::detail::kSealAsideEventsMin; ++i) {
    batch.push_back(case_event(Kind::CASE_UPDATED, ids[static_cast<std::size_t>(i) % ids.size()],
                               std::to_string(i)));
  }
  append_ok("p", batch);
  // The last update of the first case, as its record holds it.
  std::string last;
  for (std::size_t i = 40; i < batch.size(); ++i) {
    if (batch[i].subject == ids[0]) last = std::to_string(i - 40);
  }
  auto state = cases_->get(*ledger_, "p", ids[0]);
  ASSERT_TRUE(state.is_ok() && state->has_value());
  const auto& fields = (*state)->fields;
  const auto visit = std::find_if(fields.begin(), fields.end(),
                                  [](const auto& field) { return field.first == "visit"; });
  ASSERT_NE(visit, fields.end());
  EXPECT_EQ(visit->second, last);
  expect_rebuild_reproduces_views();
}

}  // namespace
}  // namespace trail::testing
