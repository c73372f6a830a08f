// The access audit: record.read events indexed by case, by reader and by server time, sealed.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "projections/access_projector.h"
#include "projections/case_payload.h"
#include "projections/case_projector.h"
#include "tests/support/ledger_fixture.h"

namespace trail::testing {
namespace {

using proj::AccessFilter;
using proj::AccessProjector;
using proj::AccessRow;
using schema::Channel;
using schema::Kind;

constexpr TimeUs kClientTime = 1'700'000'000'000'000;

class AccessView : public LedgerTest {
 protected:
  std::vector<std::shared_ptr<ledger::Projector>> projectors() const override {
    return {view_, cases_};
  }

  // Appends one read on its own and returns its seq; server times strictly increase.
  std::uint64_t read(const std::string& reader, const std::string& what,
                     std::vector<EventId> subjects, const std::string& reason) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    auto r = append_ok("p", {proj::make_record_read(reader, "phone-" + reader, Channel::WEB, what,
                                                     std::move(subjects), reason, kClientTime)});
    EXPECT_EQ(r.size(), 1U);
    const auto head = ledger_->head("p");
    EXPECT_TRUE(head.is_ok());
    times_.push_back(head->server_time_us);
    return r.empty() ? 0 : r[0].seq;
  }

  std::vector<AccessRow> rows(const AccessFilter& filter, std::size_t limit = 0,
                              const std::string& project = "p") {
    auto got = view_->reads(*ledger_, project, filter, limit);
    EXPECT_TRUE(got.is_ok()) << got.status().to_string();
    return got.is_ok() ? *got : std::vector<AccessRow>{};
  }
  static std::vector<std::uint64_t> seqs(const std::vector<AccessRow>& rows) {
    std::vector<std::uint64_t> out;
    for (const auto& r : rows) out.push_back(r.seq);
    return out;
  }
  std::vector<std::uint64_t> seqs_where(const AccessFilter& filter, std::size_t limit = 0) {
    return seqs(rows(filter, limit));
  }

  std::shared_ptr<AccessProjector> view_ = std::make_shared<AccessProjector>();
  std::shared_ptr<proj::CaseProjector> cases_ = std::make_shared<proj::CaseProjector>();
  std::vector<TimeUs> times_;
};

using Seqs = std::vector<std::uint64_t>;

TEST_F(AccessView, MakeRecordReadBuildsTheDraft) {
  const EventId a = random_id();
  const EventId b = random_id();
  const auto d = proj::make_record_read("sup-002", "tablet-9", Channel::API, "search", {a, b},
                                        "defaulter tracing", kClientTime);
  EXPECT_EQ(d.kind, Kind::RECORD_READ);
  EXPECT_EQ(d.actor, "sup-002");
  EXPECT_EQ(d.device_id, "tablet-9");
  EXPECT_EQ(d.channel, Channel::API);
  EXPECT_EQ(d.client_time_us, kClientTime);
  EXPECT_FALSE(d.subject.has_value());  // Two subjects: none in the envelope.
  EXPECT_EQ(d.event_id[6] >> 4U, 7);    // A time-ordered v7 UUID.
  auto payload = proj::decode_record_read(d.payload);
  ASSERT_TRUE(payload.is_ok()) << payload.status().to_string();
  EXPECT_EQ(payload->what, "search");
  EXPECT_EQ(payload->subjects, (std::vector<EventId>{a, b}));
  EXPECT_EQ(payload->reason, "defaulter tracing");

  const auto again = proj::make_record_read("sup-002", "tablet-9", Channel::API, "search", {a, b},
                                            "defaulter tracing", kClientTime);
  EXPECT_NE(again.event_id, d.event_id);
  EXPECT_EQ(again.payload, d.payload);  // Deterministic encoding.

  const EventId chosen = random_id();
  const auto one = proj::make_record_read("chw-017", "phone-a3", Channel::MOBILE_FORM, "case", {a},
                                          "", kClientTime, chosen);
  EXPECT_EQ(one.event_id, chosen);
  EXPECT_EQ(one.subject, a);
  EXPECT_EQ(proj::decode_record_read(proj::encode_case_change({})).status().code(),
            Code::kNotFound);
  EXPECT_EQ(proj::decode_record_read("nonsense").status().code(), Code::kCorrupt);
}

TEST_F(AccessView, ReadsAreIndexedByCaseReaderAndTime) {
  const EventId c1 = random_id();
  const EventId c2 = random_id();
  const EventId c3 = random_id();
  const auto r1 = read("chw-017", "case", {c1}, "follow-up visit");
  append_ok("p", {make_draft()});  // Not a read: ignored.
  const auto r2 = read("sup-002", "search", {c1, c2, c3}, "tb defaulter search");
  const auto r3 = read("chw-017", "export", {c2, c3}, "monthly report");
  const auto r4 = read("sup-002", "history", {c3}, "audit");
  ASSERT_EQ((Seqs{r1, r2, r3, r4}), (Seqs{1, 3, 4, 5}));
  for (std::size_t i = 1; i < times_.size(); ++i) ASSERT_LT(times_[i - 1], times_[i]);

  AccessFilter f;
  // Everything, in seq order, each row whole.
  const auto all = rows(f);
  ASSERT_EQ(seqs(all), (Seqs{r1, r2, r3, r4}));
  EXPECT_EQ(all[1].reader, "sup-002");
  EXPECT_EQ(all[1].device_id, "phone-sup-002");
  EXPECT_EQ(all[1].channel, Channel::WEB);
  EXPECT_EQ(all[1].what, "search");
  EXPECT_EQ(all[1].reason, "tb defaulter search");
  EXPECT_EQ(all[1].subjects, (std::vector<EventId>{c1, c2, c3}));
  EXPECT_EQ(all[1].server_time_us, times_[1]);
  EXPECT_EQ(all[1].client_time_us, kClientTime);
  auto stored = ledger_->read("p", r2);
  ASSERT_TRUE(stored.is_ok());
  auto opened = ledger_->open_event(*stored);
  ASSERT_TRUE(opened.is_ok());
  EXPECT_EQ(all[1].event_id, opened->envelope.event_id);

  // By case: every read naming the case, with all its subjects.
  f.case_id = c1;
  EXPECT_EQ(seqs_where(f), (Seqs{r1, r2}));
  f.case_id = c2;
  EXPECT_EQ(seqs_where(f), (Seqs{r2, r3}));
  f.case_id = c3;
  const auto c3_rows = rows(f);
  EXPECT_EQ(seqs(c3_rows), (Seqs{r2, r3, r4}));
  EXPECT_EQ(c3_rows[1].subjects, (std::vector<EventId>{c2, c3}));
  f.case_id = random_id();
  EXPECT_TRUE(rows(f).empty());

  // By reader.
  f = {};
  f.reader = "chw-017";
  EXPECT_EQ(seqs_where(f), (Seqs{r1, r3}));
  f.reader = "sup-002";
  EXPECT_EQ(seqs_where(f), (Seqs{r2, r4}));
  f.reader = "nobody";
  EXPECT_TRUE(rows(f).empty());

  // By time: [from, to).
  f = {};
  f.from_us = times_[1];
  f.to_us = times_[3];
  EXPECT_EQ(seqs_where(f), (Seqs{r2, r3}));
  f.to_us.reset();
  EXPECT_EQ(seqs_where(f), (Seqs{r2, r3, r4}));
  f.from_us.reset();
  f.to_us = times_[1];
  EXPECT_EQ(seqs_where(f), (Seqs{r1}));
  f.from_us = times_[3] + 1;
  f.to_us.reset();
  EXPECT_TRUE(rows(f).empty());
  f.from_us = times_[2];
  f.to_us = times_[2];
  EXPECT_TRUE(rows(f).empty());

  // Combined.
  f = {};
  f.case_id = c3;
  f.reader = "sup-002";
  EXPECT_EQ(seqs_where(f), (Seqs{r2, r4}));
  f.from_us = times_[2];
  EXPECT_EQ(seqs_where(f), (Seqs{r4}));
  f = {};
  f.reader = "chw-017";
  f.from_us = times_[1];
  EXPECT_EQ(seqs_where(f), (Seqs{r3}));
  f = {};
  f.case_id = c2;
  f.to_us = times_[2];
  EXPECT_EQ(seqs_where(f), (Seqs{r2}));

  // Limit and paging.
  f = {};
  EXPECT_EQ(seqs_where(f, 2), (Seqs{r1, r2}));
  f.after_seq = r2;
  EXPECT_EQ(seqs_where(f, 2), (Seqs{r3, r4}));
  f.case_id = c3;
  EXPECT_EQ(seqs_where(f, 1), (Seqs{r3}));

  // Another project, and one that does not exist.
  EXPECT_TRUE(rows({}, 0, "q").empty());
  append_ok("q", {proj::make_record_read("chw-017", "d", Channel::WEB, "case", {c1}, "x", 0)});
  f = {};
  f.case_id = c1;
  EXPECT_EQ(seqs(rows(f, 0, "q")), (Seqs{1}));
  EXPECT_EQ(seqs_where(f), (Seqs{r1, r2}));
}

TEST_F(AccessView, SubjectsNamedTwiceTheEnvelopeSubjectAndUndecodablePayloads) {
  const EventId c1 = random_id();
  const EventId c2 = random_id();
  // A subject named twice: one index entry, the row keeps the list as given.
  const auto r1 = read("chw-017", "case", {c1, c1}, "");
  // An envelope subject not in the payload is added to the subjects.
  auto d = proj::make_record_read("chw-017", "d", Channel::WEB, "case", {c1}, "r", kClientTime);
  d.subject = c2;
  const auto r2 = append_ok("p", {d})[0].seq;
  // A read whose payload is not a RecordRead is still an access.
  ledger::EventDraft odd = make_draft();
  odd.kind = Kind::RECORD_READ;
  odd.actor = "sup-002";
  odd.subject = c2;
  const auto r3 = append_ok("p", {odd})[0].seq;

  AccessFilter f;
  f.case_id = c1;
  const auto by_c1 = rows(f);
  ASSERT_EQ(seqs(by_c1), (Seqs{r1, r2}));
  EXPECT_EQ(by_c1[0].subjects, (std::vector<EventId>{c1, c1}));
  EXPECT_EQ(by_c1[1].subjects, (std::vector<EventId>{c1, c2}));
  f.case_id = c2;
  const auto by_c2 = rows(f);
  ASSERT_EQ(seqs(by_c2), (Seqs{r2, r3}));
  EXPECT_EQ(by_c2[1].what, "");
  EXPECT_EQ(by_c2[1].reason, "");
  EXPECT_EQ(by_c2[1].subjects, (std::vector<EventId>{c2}));
  EXPECT_EQ(by_c2[1].reader, "sup-002");
}

TEST_F(AccessView, RebuildIsByteIdenticalAndNoReasonIsReadableInTheLmdbFile) {
  std::vector<EventId> cases(5);
  for (auto& c : cases) c = random_id();
  for (int i = 0; i < 40; ++i) {
    std::vector<ledger::EventDraft> batch;
    for (int j = 0; j < 3; ++j) {
      const auto n = static_cast<std::size_t>(i + j);
      batch.push_back(proj::make_record_read(
          "user-" + std::to_string(n % 3), "dev", Channel::WEB, "search",
          {cases[n % 5], cases[(n * 7) % 5]}, "Suspected MDR contact of Achieng Otieno", 0));
    }
    if (i % 5 == 0) batch.push_back(make_draft());
    append_ok(i % 4 ? "p" : "q", batch);
  }
  auto incremental = ledger_->projection_digest();
  ASSERT_TRUE(incremental.is_ok());
  const auto before = rows({});
  ASSERT_TRUE(ledger_->rebuild_projections({}).is_ok());
  auto rebuilt = ledger_->projection_digest();
  ASSERT_TRUE(rebuilt.is_ok());
  EXPECT_EQ(*incremental, *rebuilt);
  EXPECT_EQ(seqs(rows({})), seqs(before));

  ledger_.reset();
  std::ifstream in(data_dir() / "data.mdb", std::ios::binary);
  const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(file.size(), 0U);
  EXPECT_EQ(file.find("Achieng"), std::string::npos);
  EXPECT_EQ(file.find("Suspected MDR"), std::string::npos);
  reopen();
  const auto after = rows({});
  ASSERT_FALSE(after.empty());
  EXPECT_EQ(after[0].reason, "Suspected MDR contact of Achieng Otieno");
}

}  // namespace
}  // namespace trail::testing

namespace trail::testing {
namespace {

class AccessAddress : public LedgerTest {
 protected:
  std::vector<std::shared_ptr<ledger::Projector>> projectors() const override { return {access_}; }
  std::shared_ptr<proj::AccessProjector> access_ = std::make_shared<proj::AccessProjector>();
};

TEST_F(AccessAddress, AddressAndEndpointTravelFromTheEventToTheAudit) {
  const EventId c = random_id();
  proj::RecordReadData read{"case", {c}, "", "192.0.2.7", "GET /v1/projects/{p}/cases/{id}"};
  const auto d = proj::make_record_read("u-1", "phone", schema::Channel::API, read, 5, random_id());
  auto decoded = proj::decode_record_read(d.payload);
  ASSERT_TRUE(decoded.is_ok());
  EXPECT_EQ(decoded->address, "192.0.2.7");
  EXPECT_EQ(decoded->endpoint, "GET /v1/projects/{p}/cases/{id}");
  append_ok("p", {d});
  proj::AccessFilter filter;
  filter.case_id = c;
  auto rows = access_->reads(*ledger_, "p", filter, 0);
  ASSERT_TRUE(rows.is_ok()) << rows.status().to_string();
  ASSERT_EQ(rows->size(), 1U);
  EXPECT_EQ((*rows)[0].address, "192.0.2.7");
  EXPECT_EQ((*rows)[0].endpoint, "GET /v1/projects/{p}/cases/{id}");
  EXPECT_EQ((*rows)[0].subjects, std::vector<EventId>{c});
}

}  // namespace
}  // namespace trail::testing
