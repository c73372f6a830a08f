// multipart/form-data: boundaries from Content-Type, bodies as OpenRosa clients send them,
// every validation rule, and a mutation property: no input crashes the parser or makes it
// read outside the body.
#include "server/multipart.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace trail::testing {
namespace {

using server::multipart_boundary;
using server::MultipartLimits;
using server::parse_multipart;
using server::Part;

constexpr std::string_view kBoundary = "d1f8a1b2-3c4d-4e5f-8a9b-0c1d2e3f4a5b";

template <typename T>
void expect_invalid(const Result<T>& result, std::string_view detail_part) {
  ASSERT_FALSE(result.is_ok()) << "expected an error mentioning: " << detail_part;
  EXPECT_EQ(result.status().code(), Code::kInvalid);
  EXPECT_NE(result.status().detail().find(detail_part), std::string::npos)
      << result.status().detail();
}

// The bytes of a JPEG-like attachment that hold the traps of a naive parser: CR LF, "--",
// "\r\n--" followed by a prefix of the boundary, NUL and high bytes.
std::string binary_attachment() {
  std::string bytes = "\xFF\xD8\xFF\xE0";
  bytes += std::string("\0\x01\x02\r\n--\r\n\r\n--", 13);
  bytes += "\r\n--";
  bytes += kBoundary.substr(0, 20);
  bytes += "\r\n-";
  bytes += "--";
  bytes += kBoundary;  // Not at a line start: content.
  bytes += "\n\r\x80\xFE\xFF\xD9";
  return bytes;
}

constexpr std::string_view kInstanceXml =
    "<?xml version='1.0' ?><data id=\"household\" version=\"2024010101\">"
    "<name>Amina</name><photo>photo-1.jpg</photo>"
    "<meta><instanceID>uuid:6f2a7e0c-1a9e-4b3c-9d7e-2f1b0c9a8d7e</instanceID></meta></data>";

// A submission framed as ODK Collect (OkHttp's MultipartBody) frames it.
std::string odk_collect_body(std::string_view photo) {
  std::string body;
  body += "--" + std::string{kBoundary} + "\r\n";
  body +=
      "Content-Disposition: form-data; name=\"xml_submission_file\"; "
      "filename=\"household.xml\"\r\n";
  body += "Content-Type: text/xml\r\n";
  body += "Content-Length: " + std::to_string(kInstanceXml.size()) + "\r\n";
  body += "\r\n";
  body += kInstanceXml;
  body += "\r\n--" + std::string{kBoundary} + "\r\n";
  body += "Content-Disposition: form-data; name=\"photo-1.jpg\"; filename=\"photo-1.jpg\"\r\n";
  body += "Content-Type: image/jpeg\r\n";
  body += "\r\n";
  body += photo;
  body += "\r\n--" + std::string{kBoundary} + "--\r\n";
  return body;
}

bool views_into(std::string_view inner, std::string_view outer) {
  const auto begin = reinterpret_cast<std::uintptr_t>(outer.data());
  const auto inner_begin = reinterpret_cast<std::uintptr_t>(inner.data());
  return inner.empty() ||
         (inner_begin >= begin && inner_begin + inner.size() <= begin + outer.size());
}

// --- multipart_boundary ---------------------------------------------------------------------

TEST(MultipartBoundary, ReadsTokenBoundary) {
  auto boundary = multipart_boundary("multipart/form-data; boundary=" + std::string{kBoundary});
  ASSERT_TRUE(boundary.is_ok()) << boundary.status().to_string();
  EXPECT_EQ(*boundary, kBoundary);
}

TEST(MultipartBoundary, ReadsQuotedBoundaryWithCaseInsensitiveNames) {
  auto boundary =
      multipart_boundary(R"( Multipart/Form-Data ; charset=UTF-8; BOUNDARY="a b:c=d?" )");
  ASSERT_TRUE(boundary.is_ok()) << boundary.status().to_string();
  EXPECT_EQ(*boundary, "a b:c=d?");
}

TEST(MultipartBoundary, ToleratesEmptyParameters) {
  auto boundary = multipart_boundary("multipart/form-data;; boundary=xyz;");
  ASSERT_TRUE(boundary.is_ok()) << boundary.status().to_string();
  EXPECT_EQ(*boundary, "xyz");
}

TEST(MultipartBoundary, RejectsOtherMediaTypes) {
  expect_invalid(multipart_boundary(""), "no Content-Type");
  expect_invalid(multipart_boundary("application/json"), "not multipart/form-data");
  expect_invalid(multipart_boundary("multipart/mixed; boundary=abc"), "not multipart/form-data");
  expect_invalid(multipart_boundary("multipart/form-datax; boundary=abc"),
                 "not multipart/form-data");
}

TEST(MultipartBoundary, RejectsMissingBoundary) {
  expect_invalid(multipart_boundary("multipart/form-data"), "without a boundary");
  expect_invalid(multipart_boundary("multipart/form-data; charset=utf-8"), "without a boundary");
}

TEST(MultipartBoundary, RejectsEmptyBoundary) {
  expect_invalid(multipart_boundary("multipart/form-data; boundary="), "empty multipart boundary");
  expect_invalid(multipart_boundary("multipart/form-data; boundary=\"\""),
                 "empty multipart boundary");
}

TEST(MultipartBoundary, AcceptsSeventyCharactersButNotSeventyOne) {
  const std::string seventy(70, 'b');
  EXPECT_TRUE(multipart_boundary("multipart/form-data; boundary=" + seventy).is_ok());
  expect_invalid(multipart_boundary("multipart/form-data; boundary=" + seventy + "b"),
                 "longer than 70");
}

TEST(MultipartBoundary, RejectsCharactersOutsideRfc2046) {
  expect_invalid(multipart_boundary("multipart/form-data; boundary=a@b"), "RFC 2046");
  expect_invalid(multipart_boundary("multipart/form-data; boundary=\"ab \""), "RFC 2046");
  expect_invalid(multipart_boundary("multipart/form-data; boundary=\"a\\\"b\""), "RFC 2046");
}

TEST(MultipartBoundary, RejectsMalformedParameters) {
  expect_invalid(multipart_boundary("multipart/form-data; boundary=\"abc"), "unterminated");
  expect_invalid(multipart_boundary("multipart/form-data; boundary"), "without a value");
  expect_invalid(multipart_boundary("multipart/form-data; =abc"), "malformed parameter name");
  expect_invalid(multipart_boundary("multipart/form-data; boundary=\"abc\"x"), "after a quoted");
  expect_invalid(multipart_boundary("multipart/form-data; boundary=a; Boundary=b"), "repeated");
}

// --- parse_multipart: accepted bodies -------------------------------------------------------

TEST(ParseMultipart, ReadsOdkCollectSubmission) {
  const std::string photo = binary_attachment();
  const std::string body = odk_collect_body(photo);
  auto parts = parse_multipart(body, kBoundary);
  ASSERT_TRUE(parts.is_ok()) << parts.status().to_string();
  ASSERT_EQ(parts->size(), 2U);

  const Part& xml = (*parts)[0];
  EXPECT_EQ(xml.name, "xml_submission_file");
  EXPECT_EQ(xml.filename, "household.xml");
  EXPECT_EQ(xml.content_type, "text/xml");
  EXPECT_EQ(xml.body, kInstanceXml);

  const Part& jpeg = (*parts)[1];
  EXPECT_EQ(jpeg.name, "photo-1.jpg");
  EXPECT_EQ(jpeg.filename, "photo-1.jpg");
  EXPECT_EQ(jpeg.content_type, "image/jpeg");
  EXPECT_EQ(jpeg.body, photo);

  // Zero copies: the bodies are views into the request body.
  EXPECT_TRUE(views_into(xml.body, body));
  EXPECT_TRUE(views_into(jpeg.body, body));
}

TEST(ParseMultipart, IgnoresPreambleAndEpilogueAndDefaultsContentType) {
  const std::string body =
      "This is a preamble.\r\nIt is ignored.\r\n"
      "--XyZ\r\n"
      "content-disposition: FORM-DATA; name=deviceID\r\n"
      "\r\n"
      "imei:356938035643809\r\n"
      "--XyZ\r\n"
      "Content-Disposition: form-data; name=\"xml_submission_file\"; filename=\"f.xml\"\r\n"
      "Content-Type: application/xml; charset=utf-8\r\n"
      "\r\n"
      "<data/>\r\n"
      "--XyZ--\r\n"
      "This is an epilogue, also ignored.\r\n--XyZ\r\n";
  auto parts = parse_multipart(body, "XyZ");
  ASSERT_TRUE(parts.is_ok()) << parts.status().to_string();
  ASSERT_EQ(parts->size(), 2U);
  EXPECT_EQ((*parts)[0].name, "deviceID");
  EXPECT_EQ((*parts)[0].filename, "");
  EXPECT_EQ((*parts)[0].content_type, "text/plain");
  EXPECT_EQ((*parts)[0].body, "imei:356938035643809");
  EXPECT_EQ((*parts)[1].content_type, "application/xml; charset=utf-8");
  EXPECT_EQ((*parts)[1].body, "<data/>");
}

TEST(ParseMultipart, ToleratesBareLineFeeds) {
  const std::string body =
      "--b\n"
      "Content-Disposition: form-data; name=\"a\"\n"
      "\n"
      "line one\nline two\n"
      "--b\n"
      "Content-Disposition: form-data; name=\"b\"\r\n"
      "\r\n"
      "crlf here\n"
      "--b--";
  auto parts = parse_multipart(body, "b");
  ASSERT_TRUE(parts.is_ok()) << parts.status().to_string();
  ASSERT_EQ(parts->size(), 2U);
  EXPECT_EQ((*parts)[0].body, "line one\nline two");
  EXPECT_EQ((*parts)[1].body, "crlf here");
}

TEST(ParseMultipart, UnescapesQuotedNamesButKeepsOtherBackslashes) {
  const std::string body =
      "--b\r\n"
      "Content-Disposition: form-data; name=\"say \\\"hi\\\" \\\\ ok\"; "
      "filename=\"C:\\Users\\amina\\photo.jpg\"\r\n"
      "\r\n"
      "x\r\n"
      "--b--\r\n";
  auto parts = parse_multipart(body, "b");
  ASSERT_TRUE(parts.is_ok()) << parts.status().to_string();
  ASSERT_EQ(parts->size(), 1U);
  EXPECT_EQ((*parts)[0].name, "say \"hi\" \\ ok");
  EXPECT_EQ((*parts)[0].filename, "C:\\Users\\amina\\photo.jpg");
  EXPECT_EQ((*parts)[0].content_type, "text/plain");
}

TEST(ParseMultipart, ReadsSemicolonsInsideQuotedValues) {
  const std::string body =
      "--b\r\nContent-Disposition: form-data; filename=\"a;b.xml\"; name=\"x;y\"\r\n\r\nz\r\n--b--";
  auto parts = parse_multipart(body, "b");
  ASSERT_TRUE(parts.is_ok()) << parts.status().to_string();
  EXPECT_EQ((*parts)[0].name, "x;y");
  EXPECT_EQ((*parts)[0].filename, "a;b.xml");
}

TEST(ParseMultipart, ReadsEmptyBodiesAndHeadersEndingAtTheDelimiter) {
  // Part a: blank line, then no content. Part b: RFC 2046 lets the delimiter's CRLF end the
  // headers, so there is no blank line and no content at all.
  const std::string body =
      "--b\r\nContent-Disposition: form-data; name=a\r\n\r\n\r\n"
      "--b\r\nContent-Disposition: form-data; name=b\r\n\r\n"
      "--b--\r\n";
  auto parts = parse_multipart(body, "b");
  ASSERT_TRUE(parts.is_ok()) << parts.status().to_string();
  ASSERT_EQ(parts->size(), 2U);
  EXPECT_EQ((*parts)[0].body, "");
  EXPECT_EQ((*parts)[1].name, "b");
  EXPECT_EQ((*parts)[1].body, "");
}

TEST(ParseMultipart, BoundaryAsPrefixOfALongerLineIsContent) {
  const std::string body =
      "--b\r\nContent-Disposition: form-data; name=a\r\n\r\n"
      "one\r\n--bb\r\n--b-x\r\ntwo\r\n"
      "--b \t\r\nContent-Disposition: form-data; name=c\r\n\r\nthree\r\n"
      "--b--";
  auto parts = parse_multipart(body, "b");
  ASSERT_TRUE(parts.is_ok()) << parts.status().to_string();
  ASSERT_EQ(parts->size(), 2U);
  EXPECT_EQ((*parts)[0].body, "one\r\n--bb\r\n--b-x\r\ntwo");
  EXPECT_EQ((*parts)[1].body, "three");  // Transport padding after the delimiter is allowed.
}

TEST(ParseMultipart, FoldsContinuationLinesAndIgnoresOtherHeaders) {
  const std::string body =
      "--b\r\nContent-Disposition: form-data;\r\n\tname=\"folded\"\r\n"
      "Content-Transfer-Encoding: binary\r\nX-Anything: 1\r\n\r\nv\r\n--b--\r\n";
  auto parts = parse_multipart(body, "b");
  ASSERT_TRUE(parts.is_ok()) << parts.status().to_string();
  EXPECT_EQ((*parts)[0].name, "folded");
}

TEST(ParseMultipart, EmptyFormHasNoParts) {
  auto parts = parse_multipart("--b--\r\n", "b");
  ASSERT_TRUE(parts.is_ok()) << parts.status().to_string();
  EXPECT_TRUE(parts->empty());
}

TEST(ParseMultipart, AcceptsExactlyTheLimits) {
  MultipartLimits limits;
  limits.parts_max = 2;
  const std::string header = "Content-Disposition: form-data; name=a\r\n";
  limits.part_header_bytes_max = header.size() + 2;  // The header line and the blank line.
  const std::string body = "--b\r\n" + header + "\r\nx\r\n--b\r\n" + header + "\r\ny\r\n--b--";
  auto parts = parse_multipart(body, "b", limits);
  ASSERT_TRUE(parts.is_ok()) << parts.status().to_string();
  EXPECT_EQ(parts->size(), 2U);
}

// --- parse_multipart: every validation rule --------------------------------------------------

TEST(ParseMultipart, RejectsInvalidBoundaryArgument) {
  expect_invalid(parse_multipart("--\r\n", ""), "empty multipart boundary");
  expect_invalid(parse_multipart("", std::string(71, 'b')), "longer than 70");
}

TEST(ParseMultipart, RejectsBodyWithoutDelimiter) {
  expect_invalid(parse_multipart("", "b"), "no multipart boundary delimiter");
  expect_invalid(parse_multipart("<data/>", "b"), "no multipart boundary delimiter");
  expect_invalid(parse_multipart("x--b\r\n", "b"), "no multipart boundary delimiter");
  expect_invalid(parse_multipart("--b", "b"), "no multipart boundary delimiter");
}

TEST(ParseMultipart, RejectsMissingClosingDelimiter) {
  const std::string body = odk_collect_body(binary_attachment());
  const std::string truncated = body.substr(0, body.rfind("--" + std::string{kBoundary} + "--"));
  expect_invalid(parse_multipart(truncated, kBoundary), "without the closing boundary delimiter");
  expect_invalid(parse_multipart(body.substr(0, body.size() - 4), kBoundary),
                 "without the closing boundary delimiter");
}

TEST(ParseMultipart, RejectsBodyEndingInsideHeaders) {
  expect_invalid(parse_multipart("--b\r\nContent-Disposition: form-data; name=a\r\n", "b"),
                 "ends inside the part's headers");
  expect_invalid(parse_multipart("--b\r\n", "b"), "ends inside the part's headers");
}

TEST(ParseMultipart, RejectsPartWithoutName) {
  expect_invalid(parse_multipart("--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--", "b"),
                 "part 1: no name");
  expect_invalid(
      parse_multipart("--b\r\nContent-Disposition: form-data; name=\"\"\r\n\r\nx\r\n--b--", "b"),
      "part 1: no name");
  expect_invalid(
      parse_multipart("--b\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n"
                      "--b\r\nContent-Disposition: form-data; filename=f\r\n\r\nx\r\n--b--",
                      "b"),
      "part 2: no name");
}

TEST(ParseMultipart, RejectsPartWithoutFormDataDisposition) {
  expect_invalid(parse_multipart("--b\r\nContent-Type: text/xml\r\n\r\nx\r\n--b--", "b"),
                 "no Content-Disposition");
  expect_invalid(parse_multipart("--b\r\n\r\nx\r\n--b--", "b"), "no Content-Disposition");
  expect_invalid(
      parse_multipart("--b\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n--b--", "b"),
      "not form-data");
}

TEST(ParseMultipart, RejectsRepeatedHeaders) {
  expect_invalid(parse_multipart("--b\r\nContent-Disposition: form-data; name=a\r\n"
                                 "content-disposition: form-data; name=b\r\n\r\nx\r\n--b--",
                                 "b"),
                 "repeated content-disposition header");
  expect_invalid(
      parse_multipart("--b\r\nContent-Disposition: form-data; name=a\r\n"
                      "Content-Type: text/xml\r\nContent-Type: image/jpeg\r\n\r\nx\r\n--b--",
                      "b"),
      "repeated Content-Type header");
  expect_invalid(
      parse_multipart("--b\r\nContent-Disposition: form-data; name=a; name=b\r\n\r\nx\r\n--b--",
                      "b"),
      "repeated parameter name");
}

TEST(ParseMultipart, RejectsMalformedHeaders) {
  expect_invalid(parse_multipart("--b\r\nno colon here\r\n\r\nx\r\n--b--", "b"),
                 "malformed header line");
  expect_invalid(parse_multipart("--b\r\n: empty name\r\n\r\nx\r\n--b--", "b"),
                 "malformed header line");
  expect_invalid(parse_multipart("--b\r\n folded first\r\n\r\nx\r\n--b--", "b"),
                 "folded header line before any header");
  expect_invalid(
      parse_multipart("--b\r\nContent-Disposition: form-data; name=\"a\r\n\r\nx\r\n--b--", "b"),
      "Content-Disposition: unterminated quoted string");
}

TEST(ParseMultipart, RejectsTooManyParts) {
  MultipartLimits limits;
  limits.parts_max = 2;
  std::string body;
  for (int i = 0; i < 3; ++i) {
    body += "--b\r\nContent-Disposition: form-data; name=p" + std::to_string(i) + "\r\n\r\nx\r\n";
  }
  body += "--b--\r\n";
  expect_invalid(parse_multipart(body, "b", limits), "more than 2 multipart parts");
  EXPECT_TRUE(parse_multipart(body, "b").is_ok());  // The default allows 100.

  std::string hundred_and_one;
  for (int i = 0; i < 101; ++i) {
    hundred_and_one += "--b\r\nContent-Disposition: form-data; name=p\r\n\r\n\r\n";
  }
  hundred_and_one += "--b--";
  expect_invalid(parse_multipart(hundred_and_one, "b"), "more than 100 multipart parts");
}

TEST(ParseMultipart, RejectsHeaderBlockOverLimit) {
  const std::string header = "Content-Disposition: form-data; name=a\r\n";
  MultipartLimits limits;
  limits.part_header_bytes_max = header.size() + 1;  // One byte short of the blank line.
  const std::string body = "--b\r\n" + header + "\r\nx\r\n--b--";
  expect_invalid(parse_multipart(body, "b", limits), "header block longer than");

  // The default: 8 KiB, reached by one long header line that has no line end in sight.
  const std::string long_header = "X-Padding: " + std::string(9000, 'p') + "\r\n";
  expect_invalid(parse_multipart("--b\r\n" + long_header + header + "\r\nx\r\n--b--", "b"),
                 "part 1: header block longer than 8192 bytes");
}

// --- parse_multipart: robustness property -----------------------------------------------------

// Random edits that keep some bodies valid and break others in the places parsers get wrong:
// truncation, byte flips, deletions, inserted line ends, delimiters, quotes and headers.
class Mutator {
 public:
  explicit Mutator(std::uint64_t seed) : rng_{seed} {}

  std::string mutate(std::string body) {
    const int mutations = pick_count_(rng_);
    for (int m = 0; m < mutations; ++m) {
      std::uniform_int_distribution<std::size_t> pick_at{0, body.size()};
      const std::size_t at = pick_at(rng_);
      switch (pick_mutation_(rng_)) {
        case 0:  // Truncate.
          body.resize(at);
          break;
        case 1:  // Flip a byte.
          if (at < body.size()) {
            body[at] = static_cast<char>(pick_byte_(rng_));
          }
          break;
        case 2:  // Delete a few bytes.
          body.erase(at, static_cast<std::size_t>(pick_count_(rng_)) * 3);
          break;
        case 3:  // Insert a fragment that means something to the parser.
          body.insert(at, fragments_[at % fragments_.size()]);
          break;
        case 4:  // Repeat a range.
          body.insert(at, body.substr(at / 2, at - at / 2));
          break;
        default:  // Insert a random byte.
          body.insert(at, 1, static_cast<char>(pick_byte_(rng_)));
          break;
      }
    }
    return body;
  }

 private:
  std::mt19937_64 rng_;
  std::uniform_int_distribution<int> pick_mutation_{0, 5};
  std::uniform_int_distribution<int> pick_count_{1, 4};
  std::uniform_int_distribution<unsigned> pick_byte_{0, 255};
  const std::vector<std::string> fragments_ = {"\r\n",
                                               "\n",
                                               "--",
                                               "\r\n--" + std::string{kBoundary},
                                               "\r\n--" + std::string{kBoundary} + "--",
                                               "\r\n\r\n",
                                               "\"",
                                               "\\",
                                               ";",
                                               "=",
                                               ":",
                                               "Content-Disposition: form-data; name=z\r\n",
                                               std::string(1, '\0'),
                                               " ",
                                               "\t"};
};

// Parses `input` and checks the property; returns whether the parser accepted it.
bool parses_within_bounds(std::string_view input, const MultipartLimits& limits) {
  auto parts = parse_multipart(input, kBoundary, limits);
  if (!parts.is_ok()) {
    EXPECT_EQ(parts.status().code(), Code::kInvalid);
    EXPECT_FALSE(parts.status().detail().empty());
    return false;
  }
  EXPECT_LE(parts->size(), limits.parts_max);
  for (const Part& part : *parts) {
    EXPECT_FALSE(part.name.empty());
    EXPECT_FALSE(part.content_type.empty());
    EXPECT_TRUE(views_into(part.body, input));
  }
  return true;
}

// Property: whatever bytes arrive, the parser returns parts or kInvalid, never crashes, and
// every part body views into the input. The seed is gtest's: 0 unless run with
// --gtest_shuffle; rerun a failure with --gtest_shuffle --gtest_random_seed=<seed>.
TEST(ParseMultipart, MutatedBodiesNeverCrashOrReadOutside) {
  constexpr int kTrials = 20000;
  const int seed = ::testing::UnitTest::GetInstance()->random_seed();
  SCOPED_TRACE("random seed " + std::to_string(seed));
  Mutator mutator{static_cast<std::uint64_t>(seed)};
  const std::string boundary{kBoundary};
  const std::vector<std::string> valid_bodies = {
      odk_collect_body(binary_attachment()),
      "pre\r\n--" + boundary + "\nContent-Disposition: form-data; name=\"a\\\"b\"\n\nx\n--" +
          boundary + "  \r\nContent-Disposition: form-data;\r\n name=c; filename=\"d\"\r\n" +
          "Content-Type: text/xml\r\n\r\n\r\n--" + boundary + "--epilogue",
  };
  MultipartLimits limits;
  limits.parts_max = 4;
  limits.part_header_bytes_max = 256;

  int accepted = 0;
  for (int trial = 0; trial < kTrials && !HasFailure(); ++trial) {
    SCOPED_TRACE("trial " + std::to_string(trial));
    const std::string body =
        mutator.mutate(valid_bodies[static_cast<std::size_t>(trial) % valid_bodies.size()]);
    // A copy of exactly the body's size, so a read past its end leaves the allocation
    // (caught by AddressSanitizer in sanitizer builds).
    const std::vector<char> exact(body.begin(), body.end());
    accepted += parses_within_bounds({exact.data(), exact.size()}, limits) ? 1 : 0;
  }
  // The mutations must leave some bodies valid, or the property only tests rejection.
  EXPECT_GT(accepted, kTrials / 20);
}

}  // namespace
}  // namespace trail::testing
