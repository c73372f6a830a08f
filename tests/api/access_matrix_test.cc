// The access model over real HTTP, as a matrix: (user: role and scopes, endpoint) -> the exact
// status and error code, and for every refusal, that the body names nothing of the cases the
// caller may not see (no field value, case id or owner). Then the break-the-glass flow and
// its audit rows, scopes narrowing lists and reports, and role changes ending sessions.
//
// The fixture (AccessMatrixTest) gives clinic-a the unit tree reg-north -> dist-n1, dist-n2,
// case-type levels (household open, tb audited, hiv protected, vault closed), two custom
// roles (visitor: reach own; teamlead: reach unit), scoped users, and one case per situation.
#include <array>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "tests/api/api_fixture.h"

namespace trail::testing {
namespace {

namespace json = boost::json;

const std::string kA = "/v1/projects/clinic-a";
const std::string kB = "/v1/projects/clinic-b";

// One cell of the matrix.
struct Row {
  std::string name;  // "<user> (<role, scope>) x <endpoint>"
  std::string user;  // Who asks (a name the fixture logged in).
  http::verb verb = http::verb::get;
  std::string path;
  std::string body;                   // JSON, or "" for none.
  unsigned status = 0;                // Exactly this.
  std::string code;                   // Error code of a refusal ("" for an allow).
  std::vector<std::string> contains;  // Each must be in the body.
  std::vector<std::string> excludes;  // None may be in the body.
};

std::string to_text(const json::value& v) { return json::serialize(v); }

// A body for a failure message: whole when short, else the part around `at`.
std::string excerpt(const std::string& body, std::size_t at = 0) {
  if (body.size() <= 400) return body;
  const std::size_t from = at > 150 ? at - 150 : 0;
  return "..." + body.substr(from, 300) + "...";
}

std::string events_body(json::array events) {
  return to_text(json::object{{"events", std::move(events)}});
}

json::object created(const std::string& case_id, const std::string& type, const std::string& owner,
                     const std::string& marker) {
  auto e = case_event(uuid(), "case.created", case_id, owner, {{"name", marker}});
  e["case_type"] = type;
  return e;
}

std::string update_body(const std::string& case_id) {
  return events_body({case_event(uuid(), "case.updated", case_id, "", {{"note", "seen"}})});
}

std::string create_body(const std::string& owner) {
  return events_body({created(uuid(), "household", owner, "new case")});
}

std::string reassign_body(const std::string& case_id, const std::string& owner) {
  return events_body({case_event(uuid(), "case.reassigned", case_id, owner, {})});
}

class AccessMatrixTest : public ApiTest {
 protected:
  // The cases of clinic-a, by short name, and the one of clinic-b ("B").
  static inline const std::vector<std::string> kCasesA = {
      "D1", "D2", "REG", "CHW", "CHW2", "SUP", "VIS", "PROT", "PROTBG", "CLOSED", "AUDT"};

  void SetUp() override {
    ApiTest::SetUp();
    if (HasFatalFailure()) return;
    for (const char* name : {"sup1", "sup2", "sup3"}) add_user(name, "clinic-a", "supervisor");
    add_user("vis", "clinic-a", "mobile_worker");
    add_user("lead", "clinic-a", "mobile_worker");
    add_user("padmin1", "clinic-a", "project_admin");
    if (HasFatalFailure()) return;

    auto padmin = login("padmin");
    ASSERT_NE(padmin, nullptr);
    // The unit tree.
    for (const auto& [unit, parent] : std::vector<std::pair<std::string, std::string>>{
             {"reg-north", ""}, {"dist-n1", "reg-north"}, {"dist-n2", "reg-north"}}) {
      json::object body{{"id", unit}, {"name", "Unit " + unit}};
      if (!parent.empty()) body["parent"] = parent;
      auto r = padmin->post_json(kA + "/org-units", body);
      ASSERT_EQ(r.status, 201U) << unit << ": " << r.body;
    }
    // Case-type levels (household stays open).
    for (const auto& [type, level] : std::vector<std::pair<std::string, std::string>>{
             {"tb", "audited"}, {"hiv", "protected"}, {"vault", "closed"}}) {
      auto r = put(*padmin, kA + "/case-types/" + type, json::object{{"access", level}});
      ASSERT_EQ(r.status, 200U) << type << ": " << r.body;
    }
    // Custom roles, given to vis and lead (in place of mobile_worker).
    ASSERT_EQ(
        put(*padmin, kA + "/roles/visitor",
            json::object{{"authorities", json::array{"submit", "view_cases"}}, {"reach", "own"}})
            .status,
        200U);
    ASSERT_EQ(put(*padmin, kA + "/roles/teamlead",
                  json::object{{"authorities", json::array{"submit", "view_cases", "view_reports"}},
                               {"reach", "unit"}})
                  .status,
              200U);
    ASSERT_EQ(put(*padmin, kA + "/users/vis/roles", json::object{{"roles", json::array{"visitor"}}})
                  .status,
              200U);
    ASSERT_EQ(
        put(*padmin, kA + "/users/lead/roles", json::object{{"roles", json::array{"teamlead"}}})
            .status,
        200U);
    // Scopes. Unset (vis, sup, padmin, ...) is the whole project.
    const json::array n1{"dist-n1"};
    const json::array n2{"dist-n2"};
    const std::vector<std::pair<std::string, json::object>> scopes{
        {"chw", {{"capture", n1}}},
        {"chw2", {{"capture", n2}}},
        {"sup1", {{"capture", n1}, {"search", json::array{"reg-north"}}, {"analytics", n1}}},
        {"sup2", {{"capture", n2}, {"search", n2}, {"analytics", n2}}},
        {"sup3", {{"capture", n1}, {"search", "*"}, {"analytics", "*"}}},
        {"lead", {{"capture", n1}, {"analytics", n1}}},
        {"padmin1", {{"capture", n1}, {"search", json::array{"reg-north"}}, {"analytics", n1}}},
    };
    for (const auto& [user, body] : scopes) {
      auto r = put(*padmin, kA + "/users/" + user + "/scopes", body);
      ASSERT_EQ(r.status, 200U) << user << ": " << r.body;
    }
    // One case per situation; the field "name" holds a marker that must never leak.
    const std::vector<std::tuple<std::string, std::string, std::string>> cases{
        {"D1", "household", "dist-n1"},      {"D2", "household", "dist-n2"},
        {"REG", "household", "reg-north"},   {"CHW", "household", ids_["chw"]},
        {"CHW2", "household", ids_["chw2"]}, {"SUP", "household", ids_["sup"]},
        {"VIS", "household", ids_["vis"]},   {"PROT", "hiv", "dist-n2"},
        {"PROTBG", "hiv", "dist-n2"},        {"CLOSED", "vault", "dist-n2"},
        {"AUDT", "tb", "dist-n2"},
    };
    json::array batch;
    for (const auto& [name, type, owner] : cases) {
      case_[name] = uuid();
      marker_[name] = "secret-" + name + "#";
      batch.push_back(created(case_[name], type, owner, marker_[name]));
    }
    auto r = padmin->post(kA + "/events", events_body(std::move(batch)),
                          {{"Content-Type", "application/json"}});
    ASSERT_EQ(r.status, 201U) << r.body;
    auto supb = login("supb");
    ASSERT_NE(supb, nullptr);
    case_["B"] = uuid();
    marker_["B"] = "secret-B#";
    r = supb->post(kB + "/events",
                   events_body({created(case_["B"], "household", ids_["supb"], marker_["B"])}),
                   {{"Content-Type", "application/json"}});
    ASSERT_EQ(r.status, 201U) << r.body;

    // What a refusal must never show: every case id, field marker and owner.
    for (const auto& [name, id] : case_) {
      leaks_.push_back(id);
      leaks_.push_back(marker_[name]);
    }
    for (const char* owner : {"chw", "chw2", "sup", "vis", "supb"}) leaks_.push_back(ids_[owner]);
    for (const char* unit : {"reg-north", "dist-n1", "dist-n2"}) leaks_.push_back(unit);

    for (const char* name : {"chw", "chw2", "sup", "aud", "viewer", "padmin", "supb", "sup1",
                             "sup2", "sup3", "vis", "lead", "padmin1"}) {
      clients_[name] = login(name);
      ASSERT_NE(clients_[name], nullptr) << name;
    }
  }

  static HttpResult put(HttpClient& c, const std::string& path, const json::value& body) {
    return c.request(http::verb::put, path, to_text(body), {{"Content-Type", "application/json"}});
  }

  HttpClient& as(const std::string& name) {
    if (name == "admin") return *admin_;
    auto it = clients_.find(name);
    EXPECT_NE(it, clients_.end()) << name;
    return *it->second;
  }

  static HttpResult send(HttpClient& c, http::verb verb, const std::string& path,
                         const std::string& body) {
    if (body.empty()) return c.request(verb, path, "");
    return c.request(verb, path, body, {{"Content-Type", "application/json"}});
  }

  // Runs each row in order: the exact status and code, and for a refusal, no leak.
  void run(const std::vector<Row>& rows) {
    for (const auto& row : rows) {
      SCOPED_TRACE(row.name);
      auto r = send(as(row.user), row.verb, row.path, row.body);
      EXPECT_EQ(r.status, row.status)
          << std::string(http::to_string(row.verb)) << " " << row.path << " -> " << excerpt(r.body);
      if (row.status >= 400) {
        EXPECT_EQ(r.error_code(), row.code) << excerpt(r.body);
        for (const auto& secret : leaks_) {
          const auto at = r.body.find(secret);
          EXPECT_EQ(at, std::string::npos)
              << "a refusal shows \"" << secret << "\": " << excerpt(r.body, at);
        }
      }
      for (const auto& s : row.contains) {
        EXPECT_NE(r.body.find(s), std::string::npos)
            << "missing \"" << s << "\": " << excerpt(r.body);
      }
      for (const auto& s : row.excludes) {
        const auto at = r.body.find(s);
        EXPECT_EQ(at, std::string::npos) << "shows \"" << s << "\": " << excerpt(r.body, at);
      }
    }
  }

  // The code a refusal with `status` carries unless a row says otherwise.
  static std::string default_code(unsigned status) {
    switch (status) {
      case 404:
        return "not_found";
      case 403:
        return "forbidden";
      case 409:
        return "break_glass_not_needed";
      default:
        return "";
    }
  }

  // A row whose code follows from its status.
  Row row(std::string name, std::string user, http::verb verb, std::string path, std::string body,
          unsigned status, std::vector<std::string> contains = {},
          std::vector<std::string> excludes = {}) {
    Row r{std::move(name),      std::move(user),     verb,
          std::move(path),      std::move(body),     status,
          default_code(status), std::move(contains), std::move(excludes)};
    return r;
  }

  // A GET of a case (or its history) by `user`; a 200 must show the case's marker.
  Row get_case(const std::string& label, const std::string& user, const std::string& c,
               unsigned status, const std::string& code = "", bool history = false) {
    Row r = row(label + " x GET case " + c + (history ? " history" : ""), user, http::verb::get,
                kA + "/cases/" + case_[c] + (history ? "/history" : ""), "", status);
    if (!code.empty()) r.code = code;
    if (status == 200) r.contains = {history ? case_[c] : marker_[c]};
    return r;
  }

  // The case list of `user`: exactly `visible` of clinic-a's fixture cases show.
  Row list_row(const std::string& label, const std::string& user,
               const std::set<std::string>& visible) {
    Row r = row(label + " x GET cases (list)", user, http::verb::get, kA + "/cases?limit=1000", "",
                200);
    for (const auto& c : kCasesA) {
      if (visible.contains(c)) {
        r.contains.push_back(marker_[c]);
      } else {
        r.excludes.push_back(marker_[c]);
        r.excludes.push_back(case_[c]);
      }
    }
    return r;
  }

  // reports/cases of `user`: rows of exactly the owners in `shown` among the fixture's owners.
  Row report_row(const std::string& label, const std::string& user,
                 const std::set<std::string>& shown) {
    Row r =
        row(label + " x GET reports/cases", user, http::verb::get, kA + "/reports/cases", "", 200);
    for (const std::string& owner :
         {std::string("dist-n1"), std::string("dist-n2"), std::string("reg-north"), ids_["chw"],
          ids_["chw2"], ids_["sup"], ids_["vis"]}) {
      (shown.contains(owner) ? r.contains : r.excludes).push_back("\"" + owner + "\"");
    }
    return r;
  }

  std::vector<Row> matrix();

  std::map<std::string, std::string> case_;    // Short name -> case id.
  std::map<std::string, std::string> marker_;  // Short name -> the value of its "name" field.
  std::vector<std::string> leaks_;
  std::map<std::string, std::unique_ptr<HttpClient>> clients_;
};

std::vector<Row> AccessMatrixTest::matrix() {
  std::vector<Row> rows;
  using V = http::verb;

  // ---- Every built-in role x every endpoint (supb: a supervisor of clinic-b, so every
  // clinic-a route is 404 as for a project that does not exist). Unscoped users. ----
  const std::vector<std::string> roles{"chw", "sup", "viewer", "aud", "padmin", "admin", "supb"};
  const std::map<std::string, std::string> role_of{{"chw", "mobile_worker, capture dist-n1"},
                                                   {"sup", "supervisor"},
                                                   {"viewer", "report_viewer"},
                                                   {"aud", "auditor"},
                                                   {"padmin", "project_admin"},
                                                   {"admin", "system_admin"},
                                                   {"supb", "supervisor of clinic-b"}};
  // An endpoint: "METHOD path" under /v1/projects/clinic-a, where {D1} and {PROT} stand for
  // those cases' ids and {me} for the caller's name; the body for a caller; the status
  // expected for each caller, in the order of `roles`.
  struct Endpoint {
    std::string name;
    std::array<unsigned, 7> expect;
    std::function<std::string(const std::string& user)> body;
  };
  const auto none = [](const std::string&) { return std::string(); };
  const auto constant = [](json::value v) {
    return [text = to_text(v)](const std::string&) { return text; };
  };
  const auto update_d1 = [this](const std::string&) { return update_body(case_["D1"]); };
  const auto unit = [](const std::string& user) {
    return to_text(json::object{{"id", "unit-" + user}, {"name", "U"}, {"parent", "reg-north"}});
  };
  const auto scopes = constant(json::object{{"analytics", "*"}});
  const auto same_roles = constant(json::object{{"roles", json::array{"report_viewer"}}});
  const auto clerk =
      constant(json::object{{"authorities", json::array{"view_reports"}}, {"reach", "scope"}});
  const auto open = constant(json::object{{"access", "open"}});
  const auto policy = constant(json::object{{"break_glass_minutes", 60}});
  const auto reason = constant(json::object{{"reason", "matrix"}});
  // clang-format off
  const std::vector<Endpoint> endpoints{
      // endpoint                       chw  sup  view aud  padm admn supb
      {"GET /cases/{D1}",              {404, 200, 403, 403, 200, 200, 404}, none},
      {"GET /cases/{D1}/history",      {404, 200, 403, 403, 200, 200, 404}, none},
      {"GET /cases",                   {200, 200, 403, 403, 200, 200, 404}, none},
      {"GET /reports/cases",           {403, 200, 200, 403, 200, 200, 404}, none},
      {"GET /audit/changes",           {403, 403, 403, 200, 200, 200, 404}, none},
      {"GET /audit/access",            {403, 403, 403, 200, 200, 200, 404}, none},
      {"GET /audit/security",          {403, 403, 403, 200, 200, 200, 404}, none},
      {"GET /ledger/head",             {403, 403, 403, 200, 403, 200, 404}, none},
      {"POST /events",                 {201, 201, 403, 403, 201, 201, 404}, update_d1},
      {"GET /sync",                    {200, 200, 403, 403, 200, 200, 404}, none},
      {"POST /org-units",              {403, 403, 403, 403, 201, 201, 404}, unit},
      {"PUT /users/aud/scopes",        {403, 403, 403, 403, 200, 200, 404}, scopes},
      {"PUT /users/viewer/roles",      {403, 403, 403, 403, 200, 200, 404}, same_roles},
      {"PUT /roles/clerk-{me}",        {403, 403, 403, 403, 200, 200, 404}, clerk},
      {"PUT /case-types/misc",         {403, 403, 403, 403, 200, 200, 404}, open},
      {"GET /policy",                  {403, 403, 403, 403, 200, 200, 404}, none},
      {"PUT /policy",                  {403, 403, 403, 403, 200, 200, 404}, policy},
      {"POST /cases/{PROT}/break-glass", {404, 409, 403, 403, 409, 409, 404}, reason},
  };
  // clang-format on
  // The verb and full path of `e` for `user`.
  const auto target = [this](const Endpoint& e, const std::string& user) {
    const auto space = e.name.find(' ');
    const V verb = e.name.starts_with("GET")   ? V::get
                   : e.name.starts_with("PUT") ? V::put
                                               : V::post;
    std::string path = kA + e.name.substr(space + 1);
    for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
             {"{D1}", case_["D1"]}, {"{PROT}", case_["PROT"]}, {"{me}", user}}) {
      if (const auto at = path.find(key); at != std::string::npos) {
        path.replace(at, key.size(), value);
      }
    }
    return std::pair{verb, path};
  };
  for (const auto& e : endpoints) {
    for (std::size_t i = 0; i < roles.size(); ++i) {
      const std::string& user = roles[i];
      const auto [verb, path] = target(e, user);
      Row r = row(user + " (" + role_of.at(user) + ") x " + e.name, user, verb, path, e.body(user),
                  e.expect[i]);
      if (r.status == 200 && e.name == "GET /cases/{D1}") r.contains = {marker_["D1"]};
      if (e.name == "GET /cases" && r.status == 200) {
        // A mobile worker lists only its own cases; the others every fixture case.
        if (user == "chw") {
          r.contains = {marker_["CHW"]};
          r.excludes = {marker_["D1"], marker_["CHW2"], case_["D1"], case_["CHW2"]};
        } else {
          r.contains = {marker_["D1"], marker_["PROT"], marker_["CLOSED"], marker_["SUP"]};
        }
      }
      if (e.name == "GET /sync" && user == "chw") {
        r.contains = {marker_["CHW"]};
        r.excludes = {marker_["D1"], marker_["CHW2"]};
      }
      rows.push_back(std::move(r));
    }
  }
  // A mobile worker's own case and a colleague's.
  rows.push_back(get_case("chw", "chw", "CHW", 200));
  rows.push_back(get_case("chw", "chw", "CHW", 200, "", true));
  rows.push_back(get_case("chw", "chw", "CHW2", 404));
  rows.push_back(get_case("chw2", "chw2", "CHW", 404));
  rows.push_back(row("chw x POST events (update CHW2, a colleague's case)", "chw", V::post,
                     kA + "/events", update_body(case_["CHW2"]), 404));
  rows.push_back(row("chw x POST events (update D2, outside capture)", "chw", V::post,
                     kA + "/events", update_body(case_["D2"]), 404));
  {
    Row r = row("chw x POST events (create owned by dist-n2)", "chw", V::post, kA + "/events",
                create_body("dist-n2"), 403);
    r.code = "outside_capture_scope";
    rows.push_back(std::move(r));
  }
  rows.push_back(row("chw x POST events (update CHW, its own)", "chw", V::post, kA + "/events",
                     update_body(case_["CHW"]), 201));

  // ---- Cross-project. ----
  rows.push_back(row("supb x GET clinic-b case B", "supb", V::get, kB + "/cases/" + case_["B"], "",
                     200, {marker_["B"]}));
  rows.push_back(row("supb x GET clinic-b/cases/{D1} (a clinic-a case id)", "supb", V::get,
                     kB + "/cases/" + case_["D1"], "", 404));
  rows.push_back(row("sup x GET clinic-a/cases/{B} (a clinic-b case id)", "sup", V::get,
                     kA + "/cases/" + case_["B"], "", 404));
  rows.push_back(
      row("sup x GET clinic-b/cases/{B}", "sup", V::get, kB + "/cases/" + case_["B"], "", 404));
  rows.push_back(row("sup x POST clinic-b/events", "sup", V::post, kB + "/events",
                     update_body(case_["B"]), 404));
  rows.push_back(row("padmin x GET clinic-b/policy", "padmin", V::get, kB + "/policy", "", 404));
  rows.push_back(row("sup x GET nope/cases (no such project)", "sup", V::get,
                     "/v1/projects/nope/cases", "", 404));
  rows.push_back(row("admin x GET clinic-b case B", "admin", V::get, kB + "/cases/" + case_["B"],
                     "", 200, {marker_["B"]}));

  // ---- Scoped supervisor sup1: capture dist-n1, search reg-north (the whole tree), analytics
  // dist-n1. ----
  const std::string s1 = "sup1 (capture n1, search region)";
  rows.push_back(get_case(s1, "sup1", "D1", 200));
  rows.push_back(get_case(s1, "sup1", "D2", 200));
  rows.push_back(get_case(s1, "sup1", "REG", 200));
  rows.push_back(get_case(s1, "sup1", "CHW", 200));
  rows.push_back(get_case(s1, "sup1", "CHW2", 200));
  rows.push_back(get_case(s1, "sup1", "SUP", 404));  // Owner with a whole-project scope: nowhere.
  rows.push_back(get_case(s1, "sup1", "VIS", 404));
  rows.push_back(get_case(s1, "sup1", "PROT", 403, "break_glass_required"));
  rows.push_back(get_case(s1, "sup1", "PROT", 403, "break_glass_required", true));
  rows.push_back(get_case(s1, "sup1", "CLOSED", 404));
  rows.push_back(get_case(s1, "sup1", "CLOSED", 404, "", true));
  rows.push_back(get_case(s1, "sup1", "AUDT", 200));
  rows.push_back(get_case(s1, "sup1", "D2", 200, "", true));
  rows.push_back(list_row(s1, "sup1", {"D1", "D2", "REG", "CHW", "CHW2", "AUDT"}));
  rows.push_back(row(s1 + " x POST events (update D1, in capture)", "sup1", V::post, kA + "/events",
                     update_body(case_["D1"]), 201));
  rows.push_back(row(s1 + " x POST events (update CHW, in capture)", "sup1", V::post,
                     kA + "/events", update_body(case_["CHW"]), 201));
  for (const char* c : {"D2", "CHW2", "PROT", "AUDT"}) {
    Row r = row(s1 + " x POST events (update " + c + ", search only)", "sup1", V::post,
                kA + "/events", update_body(case_[c]), 403);
    r.code = "outside_capture_scope";
    rows.push_back(std::move(r));
  }
  rows.push_back(row(s1 + " x POST events (update CLOSED, hidden)", "sup1", V::post, kA + "/events",
                     update_body(case_["CLOSED"]), 404));
  rows.push_back(row(s1 + " x POST events (update SUP, hidden)", "sup1", V::post, kA + "/events",
                     update_body(case_["SUP"]), 404));
  {
    Row r = row(s1 + " x POST events (create owned by dist-n2)", "sup1", V::post, kA + "/events",
                create_body("dist-n2"), 403);
    r.code = "outside_capture_scope";
    rows.push_back(std::move(r));
    Row r2 = row(s1 + " x POST events (reassign D1 to dist-n2)", "sup1", V::post, kA + "/events",
                 reassign_body(case_["D1"], "dist-n2"), 403);
    r2.code = "outside_capture_scope";
    rows.push_back(std::move(r2));
    Row r3 = row(s1 + " x POST events (reassign D1 to chw2)", "sup1", V::post, kA + "/events",
                 reassign_body(case_["D1"], ids_["chw2"]), 403);
    r3.code = "outside_capture_scope";
    rows.push_back(std::move(r3));
  }
  rows.push_back(report_row(s1, "sup1", {"dist-n1", ids_["chw"]}));
  rows.push_back(row(s1 + " x POST break-glass (PROTBG)", "sup1", V::post,
                     kA + "/cases/" + case_["PROTBG"] + "/break-glass",
                     to_text(json::object{{"reason", "matrix"}}), 201, {"grant_id", "expires_at"}));
  rows.push_back(row(s1 + " x POST break-glass (CLOSED)", "sup1", V::post,
                     kA + "/cases/" + case_["CLOSED"] + "/break-glass",
                     to_text(json::object{{"reason", "matrix"}}), 404));
  rows.push_back(row(s1 + " x POST break-glass (D2, open)", "sup1", V::post,
                     kA + "/cases/" + case_["D2"] + "/break-glass",
                     to_text(json::object{{"reason", "matrix"}}), 409));
  rows.push_back(row(s1 + " x POST break-glass (random id)", "sup1", V::post,
                     kA + "/cases/" + uuid() + "/break-glass",
                     to_text(json::object{{"reason", "matrix"}}), 404));

  // ---- Scoped supervisor sup2: capture = search = analytics = dist-n2. ----
  const std::string s2 = "sup2 (n2 only)";
  rows.push_back(get_case(s2, "sup2", "D1", 404));
  rows.push_back(get_case(s2, "sup2", "D1", 404, "", true));
  rows.push_back(get_case(s2, "sup2", "REG", 404));  // A parent unit is not inside its child.
  rows.push_back(get_case(s2, "sup2", "CHW", 404));
  rows.push_back(get_case(s2, "sup2", "D2", 200));
  rows.push_back(get_case(s2, "sup2", "CHW2", 200));
  rows.push_back(get_case(s2, "sup2", "PROT", 200));    // Inside capture: no glass to break.
  rows.push_back(get_case(s2, "sup2", "CLOSED", 200));  // Inside capture.
  rows.push_back(get_case(s2, "sup2", "AUDT", 200));
  rows.push_back(list_row(s2, "sup2", {"D2", "CHW2", "PROT", "PROTBG", "CLOSED", "AUDT"}));
  rows.push_back(row(s2 + " x POST events (update D1, unknown to it)", "sup2", V::post,
                     kA + "/events", update_body(case_["D1"]), 404));
  rows.push_back(row(s2 + " x POST events (update CHW, unknown to it)", "sup2", V::post,
                     kA + "/events", update_body(case_["CHW"]), 404));
  rows.push_back(row(s2 + " x POST events (update D2)", "sup2", V::post, kA + "/events",
                     update_body(case_["D2"]), 201));
  {
    Row r = row(s2 + " x POST events (reassign D2 to dist-n1)", "sup2", V::post, kA + "/events",
                reassign_body(case_["D2"], "dist-n1"), 403);
    r.code = "outside_capture_scope";
    rows.push_back(std::move(r));
  }
  rows.push_back(report_row(s2, "sup2", {"dist-n2", ids_["chw2"]}));
  rows.push_back(row(s2 + " x POST break-glass (D1, hidden)", "sup2", V::post,
                     kA + "/cases/" + case_["D1"] + "/break-glass",
                     to_text(json::object{{"reason", "matrix"}}), 404));
  rows.push_back(row(s2 + " x POST break-glass (PROT, in capture)", "sup2", V::post,
                     kA + "/cases/" + case_["PROT"] + "/break-glass",
                     to_text(json::object{{"reason", "matrix"}}), 409));

  // ---- sup3: capture dist-n1, search the whole project. ----
  const std::string s3 = "sup3 (capture n1, search *)";
  rows.push_back(
      get_case(s3, "sup3", "SUP", 200));  // Sits nowhere: whole-project search reaches it.
  rows.push_back(get_case(s3, "sup3", "VIS", 200));
  rows.push_back(get_case(s3, "sup3", "PROT", 403, "break_glass_required"));
  rows.push_back(get_case(s3, "sup3", "CLOSED", 404));
  rows.push_back(list_row(s3, "sup3", {"D1", "D2", "REG", "CHW", "CHW2", "SUP", "VIS", "AUDT"}));
  {
    Row r = row(s3 + " x POST events (update SUP)", "sup3", V::post, kA + "/events",
                update_body(case_["SUP"]), 403);
    r.code = "outside_capture_scope";
    rows.push_back(std::move(r));
  }

  // ---- Custom role with reach own: vis (visitor = submit + view_cases), unscoped. ----
  const std::string cv = "vis (custom, reach own)";
  rows.push_back(get_case(cv, "vis", "VIS", 200));
  rows.push_back(get_case(cv, "vis", "D1", 404));
  rows.push_back(get_case(cv, "vis", "D1", 404, "", true));
  rows.push_back(get_case(cv, "vis", "SUP", 404));
  rows.push_back(list_row(cv, "vis", {"VIS"}));
  rows.push_back(
      row(cv + " x GET cases?owner=dist-n1", "vis", V::get, kA + "/cases?owner=dist-n1", "", 403));
  rows.push_back(row(cv + " x GET sync", "vis", V::get, kA + "/sync", "", 200, {marker_["VIS"]},
                     {marker_["D1"]}));
  rows.push_back(row(cv + " x GET reports/cases", "vis", V::get, kA + "/reports/cases", "", 403));
  rows.push_back(row(cv + " x GET audit/access", "vis", V::get, kA + "/audit/access", "", 403));
  rows.push_back(row(cv + " x POST break-glass (PROT)", "vis", V::post,
                     kA + "/cases/" + case_["PROT"] + "/break-glass",
                     to_text(json::object{{"reason", "matrix"}}), 404));
  rows.push_back(row(cv + " x POST org-units", "vis", V::post, kA + "/org-units",
                     to_text(json::object{{"id", "unit-vis"}, {"name", "U"}}), 403));

  // ---- Custom role with reach unit: lead (teamlead = submit + view_cases + view_reports),
  // capture dist-n1; its search scope (whole project) does not widen a unit reach. ----
  const std::string cl = "lead (custom, reach unit, capture n1)";
  rows.push_back(get_case(cl, "lead", "D1", 200));
  rows.push_back(get_case(cl, "lead", "CHW", 200));
  rows.push_back(get_case(cl, "lead", "CHW", 200, "", true));
  rows.push_back(get_case(cl, "lead", "D2", 404));
  rows.push_back(get_case(cl, "lead", "D2", 404, "", true));
  rows.push_back(get_case(cl, "lead", "REG", 404));
  rows.push_back(get_case(cl, "lead", "AUDT", 404));
  rows.push_back(get_case(cl, "lead", "SUP", 404));
  rows.push_back(list_row(cl, "lead", {"D1", "CHW"}));
  rows.push_back(row(cl + " x POST events (update D1)", "lead", V::post, kA + "/events",
                     update_body(case_["D1"]), 201));
  rows.push_back(row(cl + " x POST events (update D2)", "lead", V::post, kA + "/events",
                     update_body(case_["D2"]), 404));
  rows.push_back(row(cl + " x POST events (create owned by dist-n1)", "lead", V::post,
                     kA + "/events", create_body("dist-n1"), 201));
  {
    Row r = row(cl + " x POST events (create owned by dist-n2)", "lead", V::post, kA + "/events",
                create_body("dist-n2"), 403);
    r.code = "outside_capture_scope";
    rows.push_back(std::move(r));
  }
  rows.push_back(report_row(cl, "lead", {"dist-n1", ids_["chw"]}));
  rows.push_back(row(cl + " x GET audit/access", "lead", V::get, kA + "/audit/access", "", 403));
  rows.push_back(row(cl + " x POST break-glass (PROT)", "lead", V::post,
                     kA + "/cases/" + case_["PROT"] + "/break-glass",
                     to_text(json::object{{"reason", "matrix"}}), 404));

  // ---- A scoped project admin (capture dist-n1, search reg-north) holds view_audit. ----
  const std::string pa1 = "padmin1 (project_admin, capture n1, search region)";
  rows.push_back(get_case(pa1, "padmin1", "D2", 200));
  rows.push_back(get_case(pa1, "padmin1", "PROT", 403, "break_glass_required"));
  rows.push_back(get_case(pa1, "padmin1", "PROT", 403, "break_glass_required", true));
  rows.push_back(get_case(pa1, "padmin1", "CLOSED", 404));
  rows.push_back(get_case(pa1, "padmin1", "CLOSED", 404, "", true));
  // [server bug] audit/changes answers every change of the project with its values, whatever
  // the caller's scopes and the case-type levels: the values of a protected case (no glass
  // broken) and of a closed one outside capture, which GET .../history refuses above.
  rows.push_back(
      row("[server bug] " + pa1 + " x GET audit/changes shows no protected or closed values",
          "padmin1", V::get, kA + "/audit/changes", "", 200, {marker_["D2"]},
          {marker_["PROT"], marker_["PROTBG"], marker_["CLOSED"]}));

  // ---- No one hands out authorities they lack. ----
  rows.push_back(row("padmin x PUT users/viewer/roles [auditor] (verify_ledger it lacks)", "padmin",
                     V::put, kA + "/users/viewer/roles",
                     to_text(json::object{{"roles", json::array{"auditor"}}}), 403));
  rows.push_back(row(
      "padmin x PUT roles/superaud with verify_ledger", "padmin", V::put, kA + "/roles/superaud",
      to_text(json::object{{"authorities", json::array{"view_audit", "verify_ledger"}}}), 403));

  // ---- The project now keeps superusers out: the system admin is no member of it. ----
  rows.push_back(row("padmin x PUT policy restrict_superusers=true", "padmin", V::put,
                     kA + "/policy", to_text(json::object{{"restrict_superusers", true}}), 200,
                     {"\"restrict_superusers\":true"}));
  for (const auto& e : endpoints) {
    const auto [verb, path] = target(e, "admin2");
    rows.push_back(row("admin (restricted superuser) x " + e.name, "admin", verb, path,
                       e.body("admin2"), 404));
  }
  rows.push_back(row("admin (restricted superuser) x PUT users/admin/roles [project_admin]",
                     "admin", V::put, kA + "/users/admin/roles",
                     to_text(json::object{{"roles", json::array{"project_admin"}}}), 404));
  rows.push_back(row("admin (restricted superuser) x GET clinic-b case B (not restricted)", "admin",
                     V::get, kB + "/cases/" + case_["B"], "", 200, {marker_["B"]}));
  // [server bug] GET /v1/projects still lists the project the admin is kept out of
  // (projects_list calls member_of() without the project record).
  rows.push_back(
      row("[server bug] admin (restricted superuser) x GET /v1/projects lists no clinic-a", "admin",
          V::get, "/v1/projects", "", 200, {"clinic-b"}, {"clinic-a"}));
  rows.push_back(get_case("sup (member, after the restriction)", "sup", "D1", 200));
  rows.push_back(row("padmin x GET policy (after the restriction)", "padmin", V::get,
                     kA + "/policy", "", 200, {"\"restrict_superusers\":true"}));

  // ---- The project now requires two-factor log-in; nobody here logged in with one. ----
  rows.push_back(row("padmin x PUT policy require_2fa=true", "padmin", V::put, kA + "/policy",
                     to_text(json::object{{"require_2fa", true}}), 200, {"\"require_2fa\":true"}));
  const auto totp = [&](const std::string& label, const std::string& user, V verb,
                        const std::string& path, const std::string& body) {
    Row r = row(label + " (no second factor, 2FA required)", user, verb, path, body, 403);
    r.code = "totp_required";
    rows.push_back(std::move(r));
  };
  totp("sup x GET case D1", "sup", V::get, kA + "/cases/" + case_["D1"], "");
  totp("sup x GET cases (list)", "sup", V::get, kA + "/cases", "");
  totp("chw x GET sync", "chw", V::get, kA + "/sync", "");
  totp("chw x POST events", "chw", V::post, kA + "/events", update_body(case_["CHW"]));
  totp("aud x GET audit/access", "aud", V::get, kA + "/audit/access", "");
  totp("viewer x GET reports/cases", "viewer", V::get, kA + "/reports/cases", "");
  totp("padmin x GET policy", "padmin", V::get, kA + "/policy", "");
  totp("sup1 x POST break-glass (PROT)", "sup1", V::post,
       kA + "/cases/" + case_["PROT"] + "/break-glass",
       to_text(json::object{{"reason", "matrix"}}));
  rows.push_back(row("admin (restricted) x GET case D1 (2FA required)", "admin", V::get,
                     kA + "/cases/" + case_["D1"], "", 404));
  rows.push_back(row("supb x GET clinic-a case D1 (2FA required)", "supb", V::get,
                     kA + "/cases/" + case_["D1"], "", 404));
  rows.push_back(row("supb x GET clinic-b case B (clinic-b needs no 2FA)", "supb", V::get,
                     kB + "/cases/" + case_["B"], "", 200, {marker_["B"]}));
  return rows;
}

TEST_F(AccessMatrixTest, MatrixOfRolesScopesAndEndpoints) {
  const auto rows = matrix();
  std::cout << "[ MATRIX   ] " << rows.size() << " (user, scope, endpoint) rows\n";
  RecordProperty("matrix_rows", static_cast<int>(rows.size()));
  EXPECT_GE(rows.size(), 60U);
  run(rows);
}

// Protected: refused until the glass is broken, then read with the grant on record; the grant
// is the breaker's alone. Closed: hidden outside capture. Audited: read, flagged.
TEST_F(AccessMatrixTest, BreakTheGlassFlowIsAuditedAndPersonal) {
  auto& sup1 = as("sup1");
  auto& aud = as("aud");
  const std::string prot = kA + "/cases/" + case_["PROT"];

  auto refused = sup1.get(prot);
  ASSERT_EQ(refused.status, 403U) << refused.body;
  EXPECT_EQ(refused.error_code(), "break_glass_required");
  EXPECT_EQ(refused.body.find(marker_["PROT"]), std::string::npos);
  EXPECT_EQ(sup1.get(prot + "/history").error_code(), "break_glass_required");
  EXPECT_EQ(sup1.post_json(prot + "/break-glass", json::object{{"reason", ""}}).status, 400U);
  EXPECT_EQ(sup1.post_json(prot + "/break-glass", json::object{{"why", "x"}}).status, 400U);

  const std::string reason = "patient unconscious in ER, next of kin unknown";
  auto grant = sup1.post_json(prot + "/break-glass", json::object{{"reason", reason}});
  ASSERT_EQ(grant.status, 201U) << grant.body;
  const std::string grant_id(grant.json().at("grant_id").as_string());
  const std::string expires(grant.json().at("expires_at").as_string());
  EXPECT_FALSE(expires.empty());

  auto read = sup1.get(prot);
  ASSERT_EQ(read.status, 200U) << read.body;
  EXPECT_EQ(read.json().at("fields").at("name").as_string(), marker_["PROT"]);
  EXPECT_EQ(sup1.get(prot + "/history").status, 200U);
  // Still not listed: a list shows what the caller reads without breaking the glass.
  auto list = sup1.get(kA + "/cases?limit=1000");
  ASSERT_EQ(list.status, 200U);
  EXPECT_EQ(list.body.find(case_["PROT"]), std::string::npos);

  // The grant is sup1's: sup3 (same capture, search everything) is still refused.
  auto other = as("sup3").get(prot);
  EXPECT_EQ(other.status, 403U) << other.body;
  EXPECT_EQ(other.error_code(), "break_glass_required");
  // A mobile worker may not even learn the case exists.
  auto chw = as("chw").post_json(prot + "/break-glass", json::object{{"reason", reason}});
  EXPECT_EQ(chw.status, 404U) << chw.body;

  // The access audit: the break_glass row (with its reason, for the auditor), then the reads
  // relying on it, flagged and naming the grant.
  auto access = aud.get(kA + "/audit/access?case=" + case_["PROT"]);
  ASSERT_EQ(access.status, 200U) << access.body;
  std::size_t glass = 0;
  std::size_t granted_reads = 0;
  for (const auto& v : access.json().at("reads").as_array()) {
    const auto& r = v.as_object();
    if (r.at("what").as_string() == "break_glass") {
      ++glass;
      EXPECT_EQ(r.at("reader").as_string(), ids_["sup1"]);
      EXPECT_EQ(r.at("event_id").as_string(), grant_id);
      EXPECT_EQ(r.at("reason").as_string(), reason);
      EXPECT_EQ(r.at("expires_at").as_string(), expires);
      EXPECT_EQ(r.at("address").as_string(), "127.0.0.1");
      ASSERT_EQ(r.at("subjects").as_array().size(), 1U);
      EXPECT_EQ(r.at("subjects").as_array()[0].as_string(), case_["PROT"]);
    } else {
      EXPECT_EQ(r.at("reader").as_string(), ids_["sup1"]) << to_text(r);  // Refusals read nothing.
      EXPECT_TRUE(r.at("outside_capture").as_bool()) << to_text(r);
      ASSERT_TRUE(r.contains("grant")) << to_text(r);
      EXPECT_EQ(r.at("grant").as_string(), grant_id);
      EXPECT_FALSE(r.contains("expires_at")) << to_text(r);
      ++granted_reads;
    }
  }
  EXPECT_EQ(glass, 1U) << access.body;
  EXPECT_EQ(granted_reads, 2U) << access.body;  // The case and its history.

  // Closed: outside capture it does not exist, and no glass can be broken.
  auto random = sup1.get(kA + "/cases/" + uuid());
  auto closed = sup1.get(kA + "/cases/" + case_["CLOSED"]);
  EXPECT_EQ(closed.status, 404U);
  EXPECT_EQ(closed.body, random.body);
  EXPECT_EQ(sup1.post_json(kA + "/cases/" + case_["CLOSED"] + "/break-glass",
                           json::object{{"reason", reason}})
                .status,
            404U);
  EXPECT_EQ(as("sup2").get(kA + "/cases/" + case_["CLOSED"]).status, 200U);  // Inside capture.

  // Audited: read outside capture (sup1), flagged; inside capture (sup2), not.
  ASSERT_EQ(sup1.get(kA + "/cases/" + case_["AUDT"]).status, 200U);
  ASSERT_EQ(as("sup2").get(kA + "/cases/" + case_["AUDT"]).status, 200U);
  auto audited = aud.get(kA + "/audit/access?case=" + case_["AUDT"]);
  ASSERT_EQ(audited.status, 200U);
  std::map<std::string, bool> flagged;
  for (const auto& v : audited.json().at("reads").as_array()) {
    EXPECT_FALSE(v.as_object().contains("grant")) << to_text(v);
    flagged[std::string(v.at("reader").as_string())] = v.at("outside_capture").as_bool();
  }
  EXPECT_EQ(flagged, (std::map<std::string, bool>{{ids_["sup1"], true}, {ids_["sup2"], false}}))
      << audited.body;
  // A list holding an audited case outside capture is a flagged search read.
  ASSERT_EQ(sup1.get(kA + "/cases?type=tb").status, 200U);
  auto searches = aud.get(kA + "/audit/access?user=" + ids_["sup1"]);
  bool flagged_search = false;
  for (const auto& v : searches.json().at("reads").as_array()) {
    flagged_search = flagged_search ||
                     (v.at("what").as_string() == "search" && v.at("outside_capture").as_bool());
  }
  EXPECT_TRUE(flagged_search) << searches.body;
}

// The case ids a user's list shows (every page).
std::set<std::string> listed(HttpClient& c, const std::string& query = "") {
  std::set<std::string> out;
  auto r = c.get(kA + "/cases?limit=1000" + query);
  EXPECT_EQ(r.status, 200U) << r.body;
  if (r.status != 200U) return out;
  EXPECT_TRUE(r.json().at("next_cursor").is_null());
  for (const auto& v : r.json().at("cases").as_array()) {
    out.insert(std::string(v.at("case_id").as_string()));
  }
  return out;
}

// The owners of a user's reports/cases rows.
std::set<std::string> report_owners(HttpClient& c) {
  std::set<std::string> out;
  auto r = c.get(kA + "/reports/cases");
  EXPECT_EQ(r.status, 200U) << r.body;
  if (r.status != 200U) return out;
  for (const auto& v : r.json().at("rows").as_array()) {
    out.insert(std::string(v.at("owner").as_string()));
  }
  return out;
}

TEST_F(AccessMatrixTest, ScopesNarrowListsAndReports) {
  const auto ids = [&](std::initializer_list<const char*> names) {
    std::set<std::string> out;
    for (const char* n : names) out.insert(case_[n]);
    return out;
  };
  EXPECT_EQ(listed(as("sup")), ids({"D1", "D2", "REG", "CHW", "CHW2", "SUP", "VIS", "PROT",
                                    "PROTBG", "CLOSED", "AUDT"}));
  EXPECT_EQ(listed(as("sup1")), ids({"D1", "D2", "REG", "CHW", "CHW2", "AUDT"}));
  EXPECT_EQ(listed(as("sup2")), ids({"D2", "CHW2", "PROT", "PROTBG", "CLOSED", "AUDT"}));
  EXPECT_EQ(listed(as("sup3")), ids({"D1", "D2", "REG", "CHW", "CHW2", "SUP", "VIS", "AUDT"}));
  EXPECT_EQ(listed(as("lead")), ids({"D1", "CHW"}));
  EXPECT_EQ(listed(as("chw")), ids({"CHW"}));
  EXPECT_EQ(listed(as("vis")), ids({"VIS"}));
  // Filters narrow within the scope, never past it.
  EXPECT_EQ(listed(as("sup1"), "&owner=dist-n2"), ids({"D2", "AUDT"}));
  EXPECT_EQ(listed(as("sup2"), "&owner=dist-n1"), ids({}));
  EXPECT_EQ(listed(as("sup2"), "&type=hiv"), ids({"PROT", "PROTBG"}));
  // Small pages of a narrowed list still hold every case in scope.
  {
    std::set<std::string> seen;
    std::string cursor;
    for (int page = 0; page < 20; ++page) {
      auto r = as("sup2").get(kA + "/cases?limit=2" + (cursor.empty() ? "" : "&cursor=" + cursor));
      ASSERT_EQ(r.status, 200U) << r.body;
      for (const auto& v : r.json().at("cases").as_array()) {
        seen.insert(std::string(v.at("case_id").as_string()));
      }
      const auto& next = r.json().at("next_cursor");
      if (!next.is_string()) break;
      cursor = std::string(next.as_string());
    }
    EXPECT_EQ(seen, ids({"D2", "CHW2", "PROT", "PROTBG", "CLOSED", "AUDT"}));
  }

  // Reports: rows only of owners inside the analytics scope (a user-owned row sits at the
  // user's capture units; a user with a whole-project capture scope sits nowhere).
  const std::string chw = ids_["chw"];
  const std::string chw2 = ids_["chw2"];
  using S = std::set<std::string>;
  EXPECT_EQ(report_owners(as("viewer")),
            (S{"dist-n1", "dist-n2", "reg-north", chw, chw2, ids_["sup"], ids_["vis"]}));
  EXPECT_EQ(report_owners(as("sup1")), (S{"dist-n1", chw}));
  EXPECT_EQ(report_owners(as("sup2")), (S{"dist-n2", chw2}));
  EXPECT_EQ(report_owners(as("lead")), (S{"dist-n1", chw}));
  auto padmin = login("padmin");
  ASSERT_NE(padmin, nullptr);
  ASSERT_EQ(put(*padmin, kA + "/users/viewer/scopes",
                json::object{{"analytics", json::array{"reg-north"}}})
                .status,
            200U);
  EXPECT_EQ(report_owners(as("viewer")), (S{"dist-n1", "dist-n2", "reg-north", chw, chw2}));
  ASSERT_EQ(
      put(*padmin, kA + "/users/viewer/scopes", json::object{{"analytics", json::array{"dist-n2"}}})
          .status,
      200U);
  EXPECT_EQ(report_owners(as("viewer")), (S{"dist-n2", chw2}));
  auto csv = as("viewer").get(kA + "/reports/cases", {{"Accept", "text/csv"}});
  ASSERT_EQ(csv.status, 200U);
  EXPECT_NE(csv.body.find("dist-n2"), std::string::npos) << csv.body;
  EXPECT_EQ(csv.body.find("dist-n1"), std::string::npos) << csv.body;
  EXPECT_EQ(csv.body.find(chw + ","), std::string::npos) << csv.body;

  // Moving a worker moves its cases: chw now captures in dist-n2.
  ASSERT_EQ(
      put(*padmin, kA + "/users/chw/scopes", json::object{{"capture", json::array{"dist-n2"}}})
          .status,
      200U);
  EXPECT_EQ(listed(as("sup2")), ids({"D2", "CHW", "CHW2", "PROT", "PROTBG", "CLOSED", "AUDT"}));
  EXPECT_EQ(listed(as("lead")), ids({"D1"}));
  EXPECT_EQ(as("lead").get(kA + "/cases/" + case_["CHW"]).status, 404U);
  EXPECT_EQ(report_owners(as("sup1")), (S{"dist-n1"}));
  auto append = as("sup1").post(kA + "/events", update_body(case_["CHW"]),
                                {{"Content-Type", "application/json"}});
  EXPECT_EQ(append.status, 403U) << append.body;  // Still searchable, no longer capturable.
  EXPECT_EQ(append.error_code(), "outside_capture_scope");
  // A scope naming an unknown unit is refused, and changes nothing.
  auto bad =
      put(*padmin, kA + "/users/sup2/scopes", json::object{{"search", json::array{"nowhere"}}});
  EXPECT_EQ(bad.status, 400U) << bad.body;
  EXPECT_EQ(listed(as("sup2")), ids({"D2", "CHW", "CHW2", "PROT", "PROTBG", "CLOSED", "AUDT"}));
}

TEST_F(AccessMatrixTest, ReplacingRolesEndsSessionsAndCannotEscalate) {
  auto padmin = login("padmin");
  ASSERT_NE(padmin, nullptr);
  auto& sup = as("sup");
  ASSERT_EQ(sup.get(kA + "/reports/cases").status, 200U);

  // Taking supervisor away ends sup's sessions, everywhere.
  auto demote =
      put(*padmin, kA + "/users/sup/roles", json::object{{"roles", json::array{"mobile_worker"}}});
  ASSERT_EQ(demote.status, 200U) << demote.body;
  for (const std::string& path :
       {kA + "/cases", kA + "/reports/cases", std::string("/v1/projects")}) {
    auto r = sup.get(path);
    EXPECT_EQ(r.status, 401U) << path << ": " << r.body;
    EXPECT_EQ(r.body.find(marker_["D1"]), std::string::npos);
  }
  auto again = login("sup");
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->get(kA + "/reports/cases").status, 403U);
  EXPECT_EQ(listed(*again), (std::set<std::string>{case_["SUP"]}));  // Now reach own.

  // Taking every role away: a new log-in works but the project is gone for the user.
  auto& chw2 = as("chw2");
  ASSERT_EQ(put(*padmin, kA + "/users/chw2/roles", json::object{{"roles", json::array{}}}).status,
            200U);
  EXPECT_EQ(chw2.get(kA + "/sync").status, 401U);
  auto chw2_again = login("chw2");
  ASSERT_NE(chw2_again, nullptr);
  auto gone = chw2_again->get(kA + "/cases/" + case_["CHW2"]);
  EXPECT_EQ(gone.status, 404U);
  EXPECT_EQ(gone.error_code(), "not_found");
  EXPECT_EQ(gone.body.find(marker_["CHW2"]), std::string::npos);

  // Adding a role takes nothing away: the session goes on (identity.h: a password change, a
  // role removal or a disable void sessions) with the new authorities at once.
  auto& chw = as("chw");
  ASSERT_EQ(put(*padmin, kA + "/users/chw/roles",
                json::object{{"roles", json::array{"mobile_worker", "supervisor"}}})
                .status,
            200U);
  EXPECT_EQ(chw.get(kA + "/reports/cases").status, 200U);

  // A custom role's holder is switched to another: sessions end too.
  auto& lead = as("lead");
  ASSERT_EQ(lead.get(kA + "/cases/" + case_["D1"]).status, 200U);
  ASSERT_EQ(put(*padmin, kA + "/users/lead/roles", json::object{{"roles", json::array{"visitor"}}})
                .status,
            200U);
  EXPECT_EQ(lead.get(kA + "/cases/" + case_["D1"]).status, 401U);
  auto lead_again = login("lead");
  ASSERT_NE(lead_again, nullptr);
  EXPECT_EQ(lead_again->get(kA + "/cases/" + case_["D1"]).status, 404U);  // Reach own now.

  // No one grants what they do not hold: a project admin lacks verify_ledger.
  auto& viewer = as("viewer");
  auto escalate =
      put(*padmin, kA + "/users/viewer/roles", json::object{{"roles", json::array{"auditor"}}});
  EXPECT_EQ(escalate.status, 403U) << escalate.body;
  EXPECT_EQ(escalate.error_code(), "forbidden");
  EXPECT_EQ(put(*padmin, kA + "/roles/ledgerman",
                json::object{{"authorities", json::array{"verify_ledger"}}})
                .status,
            403U);
  EXPECT_EQ(
      put(*padmin, kA + "/users/viewer/roles", json::object{{"roles", json::array{"system_admin"}}})
          .status,
      400U);
  EXPECT_EQ(viewer.get(kA + "/reports/cases").status, 200U);  // The refusals changed nothing.
  // A user manager without submit cannot hand out supervisor; an auditor holding it can hand
  // out auditor (verify_ledger included), which the project admin could not.
  ASSERT_EQ(put(*padmin, kA + "/roles/usermgr",
                json::object{{"authorities", json::array{"manage_users"}}, {"reach", "own"}})
                .status,
            200U);
  // (By the system admin: auditor holds verify_ledger, which the project admin lacks.)
  ASSERT_EQ(put(*admin_, kA + "/users/aud/roles",
                json::object{{"roles", json::array{"auditor", "usermgr"}}})
                .status,
            200U);
  auto aud = login("aud");
  ASSERT_NE(aud, nullptr);
  EXPECT_EQ(
      put(*aud, kA + "/users/viewer/roles", json::object{{"roles", json::array{"supervisor"}}})
          .status,
      403U);
  EXPECT_EQ(
      put(*aud, kA + "/users/viewer/roles", json::object{{"roles", json::array{"report_viewer"}}})
          .status,
      403U);  // export_deidentified, which aud lacks.
  EXPECT_EQ(
      put(*aud, kA + "/users/viewer/roles", json::object{{"roles", json::array{"auditor"}}}).status,
      200U);
  EXPECT_EQ(viewer.get(kA + "/reports/cases").status, 401U);  // report_viewer was taken away.
  auto viewer_again = login("viewer");
  ASSERT_NE(viewer_again, nullptr);
  EXPECT_EQ(viewer_again->get(kA + "/reports/cases").status, 403U);
  EXPECT_EQ(viewer_again->get(kA + "/ledger/head").status, 200U);

  // A system admin kept out of a project gets in only through a grant of the project's own,
  // and then holds that role's authorities alone: the system-wide role does not count there
  // (identity.cc each_role; identity.h's comment on authorities_in reads otherwise).
  ASSERT_EQ(put(*padmin, kA + "/policy", json::object{{"restrict_superusers", true}}).status, 200U);
  EXPECT_EQ(admin_->get(kA + "/reports/cases").status, 404U);
  ASSERT_EQ(
      put(*padmin, kA + "/users/admin/roles", json::object{{"roles", json::array{"report_viewer"}}})
          .status,
      200U);
  EXPECT_EQ(admin_->get(kA + "/reports/cases").status, 200U);
  auto admin_case = admin_->get(kA + "/cases/" + case_["D1"]);
  EXPECT_EQ(admin_case.status, 403U) << admin_case.body;
  EXPECT_EQ(admin_case.body.find(marker_["D1"]), std::string::npos);
  EXPECT_EQ(admin_->get(kA + "/policy").status, 403U);
}

// The access trail shows which cases were read: a scoped auditor sees only the reads of cases
// inside its search scope (ids of the rest would tell they exist).
TEST_F(AccessMatrixTest, TheAccessTrailShowsOnlyCasesInsideTheSearchScope) {
  auto padmin = login("padmin");
  ASSERT_NE(padmin, nullptr);
  for (const char* name : {"D1", "D2", "REG"}) {
    ASSERT_EQ(padmin->get(kA + "/cases/" + case_[name]).status, 200U) << name;
  }
  const auto trail = [&](HttpClient& client, const std::string& query) {
    auto r = client.get(kA + "/audit/access" + query);
    EXPECT_EQ(r.status, 200U) << r.body;
    return r.body;
  };
  // Whole project: every read.
  auto aud = login("aud");
  ASSERT_NE(aud, nullptr);
  const std::string all = trail(*aud, "");
  for (const char* name : {"D1", "D2", "REG"}) {
    EXPECT_NE(all.find(case_[name]), std::string::npos) << name;
  }
  // Capture and search scope dist-n1 (an unset scope is the whole project): D1 only, and
  // nothing when asked for D2 by id.
  const json::array n1{"dist-n1"};
  ASSERT_EQ(put(*padmin, kA + "/users/aud/scopes", json::object{{"capture", n1}, {"search", n1}})
                .status,
            200U);
  aud = login("aud");
  ASSERT_NE(aud, nullptr);
  const std::string scoped = trail(*aud, "");
  EXPECT_NE(scoped.find(case_["D1"]), std::string::npos) << excerpt(scoped);
  for (const char* name : {"D2", "REG", "PROT", "CLOSED", "B"}) {
    EXPECT_EQ(scoped.find(case_[name]), std::string::npos) << name << ": " << excerpt(scoped);
  }
  const std::string asked = trail(*aud, "?case=" + case_["D2"]);
  EXPECT_EQ(asked.find(case_["D2"]), std::string::npos) << asked;
  EXPECT_NE(asked.find("\"reads\":[]"), std::string::npos) << asked;
}

}  // namespace
}  // namespace trail::testing
