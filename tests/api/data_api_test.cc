// The data routes over real HTTP: appends (atomic, idempotent, durable before 2xx), cases,
// history, lists, reports, audit trails with the reads they record, the ledger as stored,
// and sync with a restore onto a new phone.
#include <openssl/sha.h>
#include <sodium.h>

#include "tests/api/api_fixture.h"

namespace trail::testing {
namespace {

namespace json = boost::json;

json::object events_body(json::array events) { return json::object{{"events", std::move(events)}}; }

TEST_F(ApiTest, AppendIsAtomicIdempotentAndAnswersReceipts) {
  auto sup = login("sup");
  auto aud = login("aud");
  ASSERT_TRUE(sup && aud);
  const std::string c = uuid();
  const std::string e1 = uuid();
  const std::string e2 = uuid();
  json::array batch{case_event(e1, "case.created", c, ids_["sup"], {{"hh_size", "5"}}),
                    case_event(e2, "case.updated", c, "", {{"hh_size", "6"}})};
  auto first = sup->post_json("/v1/projects/clinic-a/events", events_body(batch));
  ASSERT_EQ(first.status, 201U) << first.body;
  const auto& receipts = first.json().at("receipts").as_array();
  ASSERT_EQ(receipts.size(), 2U);
  EXPECT_EQ(receipts[0].at("event_id").as_string(), e1);
  EXPECT_EQ(receipts[1].at("seq").as_int64(), receipts[0].at("seq").as_int64() + 1);
  EXPECT_FALSE(receipts[0].at("duplicate").as_bool());

  auto again = sup->post_json("/v1/projects/clinic-a/events", events_body(batch));
  ASSERT_EQ(again.status, 200U) << again.body;
  EXPECT_TRUE(again.json().at("receipts").as_array()[1].at("duplicate").as_bool());
  EXPECT_EQ(again.json().at("receipts").as_array()[1].at("seq"), receipts[1].at("seq"));

  const auto head_before = aud->get("/v1/projects/clinic-a/ledger/head").json().at("size");
  // One bad event voids the whole batch.
  json::array mixed{case_event(uuid(), "case.updated", c, "", {{"hh_size", "7"}}),
                    json::object{{"event_id", "not-a-uuid"}, {"kind", "case.updated"}}};
  auto bad = sup->post_json("/v1/projects/clinic-a/events", events_body(mixed));
  EXPECT_EQ(bad.status, 400U);
  EXPECT_NE(bad.body.find("events[1]"), std::string::npos) << bad.body;
  // Same id, other body: a conflict, not a silent overwrite.
  json::array conflict{case_event(e2, "case.updated", c, "", {{"hh_size", "99"}})};
  EXPECT_EQ(sup->post_json("/v1/projects/clinic-a/events", events_body(conflict)).status, 409U);
  // Someone else's actor is refused.
  auto spoof = case_event(uuid(), "case.updated", c, "", {{"hh_size", "8"}});
  spoof["actor"] = ids_["chw"];
  EXPECT_EQ(sup->post_json("/v1/projects/clinic-a/events", events_body({spoof})).status, 400U);
  EXPECT_EQ(sup->post("/v1/projects/clinic-a/events", "{\"events\": [").status, 400U);
  EXPECT_EQ(sup->post_json("/v1/projects/clinic-a/events", json::object{{"events", json::array{}}}).status,
            400U);
  EXPECT_EQ(aud->get("/v1/projects/clinic-a/ledger/head").json().at("size"), head_before);
  EXPECT_EQ(sup->get("/v1/projects/clinic-a/cases/" + c).json().at("fields").at("hh_size").as_string(), "6");
}

// trailctl may append to the data directory of a running traild: each process's writer finds
// the other's events in the idempotency index (which lives in DATA/views beside the views), so
// an event is stored once whichever of them it reaches first, and an id re-used with another
// body is refused by both.
TEST_F(ApiTest, TrailctlBesideARunningTraildSharesItsIdempotencyIndex) {
  auto sup = login("sup");
  ASSERT_TRUE(sup);
  const auto full = [&](const std::string& id, const std::string& visit) {
    json::object e = case_event(id, "case.updated", uuid(), "", {{"visit", visit}});
    e["actor"] = ids_["sup"];
    e["channel"] = "api";
    e["device_id"] = "tablet-7";
    return e;
  };
  const auto line = [](const json::object& e) { return json::serialize(e) + "\n"; };
  // Through trailctl first, then over HTTP: the same event, stored once.
  const json::object first = full(uuid(), "1");
  auto by_cli = trailctl({"append", "--project", "clinic-a"}, line(first));
  ASSERT_EQ(by_cli.exit_code, 0) << by_cli.err;
  const json::value cli_receipt = json::parse(by_cli.out.substr(0, by_cli.out.find('\n')));
  EXPECT_FALSE(cli_receipt.at("duplicate").as_bool());
  auto over_http = sup->post_json("/v1/projects/clinic-a/events", events_body({first}));
  ASSERT_EQ(over_http.status, 200U) << over_http.body;
  const auto& http_receipt = over_http.json().at("receipts").as_array()[0];
  EXPECT_TRUE(http_receipt.at("duplicate").as_bool());
  EXPECT_EQ(http_receipt.at("seq"), cli_receipt.at("seq"));
  // Over HTTP first, then through trailctl.
  const json::object second = full(uuid(), "2");
  auto posted = sup->post_json("/v1/projects/clinic-a/events", events_body({second}));
  ASSERT_EQ(posted.status, 201U) << posted.body;
  auto again = trailctl({"append", "--project", "clinic-a"}, line(second));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  const json::value again_receipt = json::parse(again.out.substr(0, again.out.find('\n')));
  EXPECT_TRUE(again_receipt.at("duplicate").as_bool());
  EXPECT_EQ(again_receipt.at("seq"), posted.json().at("receipts").as_array()[0].at("seq"));
  // The same ids with other bodies: refused by each.
  json::object changed = first;
  changed["fields"] = json::object{{"visit", "changed"}};
  auto refused = trailctl({"append", "--project", "clinic-a"}, line(changed));
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("different body"), std::string::npos) << refused.err;
  json::object changed2 = second;
  changed2["fields"] = json::object{{"visit", "changed"}};
  EXPECT_EQ(sup->post_json("/v1/projects/clinic-a/events", events_body({changed2})).status, 409U);
}

// traild keeps the case states (and the sync view's records and logs) it wrote in memory for
// their next events; events of the same case that trailctl appended in between must not be
// lost from them when traild folds the case again (its writer sees the gap in seqs and reads
// what is stored).
TEST_F(ApiTest, ACaseChangedByTrailctlBetweenTraildsAppendsKeepsEveryChange) {
  auto sup = login("sup");
  ASSERT_TRUE(sup);
  const std::string c = uuid();
  const auto over_http = [&](const char* kind, const char* field, const char* value) {
    auto posted = sup->post_json(
        "/v1/projects/clinic-a/events",
        events_body({case_event(uuid(), kind, c, std::string(kind) == "case.created" ? ids_["sup"] : "",
                                {{field, value}})}));
    ASSERT_EQ(posted.status, 201U) << posted.body;
  };
  over_http("case.created", "a", "1");
  over_http("case.updated", "b", "1");
  // trailctl also moves the case to another owner: the sync view must follow.
  json::object by_cli = case_event(uuid(), "case.updated", c, ids_["chw"], {{"a", "2"}, {"c", "1"}});
  by_cli["actor"] = ids_["sup"];
  by_cli["channel"] = "api";
  auto appended = trailctl({"append", "--project", "clinic-a"}, json::serialize(by_cli) + "\n");
  ASSERT_EQ(appended.exit_code, 0) << appended.err;
  over_http("case.updated", "d", "1");
  // And traild then writes to the log of the case's old owner again (another case of sup's):
  // the log it kept in memory lacks trailctl's entry that took the case out of sup's set.
  const std::string other = uuid();
  auto created = sup->post_json(
      "/v1/projects/clinic-a/events",
      events_body({case_event(uuid(), "case.created", other, ids_["sup"], {{"e", "1"}})}));
  ASSERT_EQ(created.status, 201U) << created.body;
  auto got = sup->get("/v1/projects/clinic-a/cases/" + c);
  ASSERT_EQ(got.status, 200U) << got.body;
  const auto& fields = got.json().at("fields").as_object();
  EXPECT_EQ(fields.at("a").as_string(), "2") << got.body;
  EXPECT_TRUE(fields.contains("b") && fields.contains("c") && fields.contains("d")) << got.body;
  EXPECT_EQ(got.json().at("owner").as_string(), ids_["chw"]) << got.body;
  auto history = sup->get("/v1/projects/clinic-a/cases/" + c + "/history");
  ASSERT_EQ(history.status, 200U);
  EXPECT_EQ(history.json().at("history").as_array().size(), 4U) << history.body;
  // The user's own trail names all four, trailctl's among them.
  auto aud = login("aud");
  ASSERT_TRUE(aud);
  auto by_user = aud->get("/v1/projects/clinic-a/audit/changes?user=" + ids_["sup"]);
  ASSERT_EQ(by_user.status, 200U) << by_user.body;
  std::size_t of_c = 0;
  for (const auto& e : by_user.json().at("changes").as_array()) {
    of_c += e.at("case_id").as_string() == c ? 1U : 0U;
  }
  EXPECT_EQ(of_c, 4U) << by_user.body;
  // A restore hands the case to its new owner's phone only.
  const auto restored = [&](const std::string& who) {
    auto session = login(who);
    std::set<std::string> ids;
    if (!session) return ids;
    auto restore = session->get("/v1/projects/clinic-a/sync");
    EXPECT_EQ(restore.status, 200U) << restore.body;
    for (const auto& r : restore.json().at("cases").as_array()) {
      ids.insert(std::string(r.at("case_id").as_string()));
    }
    return ids;
  };
  EXPECT_EQ(restored("chw").count(c), 1U);
  const auto sups = restored("sup");
  EXPECT_EQ(sups.count(c), 0U);
  EXPECT_EQ(sups.count(other), 1U);
}

TEST_F(ApiTest, CaseReadsAreRecordedWithAddressAndEndpointBeforeTheyAreAnswered) {
  auto sup = login("sup");
  auto aud = login("aud");
  ASSERT_TRUE(sup && aud);
  const std::string c = uuid();
  ASSERT_EQ(sup->post_json("/v1/projects/clinic-a/events",
                           events_body({case_event(uuid(), "case.created", c, ids_["sup"], {{"x", "1"}}),
                                        case_event(uuid(), "case.updated", c, "", {{"x", "2"}})}))
                .status,
            201U);
  auto got = sup->get("/v1/projects/clinic-a/cases/" + c, {{"X-Device-Id", "tablet-7"}});
  ASSERT_EQ(got.status, 200U) << got.body;
  EXPECT_EQ(got.json().at("fields").at("x").as_string(), "2");
  auto history = sup->get("/v1/projects/clinic-a/cases/" + c + "/history");
  ASSERT_EQ(history.status, 200U);
  const auto& entries = history.json().at("history").as_array();
  ASSERT_EQ(entries.size(), 2U);
  EXPECT_NE(json::serialize(entries[1]).find("\"prior\":\"1\""), std::string::npos) << history.body;
  EXPECT_EQ(sup->get("/v1/projects/clinic-a/cases/" + uuid()).status, 404U);
  EXPECT_EQ(sup->get("/v1/projects/clinic-a/cases/not-a-uuid").status, 404U);

  auto access = aud->get("/v1/projects/clinic-a/audit/access?case=" + c);
  ASSERT_EQ(access.status, 200U) << access.body;
  const auto& reads = access.json().at("reads").as_array();
  ASSERT_EQ(reads.size(), 2U) << access.body;
  EXPECT_EQ(reads[0].at("reader").as_string(), ids_["sup"]);
  EXPECT_EQ(reads[0].at("what").as_string(), "case");
  EXPECT_EQ(reads[0].at("device_id").as_string(), "tablet-7");
  EXPECT_EQ(reads[0].at("address").as_string(), "127.0.0.1");
  EXPECT_EQ(reads[0].at("endpoint").as_string(), "GET /v1/projects/{p}/cases/{id}");
  EXPECT_EQ(reads[1].at("what").as_string(), "history");
  // The change trail is readable by the auditor, and reading it is recorded too.
  auto changes = aud->get("/v1/projects/clinic-a/audit/changes?case=" + c);
  ASSERT_EQ(changes.status, 200U) << changes.body;
  EXPECT_EQ(changes.json().at("changes").as_array().size(), 2U);
  EXPECT_EQ(aud->get("/v1/projects/clinic-a/audit/access?case=nope").status, 400U);
  EXPECT_EQ(aud->get("/v1/projects/clinic-a/audit/changes?from=yesterday").status, 400U);
  EXPECT_EQ(aud->get("/v1/projects/clinic-a/audit/access?to=2026-13-45").status, 400U);
  auto by_auditor = aud->get("/v1/projects/clinic-a/audit/access?user=" + ids_["aud"]);
  EXPECT_EQ(by_auditor.json().at("reads").as_array().size(), 1U) << by_auditor.body;
}

TEST_F(ApiTest, MobileWorkersSeeOnlyTheCasesTheyOwn) {
  auto chw = login("chw");
  auto chw2 = login("chw2");
  ASSERT_TRUE(chw && chw2);
  const std::string mine = uuid();
  const std::string theirs = uuid();
  ASSERT_EQ(chw->post_json("/v1/projects/clinic-a/events",
                           events_body({case_event(uuid(), "case.created", mine, ids_["chw"], {{"a", "1"}})}))
                .status,
            201U);
  ASSERT_EQ(chw2->post_json("/v1/projects/clinic-a/events",
                            events_body({case_event(uuid(), "case.created", theirs, ids_["chw2"], {{"a", "1"}})}))
                .status,
            201U);
  EXPECT_EQ(chw->get("/v1/projects/clinic-a/cases/" + mine).status, 200U);
  auto other = chw->get("/v1/projects/clinic-a/cases/" + theirs);
  EXPECT_EQ(other.status, 404U);
  EXPECT_EQ(other.body.find(theirs), std::string::npos);
  auto list = chw->get("/v1/projects/clinic-a/cases");
  ASSERT_EQ(list.status, 200U);
  ASSERT_EQ(list.json().at("cases").as_array().size(), 1U);
  EXPECT_EQ(list.json().at("cases").as_array()[0].at("case_id").as_string(), mine);
  EXPECT_EQ(chw->get("/v1/projects/clinic-a/cases?owner=" + ids_["chw2"]).status, 403U);
}

TEST_F(ApiTest, CaseListFiltersAndPages) {
  auto sup = login("sup");
  ASSERT_NE(sup, nullptr);
  json::array batch;
  for (int i = 0; i < 7; ++i) {
    batch.push_back(case_event(uuid(), "case.created", uuid(), i < 4 ? ids_["chw"] : ids_["chw2"], {{"i", std::to_string(i)}}));
  }
  ASSERT_EQ(sup->post_json("/v1/projects/clinic-a/events", events_body(batch)).status, 201U);
  std::set<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    auto r = sup->get("/v1/projects/clinic-a/cases?limit=3" + (cursor.empty() ? "" : "&cursor=" + cursor));
    ASSERT_EQ(r.status, 200U) << r.body;
    for (const auto& c : r.json().at("cases").as_array()) seen.insert(std::string(c.at("case_id").as_string()));
    const auto& next = r.json().at("next_cursor");
    cursor = next.is_string() ? std::string(next.as_string()) : "";
    ++pages;
  } while (!cursor.empty() && pages < 10);
  EXPECT_EQ(seen.size(), 7U);
  auto owned = sup->get("/v1/projects/clinic-a/cases?owner=" + ids_["chw"]);
  EXPECT_EQ(owned.json().at("cases").as_array().size(), 4U);
  EXPECT_EQ(sup->get("/v1/projects/clinic-a/cases?open=false").json().at("cases").as_array().size(), 0U);
  EXPECT_EQ(sup->get("/v1/projects/clinic-a/cases?modified_since=2999-01-01T00:00:00Z")
                .json().at("cases").as_array().size(),
            0U);
  EXPECT_EQ(sup->get("/v1/projects/clinic-a/cases?limit=0").status, 400U);
  EXPECT_EQ(sup->get("/v1/projects/clinic-a/cases?open=maybe").status, 400U);
  EXPECT_EQ(sup->get("/v1/projects/clinic-a/cases?modified_since=yesterday").status, 400U);
}

TEST_F(ApiTest, ReportsAnswerJsonOrCsv) {
  auto sup = login("sup");
  auto viewer = login("viewer");
  ASSERT_TRUE(sup && viewer);
  ASSERT_EQ(sup->post_json("/v1/projects/clinic-a/events",
                           events_body({case_event(uuid(), "case.created", uuid(), "team-1", {{"a", "1"}})}))
                .status,
            201U);
  auto as_json = viewer->get("/v1/projects/clinic-a/reports/cases");
  ASSERT_EQ(as_json.status, 200U) << as_json.body;
  const auto& rows = as_json.json().at("rows").as_array();
  ASSERT_EQ(rows.size(), 1U);
  EXPECT_EQ(rows[0].at("owner").as_string(), "team-1");
  auto as_csv = viewer->get("/v1/projects/clinic-a/reports/cases", {{"Accept", "text/csv"}});
  ASSERT_EQ(as_csv.status, 200U);
  EXPECT_NE(as_csv.header("content-type").find("text/csv"), std::string::npos);
  EXPECT_NE(as_csv.body.find("team-1"), std::string::npos);
  EXPECT_EQ(viewer->get("/v1/projects/clinic-a/reports/submissions?from=2026-01-01&to=2026-12-31").status, 200U);
  EXPECT_EQ(viewer->get("/v1/projects/clinic-a/reports/activity").status, 200U);
  EXPECT_EQ(viewer->get("/v1/projects/clinic-a/reports/nope").status, 404U);
  EXPECT_EQ(viewer->get("/v1/projects/clinic-a/reports/submissions?from=May").status, 400U);
}

TEST_F(ApiTest, LedgerEventsAreTheStoredEnvelopesAndHashToTheirLeafHashes) {
  auto sup = login("sup");
  auto aud = login("aud");
  ASSERT_TRUE(sup && aud);
  const std::string secret = "Amina Wanjiru";
  ASSERT_EQ(sup->post_json("/v1/projects/clinic-a/events",
                           events_body({case_event(uuid(), "case.created", uuid(), "t", {{"name", secret}}),
                                        case_event(uuid(), "case.created", uuid(), "t", {{"name", "x"}})}))
                .status,
            201U);
  auto head = aud->get("/v1/projects/clinic-a/ledger/head");
  ASSERT_EQ(head.status, 200U);
  const auto size = head.json().at("size").as_int64();
  ASSERT_EQ(size, 2);
  auto page = aud->get("/v1/projects/clinic-a/ledger/events?from=1&limit=1");
  ASSERT_EQ(page.status, 200U) << page.body;
  EXPECT_EQ(page.json().at("next").as_int64(), 2);
  auto all = aud->get("/v1/projects/clinic-a/ledger/events?from=1&limit=10");
  const auto& events = all.json().at("events").as_array();
  ASSERT_EQ(events.size(), 2U);
  for (const auto& e : events) {
    const std::string b64(e.at("envelope").as_string());
    std::string bytes(b64.size(), '\0');
    std::size_t length = 0;
    ASSERT_EQ(sodium_base642bin(reinterpret_cast<unsigned char*>(bytes.data()), bytes.size(), b64.data(),
                                b64.size(), nullptr, &length, nullptr, sodium_base64_VARIANT_ORIGINAL),
              0);
    bytes.resize(length);
    EXPECT_EQ(bytes.find(secret), std::string::npos);  // Ciphertext only.
    std::string leaf = std::string(1, '\0') + bytes;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(leaf.data()), leaf.size(), digest);
    char hex[65];
    for (int i = 0; i < 32; ++i) std::snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    EXPECT_EQ(std::string(e.at("hash").as_string()), std::string(hex));
  }
  EXPECT_EQ(events[1].at("hash"), head.json().at("head_hash"));
  EXPECT_EQ(all.body.find(secret), std::string::npos);
  EXPECT_EQ(aud->get("/v1/projects/clinic-a/ledger/events?from=0").status, 400U);
  EXPECT_EQ(aud->get("/v1/projects/clinic-a/ledger/events?limit=100000").status, 400U);
}

TEST_F(ApiTest, SyncThenRestoreOntoANewPhone) {
  auto chw = login("chw");
  auto sup = login("sup");
  ASSERT_TRUE(chw && sup);
  const std::string a = uuid();
  const std::string b = uuid();
  const std::string c = uuid();
  ASSERT_EQ(chw->post_json("/v1/projects/clinic-a/events",
                           events_body({case_event(uuid(), "case.created", a, ids_["chw"], {{"v", "1"}}),
                                        case_event(uuid(), "case.created", b, ids_["chw"], {{"v", "1"}}),
                                        case_event(uuid(), "case.created", c, ids_["chw"], {{"v", "1"}})}))
                .status,
            201U);
  auto first = chw->get("/v1/projects/clinic-a/sync");
  ASSERT_EQ(first.status, 200U) << first.body;
  EXPECT_EQ(first.json().at("cases").as_array().size(), 3U);
  const std::string token(first.json().at("token").as_string());
  // Meanwhile: b is closed, c is re-assigned to someone else, a is updated.
  auto reassign = case_event(uuid(), "case.reassigned", c, ids_["chw2"], {});
  ASSERT_EQ(sup->post_json("/v1/projects/clinic-a/events",
                           events_body({case_event(uuid(), "case.updated", a, "", {{"v", "2"}}),
                                        case_event(uuid(), "case.closed", b, "", {}), reassign}))
                .status,
            201U);
  auto next = chw->get("/v1/projects/clinic-a/sync?since=" + token);
  ASSERT_EQ(next.status, 200U) << next.body;
  const auto& changed = next.json().at("cases").as_array();
  ASSERT_EQ(changed.size(), 1U);
  EXPECT_EQ(changed[0].at("case_id").as_string(), a);
  EXPECT_EQ(changed[0].at("fields").at("v").as_string(), "2");
  std::set<std::string> removed;
  for (const auto& id : next.json().at("removed").as_array()) removed.insert(std::string(id.as_string()));
  EXPECT_EQ(removed, (std::set<std::string>{b, c}));
  // A new phone restores exactly the open cases the user owns.
  auto phone2 = login("chw");
  auto restore = phone2->get("/v1/projects/clinic-a/sync");
  ASSERT_EQ(restore.status, 200U);
  ASSERT_EQ(restore.json().at("cases").as_array().size(), 1U);
  EXPECT_EQ(restore.json().at("cases").as_array()[0].at("case_id").as_string(), a);
  EXPECT_TRUE(restore.json().at("removed").as_array().empty());
  EXPECT_EQ(chw->get("/v1/projects/clinic-a/sync?since=999999").status, 409U);
  EXPECT_EQ(chw->get("/v1/projects/clinic-a/sync?since=abc").status, 400U);
  // Every sync that handed out cases is in the access audit.
  auto aud = login("aud");
  auto reads = aud->get("/v1/projects/clinic-a/audit/access?user=" + ids_["chw"]);
  std::size_t syncs = 0;
  for (const auto& r : reads.json().at("reads").as_array()) syncs += r.at("what").as_string() == "sync";
  EXPECT_EQ(syncs, 3U) << reads.body;
}

}  // namespace
}  // namespace trail::testing
