// Intake: XForm submissions with OpenRosa meta and CaseXML 1.0/2.0 blocks become ledger events.
// Every fixture under tests/fixtures/casexml and tests/fixtures/openrosa (see
// tests/fixtures/SOURCES.md) is parsed and its events checked exactly; end-to-end tests append
// them through a ledger with the case view registered.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <capnp/serialize.h>

#include "projections/case_projector.h"
#include "projections/intake.h"
#include "tests/support/ledger_fixture.h"

namespace trail::testing {
namespace {

using proj::CaseChangeData;
using proj::IntakeOptions;
using proj::Submission;
using schema::Kind;
using Fields = std::vector<std::pair<std::string, std::string>>;

const std::filesystem::path kFixtures =
    std::filesystem::path(__FILE__).parent_path().parent_path() / "fixtures";

std::string fixture(const std::string& name) {
  std::ifstream in(kFixtures / name, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing fixture " << name;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
  return s;
}

// Fixtures that are bare case blocks or restore payloads carry no OpenRosa meta; this adds one
// as the root's last child, as a phone would.
std::string with_meta(std::string xml, std::string_view instance_id,
                      std::string_view user_id = "meta-user") {
  const auto at = xml.rfind("</");
  EXPECT_NE(at, std::string::npos);
  xml.insert(at, "<meta><deviceID>meta-device</deviceID><userID>" + std::string(user_id) +
                     "</userID><instanceID>" + std::string(instance_id) +
                     "</instanceID><timeEnd>2024-05-01T09:30:00Z</timeEnd></meta>\n");
  return xml;
}

IntakeOptions options() {
  IntakeOptions o;
  o.fallback_actor = "fallback-user";
  o.device_id = "fallback-device";
  return o;
}

Submission parse_ok(const std::string& xml, const IntakeOptions& o = options()) {
  auto parsed = proj::parse_submission(xml, o);
  EXPECT_TRUE(parsed.is_ok()) << parsed.status().to_string();
  if (!parsed.is_ok()) return {};
  return std::move(parsed).value();
}

Status parse_error(const std::string& xml, const IntakeOptions& o = options()) {
  auto parsed = proj::parse_submission(xml, o);
  EXPECT_FALSE(parsed.is_ok());
  if (parsed.is_ok()) return Status::ok();
  return std::move(parsed).take_status();
}

TimeUs at(std::string_view rfc3339) {
  auto t = parse_rfc3339(rfc3339);
  EXPECT_TRUE(t.has_value()) << rfc3339;
  return t.value_or(-1);
}

EventId subject(std::string_view case_id) { return proj::case_subject_id(case_id); }

CaseChangeData change_of(const ledger::EventDraft& d) {
  auto c = proj::decode_case_change(d.payload);
  EXPECT_TRUE(c.is_ok()) << c.status().to_string();
  return c.is_ok() ? *c : CaseChangeData{};
}

Fields sorted(Fields f) {
  std::stable_sort(f.begin(), f.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  return f;
}

struct FormPayload {
  bool is_form = false;
  std::string xmlns, content_type, body;
  bool is_attachment = false;
  std::string name;
};

FormPayload payload_of(const ledger::EventDraft& d) {
  auto words = kj::heapArray<capnp::word>(d.payload.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), d.payload.data(), words.asBytes().size());
  capnp::FlatArrayMessageReader message(words);
  const auto root = message.getRoot<schema::Payload>();
  FormPayload out;
  if (root.isForm()) {
    out.is_form = true;
    out.xmlns = root.getForm().getXmlns().cStr();
    out.content_type = root.getForm().getContentType().cStr();
    const auto body = root.getForm().getBody();
    out.body.assign(reinterpret_cast<const char*>(body.begin()), body.size());
  } else if (root.isAttachment()) {
    out.is_attachment = true;
    out.name = root.getAttachment().getName().cStr();
    out.content_type = root.getAttachment().getContentType().cStr();
    out.body.assign(root.getAttachment().getBody().size(), 'x');
  }
  return out;
}

// Checks the form.submitted event at events[0].
void expect_form(const Submission& s, const std::string& xml, const EventId& id,
                 std::string_view actor, std::string_view device, TimeUs client_time,
                 std::string_view xmlns) {
  ASSERT_FALSE(s.events.empty());
  const auto& f = s.events[0];
  EXPECT_EQ(f.kind, Kind::FORM_SUBMITTED);
  EXPECT_EQ(format_uuid(f.event_id), format_uuid(id));
  EXPECT_EQ(f.actor, actor);
  EXPECT_EQ(f.device_id, device);
  EXPECT_EQ(f.channel, schema::Channel::MOBILE_FORM);
  EXPECT_EQ(f.client_time_us, client_time);
  EXPECT_FALSE(f.subject.has_value());
  EXPECT_FALSE(f.via.has_value());
  EXPECT_EQ(s.xmlns, xmlns);
  const auto p = payload_of(f);
  EXPECT_TRUE(p.is_form);
  EXPECT_EQ(p.xmlns, xmlns);
  EXPECT_EQ(p.content_type, "text/xml");
  EXPECT_EQ(p.body, xml);  // Byte for byte.
}

// Checks the envelope of case event i: kind, subject, actor, client time, via = the form.
void expect_case_event(const Submission& s, std::size_t i, Kind kind, std::string_view case_id,
                       std::string_view actor, TimeUs client_time) {
  ASSERT_LT(i, s.events.size());
  const auto& d = s.events[i];
  EXPECT_EQ(d.kind, kind) << "event " << i;
  ASSERT_TRUE(d.subject.has_value());
  EXPECT_EQ(*d.subject, subject(case_id)) << "event " << i;
  EXPECT_EQ(d.actor, actor) << "event " << i;
  EXPECT_EQ(d.client_time_us, client_time) << "event " << i;
  EXPECT_EQ(d.device_id, s.events[0].device_id);
  EXPECT_EQ(d.channel, s.events[0].channel);
  ASSERT_TRUE(d.via.has_value());
  EXPECT_EQ(*d.via, s.events[0].event_id);
}

std::vector<Kind> kinds(const Submission& s) {
  std::vector<Kind> out;
  for (const auto& e : s.events) out.push_back(e.kind);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Ids, dates.

TEST(IntakeIds, InstanceUuidIsTheFormEventIdWithOrWithoutPrefix) {
  const auto id = parse_uuid("5b2cc313-fc09-437e-8149-fcd32f695d41");
  EXPECT_EQ(proj::form_event_id("uuid:5b2cc313-fc09-437e-8149-fcd32f695d41"), *id);
  EXPECT_EQ(proj::form_event_id("5b2cc313-fc09-437e-8149-fcd32f695d41"), *id);
}

TEST(IntakeIds, OtherInstanceIdsGetDistinctDeterministicV8Ids) {
  const EventId a = proj::form_event_id("JLP8BS71HFU3VGMIWW610W80T");
  EXPECT_EQ(a, proj::form_event_id("JLP8BS71HFU3VGMIWW610W80T"));
  EXPECT_EQ(a[6] >> 4U, 8);        // Version 8.
  EXPECT_EQ(a[8] & 0xc0U, 0x80U);  // RFC 4122 variant.
  EXPECT_NE(a, proj::form_event_id("JLP8BS71HFU3VGMIWW610W80U"));
  // Upper case is not canonical: hashed, so it never collides with the lower-case UUID.
  EXPECT_NE(proj::form_event_id("uuid:5B2CC313-FC09-437E-8149-FCD32F695D41"),
            *parse_uuid("5b2cc313-fc09-437e-8149-fcd32f695d41"));
}

TEST(IntakeIds, CaseIdsMapInjectivelyToSubjects) {
  EXPECT_EQ(subject("30bc51f6-3247-4966-b4ae-994f572e85fe"),
            *parse_uuid("30bc51f6-3247-4966-b4ae-994f572e85fe"));
  const EventId foo = subject("foo-case-id");
  EXPECT_EQ(foo[6] >> 4U, 8);
  EXPECT_EQ(foo, subject("foo-case-id"));
  EXPECT_NE(subject("f8b34e0c744f8f45dfa12e28617e5716"),
            subject("F8B34E0C744F8F45DFA12E28617E5716"));
  // The same text as a case id and as an instance id gives different ids (separate labels).
  EXPECT_NE(subject("foo-case-id"), proj::form_event_id("foo-case-id"));
}

TEST(IntakeDates, DeviceTimesParseLeniently) {
  using proj::parse_device_time;
  EXPECT_EQ(parse_device_time("2013-10-07T10:52:20.387Z"), at("2013-10-07T10:52:20.387Z"));
  EXPECT_EQ(parse_device_time("2011-12-27"), at("2011-12-27T00:00:00Z"));
  EXPECT_EQ(parse_device_time("2011-12-06T13:42:50"), at("2011-12-06T13:42:50Z"));
  EXPECT_EQ(parse_device_time("2010-06-29T13:42:50.137"), at("2010-06-29T13:42:50.137Z"));
  EXPECT_EQ(parse_device_time("2011-06-24T15:43:07.260-06"), at("2011-06-24T21:43:07.260Z"));
  EXPECT_EQ(parse_device_time("2012-04-25T14:05:45.250+05:30"), at("2012-04-25T08:35:45.250Z"));
  EXPECT_EQ(parse_device_time("2012-04-25T14:05:45+0530"), at("2012-04-25T08:35:45Z"));
  EXPECT_EQ(parse_device_time("2015-06-01T17:35:09.387224123Z"), at("2015-06-01T17:35:09.387224Z"));
  EXPECT_EQ(parse_device_time(" 2011-12-27 "), at("2011-12-27T00:00:00Z"));
  EXPECT_EQ(parse_device_time("2011-12-27 13:42"), at("2011-12-27T13:42:00Z"));
  EXPECT_FALSE(parse_device_time("").has_value());
  EXPECT_FALSE(parse_device_time("%(date_modified)s").has_value());
  EXPECT_FALSE(parse_device_time("11-09-2011").has_value());
  EXPECT_FALSE(parse_device_time("2011-13-01").has_value());
  EXPECT_FALSE(parse_device_time("2011-06-24T15:43:07+6").has_value());
}

TEST(IntakeDates, AnUnparseableDateModifiedGivesClientTimeZeroAndTheFormIsKept) {
  const std::string xml = with_meta(
      replace_all(fixture("casexml/v2_basic_close.xml"), "2011-12-06T13:42:50", "yesterday"),
      "uuid:0b5e5a4e-3b8e-4c47-9a0e-2f2b1f0f7a01");
  const auto s = parse_ok(xml);
  ASSERT_EQ(s.events.size(), 2U);
  EXPECT_EQ(s.events[1].client_time_us, 0);
}

// ---------------------------------------------------------------------------------------------
// CaseXML 2.0 fixtures.

constexpr std::string_view kInstance = "uuid:9f1c2a57-7a43-4c1e-8f43-1d7b3f0e6a10";

TEST(IntakeV2, BasicCreateGivesFormThenCaseCreated) {
  const std::string xml = with_meta(fixture("casexml/v2_basic_create.xml"), kInstance);
  const auto s = parse_ok(xml);
  EXPECT_EQ(s.instance_id, kInstance);
  expect_form(s, xml, *parse_uuid(kInstance.substr(5)), "meta-user", "meta-device",
              at("2024-05-01T09:30:00Z"), "http://openrosa.org/case/test/create");
  ASSERT_EQ(kinds(s), (std::vector<Kind>{Kind::FORM_SUBMITTED, Kind::CASE_CREATED}));
  expect_case_event(s, 1, Kind::CASE_CREATED, "foo-case-id", "bar-user-id",
                    at("2011-12-06T13:42:50Z"));
  const auto c = change_of(s.events[1]);
  EXPECT_EQ(c.case_type, "v2_case_type");
  EXPECT_EQ(c.case_name, "test case name");
  EXPECT_EQ(c.owner, "");
  EXPECT_TRUE(c.fields.empty());
  EXPECT_TRUE(c.indices.empty());
}

TEST(IntakeV2, BasicUpdateSendsSpecialPropertiesToAttributesAndTheRestToFields) {
  const std::string xml = with_meta(fixture("casexml/v2_basic_update.xml"), kInstance);
  const auto s = parse_ok(xml);
  ASSERT_EQ(kinds(s), (std::vector<Kind>{Kind::FORM_SUBMITTED, Kind::CASE_UPDATED}));
  expect_case_event(s, 1, Kind::CASE_UPDATED, "foo-case-id", "bar-user-id",
                    at("2011-12-07T13:42:50Z"));
  const auto c = change_of(s.events[1]);
  EXPECT_EQ(c.case_type, "updated_v2_case_type");
  EXPECT_EQ(c.case_name, "updated case name");
  EXPECT_EQ(c.fields, (Fields{{"dynamic", "something dynamic"}}));
}

TEST(IntakeV2, BasicCloseGivesCaseClosed) {
  const std::string xml = with_meta(fixture("casexml/v2_basic_close.xml"), kInstance);
  const auto s = parse_ok(xml);
  ASSERT_EQ(kinds(s), (std::vector<Kind>{Kind::FORM_SUBMITTED, Kind::CASE_CLOSED}));
  expect_case_event(s, 1, Kind::CASE_CLOSED, "foo-case-id", "bar-user-id",
                    at("2011-12-06T13:42:50Z"));
  const auto c = change_of(s.events[1]);
  EXPECT_TRUE(c.fields.empty());
  EXPECT_EQ(c.case_type, "");
}

TEST(IntakeV2, IndexOnlyBlockGivesOneIndexedEventWithDefaultChildRelationship) {
  const std::string xml = with_meta(fixture("casexml/v2_index_update.xml"), kInstance);
  const auto s = parse_ok(xml);
  ASSERT_EQ(kinds(s), (std::vector<Kind>{Kind::FORM_SUBMITTED, Kind::CASE_INDEXED}));
  expect_case_event(s, 1, Kind::CASE_INDEXED, "foo-case-id", "bar-user-id",
                    at("2011-12-07T13:42:50Z"));
  const auto c = change_of(s.events[1]);
  ASSERT_EQ(c.indices.size(), 2U);
  EXPECT_EQ(c.indices[0].name, "foo_ref");
  EXPECT_EQ(c.indices[0].case_type, "bar");
  EXPECT_EQ(c.indices[0].case_id, subject("some_referenced_id"));
  EXPECT_EQ(c.indices[0].relationship, "child");
  EXPECT_EQ(c.indices[1].name, "baz_ref");
  EXPECT_EQ(c.indices[1].case_type, "bop");
  EXPECT_EQ(c.indices[1].case_id, subject("some_other_referenced_id"));
  EXPECT_EQ(c.indices[1].relationship, "child");
}

TEST(IntakeV2, PrefixedNamespaceBlockWithLegacyMetaAndDateOnlyModified) {
  const std::string xml = fixture("casexml/v2_named_namespace_prefixed.xml");
  const auto s = parse_ok(xml);
  // Old CommCare <Meta>: no instanceID, the legacy <uid> is the instance id; no userID, so the
  // username acts; TimeEnd with a Z.
  EXPECT_EQ(s.instance_id, "05f9c90f-8e2e-4e3f-b392-002058c46b00");
  expect_form(s, xml, *parse_uuid("05f9c90f-8e2e-4e3f-b392-002058c46b00"), "testuser",
              "ZQKXWCOE9S4C9K3BTENGJFWTJ", at("2011-12-27T21:07:51.085Z"),
              "http://bihar.commcarehq.org/pregnancy/registration");
  ASSERT_EQ(kinds(s),
            (std::vector<Kind>{Kind::FORM_SUBMITTED, Kind::CASE_CREATED, Kind::CASE_UPDATED}));
  const std::string case_id = "14cc2770-2d1c-49c2-b252-22d6ecce385a";
  const std::string user = "d5ce3a980b5b69e793445ec0e3b2138e";
  expect_case_event(s, 1, Kind::CASE_CREATED, case_id, user, at("2011-12-27T00:00:00Z"));
  expect_case_event(s, 2, Kind::CASE_UPDATED, case_id, user, at("2011-12-27T00:00:00Z"));
  EXPECT_EQ(*s.events[1].subject, *parse_uuid(case_id));  // A UUID case id is the subject.
  const auto created = change_of(s.events[1]);
  EXPECT_EQ(created.case_type, "cc_bihar_pregnancy");
  EXPECT_EQ(created.case_name, "TEST");
  EXPECT_EQ(created.owner, "347b31fab217f6f28e0c8d6ff4f0651b");
  EXPECT_TRUE(created.fields.empty());
  EXPECT_EQ(change_of(s.events[2]).fields, sorted({{"village", "JGN.GM"},
                                                   {"edd", "2012-02-27"},
                                                   {"partner_name", "JD.MH"},
                                                   {"next_form", "bp"},
                                                   {"next_due", "2012-01-10"}}));
}

TEST(IntakeV2, DuplicatePropertyInOneUpdateKeepsTheLastValue) {
  const std::string xml = fixture("casexml/v2_duplicate_update_properties.xml");
  const auto s = parse_ok(xml);
  expect_form(s, xml, proj::form_event_id("alsdkfjasdlk-785a-4159-8937-caf66c25ac4f"),
              "3ed205ad5d96199104c08eb5e0f5ae42", "95NGKBTQRKFWMYH6OSIMBQEZQ",
              at("2012-04-25T08:35:45.250Z"), "http://bihar.commcarehq.org/pregnancy/registration");
  ASSERT_EQ(kinds(s), (std::vector<Kind>{Kind::FORM_SUBMITTED, Kind::CASE_UPDATED}));
  expect_case_event(s, 1, Kind::CASE_UPDATED, "061ecbae-d9be-4bb5-bdd4-e62abd5eaf7b",
                    "3ed205ad5d96199104c08eb5e0f5ae42", at("2012-04-25T08:35:45.250Z"));
  EXPECT_EQ(change_of(s.events[1]).fields, (Fields{{"bar", "2"}, {"date_next_eb", "2012-05-27"}}));
}

TEST(IntakeV2, OutOfOrderPairCarriesTheDeviceTimesThatOrderThem) {
  const std::string create_xml = fixture("casexml/v2_ordering_create_oo.xml");
  const std::string update_xml = fixture("casexml/v2_ordering_update_oo.xml");
  const auto create = parse_ok(create_xml);
  const auto update = parse_ok(update_xml);
  const std::string case_id = "30bc51f6-3247-4966-b4ae-994f572e85fe";
  const std::string user = "60633386bf26b1f622d3adc5a39acf82";
  expect_form(create, create_xml, *parse_uuid("c9265a8f-6d79-4caa-93ab-5299d65a6cd9"), user,
              "352384058223423", at("2013-10-07T10:52:20.387Z"),
              "http://openrosa.org/formdesigner/a1a44bbfe902f236fd9067c4a2477f07d8e7ca1a");
  expect_form(update, update_xml, *parse_uuid("0effe64d-7cd7-4346-ae45-5fe3f11022ab"), user,
              "352384058223423", at("2013-10-07T11:10:11.163Z"),
              "http://openrosa.org/formdesigner/6008a29d70f971096ce7a21728cc32be65c9fce");
  ASSERT_EQ(kinds(create),
            (std::vector<Kind>{Kind::FORM_SUBMITTED, Kind::CASE_CREATED, Kind::CASE_UPDATED}));
  expect_case_event(create, 1, Kind::CASE_CREATED, case_id, user, at("2013-10-07T10:52:20.387Z"));
  expect_case_event(create, 2, Kind::CASE_UPDATED, case_id, user, at("2013-10-07T10:52:20.387Z"));
  const auto created = change_of(create.events[1]);
  EXPECT_EQ(created.case_type, "mother");
  EXPECT_EQ(created.case_name, "out of order case");
  EXPECT_EQ(created.owner, user);
  EXPECT_EQ(change_of(create.events[2]).fields,
            (Fields{{"pboth", "this should get overridden"}, {"pcreate", "from the create form"}}));
  ASSERT_EQ(kinds(update), (std::vector<Kind>{Kind::FORM_SUBMITTED, Kind::CASE_UPDATED}));
  expect_case_event(update, 1, Kind::CASE_UPDATED, case_id, user, at("2013-10-07T11:10:11.163Z"));
  EXPECT_EQ(change_of(update.events[1]).fields, (Fields{{"pboth", "overridden by the update form"},
                                                        {"pupdate", "from the update form"}}));
  // HQ orders by date_modified for the same user: the update comes last whatever the arrival.
  EXPECT_LT(create.events[2].client_time_us, update.events[1].client_time_us);
}

TEST(IntakeV2, ManySubcasesIndexedToTheirParents) {
  const std::string xml = fixture("casexml/v2_parent_child_index_many_subcases.xml");
  const auto s = parse_ok(xml);
  const std::string user = "67bffa913b38e7901851d863eded2ba3";
  expect_form(s, xml, *parse_uuid("e9d6bb33-783d-4978-a2e0-762b42e87b9d"), user, "FAKE",
              at("2012-05-18T08:10:46.707Z"), "http://bihar.commcarehq.org/test/data");
  ASSERT_EQ(s.events.size(), 1U + 2U + 3U + 9U * 3U);
  const std::string mother = "f8b34e0c744f8f45dfa12e28617e5716";
  const std::string newborn = "7554c7f4-fc96-4b1d-aec8-8890e96ffc54";
  expect_case_event(s, 1, Kind::CASE_CREATED, mother, user, at("2012-04-19T00:00:00Z"));
  expect_case_event(s, 2, Kind::CASE_UPDATED, mother, user, at("2012-04-19T00:00:00Z"));
  const auto m = change_of(s.events[1]);
  EXPECT_EQ(m.case_type, "cc_bihar_pregnancy");
  EXPECT_EQ(m.case_name, "Ashish");
  EXPECT_EQ(m.owner, "3c5a80e4db53049dfc110c368a0d282b");
  const auto mu = change_of(s.events[2]).fields;
  ASSERT_EQ(mu.size(), 20U);
  EXPECT_EQ(mu[0], (std::pair<std::string, std::string>{"add", "2012-01-30"}));
  EXPECT_NE(std::find(mu.begin(), mu.end(), std::pair<std::string, std::string>{"edd", ""}),
            mu.end());  // An empty property sets the value "".
  expect_case_event(s, 3, Kind::CASE_CREATED, newborn, user, at("2012-04-12T00:00:00Z"));
  expect_case_event(s, 4, Kind::CASE_UPDATED, newborn, user, at("2012-04-12T00:00:00Z"));
  expect_case_event(s, 5, Kind::CASE_INDEXED, newborn, user, at("2012-04-12T00:00:00Z"));
  EXPECT_EQ(change_of(s.events[4]).fields, (Fields{{"bcg_date", "2012-05-01"},
                                                   {"dob", "2011-09-19"},
                                                   {"gender", "male"},
                                                   {"opv_1_date", "2012-04-10"}}));
  const auto ni = change_of(s.events[5]).indices;
  ASSERT_EQ(ni.size(), 1U);
  EXPECT_EQ(ni[0].name, "mother_id");
  EXPECT_EQ(ni[0].case_type, "cc_bihar_pregnancy");
  EXPECT_EQ(ni[0].case_id, subject(mother));
  EXPECT_EQ(ni[0].relationship, "child");
  const std::vector<std::pair<std::string, std::string>> tasks = {
      {"DPT 1", "dpt_1"},     {"BCG", "bcg"},         {"OPV 0", "opv_0"},
      {"HEP B 0", "hep_b_0"}, {"Measles", "measles"}, {"VIT A 1", "vit_a_1"},
      {"JE", "je"},           {"TT 1", "tt_1"},       {"ANC 1", "anc_1"}};
  for (std::size_t t = 0; t < tasks.size(); ++t) {
    const std::string id = "763ca815-df9c-4037-9f0e-6edd2af8ba6c" + std::to_string(t + 1);
    const std::size_t e = 6 + 3 * t;
    expect_case_event(s, e, Kind::CASE_CREATED, id, user, at("2012-05-28T00:00:00Z"));
    expect_case_event(s, e + 1, Kind::CASE_UPDATED, id, user, at("2012-05-28T00:00:00Z"));
    expect_case_event(s, e + 2, Kind::CASE_INDEXED, id, user, at("2012-05-28T00:00:00Z"));
    const auto c = change_of(s.events[e]);
    EXPECT_EQ(c.case_type, "task");
    EXPECT_EQ(c.case_name, tasks[t].first);
    EXPECT_EQ(change_of(s.events[e + 1]).fields, (Fields{{"date_eligible", "2012-05-28"},
                                                         {"date_expires", "2013-09-19"},
                                                         {"task_id", tasks[t].second}}));
    const auto idx = change_of(s.events[e + 2]).indices;
    ASSERT_EQ(idx.size(), 1U);
    EXPECT_EQ(idx[0].name, "person_id");
    const bool to_mother = t >= 7;  // TT 1 and ANC 1 index the pregnancy.
    EXPECT_EQ(idx[0].case_type, to_mother ? "cc_bihar_pregnancy" : "cc_bihar_newborn");
    EXPECT_EQ(idx[0].case_id, subject(to_mother ? mother : newborn));
  }
  std::set<EventId> ids;
  for (const auto& e : s.events) ids.insert(e.event_id);
  EXPECT_EQ(ids.size(), s.events.size());  // Every event id distinct.
}

TEST(IntakeV2, SameCaseInTwoBlocksAndAnEmptyBlockEmitsNothingForTheEmptyOne) {
  const std::string xml = fixture("casexml/v2_same_case_two_blocks.xml");
  const auto s = parse_ok(xml);
  expect_form(s, xml, *parse_uuid("50cd023e-652c-4e8b-82a9-e0e13a9c0ce8"),
              "de7abbf6d898ae2d7dcd2bdc79f2785c", "1P18U4DLZ8FM5Y3XGAS7B4ZRG",
              at("2012-05-31T07:06:31.379Z"),
              "http://openrosa.org/formdesigner/KAWOK2-UPDATE-COMMUNITY");
  ASSERT_EQ(kinds(s), (std::vector<Kind>{Kind::FORM_SUBMITTED, Kind::CASE_UPDATED}));
  expect_case_event(s, 1, Kind::CASE_UPDATED, "MCLPZ69ON942EKNIBR5WF1G2L",
                    "de7abbf6d898ae2d7dcd2bdc79f2785c", at("2012-05-31T07:06:31.379Z"));
  EXPECT_EQ(change_of(s.events[1]).fields, (Fields{{"community_code", "1630005"},
                                                   {"community_name", "TAMERLO"},
                                                   {"district_name", "SantaMariaCahabon"}}));
}

TEST(IntakeV2, CloseOfParentAndChildrenInRepeatsSkipsEmptyUpdates) {
  const std::string xml = fixture("casexml/v2_close_parent_and_children_in_repeats.xml");
  const auto s = parse_ok(xml);
  const std::string user = "67bffa913b38e7901851d863ededa475";
  expect_form(s, xml, *parse_uuid("b45aeae8-ba55-4541-ae2e-0ead6b5e1f31"), user,
              "1NQ55Z5O00IBWQ8DO0R7TG0UT", at("2012-05-26T03:11:37.259Z"),
              "http://bihar.commcarehq.org/pregnancy/close");
  ASSERT_EQ(kinds(s), (std::vector<Kind>{Kind::FORM_SUBMITTED, Kind::CASE_CLOSED, Kind::CASE_CLOSED,
                                         Kind::CASE_CLOSED}));
  const TimeUs t = at("2012-05-26T03:11:37.259Z");
  expect_case_event(s, 1, Kind::CASE_CLOSED, "9dbce942-0163-438b-b3e5-67b473d2f719", user, t);
  expect_case_event(s, 2, Kind::CASE_CLOSED, "17e36de1-b9de-423c-a6a6-605d291ec976", user, t);
  expect_case_event(s, 3, Kind::CASE_CLOSED, "7b58fd8f-1bb8-4978-99a6-7b5d9826c1f9", user, t);
}

TEST(IntakeV2, BlockWithNoActionsEmitsOnlyTheForm) {
  const std::string xml = with_meta(fixture("casexml/hq_v2_basic_noop.xml"), kInstance);
  const auto s = parse_ok(xml);
  expect_form(s, xml, *parse_uuid(kInstance.substr(5)), "meta-user", "meta-device",
              at("2024-05-01T09:30:00Z"), "http://org.commcarehq/case/test/create");
  EXPECT_EQ(kinds(s), (std::vector<Kind>{Kind::FORM_SUBMITTED}));
}

TEST(IntakeV2, ReceiverWrapperFormWithMetaAndCase) {
  const std::string xml = fixture("casexml/hq_receiverwrapper_form_with_case.xml");
  const auto s = parse_ok(xml);
  EXPECT_EQ(s.instance_id, "ad38211be256653bceac8e2156475666");
  expect_form(s, xml, proj::form_event_id("ad38211be256653bceac8e2156475666"),
              "ad38211be256653bceac8e2156475665", "Chalimbana", at("2010-06-29T13:55:50.137Z"),
              "http://commcarehq.org/test/submit");
  ASSERT_EQ(kinds(s),
            (std::vector<Kind>{Kind::FORM_SUBMITTED, Kind::CASE_CREATED, Kind::CASE_UPDATED}));
  const std::string case_id = "ad38211be256653bceac8e2156475667";
  expect_case_event(s, 1, Kind::CASE_CREATED, case_id, "ad38211be256653bceac8e2156475665",
                    at("2010-06-29T13:42:50Z"));
  expect_case_event(s, 2, Kind::CASE_UPDATED, case_id, "ad38211be256653bceac8e2156475665",
                    at("2010-06-29T13:42:50Z"));
  const auto c = change_of(s.events[1]);
  EXPECT_EQ(c.case_type, "test_case_type");
  EXPECT_EQ(c.case_name, "test case name");
  EXPECT_EQ(change_of(s.events[2]).fields, (Fields{{"external_id", "someexternal"}}));
}

TEST(IntakeV2, AttachmentEntriesBecomeAttachmentAddedEventsAndRemovalsAreSkipped) {
  std::string xml = fixture("casexml/v2_attachment_create_TEMPLATE.xml");
  xml = replace_all(xml, "%(date_modified)s", "2011-06-07T10:00:00.000Z");
  xml = replace_all(xml, "%(time_start)s", "2011-06-07T09:58:00.000Z");
  xml = replace_all(xml, "%(time_end)s", "2011-06-07T10:00:00.000Z");
  xml = replace_all(xml, "%(doc_id)s", "uuid:4a0b8c5e-1f4d-4e8a-9d2b-7c1e0f3a5b6d");
  xml = replace_all(xml, "%(attachments)s",
                    "<n0:fruity_file src=\"fruity.jpg\" from=\"local\"/>"
                    "<n0:dull_file src=\"dull.jpg\" from=\"local\"/><n0:gone_file/>");
  const auto s = parse_ok(xml);
  const std::string user = "6dac4940-913e-11e0-9d4b-005056aa7fb5";
  expect_form(s, xml, *parse_uuid("4a0b8c5e-1f4d-4e8a-9d2b-7c1e0f3a5b6d"), user, "354957031935664",
              at("2011-06-07T10:00:00Z"),
              "http://openrosa.org/formdesigner/B095F533-6226-40EE-9045-38EA21D214DB");
  ASSERT_EQ(kinds(s), (std::vector<Kind>{Kind::FORM_SUBMITTED, Kind::CASE_CREATED,
                                         Kind::ATTACHMENT_ADDED, Kind::ATTACHMENT_ADDED}));
  const std::string case_id = "EOL9FIAKIQWOFXFOH0QAMWU64";
  expect_case_event(s, 1, Kind::CASE_CREATED, case_id, user, at("2011-06-07T10:00:00Z"));
  const auto c = change_of(s.events[1]);
  EXPECT_EQ(c.case_type, "cc_bc_demo");  // <case_type_id> is accepted for case_type.
  EXPECT_EQ(c.case_name, "fgg");
  expect_case_event(s, 2, Kind::ATTACHMENT_ADDED, case_id, user, at("2011-06-07T10:00:00Z"));
  expect_case_event(s, 3, Kind::ATTACHMENT_ADDED, case_id, user, at("2011-06-07T10:00:00Z"));
  const auto a = payload_of(s.events[2]);
  EXPECT_TRUE(a.is_attachment);
  EXPECT_EQ(a.name, "fruity_file");
  EXPECT_EQ(a.content_type, "");
  EXPECT_TRUE(a.body.empty());
  EXPECT_EQ(payload_of(s.events[3]).name, "dull_file");
  EXPECT_NE(s.events[2].event_id, s.events[3].event_id);
}

// ---------------------------------------------------------------------------------------------
// CaseXML 1.0 fixtures.

constexpr std::string_view kV1Case = "REPLACE_CASEID";
const std::string kV1CaseId = "6d4b1c0e-8a2f-4f3e-9b71-0c5d2e8f1a34";

std::string v1(const std::string& name, std::string_view uid) {
  return replace_all(replace_all(fixture("casexml/" + name), kV1Case, kV1CaseId), "REPLACE_UID",
                     uid);
}

TEST(IntakeV1, CreateUsesCaseTypeIdAndTheCreatorInsideCreate) {
  const std::string xml = v1("v1_create.xml", "uuid:11111111-1111-4111-8111-111111111111");
  const auto s = parse_ok(xml);
  // Legacy <uid> is the instance id; TimeEnd is empty, so TimeStart dates the form (no zone:
  // UTC); no userID: username acts.
  expect_form(s, xml, *parse_uuid("11111111-1111-4111-8111-111111111111"), "admin", "Chalimbana",
              at("2010-06-29T13:42:50.137Z"), "http://openrosa.org/case/test/create");
  ASSERT_EQ(kinds(s), (std::vector<Kind>{Kind::FORM_SUBMITTED, Kind::CASE_CREATED}));
  expect_case_event(s, 1, Kind::CASE_CREATED, kV1CaseId, "someuser", at("2010-06-29T13:42:50Z"));
  const auto c = change_of(s.events[1]);
  EXPECT_EQ(c.case_type, "test_case_type");
  EXPECT_EQ(c.case_name, "test case name");
  EXPECT_EQ(c.owner, "");
  EXPECT_EQ(c.fields, (Fields{{"external_id", "someexternal"}}));
}

TEST(IntakeV1, UpdateSetsTypeAndNameAndKeepsDateOpenedAsAField) {
  const std::string xml = v1("v1_update.xml", "uuid:22222222-2222-4222-8222-222222222222");
  const auto s = parse_ok(xml);
  ASSERT_EQ(kinds(s), (std::vector<Kind>{Kind::FORM_SUBMITTED, Kind::CASE_UPDATED}));
  expect_case_event(s, 1, Kind::CASE_UPDATED, kV1CaseId, "BXPKZLP49P3DDTJH3W0BRM2HVABA",
                    at("2010-06-30T13:42:50Z"));
  const auto c = change_of(s.events[1]);
  EXPECT_EQ(c.case_type, "a_new_type");
  EXPECT_EQ(c.case_name, "a new name");
  EXPECT_EQ(c.fields, (Fields{{"date_opened", "2010-05-12T13:42:50"},
                              {"somenewprop", "efgh"},
                              {"someprop", "abcd"}}));
}

TEST(IntakeV1, CloseBlockUpdatesThenCloses) {
  const std::string xml = v1("v1_close.xml", "uuid:33333333-3333-4333-8333-333333333333");
  const auto s = parse_ok(xml);
  ASSERT_EQ(kinds(s),
            (std::vector<Kind>{Kind::FORM_SUBMITTED, Kind::CASE_UPDATED, Kind::CASE_CLOSED}));
  const TimeUs t = at("2010-07-01T13:42:50Z");
  expect_case_event(s, 1, Kind::CASE_UPDATED, kV1CaseId, "BXPKZLP49P3DDTJH3W0BRM2HVABA", t);
  expect_case_event(s, 2, Kind::CASE_CLOSED, kV1CaseId, "BXPKZLP49P3DDTJH3W0BRM2HVABA", t);
  EXPECT_EQ(change_of(s.events[1]).fields,
            (Fields{{"someclosedprop", "case closed"}, {"someprop", "abcde"}}));
}

TEST(IntakeV1, EmptyCaseIdIsRefusedWithoutEchoingValues) {
  const Status st = parse_error(fixture("casexml/v1_empty_case_id.xml"));
  EXPECT_EQ(st.code(), Code::kInvalid);
  EXPECT_NE(st.detail().find("empty case_id"), std::string::npos) << st.detail();
  EXPECT_EQ(st.detail().find("adgad"), std::string::npos);
}

void expect_shine_clients(const Submission& s) {
  ASSERT_EQ(s.events.size(), 9U);
  const std::string user = "873a1b8c-3a02-11e0-a513-005056aa7fb5";
  struct Client {
    std::string case_id, name, external_id, time, pactid;
  };
  const Client clients[] = {
      {"0bd56681dce2b7a5160f75266d1e436e", "Test Patient", "9a2a9582d11a11df8f35005056977568",
       "2010-10-06T07:23:23Z", "1000"},
      {"0bd56681dce2b7a5140f75266d1d93a6", "Client, Fake", "9b606de3d11a11df8f35005056977568",
       "2010-10-06T07:23:25Z", "1001"},
      {"0bd56681dce2b7a5140f75266d1d9312", "Unreal, Person", "9b606de4d11a11df8f35005056977568",
       "2010-10-06T07:23:25Z", "2000"},
      {"0bd56681dce2b7a5140f75266d2064c0", "Patient, Imaginary", "980247a4d11a11df8f35005056977568",
       "2010-10-06T07:23:19Z", "2020"},
  };
  for (std::size_t i = 0; i < 4; ++i) {
    const auto& c = clients[i];
    // No block-level user_id: the creator named in <create> acts for the whole block.
    expect_case_event(s, 1 + 2 * i, Kind::CASE_CREATED, c.case_id, user, at(c.time));
    expect_case_event(s, 2 + 2 * i, Kind::CASE_UPDATED, c.case_id, user, at(c.time));
    const auto created = change_of(s.events[1 + 2 * i]);
    EXPECT_EQ(created.case_type, "cc_shine_client");
    EXPECT_EQ(created.case_name, c.name);
    EXPECT_EQ(created.fields, (Fields{{"external_id", c.external_id}}));
    const auto fields = change_of(s.events[2 + 2 * i]).fields;
    ASSERT_EQ(fields.size(), 11U);
    EXPECT_EQ(fields[0].first, "Phone1");  // Sorted byte-wise: upper case first.
    EXPECT_NE(std::find(fields.begin(), fields.end(),
                        std::pair<std::string, std::string>{"pactid", c.pactid}),
              fields.end());
  }
}

TEST(IntakeV1, ParallelCaseBlocksInOneForm) {
  const std::string xml = with_meta(fixture("casexml/v1_multicase_parallel_cases.xml"), kInstance);
  const auto s = parse_ok(xml);
  expect_form(s, xml, *parse_uuid(kInstance.substr(5)), "meta-user", "meta-device",
              at("2024-05-01T09:30:00Z"), "");
  expect_shine_clients(s);
}

TEST(IntakeV1, CaseBlocksAtAnyDepthGiveTheSameEventsAsParallelOnes) {
  const auto nested =
      parse_ok(with_meta(fixture("casexml/v1_multicase_mixed_nesting.xml"), kInstance));
  expect_shine_clients(nested);
  const auto flat =
      parse_ok(with_meta(fixture("casexml/v1_multicase_parallel_cases.xml"), kInstance));
  ASSERT_EQ(nested.events.size(), flat.events.size());
  for (std::size_t i = 1; i < flat.events.size(); ++i) {
    EXPECT_EQ(nested.events[i].event_id, flat.events[i].event_id);
    EXPECT_EQ(nested.events[i].payload, flat.events[i].payload);
  }
}

TEST(IntakeV1, CasesCreatedInRepeatsAndTheMotherUpdatedAndClosed) {
  const std::string xml = fixture("casexml/v1_multicase_case_in_repeats.xml");
  const auto s = parse_ok(xml);
  const std::string user = "2XC1EINEJV1NZ7QXHVUMHUQQV";
  expect_form(s, xml, proj::form_event_id("JLP8BS71HFU3VGMIWW610W80T"), user, user,
              at("2011-09-19T22:31:48.905Z"),
              "http://openrosa.org/formdesigner/FB088320-11E3-406A-AA3F-1D8E7A81F40D");
  ASSERT_EQ(kinds(s), (std::vector<Kind>{Kind::FORM_SUBMITTED, Kind::CASE_CREATED,
                                         Kind::CASE_UPDATED, Kind::CASE_CREATED, Kind::CASE_UPDATED,
                                         Kind::CASE_UPDATED, Kind::CASE_CLOSED}));
  const TimeUs t = at("2011-09-19T22:29:48.096Z");
  const std::string kids[] = {"32337c03-2b73-497f-ab18-2b587f8c21df",
                              "581b0506-7c94-4af5-ac67-f934566d5418"};
  for (std::size_t k = 0; k < 2; ++k) {
    expect_case_event(s, 1 + 2 * k, Kind::CASE_CREATED, kids[k], user, t);
    expect_case_event(s, 2 + 2 * k, Kind::CASE_UPDATED, kids[k], user, t);
    const auto c = change_of(s.events[1 + 2 * k]);
    EXPECT_EQ(c.case_type, "newborn_hiv_child");
    EXPECT_EQ(c.case_name, "ADG");
    EXPECT_EQ(c.fields, (Fields{{"external_id", kids[k]}}));
    EXPECT_EQ(change_of(s.events[2 + 2 * k]).fields, sorted({{"sex", k == 0 ? "1" : "2"},
                                                             {"breastfeeding", "2"},
                                                             {"taluka", "athani"},
                                                             {"age", "23"},
                                                             {"address", "DAG"},
                                                             {"number", "234234234"},
                                                             {"result1", ""},
                                                             {"result2", ""},
                                                             {"unique_id", "234"}}));
  }
  const std::string mother = "CMYOSI95QCED3ZWIP9ZK1QNQ6";
  expect_case_event(s, 5, Kind::CASE_UPDATED, mother, user, at("2011-09-19T22:31:48.902Z"));
  expect_case_event(s, 6, Kind::CASE_CLOSED, mother, user, at("2011-09-19T22:31:48.902Z"));
  EXPECT_EQ(change_of(s.events[5]).fields, sorted({{"delivery_type", "1"},
                                                   {"delivery_form_complete", "OK"},
                                                   {"nevirapine", "1"},
                                                   {"place", "1"},
                                                   {"birth_type", "other"},
                                                   {"delivery_date", "2011-09-19"}}));
}

TEST(IntakeV1, LegacyReferralIsSkippedAndHourOnlyOffsetsParse) {
  const std::string xml = fixture("casexml/v1_referral_hour_offset_date.xml");
  const auto s = parse_ok(xml);
  expect_form(s, xml, proj::form_event_id("X5XE21TL7G3VOOH1SYSYDJ8V2"), "M1I7MH08F3AKBKZ6FQUHAU9JB",
              "M1I7MH08F3AKBKZ6FQUHAU9JB", at("2011-06-24T21:43:07.261Z"),
              "http://openrosa.org/formdesigner/6D07EE1A-E344-4815-B3A3-61E91E616FFC");
  EXPECT_EQ(kinds(s), (std::vector<Kind>{Kind::FORM_SUBMITTED}));
}

// ---------------------------------------------------------------------------------------------
// Restore payloads from commcare-core (case blocks under <OpenRosaResponse>, meta added).

TEST(IntakeCore, ParentAndChildCasesWithAnIndex) {
  const std::string xml =
      with_meta(fixture("casexml/core_restore_create_cases_with_parents.xml"), kInstance);
  const auto s = parse_ok(xml);
  expect_form(s, xml, *parse_uuid(kInstance.substr(5)), "meta-user", "meta-device",
              at("2024-05-01T09:30:00Z"), "");
  ASSERT_EQ(kinds(s),
            (std::vector<Kind>{Kind::FORM_SUBMITTED, Kind::CASE_CREATED, Kind::CASE_UPDATED,
                               Kind::CASE_CREATED, Kind::CASE_UPDATED, Kind::CASE_INDEXED}));
  expect_case_event(s, 1, Kind::CASE_CREATED, "parent_node", "test_example",
                    at("2015-05-07T17:44:39.784Z"));
  expect_case_event(s, 2, Kind::CASE_UPDATED, "parent_node", "test_example",
                    at("2015-05-07T17:44:39.784Z"));
  const TimeUs child_time = at("2015-06-01T17:35:09.387224Z");
  expect_case_event(s, 3, Kind::CASE_CREATED, "child_node", "test_example", child_time);
  expect_case_event(s, 4, Kind::CASE_UPDATED, "child_node", "test_example", child_time);
  expect_case_event(s, 5, Kind::CASE_INDEXED, "child_node", "test_example", child_time);
  const auto parent = change_of(s.events[1]);
  EXPECT_EQ(parent.case_type, "clinic");
  EXPECT_EQ(parent.case_name, "Rural Clinic 43");
  EXPECT_EQ(parent.owner, "test_group");
  EXPECT_EQ(change_of(s.events[2]).fields, (Fields{{"employees", "23"}}));
  const auto child = change_of(s.events[3]);
  EXPECT_EQ(child.case_type, "patient");
  EXPECT_EQ(child.case_name, "Stanislav");
  EXPECT_EQ(child.owner, "test_group");
  EXPECT_EQ(change_of(s.events[4]).fields, (Fields{{"age", "54"}}));
  const auto idx = change_of(s.events[5]).indices;
  ASSERT_EQ(idx.size(), 1U);
  EXPECT_EQ(idx[0].name, "parent");
  EXPECT_EQ(idx[0].case_type, "rec_child");
  EXPECT_EQ(idx[0].case_id, subject("parent_node"));
  EXPECT_EQ(idx[0].relationship, "child");
}

TEST(IntakeCore, EmptyIndexValueRemovesTheIndex) {
  const std::string xml = with_meta(fixture("casexml/core_restore_remove_index.xml"), kInstance);
  const auto s = parse_ok(xml);
  ASSERT_EQ(kinds(s), (std::vector<Kind>{Kind::FORM_SUBMITTED, Kind::CASE_INDEXED}));
  expect_case_event(s, 1, Kind::CASE_INDEXED, "base_case", "test_example",
                    at("2014-08-04T21:09:07Z"));
  const auto idx = change_of(s.events[1]).indices;
  ASSERT_EQ(idx.size(), 1U);
  EXPECT_EQ(idx[0].name, "existing");
  EXPECT_FALSE(idx[0].case_id.has_value());
  EXPECT_EQ(idx[0].relationship, "child");
}

TEST(IntakeCore, SelfIndexIsRefusedWithoutEchoingTheCaseId) {
  const Status st =
      parse_error(with_meta(fixture("casexml/core_restore_broken_self_index.xml"), kInstance));
  EXPECT_EQ(st.code(), Code::kInvalid);
  EXPECT_NE(st.detail().find("cannot index itself"), std::string::npos) << st.detail();
  EXPECT_EQ(st.detail().find("valid_case_id"), std::string::npos);
}

TEST(IntakeCore, RestorePayloadWithoutMetaIsRefusedForMissingInstanceId) {
  const Status st = parse_error(fixture("casexml/core_restore_create_cases_with_parents.xml"));
  EXPECT_EQ(st.code(), Code::kInvalid);
  EXPECT_NE(st.detail().find("instanceID"), std::string::npos) << st.detail();
}

// ---------------------------------------------------------------------------------------------
// OpenRosa (ODK) instances.

TEST(IntakeOpenRosa, OdkInstanceWithoutUserUsesTheFallbacksAndItsIdAttribute) {
  const std::string xml = fixture("openrosa/onadata_transport_2011-07-25_19-05-49.xml");
  const auto s = parse_ok(xml);
  EXPECT_EQ(s.instance_id, "uuid:5b2cc313-fc09-437e-8149-fcd32f695d41");
  EXPECT_EQ(s.deprecated_id, "");
  expect_form(s, xml, *parse_uuid("5b2cc313-fc09-437e-8149-fcd32f695d41"), "fallback-user",
              "fallback-device", 0, "transportation_2011_07_25");
  EXPECT_EQ(s.events.size(), 1U);
}

TEST(IntakeOpenRosa, EditNamesTheInstanceItRevises) {
  const std::string xml = fixture("openrosa/onadata_transport_2011-07-25_19-05-49_edited.xml");
  const auto s = parse_ok(xml);
  EXPECT_EQ(s.instance_id, "uuid:6b2cc313-fc09-437e-8139-fcd32f695d41");
  EXPECT_EQ(s.deprecated_id, "uuid:5b2cc313-fc09-437e-8149-fcd32f695d41");
  expect_form(s, xml, *parse_uuid("6b2cc313-fc09-437e-8139-fcd32f695d41"), "fallback-user",
              "fallback-device", 0, "transportation_2011_07_25");
}

TEST(IntakeOpenRosa, SameInstanceIdWithOtherXmlGetsTheSameFormIdButAnotherBody) {
  const auto a = parse_ok(fixture("openrosa/onadata_transport_2011-07-25_19-05-49.xml"));
  const auto b = parse_ok(fixture("openrosa/onadata_transport_2011-07-25_19-05-49_1.xml"));
  EXPECT_EQ(a.events[0].event_id, b.events[0].event_id);
  EXPECT_NE(a.events[0].payload, b.events[0].payload);
}

TEST(IntakeOpenRosa, NoUserAndNoFallbackIsRefused) {
  IntakeOptions o = options();
  o.fallback_actor.clear();
  const Status st = parse_error(fixture("openrosa/onadata_transport_2011-07-25_19-05-49.xml"), o);
  EXPECT_EQ(st.code(), Code::kInvalid);
  EXPECT_NE(st.detail().find("no user"), std::string::npos) << st.detail();
}

TEST(IntakeOpenRosa, ParsingIsDeterministic) {
  const std::string xml = fixture("casexml/v2_parent_child_index_many_subcases.xml");
  const auto a = parse_ok(xml);
  const auto b = parse_ok(xml);
  ASSERT_EQ(a.events.size(), b.events.size());
  for (std::size_t i = 0; i < a.events.size(); ++i) {
    EXPECT_EQ(a.events[i].event_id, b.events[i].event_id);
    EXPECT_EQ(a.events[i].payload, b.events[i].payload);
  }
}

// ---------------------------------------------------------------------------------------------
// Hostile and broken input: kInvalid naming the problem.

const std::string kGoodMeta =
    "<meta><instanceID>uuid:7c1e0f3a-5b6d-4a0b-8c5e-1f4d4e8a9d2b</instanceID>"
    "<userID>u-1</userID></meta>";

void expect_invalid(const std::string& xml, std::string_view needle,
                    const IntakeOptions& o = options()) {
  const Status st = parse_error(xml, o);
  EXPECT_EQ(st.code(), Code::kInvalid);
  EXPECT_NE(st.detail().find(needle), std::string::npos) << st.detail();
}

TEST(IntakeHostile, BillionLaughsDoctypeIsRefused) {
  std::string xml = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n";
  xml += "<!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n";
  for (int i = 2; i <= 9; ++i) {
    xml += "<!ENTITY lol" + std::to_string(i) + " \"";
    for (int j = 0; j < 10; ++j) xml += "&lol" + std::to_string(i - 1) + ";";
    xml += "\">\n";
  }
  xml += "]>\n<data>" + kGoodMeta + "<x>&lol9;</x></data>";
  expect_invalid(xml, "DOCTYPE");
}

TEST(IntakeHostile, ExternalEntityIsRefused) {
  const std::string xml =
      "<?xml version=\"1.0\"?><!DOCTYPE data [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>"
      "<data>" +
      kGoodMeta + "<x>&xxe;</x></data>";
  expect_invalid(xml, "DOCTYPE");
  expect_invalid(
      "<!DOCTYPE data SYSTEM \"http://example.com/x.dtd\"><data>" + kGoodMeta + "</data>",
      "DOCTYPE");
}

TEST(IntakeHostile, OversizedDocumentIsRefused) {
  IntakeOptions small = options();
  small.max_bytes = 1024;
  std::string xml = "<data>" + kGoodMeta + "<pad>" + std::string(2000, 'a') + "</pad></data>";
  expect_invalid(xml, "max_bytes", small);
  std::string huge = "<data>" + kGoodMeta + "<pad>";
  huge.append(proj::kIntakeBytesMax, 'a');
  huge += "</pad></data>";
  expect_invalid(huge, "max_bytes");
}

TEST(IntakeHostile, DeepNestingIsRefused) {
  std::string xml = "<data>" + kGoodMeta;
  for (int i = 0; i < 10'000; ++i) xml += "<g>";
  for (int i = 0; i < 10'000; ++i) xml += "</g>";
  xml += "</data>";
  expect_invalid(xml, "max_depth");
  // 64 levels are fine.
  std::string ok = "<data>" + kGoodMeta;
  for (int i = 0; i < 63; ++i) ok += "<g>";
  for (int i = 0; i < 63; ++i) ok += "</g>";
  ok += "</data>";
  EXPECT_TRUE(proj::parse_submission(ok, options()).is_ok());
  expect_invalid("<data>" + kGoodMeta + "<g>" + ok.substr(6, ok.size() - 13) + "</g></data>",
                 "max_depth");
}

TEST(IntakeHostile, MalformedXmlIsRefused) {
  expect_invalid("<data>" + kGoodMeta + "<x></data>", "malformed XML");
  expect_invalid("<data>" + kGoodMeta + "</data><other/>", "malformed XML");
  expect_invalid("", "malformed XML");
  expect_invalid("not xml at all", "malformed XML");
  expect_invalid("<data>" + kGoodMeta + "<x a=\"1\" a=\"2\"/></data><", "malformed XML");
  expect_invalid("<data>" + kGoodMeta + "<x a=\"1\" a=\"2\"/></data>", "repeats an attribute");
  expect_invalid("text<data>" + kGoodMeta + "</data>", "text outside the root");
  expect_invalid("<data>" + kGoodMeta + "</data>text", "text outside the root");
  expect_invalid("<data>" + kGoodMeta + "<x>\xC3\x28</x></data>", "not valid UTF-8");
  expect_invalid("<data>" + kGoodMeta + "<x>\xED\xA0\x80</x></data>", "not valid UTF-8");
}

TEST(IntakeHostile, ByteOrderMarkCommentsAndCharacterReferencesAreFine) {
  const std::string xml =
      "\xEF\xBB\xBF<?xml version='1.0' encoding='UTF-8'?>\n<!-- c -->\n<data>" + kGoodMeta +
      "<case xmlns=\"http://commcarehq.org/case/transaction/v2\" case_id=\"c1\">"
      "<update><n>&#2858;&amp;<![CDATA[<b>]]></n></update></case></data>\n";
  const auto s = parse_ok(xml);
  ASSERT_EQ(s.events.size(), 2U);
  EXPECT_EQ(change_of(s.events[1]).fields, (Fields{{"n", "\xE0\xAC\xAA&<b>"}}));
  EXPECT_EQ(payload_of(s.events[0]).body, xml);
}

TEST(IntakeHostile, MissingInstanceIdIsRefused) {
  expect_invalid("<data><meta><userID>u-1</userID></meta></data>", "instanceID");
  expect_invalid("<data><meta><instanceID>  </instanceID></meta></data>", "instanceID");
  expect_invalid(fixture("casexml/v2_basic_create.xml"), "instanceID");
  expect_invalid(
      "<data><x><meta><instanceID>uuid:7c1e0f3a-5b6d-4a0b-8c5e-1f4d4e8a9d2b"
      "</instanceID></meta></x></data>",
      "instanceID");  // meta must be a child of the root.
}

std::string v2_block(const std::string& attrs, const std::string& body) {
  return "<data>" + kGoodMeta + "<case xmlns=\"http://commcarehq.org/case/transaction/v2\" " +
         attrs + ">" + body + "</case></data>";
}

TEST(IntakeHostile, BrokenCaseBlocksAreRefused) {
  expect_invalid(v2_block("date_modified=\"2024-01-01\"", "<close/>"), "has no case_id");
  expect_invalid(v2_block("case_id=\" \"", "<close/>"), "empty case_id");
  expect_invalid(v2_block("case_id=\"c1\"", "<index><p relationship=\"\">c2</p></index>"),
                 "empty relationship");
  expect_invalid(v2_block("case_id=\"c1\"", "<update><a>1</a></update><update><b/></update>"),
                 "more than one <update>");
  expect_invalid(
      "<data>" + kGoodMeta + "<case><case_id>a</case_id><case_id>b</case_id></case>" + "</data>",
      "more than one <case_id>");
}

TEST(IntakeHostile, LimitsAreNamed) {
  expect_invalid(v2_block("case_id=\"c1\"", "<update><" + std::string(129, 'n') + ">1</" +
                                                std::string(129, 'n') + "></update>"),
                 "kIntakeNameBytesMax");
  expect_invalid(v2_block("case_id=\"c1\"",
                          "<update><n>" + std::string((64U << 10U) + 1, 'v') + "</n></update>"),
                 "kIntakeValueBytesMax");
  expect_invalid(v2_block("case_id=\"c1\"",
                          "<create><case_type>" + std::string(257, 't') + "</case_type></create>"),
                 "kIntakeCaseTextBytesMax");
  expect_invalid(v2_block("case_id=\"" + std::string(1025, 'c') + "\"", "<close/>"),
                 "kIntakeIdBytesMax");
  expect_invalid(v2_block("case_id=\"c1\" user_id=\"" + std::string(129, 'u') + "\"", "<close/>"),
                 "kActorBytesMax");
  std::string many = "<data>" + kGoodMeta;
  for (std::size_t i = 0; i <= proj::kCaseBlocksMax; ++i) {
    many += "<case xmlns=\"http://commcarehq.org/case/transaction/v2\" case_id=\"c" +
            std::to_string(i) + "\"><close/></case>";
  }
  many += "</data>";
  expect_invalid(many, "kCaseBlocksMax");
}

TEST(IntakeNamespaces, AnyPrefixAndHqStyleNamespaceUrisAreCaseBlocks) {
  const std::string xml =
      "<data xmlns=\"http://example.org/form\" "
      "xmlns:cx=\"http://org.commcarehq/case/transaction/v2\">" +
      kGoodMeta +
      "<g><cx:case case_id=\"c1\" date_modified=\"2024-01-01T00:00:00Z\"><cx:close/></cx:case></g>"
      "<case case_id=\"c2\"><close/></case>"  // Form namespace, no case_id child: not a block.
      "<other:case xmlns:other=\"http://example.org/case/transaction/v3\" case_id=\"c3\">"
      "<other:close/></other:case></data>";
  const auto s = parse_ok(xml);
  EXPECT_EQ(s.xmlns, "http://example.org/form");
  ASSERT_EQ(kinds(s), (std::vector<Kind>{Kind::FORM_SUBMITTED, Kind::CASE_CLOSED}));
  EXPECT_EQ(*s.events[1].subject, subject("c1"));
  EXPECT_EQ(s.events[1].actor, "u-1");  // No user_id on the block: the form's user.
}

// ---------------------------------------------------------------------------------------------
// End to end: submissions appended through a ledger with the case view.

class IntakeLedger : public LedgerTest {
 protected:
  std::vector<std::shared_ptr<ledger::Projector>> projectors() const override { return {view_}; }

  std::vector<ledger::Receipt> submit(const std::string& xml) {
    auto s = proj::parse_submission(xml, options());
    EXPECT_TRUE(s.is_ok()) << s.status().to_string();
    if (!s.is_ok()) return {};
    return append_ok("p", std::move(s->events));
  }
  proj::CaseState state(std::string_view case_id) {
    auto got = view_->get(*ledger_, "p", subject(case_id));
    EXPECT_TRUE(got.is_ok()) << got.status().to_string();
    EXPECT_TRUE(got.is_ok() && got->has_value()) << "no case " << case_id;
    return got.is_ok() ? got->value_or(proj::CaseState{}) : proj::CaseState{};
  }
  std::vector<proj::HistoryItem> history_of(std::string_view case_id) {
    proj::HistoryFilter f;
    f.case_id = subject(case_id);
    auto got = view_->history(*ledger_, "p", f, 0);
    EXPECT_TRUE(got.is_ok()) << got.status().to_string();
    return got.is_ok() ? *got : std::vector<proj::HistoryItem>{};
  }
  std::vector<proj::CaseState> children_of(std::string_view case_id) {
    proj::CaseFilter f;
    f.parent = subject(case_id);
    auto got = view_->list(*ledger_, "p", f, std::nullopt, 0);
    EXPECT_TRUE(got.is_ok()) << got.status().to_string();
    return got.is_ok() ? *got : std::vector<proj::CaseState>{};
  }
  std::uint64_t head_seq() { return ledger_->head("p")->seq; }

  std::shared_ptr<proj::CaseProjector> view_ = std::make_shared<proj::CaseProjector>();
};

TEST_F(IntakeLedger, V2CreateUpdateCloseBuildTheCaseAndItsHistory) {
  submit(with_meta(fixture("casexml/v2_basic_create.xml"),
                   "uuid:0a000001-0000-4000-8000-000000000001"));
  auto s = state("foo-case-id");
  EXPECT_EQ(s.case_type, "v2_case_type");
  EXPECT_EQ(s.name, "test case name");
  EXPECT_FALSE(s.implicit);
  EXPECT_FALSE(s.closed);
  EXPECT_EQ(s.last_user, "bar-user-id");
  submit(with_meta(fixture("casexml/v2_basic_update.xml"),
                   "uuid:0a000001-0000-4000-8000-000000000002"));
  s = state("foo-case-id");
  EXPECT_EQ(s.case_type, "updated_v2_case_type");
  EXPECT_EQ(s.name, "updated case name");
  EXPECT_EQ(s.fields, (Fields{{"dynamic", "something dynamic"}}));
  submit(with_meta(fixture("casexml/v2_basic_close.xml"),
                   "uuid:0a000001-0000-4000-8000-000000000003"));
  s = state("foo-case-id");
  EXPECT_TRUE(s.closed);
  const auto h = history_of("foo-case-id");
  ASSERT_EQ(h.size(), 3U);
  EXPECT_EQ(h[0].kind, Kind::CASE_CREATED);
  EXPECT_EQ(h[0].client_time_us, at("2011-12-06T13:42:50Z"));
  EXPECT_EQ(h[0].via, proj::form_event_id("uuid:0a000001-0000-4000-8000-000000000001"));
  EXPECT_EQ(h[1].kind, Kind::CASE_UPDATED);
  EXPECT_EQ(h[2].kind, Kind::CASE_CLOSED);
  EXPECT_EQ(h[2].changes.back().action, schema::Action::CLOSE);
  EXPECT_EQ(head_seq(), 6U);  // Three forms, three case events.
}

TEST_F(IntakeLedger, V1CreateUpdateCloseBuildTheCase) {
  submit(v1("v1_create.xml", "uuid:0b000001-0000-4000-8000-000000000001"));
  submit(v1("v1_update.xml", "uuid:0b000001-0000-4000-8000-000000000002"));
  submit(v1("v1_close.xml", "uuid:0b000001-0000-4000-8000-000000000003"));
  const auto s = state(kV1CaseId);
  EXPECT_EQ(s.case_type, "a_new_type");
  EXPECT_EQ(s.name, "a new name");
  EXPECT_TRUE(s.closed);
  EXPECT_FALSE(s.implicit);
  EXPECT_EQ(s.fields, (Fields{{"date_opened", "2010-05-12T13:42:50"},
                              {"external_id", "someexternal"},
                              {"someclosedprop", "case closed"},
                              {"somenewprop", "efgh"},
                              {"someprop", "abcde"}}));
  EXPECT_EQ(s.last_user, "BXPKZLP49P3DDTJH3W0BRM2HVABA");
  const auto h = history_of(kV1CaseId);
  ASSERT_EQ(h.size(), 4U);
  EXPECT_EQ(h[0].actor, "someuser");
}

TEST_F(IntakeLedger, SameCaseInTwoBlocksUpdatesItOnce) {
  submit(fixture("casexml/v2_same_case_two_blocks.xml"));
  const auto s = state("MCLPZ69ON942EKNIBR5WF1G2L");
  EXPECT_TRUE(s.implicit);  // Updated without ever being created: HQ creates it implicitly.
  EXPECT_EQ(s.fields.size(), 3U);
  EXPECT_EQ(history_of("MCLPZ69ON942EKNIBR5WF1G2L").size(), 1U);
}

TEST_F(IntakeLedger, CasesInRepeatsAreCreatedAndTheMotherClosed) {
  submit(fixture("casexml/v1_multicase_case_in_repeats.xml"));
  const auto a = state("32337c03-2b73-497f-ab18-2b587f8c21df");
  EXPECT_EQ(a.case_type, "newborn_hiv_child");
  EXPECT_EQ(a.fields.size(), 10U);  // 9 updated + external_id from the create.
  EXPECT_FALSE(a.closed);
  const auto b = state("581b0506-7c94-4af5-ac67-f934566d5418");
  EXPECT_EQ(b.name, "ADG");
  const auto mother = state("CMYOSI95QCED3ZWIP9ZK1QNQ6");
  EXPECT_TRUE(mother.implicit);
  EXPECT_TRUE(mother.closed);
  EXPECT_EQ(mother.fields.size(), 6U);
}

TEST_F(IntakeLedger, ManySubcasesAreListedUnderTheirParents) {
  submit(fixture("casexml/v2_parent_child_index_many_subcases.xml"));
  EXPECT_EQ(children_of("7554c7f4-fc96-4b1d-aec8-8890e96ffc54").size(), 7U);
  EXPECT_EQ(children_of("f8b34e0c744f8f45dfa12e28617e5716").size(), 3U);  // Newborn, TT, ANC.
  const auto task = state("763ca815-df9c-4037-9f0e-6edd2af8ba6c1");
  EXPECT_EQ(task.case_type, "task");
  ASSERT_EQ(task.indices.size(), 1U);
  EXPECT_EQ(task.indices[0].case_id, subject("7554c7f4-fc96-4b1d-aec8-8890e96ffc54"));
  EXPECT_EQ(state("f8b34e0c744f8f45dfa12e28617e5716").owner, "3c5a80e4db53049dfc110c368a0d282b");
}

TEST_F(IntakeLedger, EmptyIndexValueRemovesAnIndexSetEarlier) {
  submit(v2_block("case_id=\"base_case\" user_id=\"test_example\"",
                  "<index><existing case_type=\"clinic\">the_parent</existing></index>"));
  ASSERT_EQ(children_of("the_parent").size(), 1U);
  submit(with_meta(fixture("casexml/core_restore_remove_index.xml"),
                   "uuid:0c000001-0000-4000-8000-000000000002"));
  EXPECT_TRUE(children_of("the_parent").empty());
  EXPECT_TRUE(state("base_case").indices.empty());
  const auto h = history_of("base_case");
  ASSERT_EQ(h.size(), 2U);
  EXPECT_EQ(h[1].changes.back().prior, format_uuid(subject("the_parent")));
}

TEST_F(IntakeLedger, ParentAndChildFromARestorePayload) {
  submit(with_meta(fixture("casexml/core_restore_create_cases_with_parents.xml"), kInstance));
  const auto kids = children_of("parent_node");
  ASSERT_EQ(kids.size(), 1U);
  EXPECT_EQ(kids[0].case_id, subject("child_node"));
  EXPECT_EQ(kids[0].name, "Stanislav");
  EXPECT_EQ(state("parent_node").owner, "test_group");
}

TEST_F(IntakeLedger, ClosingParentAndChildrenInRepeatsClosesAllThree) {
  submit(fixture("casexml/v2_close_parent_and_children_in_repeats.xml"));
  for (const char* id :
       {"9dbce942-0163-438b-b3e5-67b473d2f719", "17e36de1-b9de-423c-a6a6-605d291ec976",
        "7b58fd8f-1bb8-4978-99a6-7b5d9826c1f9"}) {
    const auto s = state(id);
    EXPECT_TRUE(s.closed) << id;
    EXPECT_TRUE(s.implicit) << id;  // Closed without a create in this ledger.
  }
}

TEST_F(IntakeLedger, ResubmittingTheSameXmlAppendsNothing) {
  const std::string xml = fixture("casexml/v2_parent_child_index_many_subcases.xml");
  const auto first = submit(xml);
  ASSERT_EQ(first.size(), 33U);
  for (const auto& r : first) EXPECT_FALSE(r.duplicate);
  const std::uint64_t head = head_seq();
  const auto again = submit(xml);
  ASSERT_EQ(again.size(), 33U);
  for (std::size_t i = 0; i < again.size(); ++i) {
    EXPECT_TRUE(again[i].duplicate);
    EXPECT_EQ(again[i].seq, first[i].seq);
  }
  EXPECT_EQ(head_seq(), head);
  EXPECT_EQ(history_of("7554c7f4-fc96-4b1d-aec8-8890e96ffc54").size(), 3U);
}

TEST_F(IntakeLedger, SameInstanceIdWithOtherXmlIsAConflictAndAppendsNothing) {
  submit(fixture("openrosa/onadata_transport_2011-07-25_19-05-49.xml"));
  const std::uint64_t head = head_seq();
  auto other = proj::parse_submission(
      fixture("openrosa/onadata_transport_2011-07-25_19-05-49_1.xml"), options());
  ASSERT_TRUE(other.is_ok());
  auto result = ledger_->append("p", std::move(other->events)).get();
  ASSERT_FALSE(result.is_ok());
  EXPECT_EQ(result.status().code(), Code::kConflict);
  EXPECT_EQ(head_seq(), head);
}

TEST_F(IntakeLedger, RefusedSubmissionsAppendNothing) {
  submit(fixture("casexml/v2_duplicate_update_properties.xml"));
  const std::uint64_t head = head_seq();
  EXPECT_EQ(head, 2U);
  EXPECT_EQ(state("061ecbae-d9be-4bb5-bdd4-e62abd5eaf7b").fields,
            (Fields{{"bar", "2"}, {"date_next_eb", "2012-05-27"}}));
  for (const std::string& bad :
       {std::string("<!DOCTYPE d [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><d>&e;</d>"),
        fixture("casexml/v1_empty_case_id.xml"),
        with_meta(fixture("casexml/core_restore_broken_self_index.xml"), kInstance),
        std::string("<data><meta>")}) {
    EXPECT_FALSE(proj::parse_submission(bad, options()).is_ok());
  }
  EXPECT_EQ(head_seq(), head);
}

// CommCare HQ's test_out_of_order_processing submits update_oo and then create_oo and expects
// pboth = "overridden by the update form": HQ re-sorts a user's burst of transactions on a case
// by the device's date_modified. Trail's case view does the same for its state (kReorderWindowUs)
// while the history keeps arrival order, with the values the server held when each arrived.
TEST_F(IntakeLedger, OutOfOrderPairEndsInHqsStateAndKeepsArrivalOrderInHistory) {
  submit(fixture("casexml/v2_ordering_update_oo.xml"));
  submit(fixture("casexml/v2_ordering_create_oo.xml"));
  const std::string case_id = "30bc51f6-3247-4966-b4ae-994f572e85fe";
  const auto s = state(case_id);
  EXPECT_EQ(s.case_type, "mother");
  EXPECT_EQ(s.name, "out of order case");
  auto field = [&](const std::string& name) {
    for (const auto& [n, v] : s.fields) {
      if (n == name) return v;
    }
    return std::string("<absent>");
  };
  EXPECT_EQ(field("pcreate"), "from the create form");
  EXPECT_EQ(field("pupdate"), "from the update form");
  EXPECT_EQ(field("pboth"), "overridden by the update form");  // HQ's answer.
  EXPECT_FALSE(s.implicit);  // In device order the case begins with its create.
  // The history is what arrived, in arrival order: the update first (creating the case
  // implicitly), then the create form's values over it.
  const auto h = history_of(case_id);
  ASSERT_EQ(h.size(), 3U);
  EXPECT_LT(h[0].seq, h[1].seq);
  EXPECT_EQ(h[0].changes.front().action, schema::Action::IMPLICIT_CREATE);
  std::string last_pboth;
  for (const auto& item : h) {
    for (const auto& c : item.changes) {
      if (c.field == "pboth") last_pboth = c.value;
    }
  }
  EXPECT_EQ(last_pboth, "this should get overridden");  // Arrival order, as recorded.
}

}  // namespace
}  // namespace trail::testing
