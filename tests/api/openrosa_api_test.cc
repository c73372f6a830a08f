// The OpenRosa Form Submission API with real instances (tests/fixtures, see SOURCES.md):
// HEAD, POST with attachments, a repeated instanceID, and malformed submissions.
#include <fstream>
#include <sstream>

#include "tests/api/api_fixture.h"

namespace trail::testing {
namespace {

std::string fixture(const std::string& relative) {
  std::ifstream in(std::string(TRAIL_SOURCE_DIR) + "/tests/fixtures/" + relative, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

constexpr const char* kBoundary = "----trail-test-boundary-7MA4YWxkTrZu0gW";

// A multipart/form-data body as ODK Collect sends it.
std::string multipart(const std::string& xml,
                      const std::vector<std::tuple<std::string, std::string, std::string>>& files = {}) {
  std::string body;
  body += std::string("--") + kBoundary + "\r\n";
  body += "Content-Disposition: form-data; name=\"xml_submission_file\"; filename=\"submission.xml\"\r\n";
  body += "Content-Type: text/xml\r\n\r\n" + xml + "\r\n";
  for (const auto& [name, type, bytes] : files) {
    body += std::string("--") + kBoundary + "\r\n";
    body += "Content-Disposition: form-data; name=\"" + name + "\"; filename=\"" + name + "\"\r\n";
    body += "Content-Type: " + type + "\r\n\r\n" + bytes + "\r\n";
  }
  body += std::string("--") + kBoundary + "--\r\n";
  return body;
}

std::map<std::string, std::string> multipart_headers() {
  return {{"Content-Type", std::string("multipart/form-data; boundary=") + kBoundary},
          {"X-OpenRosa-Version", "1.0"}};
}

TEST_F(ApiTest, OpenRosaHeadAnnouncesTheProtocol) {
  auto chw = client();
  chw->set_basic("chw", kPassword);
  auto r = chw->request(http::verb::head, "/v1/projects/clinic-a/submission", "");
  EXPECT_EQ(r.status, 204U);
  EXPECT_EQ(r.header("x-openrosa-version"), "1.0");
  EXPECT_EQ(r.header("x-openrosa-accept-content-length"), std::to_string(16U << 20U));
  auto anonymous = client();
  EXPECT_EQ(anonymous->request(http::verb::head, "/v1/projects/clinic-a/submission", "").status, 401U);
}

TEST_F(ApiTest, OpenRosaSubmissionIsIngestedOnceWithItsFiles) {
  auto chw = client();
  chw->set_basic("chw", kPassword);
  const std::string xml = fixture("casexml/hq_receiverwrapper_form_with_case.xml");
  ASSERT_FALSE(xml.empty());
  const std::string photo("\xff\xd8\xff\xe0\r\n--not-a-boundary\r\n\x00\x01 jpeg bytes", 36);
  auto first = chw->post("/v1/projects/clinic-a/submission",
                         multipart(xml, {{"photo.jpg", "image/jpeg", photo}}), multipart_headers());
  ASSERT_EQ(first.status, 201U) << first.body;
  EXPECT_EQ(first.header("x-openrosa-version"), "1.0");
  EXPECT_NE(first.body.find("<OpenRosaResponse xmlns=\"http://openrosa.org/http/response\">"),
            std::string::npos);
  auto aud = login("aud");
  const auto size = aud->get("/v1/projects/clinic-a/ledger/head").json().at("size").as_int64();
  auto again = chw->post("/v1/projects/clinic-a/submission",
                         multipart(xml, {{"photo.jpg", "image/jpeg", photo}}), multipart_headers());
  EXPECT_EQ(again.status, 202U) << again.body;
  // The repeat appended nothing.
  EXPECT_EQ(aud->get("/v1/projects/clinic-a/ledger/head").json().at("size").as_int64(), size);
  // form + case create/update + the photo.
  auto cat = trailctl({"cat", "--project", "clinic-a"});
  ASSERT_EQ(cat.exit_code, 0) << cat.err;
  EXPECT_NE(cat.out.find("form.submitted"), std::string::npos);
  EXPECT_NE(cat.out.find("attachment.added"), std::string::npos);
  EXPECT_NE(cat.out.find("case.created"), std::string::npos);
  // The case is there, acted on by the authenticated user.
  auto sup = login("sup");
  auto cases = sup->get("/v1/projects/clinic-a/cases?type=test_case_type");
  ASSERT_EQ(cases.status, 200U);
  ASSERT_EQ(cases.json().at("cases").as_array().size(), 1U);
  EXPECT_EQ(cases.json().at("cases").as_array()[0].at("last_user").as_string(), ids_["chw"]);
}

TEST_F(ApiTest, OpenRosaSameInstanceIdWithOtherContentIsAConflictAndAnEditIsNew) {
  auto chw = client();
  chw->set_basic("chw", kPassword);
  auto first = chw->post("/v1/projects/clinic-a/submission",
                         multipart(fixture("openrosa/onadata_transport_2011-07-25_19-05-49.xml")),
                         multipart_headers());
  EXPECT_EQ(first.status, 201U) << first.body;
  // The onadata pair: the same instanceID, other XML. ODK Central answers 409 too.
  auto other = chw->post("/v1/projects/clinic-a/submission",
                         multipart(fixture("openrosa/onadata_transport_2011-07-25_19-05-49_1.xml"),
                                   {{"ona_png_image.png", "image/png", "\x89PNG\r\n"}}),
                         multipart_headers());
  EXPECT_EQ(other.status, 409U) << other.body;
  EXPECT_EQ(other.error_code(), "conflict");
  // An edit (new instanceID, deprecatedID naming the first) is a new form.
  auto edited = chw->post("/v1/projects/clinic-a/submission",
                          multipart(fixture("openrosa/onadata_transport_2011-07-25_19-05-49_edited.xml"),
                                    {{"ona_png_image.png", "image/png", "\x89PNG\r\n"}}),
                          multipart_headers());
  EXPECT_EQ(edited.status, 201U) << edited.body;
}

TEST_F(ApiTest, MalformedSubmissionsAreRefusedWithNothingAppended) {
  auto chw = client();
  chw->set_basic("chw", kPassword);
  auto aud = login("aud");
  const auto before = aud->get("/v1/projects/clinic-a/ledger/head").json().at("size");
  // Not multipart.
  EXPECT_EQ(chw->post("/v1/projects/clinic-a/submission", "<x/>", {{"Content-Type", "text/xml"}}).status,
            415U);
  // No xml_submission_file part.
  std::string no_form = std::string("--") + kBoundary +
                        "\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--" + kBoundary + "--\r\n";
  EXPECT_EQ(chw->post("/v1/projects/clinic-a/submission", no_form, multipart_headers()).status, 400U);
  // Truncated multipart.
  std::string truncated = multipart("<a/>");
  truncated.resize(truncated.size() / 2);
  EXPECT_EQ(chw->post("/v1/projects/clinic-a/submission", truncated, multipart_headers()).status, 400U);
  // An entity declaration (billion laughs) and malformed XML.
  const std::string bomb =
      "<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;&a;\">]><d>&b;</d>";
  auto r = chw->post("/v1/projects/clinic-a/submission", multipart(bomb), multipart_headers());
  EXPECT_EQ(r.status, 400U);
  EXPECT_EQ(r.error_code(), "invalid");
  EXPECT_EQ(chw->post("/v1/projects/clinic-a/submission", multipart("<form><meta>"), multipart_headers()).status,
            400U);
  EXPECT_EQ(aud->get("/v1/projects/clinic-a/ledger/head").json().at("size"), before);
}

}  // namespace
}  // namespace trail::testing
