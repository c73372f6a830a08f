// The OpenRosa response envelope: the exact shape clients parse, and escaping that keeps it
// well-formed whatever the message holds.
#include "server/openrosa_response.h"

#include <gtest/gtest.h>

#include <string>

namespace trail::testing {
namespace {

using server::openrosa_response;

std::string envelope(const std::string& message_element) {
  return R"(<OpenRosaResponse xmlns="http://openrosa.org/http/response">)" + message_element +
         "</OpenRosaResponse>";
}

TEST(OpenRosaResponse, SubmitSuccessByDefault) {
  EXPECT_EQ(openrosa_response("Form received."),
            envelope(R"(<message nature="submit_success">Form received.</message>)"));
}

TEST(OpenRosaResponse, CarriesTheGivenNature) {
  EXPECT_EQ(
      openrosa_response("User 'paul' created", "submit_user_registered"),
      envelope(
          R"(<message nature="submit_user_registered">User &apos;paul&apos; created</message>)"));
}

TEST(OpenRosaResponse, OmitsEmptyNature) {
  EXPECT_EQ(openrosa_response("Hello", ""), envelope("<message>Hello</message>"));
}

TEST(OpenRosaResponse, EscapesMarkupInMessage) {
  EXPECT_EQ(openrosa_response(R"(<b>"Tom" & 'Jerry'</b> ]]> &amp;)"),
            envelope(R"(<message nature="submit_success">&lt;b&gt;&quot;Tom&quot; &amp; )"
                     R"(&apos;Jerry&apos;&lt;/b&gt; ]]&gt; &amp;amp;</message>)"));
}

TEST(OpenRosaResponse, EscapesNatureAsAnAttribute) {
  EXPECT_EQ(
      openrosa_response("m", "a\"b<c>&d'\te\nf\rg"),
      envelope(R"(<message nature="a&quot;b&lt;c&gt;&amp;d&apos;&#9;e&#10;f&#13;g">m</message>)"));
}

TEST(OpenRosaResponse, KeepsTabAndNewlineInTextButEscapesCarriageReturn) {
  EXPECT_EQ(openrosa_response("a\tb\nc\r\nd", ""), envelope("<message>a\tb\nc&#13;\nd</message>"));
}

TEST(OpenRosaResponse, KeepsValidUtf8) {
  const std::string text =
      "Asante \xE2\x80\x94 \xE0\xA4\xA8\xE0\xA4\xAE\xE0\xA4\xB8\xE0\xA5\x8D "
      "\xF0\x9F\x93\x8B \xC3\xA9";  // Em dash, Devanagari, U+1F4CB, é.
  EXPECT_EQ(openrosa_response(text, ""), envelope("<message>" + text + "</message>"));
}

TEST(OpenRosaResponse, ReplacesCharactersXmlForbids) {
  const std::string replacement = "\xEF\xBF\xBD";
  // C0 controls, a lone continuation byte, a truncated sequence, an overlong '/', a UTF-16
  // surrogate, U+FFFE, and a code point above U+10FFFF.
  const std::string input = std::string("a\0b\x01\x1F", 5) + "\x80" + "\xE2\x80" + "\xC0\xAF" +
                            "\xED\xA0\x80" + "\xEF\xBF\xBE" + "\xF4\x90\x80\x80" + "z";
  const std::string output = openrosa_response(input, "");
  EXPECT_EQ(output.find('\0'), std::string::npos);
  EXPECT_EQ(output.find('\x01'), std::string::npos);
  EXPECT_EQ(output.find('\x1F'), std::string::npos);
  EXPECT_EQ(output.find("\xED\xA0\x80"), std::string::npos);
  EXPECT_EQ(output.find("\xEF\xBF\xBE"), std::string::npos);
  EXPECT_EQ(output.find("\xF4\x90"), std::string::npos);
  // Each invalid byte becomes one U+FFFD, except that a truncated sequence's bytes go one by one.
  std::string expected = "a" + replacement + "b" + replacement + replacement;  // \0 \x01 \x1F
  expected += replacement;                                                     // \x80
  expected += replacement + replacement;                                       // \xE2\x80
  expected += replacement + replacement;                                       // \xC0\xAF
  expected += replacement + replacement + replacement;                         // surrogate
  expected += replacement + replacement + replacement;                         // U+FFFE
  expected += replacement + replacement + replacement + replacement;           // > U+10FFFF
  expected += "z";
  EXPECT_EQ(output, envelope("<message>" + expected + "</message>"));
}

TEST(OpenRosaResponse, EmptyMessage) {
  EXPECT_EQ(openrosa_response(""), envelope(R"(<message nature="submit_success"></message>)"));
}

}  // namespace
}  // namespace trail::testing
