// The access audit: record.read and break_glass.granted events indexed by case, by reader and
// by server time, sealed; and the break-the-glass grants in force.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <map>
#include <thread>

#include <capnp/any.h>
#include <capnp/message.h>
#include <capnp/serialize.h>

#include "ledger/internal/lmdb_env.h"
#include "ledger/internal/view_store.h"
#include "projections/access_projector.h"
#include "projections/case_payload.h"
#include "projections/case_projector.h"
#include "projections/identity.h"
#include "projections/row_codec.h"
#include "projections/view_json.h"
#include "projections/view_keys.h"
#include "tests/support/ledger_fixture.h"

namespace trail::testing {
namespace {

using proj::AccessFilter;
using proj::AccessProjector;
using proj::AccessRow;
using proj::Grant;
using proj::RecordReadData;
using schema::Channel;
using schema::Kind;

constexpr TimeUs kClientTime = 1'700'000'000'000'000;
constexpr TimeUs kHourUs = 3'600'000'000;

// A break_glass.granted draft as the server appends it: envelope subject the case, actor the
// user, an AccountChange payload {user, detail}.
ledger::EventDraft grant_draft(const std::string& reader, std::optional<EventId> case_id,
                               std::map<std::string, std::string> detail) {
  ledger::EventDraft d;
  d.event_id = random_id();
  d.kind = Kind::BREAK_GLASS_GRANTED;
  d.actor = reader;
  d.device_id = "browser-" + reader;
  d.channel = Channel::WEB;
  d.client_time_us = kClientTime;
  d.subject = case_id;
  d.payload = proj::encode_account_change({reader, std::move(detail)});
  return d;
}
ledger::EventDraft grant_draft(const std::string& reader, const EventId& case_id,
                               TimeUs expires_us, const std::string& reason) {
  return grant_draft(reader, case_id,
                     {{"address", "192.0.2.9"},
                      {"expires_us", std::to_string(expires_us)},
                      {"reason", reason}});
}

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

  // Appends `draft` on its own (after a pause, so server times strictly increase) and returns
  // its seq.
  std::uint64_t append_one(ledger::EventDraft draft, const std::string& project = "p") {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    auto r = append_ok(project, {std::move(draft)});
    EXPECT_EQ(r.size(), 1U);
    const auto head = ledger_->head(project);
    EXPECT_TRUE(head.is_ok());
    times_.push_back(head->server_time_us);
    return r.empty() ? 0 : r[0].seq;
  }

  // The live grant of `case_id` to `reader` at `now_us`.
  std::optional<Grant> grant_at(const EventId& case_id, const std::string& reader, TimeUs now_us,
                                const std::string& project = "p") {
    auto got = view_->grant(*ledger_, project, case_id, reader, now_us);
    EXPECT_TRUE(got.is_ok()) << got.status().to_string();
    return got.is_ok() ? *got : std::nullopt;
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
  // Paging on: after a seq, from whichever of it and from_us comes later.
  f = {};
  f.from_us = times_[1];
  f.after_seq = r3;
  EXPECT_EQ(seqs_where(f), (Seqs{r4}));
  f.after_seq = r1;
  EXPECT_EQ(seqs_where(f), (Seqs{r2, r3, r4}));
  f.from_us.reset();
  f.after_seq = r2;
  EXPECT_EQ(seqs_where(f), (Seqs{r3, r4}));

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
  const std::string file = stored_bytes();
  EXPECT_EQ(file.find("Achieng"), std::string::npos);
  EXPECT_EQ(file.find("Suspected MDR"), std::string::npos);
  reopen();
  const auto after = rows({});
  ASSERT_FALSE(after.empty());
  EXPECT_EQ(after[0].reason, "Suspected MDR contact of Achieng Otieno");
}


// ---- outside_capture and grant on record.read payloads ----

// A record.read payload as the schema before RecordRead.outsideCapture and .grant encoded it:
// Payload {union tag 3 = recordRead} pointing at a RecordRead with no data section and five
// pointers (what, subjects, reason, address, endpoint). Checked byte for byte against code
// generated from that schema when this test was written.
std::string legacy_record_read(const std::string& what, const std::vector<EventId>& subjects,
                               const std::string& reason) {
  capnp::MallocMessageBuilder message;
  auto root = message.initRoot<capnp::AnyPointer>().initAsAnyStruct(1, 1);
  root.getDataSection()[0] = static_cast<capnp::byte>(schema::Payload::RECORD_READ);
  auto read = root.getPointerSection()[0].initAsAnyStruct(0, 5);
  auto fields = read.getPointerSection();
  fields[0].setAs<capnp::Text>(what);
  auto list = fields[1].initAs<capnp::List<capnp::Data>>(static_cast<unsigned>(subjects.size()));
  for (unsigned i = 0; i < subjects.size(); ++i) list.set(i, {subjects[i].data(), 16});
  fields[2].setAs<capnp::Text>(reason);
  fields[3].setAs<capnp::Text>("198.51.100.4");
  fields[4].setAs<capnp::Text>("GET /v1/projects/{p}/cases/{id}");
  const auto words = capnp::messageToFlatArray(message);
  const auto bytes = words.asBytes();
  return {reinterpret_cast<const char*>(bytes.begin()), bytes.size()};
}

TEST_F(AccessView, OutsideCaptureAndGrantRoundTripThroughThePayload) {
  const EventId c = random_id();
  const EventId g = random_id();
  RecordReadData read;
  read.what = "case";
  read.subjects = {c};
  read.reason = "referral";
  read.outside_capture = true;
  read.grant = g;
  const std::string bytes = proj::encode_record_read(read);
  EXPECT_EQ(proj::encode_record_read(read), bytes);  // Deterministic.
  auto decoded = proj::decode_record_read(bytes);
  ASSERT_TRUE(decoded.is_ok()) << decoded.status().to_string();
  EXPECT_TRUE(decoded->outside_capture);
  EXPECT_EQ(decoded->grant, g);
  EXPECT_EQ(decoded->subjects, std::vector<EventId>{c});

  // Unset, they decode as unset; each is encoded on its own.
  RecordReadData plain = read;
  plain.outside_capture = false;
  plain.grant.reset();
  decoded = proj::decode_record_read(proj::encode_record_read(plain));
  ASSERT_TRUE(decoded.is_ok());
  EXPECT_FALSE(decoded->outside_capture);
  EXPECT_FALSE(decoded->grant.has_value());
  RecordReadData flag_only = plain;
  flag_only.outside_capture = true;
  decoded = proj::decode_record_read(proj::encode_record_read(flag_only));
  ASSERT_TRUE(decoded.is_ok());
  EXPECT_TRUE(decoded->outside_capture);
  EXPECT_FALSE(decoded->grant.has_value());
  EXPECT_NE(proj::encode_record_read(flag_only), proj::encode_record_read(plain));

  // A grant that is not 16 bytes is refused; an empty one is no grant.
  for (const std::size_t size : {std::size_t{15}, std::size_t{0}}) {
    capnp::MallocMessageBuilder message;
    auto out = message.initRoot<schema::Payload>().initRecordRead();
    out.setWhat("case");
    out.initGrant(static_cast<unsigned>(size));
    const auto words = capnp::messageToFlatArray(message);
    const auto b = words.asBytes();
    auto got = proj::decode_record_read({reinterpret_cast<const char*>(b.begin()), b.size()});
    if (size == 0) {
      ASSERT_TRUE(got.is_ok()) << got.status().to_string();
      EXPECT_FALSE(got->grant.has_value());
    } else {
      EXPECT_EQ(got.status().code(), Code::kCorrupt);
    }
  }

  // make_record_read carries them into the draft.
  const auto d = proj::make_record_read("sup-002", "tablet", Channel::API, read, kClientTime,
                                        random_id());
  EXPECT_EQ(d.payload, bytes);
  EXPECT_EQ(d.subject, c);
}

TEST_F(AccessView, PayloadsFromBeforeOutsideCaptureAndGrantStillDecode) {
  const EventId c1 = random_id();
  const EventId c2 = random_id();
  const std::string old = legacy_record_read("search", {c1, c2}, "tb tracing");
  // The old layout is smaller than today's: it truly lacks the new fields.
  EXPECT_LT(old.size(), proj::encode_record_read(*proj::decode_record_read(old)).size());
  auto decoded = proj::decode_record_read(old);
  ASSERT_TRUE(decoded.is_ok()) << decoded.status().to_string();
  EXPECT_EQ(decoded->what, "search");
  EXPECT_EQ(decoded->subjects, (std::vector<EventId>{c1, c2}));
  EXPECT_EQ(decoded->reason, "tb tracing");
  EXPECT_EQ(decoded->address, "198.51.100.4");
  EXPECT_EQ(decoded->endpoint, "GET /v1/projects/{p}/cases/{id}");
  EXPECT_FALSE(decoded->outside_capture);
  EXPECT_FALSE(decoded->grant.has_value());

  // Folded, such an event is an ordinary read.
  auto d = proj::make_record_read("chw-017", "phone", Channel::WEB, "x", {}, "", kClientTime);
  d.payload = old;
  const auto seq = append_one(d);
  AccessFilter f;
  f.case_id = c2;
  const auto got = rows(f);
  ASSERT_EQ(seqs(got), (Seqs{seq}));
  EXPECT_EQ(got[0].what, "search");
  EXPECT_FALSE(got[0].outside_capture);
  EXPECT_FALSE(got[0].grant.has_value());
  EXPECT_EQ(got[0].grant_expires_us, 0);
}

TEST_F(AccessView, RowsSealedAtVersion2StillDecode) {
  const EventId c = random_id();
  const auto seq = read("chw-017", "case", {c}, "home visit");
  // Rewrite the stored row as version 2 wrote it: everything up to the endpoint.
  const auto before = rows({});
  ASSERT_EQ(before.size(), 1U);
  const AccessRow& row = before[0];
  proj::view::RowWriter w;
  w.u8(2);
  w.u64(row.seq);
  w.i64(row.server_time_us);
  w.i64(row.client_time_us);
  w.text(row.reader);
  w.text(row.device_id);
  w.u32(static_cast<std::uint32_t>(row.channel));
  w.text(row.what);
  w.text(row.reason);
  w.u32(1);
  w.id(c);
  w.id(row.event_id);
  w.text("203.0.113.5");
  w.text("trailctl case show");
  std::string key = proj::view::project_prefix("p");
  proj::view::add_u64(key, seq);
  auto data_key = ledger_->existing_project_key("p");
  ASSERT_TRUE(data_key.is_ok());
  const std::string sealed = (*data_key)->seal_deterministic(
      as_bytes(proj::view::aad_for("access.reads", key)), as_bytes(w.take()));
  ledger_.reset();
  {
    ledger::detail::EnvOptions views;  // The view environment, DATA/views.
    views.views = true;
    auto env = ledger::detail::Env::open(ledger::detail::views_dir(data_dir()), views);
    ASSERT_TRUE(env.is_ok()) << env.status().to_string();
    auto dbi = (*env)->open_named("access.reads");
    ASSERT_TRUE(dbi.is_ok());
    auto txn = (*env)->begin_write();
    ASSERT_TRUE(txn.is_ok());
    ASSERT_TRUE(txn->put(*dbi, as_bytes(key), as_bytes(sealed)).is_ok());
    ASSERT_TRUE(txn->commit().is_ok());
  }
  reopen();
  const auto after = rows({});
  ASSERT_EQ(after.size(), 1U);
  EXPECT_EQ(after[0].seq, seq);
  EXPECT_EQ(after[0].reader, "chw-017");
  EXPECT_EQ(after[0].reason, "home visit");
  EXPECT_EQ(after[0].address, "203.0.113.5");  // The rewritten row, not the original.
  EXPECT_EQ(after[0].endpoint, "trailctl case show");
  EXPECT_EQ(after[0].subjects, std::vector<EventId>{c});
  EXPECT_FALSE(after[0].outside_capture);
  EXPECT_FALSE(after[0].grant.has_value());
  EXPECT_EQ(after[0].grant_expires_us, 0);
}

// ---- break-the-glass grants ----

TEST_F(AccessView, GrantsAreAccessRowsAmongTheReads) {
  const EventId c1 = random_id();
  const EventId c2 = random_id();
  const TimeUs expires = kClientTime + kHourUs;
  const auto r1 = read("chw-017", "case", {c1}, "home visit");
  const auto grant_event = grant_draft("sup-002", c1, expires, "emergency referral");
  const auto g = append_one(grant_event);
  RecordReadData relied;
  relied.what = "case";
  relied.subjects = {c1};
  relied.outside_capture = true;
  relied.grant = grant_event.event_id;
  const auto r3 = append_one(
      proj::make_record_read("sup-002", "tablet", Channel::API, relied, kClientTime, random_id()));
  const auto r4 = read("sup-002", "case", {c2}, "");
  ASSERT_EQ((Seqs{r1, g, r3, r4}), (Seqs{1, 2, 3, 4}));

  AccessFilter f;
  f.case_id = c1;
  const auto by_case = rows(f);
  ASSERT_EQ(seqs(by_case), (Seqs{r1, g, r3}));
  const AccessRow& grant_row = by_case[1];
  EXPECT_EQ(grant_row.what, "break_glass");
  EXPECT_EQ(grant_row.reader, "sup-002");
  EXPECT_EQ(grant_row.device_id, "browser-sup-002");
  EXPECT_EQ(grant_row.reason, "emergency referral");
  EXPECT_EQ(grant_row.address, "192.0.2.9");
  EXPECT_EQ(grant_row.subjects, std::vector<EventId>{c1});
  EXPECT_EQ(grant_row.event_id, grant_event.event_id);
  EXPECT_EQ(grant_row.grant_expires_us, expires);
  EXPECT_EQ(grant_row.server_time_us, times_[1]);
  EXPECT_FALSE(grant_row.outside_capture);
  EXPECT_FALSE(grant_row.grant.has_value());
  const AccessRow& relied_row = by_case[2];
  EXPECT_TRUE(relied_row.outside_capture);
  EXPECT_EQ(relied_row.grant, grant_event.event_id);
  EXPECT_EQ(relied_row.grant_expires_us, 0);
  EXPECT_FALSE(by_case[0].outside_capture);
  EXPECT_FALSE(by_case[0].grant.has_value());

  f = {};
  f.reader = "sup-002";
  EXPECT_EQ(seqs_where(f), (Seqs{g, r3, r4}));
  f = {};
  f.from_us = times_[1];
  f.to_us = times_[2];
  EXPECT_EQ(seqs_where(f), (Seqs{g}));
  EXPECT_EQ(seqs_where({}), (Seqs{r1, g, r3, r4}));
  f = {};
  f.case_id = c1;
  f.after_seq = r1;
  EXPECT_EQ(seqs_where(f, 1), (Seqs{g}));

  // The JSON the API and trailctl print.
  const auto grant_json = proj::access_json(grant_row);
  EXPECT_EQ(grant_json.at("what").as_string(), "break_glass");
  EXPECT_EQ(grant_json.at("reason").as_string(), "emergency referral");
  EXPECT_EQ(grant_json.at("address").as_string(), "192.0.2.9");
  EXPECT_EQ(grant_json.at("expires_at").as_string(), format_rfc3339(expires));
  EXPECT_FALSE(grant_json.at("outside_capture").as_bool());
  EXPECT_FALSE(grant_json.contains("grant"));
  const auto relied_json = proj::access_json(relied_row);
  EXPECT_TRUE(relied_json.at("outside_capture").as_bool());
  EXPECT_EQ(relied_json.at("grant").as_string(), format_uuid(grant_event.event_id));
  EXPECT_FALSE(relied_json.contains("expires_at"));
  const auto plain_json = proj::access_json(by_case[0]);
  EXPECT_FALSE(plain_json.at("outside_capture").as_bool());
  EXPECT_FALSE(plain_json.contains("grant"));
  EXPECT_FALSE(plain_json.contains("expires_at"));
  EXPECT_EQ(plain_json.at("what").as_string(), "case");
  EXPECT_EQ(plain_json.at("reason").as_string(), "home visit");
}

TEST_F(AccessView, AGrantHoldsUntilItExpiresForItsCaseReaderAndProjectOnly) {
  const EventId c1 = random_id();
  const EventId c2 = random_id();
  const TimeUs e1 = kClientTime + 2 * kHourUs;
  EXPECT_FALSE(grant_at(c1, "sup-002", kClientTime, "p"));  // No project yet.
  const auto first = grant_draft("sup-002", c1, e1, "first");
  append_one(first);

  auto live = grant_at(c1, "sup-002", e1 - 1);
  ASSERT_TRUE(live.has_value());
  EXPECT_EQ(live->event_id, first.event_id);
  EXPECT_EQ(live->expires_us, e1);
  EXPECT_TRUE(grant_at(c1, "sup-002", kClientTime));
  EXPECT_FALSE(grant_at(c1, "sup-002", e1));  // Expired at expires_us.
  EXPECT_FALSE(grant_at(c1, "sup-002", e1 + kHourUs));
  EXPECT_FALSE(grant_at(c1, "sup-003", kClientTime));  // Another reader.
  EXPECT_FALSE(grant_at(c2, "sup-002", kClientTime));  // Another case.
  EXPECT_FALSE(grant_at(c1, "sup-002", kClientTime, "q"));  // Another project.

  // Another reader's grant of the same case, and a grant in another project, stand apart.
  const auto other_reader = grant_draft("sup-003", c1, e1 + kHourUs, "theirs");
  append_one(other_reader);
  const auto other_project = grant_draft("sup-002", c1, e1 + 2 * kHourUs, "elsewhere");
  append_one(other_project, "q");
  EXPECT_EQ(grant_at(c1, "sup-002", kClientTime)->event_id, first.event_id);
  EXPECT_EQ(grant_at(c1, "sup-003", kClientTime)->event_id, other_reader.event_id);
  EXPECT_EQ(grant_at(c1, "sup-002", kClientTime, "q")->event_id, other_project.event_id);
  EXPECT_TRUE(grant_at(c1, "sup-002", e1, "q"));
  EXPECT_FALSE(grant_at(c2, "sup-002", kClientTime, "q"));

  // A later grant of the same pair replaces the first, even when it ends sooner.
  const TimeUs e2 = kClientTime + kHourUs;
  const auto second = grant_draft("sup-002", c1, e2, "second");
  append_one(second);
  live = grant_at(c1, "sup-002", e2 - 1);
  ASSERT_TRUE(live.has_value());
  EXPECT_EQ(live->event_id, second.event_id);
  EXPECT_EQ(live->expires_us, e2);
  EXPECT_FALSE(grant_at(c1, "sup-002", e2));
  EXPECT_FALSE(grant_at(c1, "sup-002", e1 - 1));
  EXPECT_EQ(grant_at(c1, "sup-003", kClientTime)->event_id, other_reader.event_id);
  EXPECT_EQ(grant_at(c1, "sup-002", kClientTime, "q")->event_id, other_project.event_id);

  // Both grants stay in the audit.
  AccessFilter f;
  f.reader = "sup-002";
  const auto audit = rows(f);
  ASSERT_EQ(audit.size(), 2U);
  EXPECT_EQ(audit[0].reason, "first");
  EXPECT_EQ(audit[1].reason, "second");
}

TEST_F(AccessView, MalformedGrantsAreIndexedButGrantNothing) {
  const EventId c = random_id();
  const TimeUs expires = kClientTime + kHourUs;
  const auto valid = grant_draft("sup-002", c, expires, "valid");
  append_one(valid);

  ledger::EventDraft undecodable = make_draft();
  undecodable.kind = Kind::BREAK_GLASS_GRANTED;
  undecodable.actor = "sup-002";
  undecodable.subject = c;
  ledger::EventDraft read_payload = grant_draft("sup-002", c, expires + 1, "x");
  read_payload.payload = proj::encode_record_read({});  // Decodes, but not an AccountChange.
  const std::vector<ledger::EventDraft> bad = {
      undecodable,
      read_payload,
      grant_draft("sup-002", c, {{"reason", "no expiry"}, {"address", "a"}}),
      grant_draft("sup-002", c, {{"reason", "words"}, {"expires_us", "tomorrow"}}),
      grant_draft("sup-002", c, {{"reason", "sign"}, {"expires_us", "+9999999999999999"}}),
      grant_draft("sup-002", c, {{"reason", "negative"}, {"expires_us", "-1"}}),
      grant_draft("sup-002", c, {{"reason", "trailing"}, {"expires_us", "9999999999999999x"}}),
      grant_draft("sup-002", c, {{"reason", "huge"}, {"expires_us", "99999999999999999999"}}),
  };
  std::vector<std::uint64_t> bad_seqs;
  for (const auto& d : bad) bad_seqs.push_back(append_one(d));
  const auto no_subject = grant_draft("sup-002", std::nullopt,
                                      {{"reason", "no case"}, {"expires_us", "9999999999999999"}});
  const auto ns = append_one(no_subject);

  // None of them replaced the valid grant, nor made one of their own.
  auto live = grant_at(c, "sup-002", kClientTime);
  ASSERT_TRUE(live.has_value());
  EXPECT_EQ(live->event_id, valid.event_id);
  EXPECT_EQ(live->expires_us, expires);

  // All are in the audit, with their header fields only.
  AccessFilter f;
  f.case_id = c;
  const auto by_case = rows(f);
  ASSERT_EQ(by_case.size(), 1 + bad.size());
  for (std::size_t i = 1; i < by_case.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(by_case[i].seq, bad_seqs[i - 1]);
    EXPECT_EQ(by_case[i].what, "break_glass");
    EXPECT_EQ(by_case[i].reader, "sup-002");
    EXPECT_EQ(by_case[i].reason, "");
    EXPECT_EQ(by_case[i].address, "");
    EXPECT_EQ(by_case[i].grant_expires_us, 0);
    EXPECT_EQ(by_case[i].subjects, std::vector<EventId>{c});
    EXPECT_FALSE(proj::access_json(by_case[i]).contains("expires_at"));
  }
  f = {};
  f.reader = "sup-002";
  const auto by_reader = rows(f);
  ASSERT_EQ(by_reader.size(), 2 + bad.size());
  EXPECT_EQ(by_reader.back().seq, ns);
  EXPECT_EQ(by_reader.back().what, "break_glass");
  EXPECT_TRUE(by_reader.back().subjects.empty());
  EXPECT_EQ(by_reader.back().grant_expires_us, 0);
}

TEST_F(AccessView, RebuildWithGrantsIsByteIdenticalAndNoGrantReasonIsReadable) {
  std::vector<EventId> cases(4);
  for (auto& c : cases) c = random_id();
  std::vector<EventId> grant_ids;
  for (int i = 0; i < 30; ++i) {
    const auto n = static_cast<std::size_t>(i);
    std::vector<ledger::EventDraft> batch;
    auto g = grant_draft("user-" + std::to_string(n % 3), cases[n % 4],
                         kClientTime + static_cast<TimeUs>(n) * kHourUs,
                         "Collapsed at the clinic, Wanjiru Kamau");
    grant_ids.push_back(g.event_id);
    batch.push_back(std::move(g));
    RecordReadData r;
    r.what = "case";
    r.subjects = {cases[n % 4]};
    r.outside_capture = n % 2 == 0;
    if (n % 3 == 0) r.grant = grant_ids.back();
    batch.push_back(proj::make_record_read("user-" + std::to_string(n % 3), "dev", Channel::WEB,
                                           r, 0, random_id()));
    if (i % 7 == 0) batch.push_back(grant_draft("user-0", cases[0], {{"reason", "bad"}}));
    append_ok(i % 5 ? "p" : "q", batch);
  }
  const auto grant_before = grant_at(cases[1], "user-1", kClientTime);
  ASSERT_TRUE(grant_before.has_value());
  auto incremental = ledger_->projection_digest();
  ASSERT_TRUE(incremental.is_ok());
  const auto before = rows({});
  ASSERT_TRUE(ledger_->rebuild_projections({}).is_ok());
  auto rebuilt = ledger_->projection_digest();
  ASSERT_TRUE(rebuilt.is_ok());
  EXPECT_EQ(*incremental, *rebuilt);
  EXPECT_EQ(seqs(rows({})), seqs(before));
  const auto grant_after = grant_at(cases[1], "user-1", kClientTime);
  ASSERT_TRUE(grant_after.has_value());
  EXPECT_EQ(grant_after->event_id, grant_before->event_id);
  EXPECT_EQ(grant_after->expires_us, grant_before->expires_us);

  ledger_.reset();
  const std::string file = stored_bytes();
  EXPECT_EQ(file.find("Wanjiru"), std::string::npos);
  reopen();
  EXPECT_EQ(rows({})[0].reason, "Collapsed at the clinic, Wanjiru Kamau");
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
