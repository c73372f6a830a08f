// The OpenRosa response envelope (OpenRosa HTTP API, "OpenRosa Response"): the XML body every
// OpenRosa endpoint answers with, carrying one message for the person holding the phone.
// ODK Collect and CommCare show the message text; `nature` groups messages by kind, and the
// value CommCare HQ sends on success is "submit_success".
//
// Thread safety: pure functions; call from any thread.
#pragma once

#include <string>
#include <string_view>

namespace trail::server {

inline constexpr std::string_view kOpenRosaResponseNamespace = "http://openrosa.org/http/response";

// `<OpenRosaResponse xmlns="http://openrosa.org/http/response"><message nature="...">...
// </message></OpenRosaResponse>` on one line, without an XML declaration (UTF-8 is XML's
// default). `message` and `nature` are escaped (& < > " ' and, so they survive attribute
// and line-end normalisation, TAB CR LF in the attribute and CR in the text). Bytes that
// cannot appear in XML 1.0 (C0 controls other than TAB LF CR, invalid UTF-8, U+FFFE, U+FFFF)
// become U+FFFD, so the result is always well-formed. An empty `nature` omits the attribute.
// Never fails.
std::string openrosa_response(std::string_view message, std::string_view nature = "submit_success");

}  // namespace trail::server
