// Password guessing against the real traild: the lock-out after five failures and its record
// in the security audit, and that neither the answers (status, body) nor their timing tell an
// unknown name from a known one with a wrong password.
//
// Every failure from 127.0.0.1 also counts against the address: five lock the address out
// for everyone. The tests keep each run of failures to four or fewer, and clear the address's
// count with a successful log-in (which resets the address and that account) before the next.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>
#include <vector>

#include "tests/api/api_fixture.h"

namespace trail::testing {
namespace {

namespace json = boost::json;

class BruteForceApiTest : public ApiTest {
 protected:
  HttpResult attempt(const std::string& name, const std::string& password) {
    return client()->post_json("/v1/auth/login", {{"username", name}, {"password", password}});
  }
  // A successful log-in from this address: clears the address's failure count.
  void clear_address() {
    auto r = attempt("chw", kPassword);
    ASSERT_EQ(r.status, 200U) << r.body;
  }
  // The security audit's events of `kind`, read by the admin (logged in by SetUp, before any
  // failure, since a locked address refuses every log-in).
  json::array security_events(const std::string& query) {
    auto r = admin_->get("/v1/audit/security?" + query);
    EXPECT_EQ(r.status, 200U) << r.body;
    if (r.status != 200U) return {};
    return r.json().at("events").as_array();
  }
};

TEST_F(BruteForceApiTest, LockOutEngagesAfterFiveFailuresAndIsOnRecord) {
  for (int i = 0; i < 5; ++i) {
    auto r = attempt("sup", "guess number " + std::to_string(i) + " is wrong");
    ASSERT_EQ(r.status, 401U) << i << ": " << r.body;
  }
  auto locked = attempt("sup", kPassword);  // The right password, too late.
  EXPECT_EQ(locked.status, 429U) << locked.body;
  EXPECT_EQ(locked.error_code(), "throttled");
  const int retry_after = std::stoi("0" + locked.header("retry-after"));
  EXPECT_GE(retry_after, 1);
  EXPECT_LE(retry_after, 31);
  // The address is locked out too: another user waits as well; the admin's session does not.
  EXPECT_EQ(attempt("chw", kPassword).status, 429U);
  EXPECT_EQ(admin_->get("/v1/projects").status, 200U);

  // The lock-out is on record: the account (naming the user) and the address.
  bool account = false;
  bool address = false;
  for (const auto& e : security_events("kind=account.locked")) {
    const auto& detail = e.at("detail").as_object();
    if (detail.at("what").as_string() == "account") {
      account = true;
      EXPECT_EQ(e.at("user").as_string(), ids_["sup"]);
      EXPECT_EQ(detail.at("failures").as_string(), "5");
    } else {
      address = true;
      EXPECT_EQ(detail.at("what").as_string(), "address");
      EXPECT_EQ(detail.at("address").as_string(), "127.0.0.1");
    }
    EXPECT_TRUE(detail.contains("until_us")) << json::serialize(e);
  }
  EXPECT_TRUE(account);
  EXPECT_TRUE(address);

  // So is every failed attempt, without the password or the name tried; refused attempts
  // while locked are recorded as throttled, not as guesses.
  std::size_t guesses = 0;
  std::size_t throttled = 0;
  for (const auto& e : security_events("kind=login.failed&limit=1000")) {
    const auto& detail = e.at("detail").as_object();
    const std::string reason(detail.at("reason").as_string());
    if (reason == "password") {
      ++guesses;
      EXPECT_EQ(e.at("user").as_string(), ids_["sup"]);
      EXPECT_EQ(detail.at("address").as_string(), "127.0.0.1");
    } else {
      EXPECT_EQ(reason, "throttled");
      ++throttled;
    }
    EXPECT_FALSE(detail.contains("name_tag"));
    EXPECT_EQ(json::serialize(e).find("guess number"), std::string::npos);
  }
  EXPECT_EQ(guesses, 5U);
  EXPECT_EQ(throttled, 2U);
  // The user filter finds them by name.
  EXPECT_EQ(security_events("kind=login.failed&user=sup").size(), 5U);
}

TEST_F(BruteForceApiTest, AnswersDoNotTellUnknownNamesFromWrongPasswords) {
  auto unknown = attempt("ghost-user", "some password guess");
  auto wrong = attempt("sup", "some password guess");
  ASSERT_EQ(unknown.status, 401U);
  EXPECT_EQ(wrong.status, unknown.status);
  EXPECT_EQ(wrong.body, unknown.body);
  for (const char* header :
       {"content-type", "www-authenticate", "cache-control", "content-length"}) {
    EXPECT_EQ(wrong.header(header), unknown.header(header)) << header;
  }
  ASSERT_NO_FATAL_FAILURE(clear_address());

  // Both names reach five failures (the address's count cleared in between), and both are
  // then answered alike.
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(attempt("ghost-user", "guess " + std::to_string(i)).status, 401U);
  }
  ASSERT_NO_FATAL_FAILURE(clear_address());
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(attempt("sup", "guess " + std::to_string(i)).status, 401U);
  }
  ASSERT_NO_FATAL_FAILURE(clear_address());
  auto unknown_locked = attempt("ghost-user", kPassword);
  auto known_locked = attempt("sup", kPassword);
  EXPECT_EQ(unknown_locked.status, 429U) << unknown_locked.body;
  EXPECT_EQ(known_locked.status, unknown_locked.status);
  EXPECT_EQ(known_locked.body, unknown_locked.body);
  EXPECT_FALSE(unknown_locked.header("retry-after").empty());
  EXPECT_FALSE(known_locked.header("retry-after").empty());
  // Locked by account, not by address: others still log in from here.
  EXPECT_EQ(attempt("chw", kPassword).status, 200U);
  // And both lock-outs are on record alike (an unknown name has no user id).
  std::size_t accounts = 0;
  for (const auto& e : security_events("kind=account.locked")) {
    if (e.at("detail").at("what").as_string() != "account") continue;
    ++accounts;
    const std::string user(e.at("user").as_string());
    EXPECT_TRUE(user.empty() || user == ids_["sup"]) << user;
  }
  EXPECT_EQ(accounts, 2U);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

TEST_F(BruteForceApiTest, FailuresTakeAsLongForUnknownNamesAsForWrongPasswords) {
  // Batches of two unknown names and two wrong passwords for chw2, interleaved (the order
  // alternating), each followed by chw2's own successful log-in, which clears both the
  // address's and chw2's counts: no attempt is ever throttled. The first batch warms up.
  constexpr int kBatches = 9;
  std::vector<double> unknown_ms;
  std::vector<double> wrong_ms;
  int unknown_names = 0;
  for (int batch = 0; batch < kBatches; ++batch) {
    for (int k = 0; k < 4; ++k) {
      const bool unknown = (k % 2 == 0) == (batch % 2 == 0);
      const std::string name =
          unknown ? "nobody-" + std::to_string(unknown_names++) : std::string("chw2");
      auto c = client();
      c->get("/healthz");  // Connected first: time the log-in alone.
      const auto start = std::chrono::steady_clock::now();
      auto r =
          c->post_json("/v1/auth/login", {{"username", name}, {"password", "a wrong guess 123"}});
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count();
      ASSERT_EQ(r.status, 401U) << name << ": " << r.body;
      if (batch == 0) continue;
      (unknown ? unknown_ms : wrong_ms).push_back(ms);
    }
    ASSERT_EQ(attempt("chw2", kPassword).status, 200U);
  }
  ASSERT_EQ(unknown_ms.size(), 16U);
  ASSERT_EQ(wrong_ms.size(), 16U);
  const double u = median(unknown_ms);
  const double w = median(wrong_ms);
  RecordProperty("unknown_median_ms", std::to_string(u));
  RecordProperty("wrong_password_median_ms", std::to_string(w));
  EXPECT_LT(std::abs(u - w), 0.5 * std::max(u, w))
      << "median unknown name " << u << " ms, wrong password " << w << " ms";
}

}  // namespace
}  // namespace trail::testing
