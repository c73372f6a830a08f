// The reports view: submissions per day per form per user, cases open and closed per case type
// per owner, worker activity; folded inside the append's commit, rebuilt byte for byte, and
// served as CSV and JSON.
#include <gtest/gtest.h>

#include <map>
#include <ostream>
#include <random>
#include <set>

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <sodium.h>

#include "ledger/sha256.h"
#include "projections/case_payload.h"
#include "projections/case_projector.h"
#include "projections/report_projector.h"
#include "tests/support/ledger_fixture.h"
#include "tests/support/mem_tables.h"

namespace trail::proj {
// Readable failures.
void PrintTo(const SubmissionRow& r, std::ostream* os) {
  *os << "{" << r.day << ", " << r.xmlns << ", " << r.user << ", " << r.count << "}";
}
void PrintTo(const CaseCountRow& r, std::ostream* os) {
  *os << "{" << r.case_type << ", " << r.owner << ", " << r.open << ", " << r.closed << "}";
}
void PrintTo(const ActivityRow& r, std::ostream* os) {
  *os << "{" << r.user << ", " << format_rfc3339(r.last_submission) << ", " << r.last_7_days << ", "
      << r.last_30_days << "}";
}
}  // namespace trail::proj

namespace trail::testing {
namespace {

using proj::ActivityRow;
using proj::CaseChangeData;
using proj::CaseCountRow;
using proj::Day;
using proj::ReportProjector;
using proj::SubmissionRow;
using schema::Kind;

constexpr TimeUs kDay = 86'400'000'000;

std::string form_payload(const std::string& xmlns) {
  capnp::MallocMessageBuilder message;
  auto form = message.initRoot<schema::Payload>().initForm();
  form.setXmlns(capnp::Text::Reader(xmlns.data(), xmlns.size()));
  form.setContentType("application/xml");
  const std::string body = "<data><name>Amina</name></data>";
  form.setBody(capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(body.data()), body.size()));
  const auto words = capnp::messageToFlatArray(message);
  const auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

ledger::EventDraft form(const std::string& xmlns, const std::string& user) {
  ledger::EventDraft d = make_draft(0);
  d.kind = Kind::FORM_SUBMITTED;
  d.actor = user;
  d.subject.reset();
  d.payload = form_payload(xmlns);
  return d;
}

ledger::EventDraft case_event(Kind kind, const EventId& id, const std::string& type = "",
                              const std::string& owner = "") {
  ledger::EventDraft d = make_draft(0);
  d.kind = kind;
  d.subject = id;
  CaseChangeData c;
  c.case_type = type;
  c.owner = owner;
  c.fields = {{"village", "Kisumu"}};
  d.payload = proj::encode_case_change(c);
  return d;
}

TEST(ReportDay, UtcDaysFormatAndParse) {
  EXPECT_EQ(proj::utc_day(0), 0);
  EXPECT_EQ(proj::utc_day(kDay - 1), 0);
  EXPECT_EQ(proj::utc_day(kDay), 1);
  EXPECT_EQ(proj::utc_day(-1), -1);
  EXPECT_EQ(proj::utc_day(-kDay), -1);
  EXPECT_EQ(proj::utc_day(-kDay - 1), -2);
  EXPECT_EQ(proj::format_day(0), "1970-01-01");
  EXPECT_EQ(proj::format_day(-1), "1969-12-31");
  const auto may1 = proj::parse_day("2024-05-01");
  ASSERT_TRUE(may1.has_value());
  EXPECT_EQ(*may1, 19844);
  EXPECT_EQ(proj::format_day(*may1), "2024-05-01");
  EXPECT_EQ(proj::utc_day(*parse_rfc3339("2024-05-01T23:59:59.999999Z")), 19844);
  EXPECT_EQ(proj::utc_day(*parse_rfc3339("2024-05-02T00:00:00Z")), 19845);
  EXPECT_EQ(proj::utc_day(*parse_rfc3339("2024-05-02T01:00:00+02:00")), 19844);
  EXPECT_EQ(proj::parse_day("2024-02-29"), 19782);
  EXPECT_FALSE(proj::parse_day("2023-02-29"));
  EXPECT_FALSE(proj::parse_day("2024-5-1"));
  EXPECT_FALSE(proj::parse_day("2024-05-01T00:00:00Z"));
  EXPECT_FALSE(proj::parse_day(""));
}

// ---- Folding with chosen server times, through in-memory tables ----

class ReportFold : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = random_data_key(7);
    ASSERT_NE(key_, nullptr);
  }
  void fold(MemTables& tables, const std::string& project, const ledger::EventDraft& draft,
            TimeUs server_time) {
    ledger::AppendedEvent e;
    e.project = project;
    e.seq = ++seq_;
    e.server_time_us = server_time;
    e.draft = &draft;
    e.key = key_.get();
    ASSERT_TRUE(view_.apply(tables, e).is_ok());
  }
  std::vector<SubmissionRow> submissions(const MemTables& tables, Day from, Day to,
                                         const proj::SubmissionFilter& filter = {}) {
    auto got = view_.submissions(tables, "p", from, to, filter);
    EXPECT_TRUE(got.is_ok()) << got.status().to_string();
    return got.is_ok() ? *got : std::vector<SubmissionRow>{};
  }
  std::vector<ActivityRow> activity(const MemTables& tables, TimeUs now) {
    auto got = view_.activity(tables, "p", now);
    EXPECT_TRUE(got.is_ok()) << got.status().to_string();
    return got.is_ok() ? *got : std::vector<ActivityRow>{};
  }

  ReportProjector view_;
  std::unique_ptr<ledger::DataKey> key_;
  std::uint64_t seq_ = 0;
  const TimeUs may1_ = *parse_rfc3339("2024-05-01T00:00:00Z");
  const Day d1_ = *proj::parse_day("2024-05-01");
};

TEST_F(ReportFold, SubmissionsBucketByUtcDayOfServerTimeFormAndUser) {
  MemTables t(view_.tables().size());
  fold(t, "p", form("http://x/reg", "chw-1"), may1_);               // 2024-05-01
  fold(t, "p", form("http://x/reg", "chw-1"), may1_ + kDay - 1);    // 2024-05-01, last µs
  fold(t, "p", form("http://x/reg", "chw-1"), may1_ + kDay);        // 2024-05-02
  fold(t, "p", form("http://x/visit", "chw-1"), may1_ + kDay + 5);  // 2024-05-02
  fold(t, "p", form("http://x/reg", "chw-2"), may1_ + 3 * kDay);    // 2024-05-04
  fold(t, "p", form("http://x/reg", "chw-2"), may1_ - 1);           // 2024-04-30
  fold(t, "q", form("http://x/reg", "chw-1"), may1_);               // other project
  ledger::EventDraft not_form = form("http://x/reg", "chw-1");
  not_form.payload = "garbage!";  // A form.submitted that is no form: ignored.
  fold(t, "p", not_form, may1_);
  ledger::EventDraft case_as_form = form("", "chw-1");
  case_as_form.payload = proj::encode_case_change({});
  fold(t, "p", case_as_form, may1_);

  const std::vector<SubmissionRow> all = {{"2024-04-30", "http://x/reg", "chw-2", 1},
                                          {"2024-05-01", "http://x/reg", "chw-1", 2},
                                          {"2024-05-02", "http://x/reg", "chw-1", 1},
                                          {"2024-05-02", "http://x/visit", "chw-1", 1},
                                          {"2024-05-04", "http://x/reg", "chw-2", 1}};
  EXPECT_EQ(submissions(t, d1_ - 100, d1_ + 100), all);
  EXPECT_EQ(submissions(t, d1_, d1_ + 1), (std::vector<SubmissionRow>{all[1], all[2], all[3]}));
  EXPECT_EQ(submissions(t, d1_ + 1, d1_ + 1), (std::vector<SubmissionRow>{all[2], all[3]}));
  EXPECT_TRUE(submissions(t, d1_ + 1, d1_).empty());
  EXPECT_TRUE(submissions(t, d1_ + 4, d1_ + 9).empty());
  proj::SubmissionFilter by_user;
  by_user.user = "chw-2";
  EXPECT_EQ(submissions(t, d1_ - 100, d1_ + 100, by_user),
            (std::vector<SubmissionRow>{all[0], all[4]}));
  proj::SubmissionFilter by_form;
  by_form.xmlns = "http://x/visit";
  EXPECT_EQ(submissions(t, d1_ - 100, d1_ + 100, by_form), (std::vector<SubmissionRow>{all[3]}));
  by_form.user = "chw-2";
  EXPECT_TRUE(submissions(t, d1_ - 100, d1_ + 100, by_form).empty());
  auto bad = view_.submissions(t, "Not A Project", d1_, d1_);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalid);
}

TEST_F(ReportFold, ActivityCountsTheLastSevenAndThirtyCalendarDaysUpToNow) {
  MemTables t(view_.tables().size());
  // chw-1: 2 on day 0 (May 1), 1 on day 6, 1 on day 7, 1 on day 29, 1 on day 30.
  for (const int day : {0, 0, 6, 7, 29, 30}) {
    fold(t, "p", form("http://x/reg", "chw-1"), may1_ + day * kDay + 3600'000'000);
  }
  fold(t, "p", form("http://x/reg", "chw-2"), may1_ + 12 * 3600'000'000LL);  // day 0, noon
  const TimeUs chw1_last = may1_ + 30 * kDay + 3600'000'000;
  const TimeUs chw2_last = may1_ + 12 * 3600'000'000LL;

  // At the start of day 30: days 24..30 and 1..30.
  EXPECT_EQ(activity(t, may1_ + 30 * kDay),
            (std::vector<ActivityRow>{{"chw-1", chw1_last, 2, 4}, {"chw-2", chw2_last, 0, 0}}));
  // Day 29, late: days 23..29 and 0..29 (the submission on day 30 is after now's day).
  EXPECT_EQ(activity(t, may1_ + 30 * kDay - 1),
            (std::vector<ActivityRow>{{"chw-1", chw1_last, 1, 5}, {"chw-2", chw2_last, 0, 1}}));
  // Day 12: days 6..12 and all up to 12.
  EXPECT_EQ(activity(t, may1_ + 12 * kDay),
            (std::vector<ActivityRow>{{"chw-1", chw1_last, 2, 4}, {"chw-2", chw2_last, 0, 1}}));
  // Day 6: days 0..6, the first window that still holds day 0.
  EXPECT_EQ(activity(t, may1_ + 6 * kDay),
            (std::vector<ActivityRow>{{"chw-1", chw1_last, 3, 3}, {"chw-2", chw2_last, 1, 1}}));
  // Day 7: day 0 drops out of the last 7.
  EXPECT_EQ(activity(t, may1_ + 7 * kDay),
            (std::vector<ActivityRow>{{"chw-1", chw1_last, 2, 4}, {"chw-2", chw2_last, 0, 1}}));
  // Day 13: day 6 drops out of the last 7.
  EXPECT_EQ(activity(t, may1_ + 13 * kDay),
            (std::vector<ActivityRow>{{"chw-1", chw1_last, 1, 4}, {"chw-2", chw2_last, 0, 1}}));
  // Day 0 before the first submission of the day still counts the whole day.
  EXPECT_EQ(activity(t, may1_),
            (std::vector<ActivityRow>{{"chw-1", chw1_last, 2, 2}, {"chw-2", chw2_last, 1, 1}}));
  // The day before: nothing yet; last_submission stays the latest folded.
  EXPECT_EQ(activity(t, may1_ - 1),
            (std::vector<ActivityRow>{{"chw-1", chw1_last, 0, 0}, {"chw-2", chw2_last, 0, 0}}));
  // Day 60: all older than 30 days.
  EXPECT_EQ(activity(t, may1_ + 60 * kDay),
            (std::vector<ActivityRow>{{"chw-1", chw1_last, 0, 0}, {"chw-2", chw2_last, 0, 0}}));
  auto other = view_.activity(t, "q", may1_);
  ASSERT_TRUE(other.is_ok());
  EXPECT_TRUE(other->empty());
}

TEST_F(ReportFold, LongTextsAreShortenedInKeysAndStillFilterable) {
  MemTables t(view_.tables().size());
  std::string long_xmlns = "http://openrosa.org/formdesigner/";
  while (long_xmlns.size() < 400) long_xmlns += "\xC3\xA9";  // 'é': cuts must respect UTF-8.
  std::string other = long_xmlns;
  other.back() = 'x';
  fold(t, "p", form(long_xmlns, "chw-1"), may1_);
  fold(t, "p", form(long_xmlns, "chw-1"), may1_);
  fold(t, "p", form(other, "chw-1"), may1_);
  const auto rows = submissions(t, d1_, d1_);
  ASSERT_EQ(rows.size(), 2U);
  std::uint64_t total = 0;
  for (const auto& r : rows) {
    total += r.count;
    EXPECT_LE(r.xmlns.size(), proj::kReportKeyTextMax);
    EXPECT_EQ(r.xmlns.substr(0, 33), "http://openrosa.org/formdesigner/");
    EXPECT_EQ(r.xmlns.find('#'), 127U);  // 33 ASCII bytes + 47 two-byte letters.
  }
  EXPECT_EQ(total, 3U);
  proj::SubmissionFilter f;
  f.xmlns = long_xmlns;
  const auto only = submissions(t, d1_, d1_, f);
  ASSERT_EQ(only.size(), 1U);
  EXPECT_EQ(only[0].count, 2U);
  EXPECT_EQ(only[0].xmlns,
            long_xmlns.substr(0, 127) + "#" + to_hex(sha256(as_bytes(long_xmlns))).substr(0, 16));
  // A short text at the limit stays as it is.
  const std::string at_limit(proj::kReportKeyTextMax, 'a');
  fold(t, "p", form(at_limit, "chw-1"), may1_);
  f.xmlns = at_limit;
  EXPECT_EQ(submissions(t, d1_, d1_, f),
            (std::vector<SubmissionRow>{{"2024-05-01", at_limit, "chw-1", 1}}));
}

TEST_F(ReportFold, FoldingIsDeterministicAndCaseRecordsAreSealed) {
  MemTables a(view_.tables().size());
  MemTables b(view_.tables().size());
  const EventId id = random_id();
  std::vector<ledger::EventDraft> drafts = {
      form("http://x/reg", "chw-1"), case_event(Kind::CASE_CREATED, id, "patient", "owner-a"),
      case_event(Kind::CASE_CLOSED, id)};
  for (MemTables* t : {&a, &b}) {
    seq_ = 0;
    for (std::size_t i = 0; i < drafts.size(); ++i) {
      fold(*t, "p", drafts[i], may1_ + static_cast<TimeUs>(i));
    }
  }
  EXPECT_TRUE(a == b);
  ASSERT_EQ(a.table(3).size(), 1U);  // report.cases
  const std::string& sealed = a.table(3).begin()->second;
  EXPECT_EQ(sealed.find("patient"), std::string::npos);
  EXPECT_EQ(sealed.find("owner-a"), std::string::npos);
  EXPECT_EQ(view_.tables(),
            (std::vector<std::string>{"report.submissions", "report.user_days", "report.users",
                                      "report.cases", "report.case_counts"}));
}

// ---- Through the ledger ----

class ReportView : public LedgerTest {
 protected:
  std::vector<std::shared_ptr<ledger::Projector>> projectors() const override {
    return {cases_, view_};
  }
  std::vector<CaseCountRow> counts(const std::string& project = "p") {
    auto got = view_->case_counts(*ledger_, project);
    EXPECT_TRUE(got.is_ok()) << got.status().to_string();
    return got.is_ok() ? *got : std::vector<CaseCountRow>{};
  }
  TimeUs head_time(const std::string& project = "p") {
    auto head = ledger_->head(project);
    EXPECT_TRUE(head.is_ok());
    return head.is_ok() ? head->server_time_us : 0;
  }

  std::shared_ptr<proj::CaseProjector> cases_ = std::make_shared<proj::CaseProjector>();
  std::shared_ptr<ReportProjector> view_ = std::make_shared<ReportProjector>();
};

TEST_F(ReportView, CountsTodaysSubmissionsAndActivityFromTheCommit) {
  const TimeUs before = now_us();
  const ledger::EventDraft resent = form("http://x/reg", "chw-2");
  append_ok("p", {form("http://x/reg", "chw-1"), form("http://x/reg", "chw-1"),
                  form("http://x/visit", "chw-1"), resent});
  const TimeUs first = head_time();
  append_ok("p", {resent});  // A duplicate: appends nothing, counts nothing.
  append_ok("p", {form("http://x/visit", "chw-2")});
  append_ok("q", {form("http://x/visit", "chw-9")});
  const TimeUs last = head_time();
  if (proj::utc_day(before) != proj::utc_day(now_us())) GTEST_SKIP() << "ran across midnight";
  const Day today = proj::utc_day(last);
  const std::string day = proj::format_day(today);

  auto rows = view_->submissions(*ledger_, "p", today, today);
  ASSERT_TRUE(rows.is_ok()) << rows.status().to_string();
  EXPECT_EQ(*rows, (std::vector<SubmissionRow>{{day, "http://x/reg", "chw-1", 2},
                                               {day, "http://x/reg", "chw-2", 1},
                                               {day, "http://x/visit", "chw-1", 1},
                                               {day, "http://x/visit", "chw-2", 1}}));
  auto none = view_->submissions(*ledger_, "p", today - 30, today - 1);
  ASSERT_TRUE(none.is_ok());
  EXPECT_TRUE(none->empty());
  auto empty = view_->submissions(*ledger_, "empty-project", today, today);
  ASSERT_TRUE(empty.is_ok());
  EXPECT_TRUE(empty->empty());

  auto act = view_->activity(*ledger_, "p", last);
  ASSERT_TRUE(act.is_ok()) << act.status().to_string();
  ASSERT_EQ(act->size(), 2U);
  EXPECT_EQ((*act)[0], (ActivityRow{"chw-1", first, 3, 3}));
  EXPECT_EQ((*act)[1], (ActivityRow{"chw-2", head_time(), 2, 2}));
  auto later = view_->activity(*ledger_, "p", last + 7 * kDay);
  ASSERT_TRUE(later.is_ok());
  EXPECT_EQ((*later)[0], (ActivityRow{"chw-1", first, 0, 3}));
  auto much_later = view_->activity(*ledger_, "p", last + 30 * kDay);
  ASSERT_TRUE(much_later.is_ok());
  EXPECT_EQ((*much_later)[1], (ActivityRow{"chw-2", head_time(), 0, 0}));
  auto q = view_->activity(*ledger_, "q", last);
  ASSERT_TRUE(q.is_ok());
  EXPECT_EQ(*q, (std::vector<ActivityRow>{{"chw-9", head_time("q"), 1, 1}}));
}

TEST_F(ReportView, CaseCountsFollowCreateCloseReopenReassignRetypeAndImplicitCreate) {
  const EventId a = random_id();
  const EventId b = random_id();
  const EventId c = random_id();
  append_ok("p", {case_event(Kind::CASE_CREATED, a, "patient", "owner-1"),
                  case_event(Kind::CASE_CREATED, b, "patient", "owner-1")});
  EXPECT_EQ(counts(), (std::vector<CaseCountRow>{{"patient", "owner-1", 2, 0}}));

  append_ok("p", {case_event(Kind::CASE_CLOSED, a)});
  EXPECT_EQ(counts(), (std::vector<CaseCountRow>{{"patient", "owner-1", 1, 1}}));
  append_ok("p", {case_event(Kind::CASE_CLOSED, a)});  // Close of a closed case: no change.
  EXPECT_EQ(counts(), (std::vector<CaseCountRow>{{"patient", "owner-1", 1, 1}}));
  append_ok("p", {case_event(Kind::CASE_REOPENED, b)});  // Re-open of an open case: no change.
  EXPECT_EQ(counts(), (std::vector<CaseCountRow>{{"patient", "owner-1", 1, 1}}));
  append_ok("p", {case_event(Kind::CASE_REOPENED, a)});
  EXPECT_EQ(counts(), (std::vector<CaseCountRow>{{"patient", "owner-1", 2, 0}}));

  // Implicit create: an update of a case nobody created, with and without type and owner.
  append_ok("p", {case_event(Kind::CASE_UPDATED, c, "household", "owner-2"),
                  case_event(Kind::CASE_INDEXED, random_id())});
  EXPECT_EQ(counts(),
            (std::vector<CaseCountRow>{
                {"", "", 1, 0}, {"household", "owner-2", 1, 0}, {"patient", "owner-1", 2, 0}}));

  // Re-assign a closed case: it moves as closed; the emptied row disappears later.
  append_ok(
      "p", {case_event(Kind::CASE_CLOSED, b), case_event(Kind::CASE_REASSIGNED, b, "", "owner-2")});
  EXPECT_EQ(counts(), (std::vector<CaseCountRow>{{"", "", 1, 0},
                                                 {"household", "owner-2", 1, 0},
                                                 {"patient", "owner-1", 1, 0},
                                                 {"patient", "owner-2", 0, 1}}));
  // Re-type (by an update) and re-assign of the last owner-1 case: its row goes.
  append_ok("p", {case_event(Kind::CASE_UPDATED, a, "household", "owner-2")});
  EXPECT_EQ(counts(),
            (std::vector<CaseCountRow>{
                {"", "", 1, 0}, {"household", "owner-2", 2, 0}, {"patient", "owner-2", 0, 1}}));
  // A case.created for an existing case only sets what it names; it does not re-open.
  append_ok("p", {case_event(Kind::CASE_CREATED, b, "patient", "")});
  EXPECT_EQ(counts(),
            (std::vector<CaseCountRow>{
                {"", "", 1, 0}, {"household", "owner-2", 2, 0}, {"patient", "owner-2", 0, 1}}));
  // A case event without a subject or with a payload that is no case change is ignored.
  ledger::EventDraft no_subject = case_event(Kind::CASE_CREATED, a, "x", "y");
  no_subject.subject.reset();
  ledger::EventDraft not_change = case_event(Kind::CASE_CREATED, random_id(), "x", "y");
  not_change.payload = form_payload("http://x/reg");
  append_ok("p", {no_subject, not_change});
  EXPECT_EQ(counts().size(), 3U);
  EXPECT_TRUE(counts("q").empty());
  EXPECT_TRUE(counts("never-used").empty());
}

// The writer remembers which cases' records are stored, so that an update that cannot change a
// count skips reading one. A case created implicitly in a views commit that failed is not
// stored: the catch-up that follows must count it, and later updates must not be skipped on
// the strength of the failed commit.
TEST_F(ReportView, ACaseCreatedInAFailedViewsCommitIsCountedOnceCaughtUp) {
  const EventId a = random_id();
  append_ok("p", {case_event(Kind::CASE_CREATED, a, "patient", "owner-1")});
  const EventId b = random_id();
  ledger_->inject_view_commit_failures(1);
  append_ok("p", {case_event(Kind::CASE_UPDATED, b), case_event(Kind::CASE_UPDATED, a)});
  append_ok("p", {case_event(Kind::CASE_UPDATED, b), case_event(Kind::CASE_UPDATED, a)});
  EXPECT_EQ(counts(), (std::vector<CaseCountRow>{{"", "", 1, 0}, {"patient", "owner-1", 1, 0}}));
  append_ok("p", {case_event(Kind::CASE_CLOSED, b)});
  EXPECT_EQ(counts(), (std::vector<CaseCountRow>{{"", "", 0, 1}, {"patient", "owner-1", 1, 0}}));
  expect_rebuild_reproduces_views();
}

TEST_F(ReportView, RebuildIsByteIdenticalAndGivesTheSameReports) {
  const auto seed = static_cast<std::uint64_t>(::testing::UnitTest::GetInstance()->random_seed());
  SCOPED_TRACE("random seed " + std::to_string(seed));
  std::mt19937_64 rng{seed + 7};
  std::vector<EventId> ids(10);
  for (auto& id : ids) id = random_id();
  const Kind kinds[] = {Kind::FORM_SUBMITTED, Kind::FORM_SUBMITTED, Kind::CASE_CREATED,
                        Kind::CASE_UPDATED,   Kind::CASE_CLOSED,    Kind::CASE_REOPENED,
                        Kind::CASE_REASSIGNED};
  for (int batch = 0; batch < 60; ++batch) {
    std::vector<ledger::EventDraft> drafts;
    for (std::uint64_t i = 0; i < rng() % 6 + 1; ++i) {
      const Kind kind = kinds[rng() % std::size(kinds)];
      const std::string user = "user-" + std::to_string(rng() % 4);
      if (kind == Kind::FORM_SUBMITTED) {
        drafts.push_back(form("http://x/f" + std::to_string(rng() % 3), user));
        continue;
      }
      const std::string type = rng() % 3 == 0 ? "type-" + std::to_string(rng() % 2) : "";
      const std::string owner = rng() % 3 == 0 ? "owner-" + std::to_string(rng() % 3) : "";
      drafts.push_back(case_event(kind, ids[rng() % ids.size()], type, owner));
      drafts.back().actor = user;
    }
    append_ok(rng() % 4 ? "p" : "q", std::move(drafts));
  }
  const TimeUs now = head_time();
  const Day today = proj::utc_day(now);
  auto digest = ledger_->projection_digest();
  ASSERT_TRUE(digest.is_ok());
  auto subs = view_->submissions(*ledger_, "p", today - 1, today + 1);
  auto cc = view_->case_counts(*ledger_, "p");
  auto act = view_->activity(*ledger_, "p", now);
  ASSERT_TRUE(subs.is_ok() && cc.is_ok() && act.is_ok());
  // Every case is counted exactly once.
  std::uint64_t counted = 0;
  for (const auto& r : *cc) counted += r.open + r.closed;
  std::set<EventId> seen;
  ASSERT_TRUE(ledger_
                  ->scan("p", 1, 0,
                         [&](const ledger::StoredEvent& s) {
                           auto opened = ledger_->open_event(s);
                           EXPECT_TRUE(opened.is_ok());
                           if (opened.is_ok() && opened->envelope.kind != Kind::FORM_SUBMITTED &&
                               opened->envelope.subject) {
                             seen.insert(*opened->envelope.subject);
                           }
                           return true;
                         })
                  .is_ok());
  EXPECT_EQ(counted, seen.size());

  ASSERT_TRUE(ledger_->rebuild_projections({}).is_ok());
  auto rebuilt = ledger_->projection_digest();
  ASSERT_TRUE(rebuilt.is_ok());
  EXPECT_EQ(*digest, *rebuilt);
  EXPECT_EQ(*view_->submissions(*ledger_, "p", today - 1, today + 1), *subs);
  EXPECT_EQ(*view_->case_counts(*ledger_, "p"), *cc);
  EXPECT_EQ(*view_->activity(*ledger_, "p", now), *act);

  reopen();  // And the view survives a reopen.
  EXPECT_EQ(*view_->case_counts(*ledger_, "p"), *cc);
}

// ---- Output ----

TEST(ReportOutput, SubmissionsAsCsvAndJson) {
  const std::vector<SubmissionRow> rows = {{"2024-05-01", "http://x/reg", "chw-1", 3},
                                           {"2024-05-02", "http://x/a,b", "chw \"2\"", 1},
                                           {"2024-05-02", "line\nbreak", "caf\xC3\xA9\xFF", 0}};
  EXPECT_EQ(proj::to_csv(rows),
            "day,xmlns,user,count\r\n"
            "2024-05-01,http://x/reg,chw-1,3\r\n"
            "2024-05-02,\"http://x/a,b\",\"chw \"\"2\"\"\",1\r\n"
            "2024-05-02,\"line\nbreak\",caf\xC3\xA9\xFF,0\r\n");
  EXPECT_EQ(
      proj::to_json(rows),
      "[{\"day\":\"2024-05-01\",\"xmlns\":\"http://x/reg\",\"user\":\"chw-1\",\"count\":3},"
      "{\"day\":\"2024-05-02\",\"xmlns\":\"http://x/a,b\",\"user\":\"chw \\\"2\\\"\","
      "\"count\":1},"
      "{\"day\":\"2024-05-02\",\"xmlns\":\"line\\nbreak\",\"user\":\"caf\xC3\xA9\xEF\xBF\xBD\","
      "\"count\":0}]");
  EXPECT_EQ(proj::to_csv(std::vector<SubmissionRow>{}), "day,xmlns,user,count\r\n");
  EXPECT_EQ(proj::to_json(std::vector<SubmissionRow>{}), "[]");
}

TEST(ReportOutput, CaseCountsAsCsvAndJson) {
  const std::vector<CaseCountRow> rows = {{"", "", 1, 0}, {"patient", "owner\r1", 12, 3}};
  EXPECT_EQ(proj::to_csv(rows),
            "case_type,owner,open,closed\r\n"
            ",,1,0\r\n"
            "patient,\"owner\r1\",12,3\r\n");
  EXPECT_EQ(proj::to_json(rows),
            "[{\"case_type\":\"\",\"owner\":\"\",\"open\":1,\"closed\":0},"
            "{\"case_type\":\"patient\",\"owner\":\"owner\\r1\",\"open\":12,\"closed\":3}]");
}

TEST(ReportOutput, ActivityAsCsvAndJson) {
  const TimeUs t = *parse_rfc3339("2024-05-01T09:30:00.25Z");
  const std::vector<ActivityRow> rows = {{"chw-1", t, 4, 18446744073709551615ULL}};
  EXPECT_EQ(proj::to_csv(rows),
            "user,last_submission,last_7_days,last_30_days\r\n"
            "chw-1,2024-05-01T09:30:00.250000Z,4,18446744073709551615\r\n");
  EXPECT_EQ(proj::to_json(rows),
            "[{\"user\":\"chw-1\",\"last_submission\":\"2024-05-01T09:30:00.250000Z\","
            "\"last_7_days\":4,\"last_30_days\":18446744073709551615}]");
}

}  // namespace
}  // namespace trail::testing
