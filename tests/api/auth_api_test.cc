// Authentication and authorisation over real HTTP: log-in, tokens, log-out, HTTP Basic, 401s
// that do not say which part was wrong, project isolation, and trailctl changes taking effect
// on a running server.
#include <chrono>
#include <thread>

#include "tests/api/api_fixture.h"

namespace trail::testing {
namespace {

namespace json = boost::json;

TEST_F(ApiTest, HealthzNeedsNoAuthenticationButEverythingElseDoes) {
  auto anonymous = client();
  EXPECT_EQ(anonymous->get("/healthz").status, 200U);
  for (const char* target : {"/v1/projects", "/metrics", "/v1/projects/clinic-a/ledger/head",
                             "/v1/projects/clinic-a/cases"}) {
    auto r = anonymous->get(target);
    EXPECT_EQ(r.status, 401U) << target;
    EXPECT_EQ(r.error_code(), "unauthenticated") << target;
    EXPECT_FALSE(r.header("www-authenticate").empty());
  }
  EXPECT_FALSE(anonymous->get("/healthz").header("x-request-id").empty());
}

TEST_F(ApiTest, FailedLogInSaysNothingAboutWhichPartWasWrong) {
  auto c = client();
  auto wrong_password = c->post_json("/v1/auth/login", {{"username", "sup"}, {"password", "nope nope nope"}});
  auto unknown_user = c->post_json("/v1/auth/login", {{"username", "nobody"}, {"password", kPassword}});
  ASSERT_EQ(wrong_password.status, 401U);
  ASSERT_EQ(unknown_user.status, 401U);
  EXPECT_EQ(wrong_password.body, unknown_user.body);
  auto malformed = c->post_json("/v1/auth/login", {{"username", "sup"}});
  EXPECT_EQ(malformed.status, 400U);
  EXPECT_EQ(c->post("/v1/auth/login", "{not json").status, 400U);
  // Each failure is on record in the _system chain, which an auditor's trailctl can read.
  auto cat = trailctl({"cat", "--project", "_system"});
  EXPECT_EQ(cat.exit_code, 0) << cat.err;
  std::size_t failures = 0;
  for (std::size_t at = cat.out.find("login.failed"); at != std::string::npos;
       at = cat.out.find("login.failed", at + 1)) {
    ++failures;
  }
  EXPECT_EQ(failures, 2U);
  EXPECT_EQ(cat.out.find(kPassword), std::string::npos);
}

TEST_F(ApiTest, TokenWorksUntilLogOut) {
  auto sup = login("sup");
  ASSERT_NE(sup, nullptr);
  EXPECT_EQ(sup->get("/v1/projects").status, 200U);
  auto out = sup->post("/v1/auth/logout", "");
  EXPECT_EQ(out.status, 200U) << out.body;
  EXPECT_EQ(sup->get("/v1/projects").status, 401U);
  auto forged = client();
  forged->set_token("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
  EXPECT_EQ(forged->get("/v1/projects").status, 401U);
}

TEST_F(ApiTest, LogInAnswersAnExpiryAndTheUserId) {
  auto c = client();
  auto r = c->post_json("/v1/auth/login", {{"username", "sup"}, {"password", kPassword}});
  ASSERT_EQ(r.status, 200U);
  const auto& body = r.json().as_object();
  EXPECT_EQ(body.at("token").as_string().size(), 43U);
  EXPECT_TRUE(body.contains("expires_at"));
  EXPECT_EQ(std::string(body.at("user_id").as_string()), ids_["sup"]);
}

TEST_F(ApiTest, TrailctlChangesTakeEffectOnTheNextRequest) {
  auto sup = login("sup");
  ASSERT_NE(sup, nullptr);
  EXPECT_EQ(sup->get("/v1/projects/clinic-a/cases").status, 200U);
  // Revoking a role ends the user's sessions; a new one no longer sees the project.
  auto revoke = trailctl({"user", "revoke", "sup", "--project", "clinic-a", "--role", "supervisor"});
  ASSERT_EQ(revoke.exit_code, 0) << revoke.err;
  EXPECT_EQ(sup->get("/v1/projects/clinic-a/cases").status, 401U);
  sup = login("sup");
  ASSERT_NE(sup, nullptr);
  EXPECT_EQ(sup->get("/v1/projects/clinic-a/cases").status, 404U);
  // Disabling ends the session.
  auto disable = trailctl({"user", "disable", "sup"});
  ASSERT_EQ(disable.exit_code, 0) << disable.err;
  EXPECT_EQ(sup->get("/v1/projects").status, 401U);
  auto again = client()->post_json("/v1/auth/login", {{"username", "sup"}, {"password", kPassword}});
  EXPECT_EQ(again.status, 401U);
}

TEST_F(ApiTest, PasswordChangeEndsSessionsAndTheOldPassword) {
  auto chw = login("chw");
  ASSERT_NE(chw, nullptr);
  auto passwd = trailctl({"user", "passwd", "chw"}, "a brand new long passphrase 7\n");
  ASSERT_EQ(passwd.exit_code, 0) << passwd.err;
  EXPECT_EQ(chw->get("/v1/projects").status, 401U);
  EXPECT_EQ(client()->post_json("/v1/auth/login", {{"username", "chw"}, {"password", kPassword}}).status,
            401U);
  EXPECT_NE(login("chw", "a brand new long passphrase 7"), nullptr);
}

TEST_F(ApiTest, HttpBasicWorksOnLoopbackAndIsCachedButHonoursChanges) {
  auto c = client();
  c->set_basic("chw", kPassword);
  EXPECT_EQ(c->get("/v1/projects").status, 200U);
  EXPECT_EQ(c->get("/v1/projects").status, 200U);  // From the cache.
  c->set_basic("chw", "wrong password!!");
  EXPECT_EQ(c->get("/v1/projects").status, 401U);
  c->set_basic("chw", kPassword);
  ASSERT_EQ(trailctl({"user", "disable", "chw"}).exit_code, 0);
  EXPECT_EQ(c->get("/v1/projects").status, 401U);  // The cache does not outlive a disable.
}

TEST_F(ApiTest, ProjectsAreOpenedBySystemAdminsAndListedToMembersOnly) {
  auto sup = login("sup");
  ASSERT_NE(sup, nullptr);
  EXPECT_EQ(sup->post_json("/v1/projects", {{"id", "clinic-c"}, {"name", "C"}}).status, 403U);
  EXPECT_EQ(admin_->post_json("/v1/projects", {{"id", "clinic-a"}, {"name", "again"}}).status, 409U);
  EXPECT_EQ(admin_->post_json("/v1/projects", {{"id", "Bad Id"}, {"name", "x"}}).status, 400U);
  EXPECT_EQ(admin_->post_json("/v1/projects", {{"id", "_system"}, {"name", "x"}}).status, 400U);
  EXPECT_EQ(admin_->post_json("/v1/projects", {{"id", "ok-id"}}).status, 400U);
  auto mine = sup->get("/v1/projects");
  ASSERT_EQ(mine.status, 200U);
  const auto& projects = mine.json().at("projects").as_array();
  ASSERT_EQ(projects.size(), 1U);
  EXPECT_EQ(projects[0].at("id").as_string(), "clinic-a");
  EXPECT_EQ(admin_->get("/v1/projects").json().at("projects").as_array().size(), 2U);
}

TEST_F(ApiTest, AMemberOfOneProjectGets404ForEverythingInAnother) {
  auto supb = login("supb");
  ASSERT_NE(supb, nullptr);
  const std::string c = uuid();
  auto sup = login("sup");
  ASSERT_EQ(sup->post_json("/v1/projects/clinic-a/events",
                           {{"events", json::array{case_event(uuid(), "case.created", c, ids_["sup"], {{"a", "1"}})}}})
                .status,
            201U);
  for (const std::string& target :
       {"/v1/projects/clinic-a/cases/" + c, "/v1/projects/clinic-a/cases/" + c + "/history",
        std::string("/v1/projects/clinic-a/cases"), std::string("/v1/projects/clinic-a/reports/cases"),
        std::string("/v1/projects/clinic-a/audit/access"), std::string("/v1/projects/clinic-a/sync"),
        std::string("/v1/projects/nowhere/cases")}) {
    auto r = supb->get(target);
    EXPECT_EQ(r.status, 404U) << target;
    EXPECT_EQ(r.body.find(c), std::string::npos) << target;
  }
  auto append = supb->post_json("/v1/projects/clinic-a/events",
                                {{"events", json::array{case_event(uuid(), "case.updated", c, "", {{"a", "2"}})}}});
  EXPECT_EQ(append.status, 404U);
  EXPECT_EQ(sup->get("/v1/projects/clinic-a/cases/" + c).json().at("fields").at("a").as_string(), "1");
}

TEST_F(ApiTest, MissingAuthorityIs403InsideOnesOwnProject) {
  auto viewer = login("viewer");
  auto aud = login("aud");
  auto chw = login("chw");
  ASSERT_TRUE(viewer && aud && chw);
  EXPECT_EQ(viewer->get("/v1/projects/clinic-a/cases").status, 403U);
  EXPECT_EQ(viewer->get("/v1/projects/clinic-a/reports/cases").status, 200U);
  EXPECT_EQ(aud->get("/v1/projects/clinic-a/ledger/head").status, 200U);
  EXPECT_EQ(aud->get("/v1/projects/clinic-a/cases").status, 403U);
  EXPECT_EQ(chw->get("/v1/projects/clinic-a/ledger/head").status, 403U);
  EXPECT_EQ(chw->get("/v1/projects/clinic-a/audit/access").status, 403U);
  EXPECT_EQ(viewer->post_json("/v1/projects/clinic-a/events", {{"events", json::array{}}}).status, 403U);
  EXPECT_EQ(chw->get("/metrics").status, 403U);
}

TEST_F(ApiTest, MetricsCountRequestsAndAuthFailures) {
  client()->get("/v1/projects");  // 401
  // A request is counted once its answer is written, which may be just after the client read
  // it: look again for a moment.
  const std::string counted = "trail_http_requests_total{route=\"/v1/projects\",status=\"401\"}";
  auto r = admin_->get("/metrics");
  for (int i = 0; i < 100 && r.status == 200U && r.body.find(counted) == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
    r = admin_->get("/metrics");
  }
  ASSERT_EQ(r.status, 200U);
  EXPECT_NE(r.body.find(counted), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("trail_auth_failures_total"), std::string::npos);
  EXPECT_NE(r.body.find("trail_commit_latency_seconds_bucket"), std::string::npos);
  EXPECT_NE(r.body.find("trail_events_per_commit_count"), std::string::npos);
  EXPECT_NE(r.body.find("trail_http_open_connections"), std::string::npos);
}

TEST_F(ApiTest, UnknownRoutesAndMethodsAreJsonErrors) {
  EXPECT_EQ(admin_->get("/v1/nothing").status, 404U);
  auto r = admin_->request(http::verb::delete_, "/v1/projects", "");
  EXPECT_EQ(r.status, 405U);
  EXPECT_EQ(r.error_code(), "method_not_allowed");
  EXPECT_NE(r.header("allow").find("GET"), std::string::npos);
  EXPECT_EQ(admin_->get("/v1/projects/clinic-a/cases?bogus=1").status, 400U);
  EXPECT_EQ(admin_->get("/v1/projects/clinic-a/cases?limit=%zz").status, 400U);
}

}  // namespace
}  // namespace trail::testing
