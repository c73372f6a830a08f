// multipart/form-data (RFC 7578 over RFC 2046), as OpenRosa clients (ODK Collect, CommCare)
// send submissions: one part named `xml_submission_file` plus one part per attachment.
//
// The parser is zero-copy: part bodies are views into the request body, so they stay valid
// only while the caller keeps that buffer alive and unchanged. Headers are small and copied.
// Every input is untrusted: any byte string yields either parts or kInvalid, never a crash or
// a read outside `body` (tests/server_codecs/multipart_test.cc mutates bodies to check this).
//
// Tolerated beyond the RFCs, because real clients send it: bare LF instead of CRLF, a missing
// CRLF after the closing delimiter, folded header lines, a body that starts with the first
// delimiter (no preamble and no CRLF before it).
//
// Thread safety: free functions without shared state; call from any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/status.h"

namespace trail::server {

// RFC 2046 section 5.1.1: a boundary is 1 to 70 characters.
inline constexpr std::size_t kBoundaryBytesMax = 70;

struct MultipartLimits {
  std::size_t parts_max = 100;               // Body parts per request.
  std::size_t part_header_bytes_max = 8192;  // Header block of one part, blank line included.
};

// One body part.
struct Part {
  std::string name;          // Content-Disposition `name`; never empty.
  std::string filename;      // Content-Disposition `filename` as sent (not percent-decoded);
                             // empty when absent. Untrusted: never use it as a path.
                             // TODO(security): callers that store attachments must sanitise it.
  std::string content_type;  // Content-Type as sent (trimmed, parameters kept, case as sent);
                             // "text/plain" when the part has none (RFC 7578 section 4.4).
  std::string_view body;     // The part's bytes, without the CRLF before the next delimiter.
                             // Views into the `body` given to parse_multipart().
};

// The boundary parameter of a request's Content-Type header value, unquoted.
// The media type must be multipart/form-data (compared case-insensitively); parameter names
// are case-insensitive; the value may be a token or a quoted string with `\"` escapes.
// Errors: kInvalid when the media type is not multipart/form-data, when a parameter is
//         malformed, when there is no boundary or more than one, or when the boundary is empty,
//         longer than kBoundaryBytesMax, or has characters RFC 2046 does not allow.
Result<std::string> multipart_boundary(std::string_view content_type);

// Splits `body` into its parts, in order. Preamble and epilogue are ignored.
// Part bodies view into `body` (see above); headers are parsed per part: Content-Disposition
// must be `form-data` with a non-empty `name` (quoted values may escape `"` and `\` with a
// backslash; other backslashes stay, so Windows paths in `filename` survive); Content-Type
// defaults to text/plain; other headers are ignored.
// An empty form (the first delimiter is the closing one) gives an empty vector.
// Errors: kInvalid when `boundary` is not valid (as for multipart_boundary), when the body
//         holds no delimiter line, when it ends before the closing `--boundary--`, when a part
//         has more than `limits.part_header_bytes_max` header bytes or a malformed header,
//         when a part lacks a Content-Disposition of type form-data or a name, when it
//         repeats Content-Disposition or Content-Type, or when there are more than
//         `limits.parts_max` parts.
Result<std::vector<Part>> parse_multipart(std::string_view body, std::string_view boundary,
                                          const MultipartLimits& limits = {});

}  // namespace trail::server
