#include "server/openrosa_response.h"

#include <cstddef>
#include <cstdint>

#include "ledger/assert.h"

namespace trail::server {
namespace {

constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD in UTF-8.

// The length of the well-formed UTF-8 sequence that starts `text` when it encodes an XML 1.0
// Char, else 0.
std::size_t xml_char_length(std::string_view text) {
  TRAIL_ASSERT(!text.empty());
  const auto lead = static_cast<unsigned char>(text.front());
  if (lead < 0x80U) {
    return (lead >= 0x20U || lead == '\t' || lead == '\n' || lead == '\r') ? 1 : 0;
  }
  std::size_t length = 0;
  std::uint32_t code_point = 0;
  std::uint32_t code_point_min = 0;  // Shorter encodings are overlong, hence invalid.
  if ((lead & 0xE0U) == 0xC0U) {
    length = 2;
    code_point = lead & 0x1FU;
    code_point_min = 0x80;
  } else if ((lead & 0xF0U) == 0xE0U) {
    length = 3;
    code_point = lead & 0x0FU;
    code_point_min = 0x800;
  } else if ((lead & 0xF8U) == 0xF0U) {
    length = 4;
    code_point = lead & 0x07U;
    code_point_min = 0x10000;
  } else {
    return 0;
  }
  if (text.size() < length) {
    return 0;
  }
  for (std::size_t i = 1; i < length; ++i) {
    const auto next = static_cast<unsigned char>(text[i]);
    if ((next & 0xC0U) != 0x80U) {
      return 0;
    }
    code_point = (code_point << 6U) | (next & 0x3FU);
  }
  const bool surrogate = code_point >= 0xD800U && code_point <= 0xDFFFU;
  const bool non_character = code_point == 0xFFFEU || code_point == 0xFFFFU;
  if (code_point < code_point_min || code_point > 0x10FFFFU || surrogate || non_character) {
    return 0;
  }
  return length;
}

// Appends `text` to `out` as XML character data, or as an attribute value when `attribute`.
void append_escaped(std::string& out, std::string_view text, bool attribute) {
  while (!text.empty()) {
    const std::size_t length = xml_char_length(text);
    if (length == 0) {
      out += kReplacementCharacter;
      text.remove_prefix(1);
      continue;
    }
    if (length > 1) {
      out += text.substr(0, length);
      text.remove_prefix(length);
      continue;
    }
    const char c = text.front();
    text.remove_prefix(1);
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      case '\r':  // A parser would turn a literal CR into LF.
        out += "&#13;";
        break;
      case '\n':
        out += attribute ? "&#10;" : "\n";
        break;
      case '\t':
        out += attribute ? "&#9;" : "\t";
        break;
      default:
        out += c;
        break;
    }
  }
}

}  // namespace

std::string openrosa_response(std::string_view message, std::string_view nature) {
  std::string out;
  out.reserve(128 + message.size() + nature.size());
  out += "<OpenRosaResponse xmlns=\"";
  out += kOpenRosaResponseNamespace;
  out += "\"><message";
  if (!nature.empty()) {
    out += " nature=\"";
    append_escaped(out, nature, /*attribute=*/true);
    out += '"';
  }
  out += '>';
  append_escaped(out, message, /*attribute=*/false);
  out += "</message></OpenRosaResponse>";
  return out;
}

}  // namespace trail::server
