// Hostile input over HTTP: random and malformed bodies, targets and headers sent to every
// route get a 4xx (never a 5xx, a crash or a partial append), and the server stays up.
#include <random>

#include "tests/api/api_fixture.h"

namespace trail::testing {
namespace {

namespace json = boost::json;

std::string random_bytes(std::mt19937_64& rng, std::size_t max) {
  std::string out(rng() % (max + 1), '\0');
  for (auto& c : out) c = static_cast<char>(rng() & 0xffU);
  return out;
}

// A valid body with one byte changed, dropped or duplicated.
std::string mutate(std::mt19937_64& rng, std::string body) {
  if (body.empty()) return body;
  const std::size_t at = rng() % body.size();
  switch (rng() % 3) {
    case 0: body[at] = static_cast<char>(rng() & 0xffU); break;
    case 1: body.erase(at, 1); break;
    default: body.insert(at, 1, body[at]); break;
  }
  return body;
}

TEST_F(ApiTest, RandomAndMutatedInputNeverGetsA5xxOrAPartialAppend) {
  auto sup = login("sup");
  auto aud = login("aud");
  ASSERT_TRUE(sup && aud);
  std::mt19937_64 rng{static_cast<std::uint64_t>(::testing::UnitTest::GetInstance()->random_seed()) + 17U};
  const std::string c = uuid();
  const std::string valid = json::serialize(json::object{
      {"events", json::array{case_event(uuid(), "case.created", c, ids_["sup"], {{"a", "1"}}),
                             case_event(uuid(), "case.updated", c, "", {{"a", "2"}})}}});
  const auto before = aud->get("/v1/projects/clinic-a/ledger/head").json().at("size").as_int64();
  std::int64_t appended = 0;
  const std::vector<std::string> posts = {"/v1/projects/clinic-a/events", "/v1/projects",
                                          "/v1/auth/login", "/v1/projects/clinic-a/submission"};
  const std::vector<std::string> gets = {
      "/v1/projects/clinic-a/cases", "/v1/projects/clinic-a/cases/" + c,
      "/v1/projects/clinic-a/audit/changes", "/v1/projects/clinic-a/sync",
      "/v1/projects/clinic-a/reports/submissions", "/v1/projects/clinic-a/ledger/events"};
  for (int i = 0; i < 300; ++i) {
    const std::string& target = posts[rng() % posts.size()];
    const std::string body = rng() % 2 == 0 ? random_bytes(rng, 300) : mutate(rng, valid);
    auto r = sup->post(target, body, {{"Content-Type", rng() % 2 == 0 ? "application/json"
                                                                       : "multipart/form-data; boundary=x"}});
    ASSERT_GT(r.status, 0U) << target;
    EXPECT_LT(r.status, 500U) << target << " " << r.body;
    if (target == posts[0] && r.status == 201U) {  // A mutation may stay valid.
      for (const auto& receipt : r.json().at("receipts").as_array()) {
        appended += receipt.at("duplicate").as_bool() ? 0 : 1;
      }
    }
  }
  for (int i = 0; i < 200; ++i) {
    std::string target = gets[rng() % gets.size()] + "?";
    for (const char* name : {"limit", "from", "to", "since", "cursor", "case", "open"}) {
      if (rng() % 3 == 0) target += std::string(name) + "=" + std::to_string(rng() % 3 == 0 ? -1 : static_cast<long>(rng() % 100000)) + "&";
    }
    if (rng() % 4 == 0) target += "%" + std::to_string(rng() % 10) + "&";
    auto r = aud->get(target);
    ASSERT_GT(r.status, 0U) << target;
    EXPECT_LT(r.status, 500U) << target << " " << r.body;
  }
  // Whatever was refused left nothing behind: the chain grew only by accepted batches and
  // the record.read events of the answered reads, and it verifies.
  const auto after = aud->get("/v1/projects/clinic-a/ledger/head").json().at("size").as_int64();
  EXPECT_GE(after, before + appended);
  EXPECT_EQ(sup->get("/healthz").status, 200U);
  auto verify = trailctl({"verify"});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
}

}  // namespace
}  // namespace trail::testing
