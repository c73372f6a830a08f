#include "server/multipart.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "ledger/assert.h"

namespace trail::server {
namespace {

constexpr std::string_view kDefaultPartType = "text/plain";

bool is_space(char c) { return c == ' ' || c == '\t'; }

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// RFC 7230 tchar: the characters of a header name or a parameter name.
bool is_tchar(char c) {
  return is_alnum(c) || std::string_view{"!#$%&'*+-.^_`|~"}.find(c) != std::string_view::npos;
}

// RFC 2046 bchars, space included (it may not end a boundary).
bool is_bchar(char c) {
  return is_alnum(c) || std::string_view{"'()+_,-./:=? "}.find(c) != std::string_view::npos;
}

char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return to_lower(x) == to_lower(y);
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && is_space(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}

Status invalid(std::string detail) { return Status::error(Code::kInvalid, std::move(detail)); }

struct Param {
  std::string name;  // Lower-cased.
  std::string value;
};

// Reads a quoted-string whose opening quote `rest` has just passed; leaves `rest` after the
// closing quote. A backslash escapes only `"` and `\`, so Windows paths keep their backslashes.
Result<std::string> take_quoted(std::string_view& rest) {
  std::string value;
  while (!rest.empty()) {
    const char c = rest.front();
    rest.remove_prefix(1);
    if (c == '"') {
      return value;
    }
    if (c == '\\' && !rest.empty() && (rest.front() == '"' || rest.front() == '\\')) {
      value.push_back(rest.front());
      rest.remove_prefix(1);
      continue;
    }
    value.push_back(c);
  }
  return invalid("unterminated quoted string");
}

// Parses `*( ";" name "=" (token | quoted-string) )`, the parameters after a media type or a
// disposition type. Empty parameters (";;", a trailing ";") are skipped.
Result<std::vector<Param>> parse_params(std::string_view rest) {
  std::vector<Param> params;
  while (true) {
    rest = trim(rest);
    if (rest.empty()) {
      return params;
    }
    if (rest.front() == ';') {
      rest.remove_prefix(1);
      continue;
    }
    const std::size_t eq = rest.find_first_of("=;");
    if (eq == std::string_view::npos || rest[eq] == ';') {
      return invalid("parameter without a value");
    }
    const std::string_view name = trim(rest.substr(0, eq));
    if (!is_token(name)) {
      return invalid("malformed parameter name");
    }
    rest = trim(rest.substr(eq + 1));
    std::string value;
    if (!rest.empty() && rest.front() == '"') {
      rest.remove_prefix(1);
      TRAIL_ASSIGN_OR_RETURN(value, take_quoted(rest));
      rest = trim(rest);
      if (!rest.empty() && rest.front() != ';') {
        return invalid("characters after a quoted parameter value");
      }
    } else {
      const std::size_t end = std::min(rest.find(';'), rest.size());
      value = std::string{trim(rest.substr(0, end))};
      rest.remove_prefix(end);
    }
    Param param{std::string{name}, std::move(value)};
    std::transform(param.name.begin(), param.name.end(), param.name.begin(), to_lower);
    if (std::any_of(params.begin(), params.end(),
                    [&](const Param& p) { return p.name == param.name; })) {
      return invalid("repeated parameter " + param.name);
    }
    params.push_back(std::move(param));
  }
}

const Param* find_param(const std::vector<Param>& params, std::string_view name) {
  const auto it =
      std::find_if(params.begin(), params.end(), [&](const Param& p) { return p.name == name; });
  return it == params.end() ? nullptr : &*it;
}

Status check_boundary(std::string_view boundary) {
  if (boundary.empty()) {
    return invalid("empty multipart boundary");
  }
  if (boundary.size() > kBoundaryBytesMax) {
    return invalid("multipart boundary longer than 70 characters");
  }
  if (!std::all_of(boundary.begin(), boundary.end(), is_bchar) || boundary.back() == ' ') {
    return invalid("multipart boundary has characters RFC 2046 does not allow");
  }
  return Status::ok();
}

// A delimiter line found in the body.
struct Delimiter {
  std::size_t content_end = 0;  // Where the content before it ends (its CRLF or LF excluded).
  std::size_t next = 0;         // First byte after the delimiter line.
  bool close = false;           // `--boundary--`: the last delimiter.
};

// Classifies the bytes at `after`, just past a `--boundary` that starts a line: the closing
// delimiter, a delimiter line (transport padding, then CRLF or LF), or nothing (the boundary
// was only the prefix of a longer line).
std::optional<Delimiter> delimiter_tail(std::string_view body, std::size_t after) {
  TRAIL_ASSERT(after <= body.size());
  if (body.substr(after, 2) == "--") {
    return Delimiter{0, body.size(), true};  // The epilogue is ignored.
  }
  std::size_t i = after;
  while (i < body.size() && is_space(body[i])) {
    ++i;
  }
  if (i < body.size() && body[i] == '\n') {
    return Delimiter{0, i + 1, false};
  }
  if (i + 1 < body.size() && body[i] == '\r' && body[i + 1] == '\n') {
    return Delimiter{0, i + 2, false};
  }
  return std::nullopt;
}

// Finds the next delimiter line in the content that starts at `from`. The LF just before
// `from` counts too: in RFC 2046's grammar a part without content may end its headers with the
// CRLF that begins the delimiter. `line_dash` is "\n--boundary".
std::optional<Delimiter> find_delimiter(std::string_view body, std::size_t from,
                                        std::string_view line_dash) {
  TRAIL_ASSERT(from <= body.size());
  std::size_t pos = (from > 0 && body[from - 1] == '\n') ? from - 1 : from;
  while ((pos = body.find(line_dash, pos)) != std::string_view::npos) {
    if (std::optional<Delimiter> found = delimiter_tail(body, pos + line_dash.size())) {
      std::size_t end = pos;
      if (end > from && body[end - 1] == '\r') {
        --end;
      }
      found->content_end = std::max(end, from);
      TRAIL_ASSERT(found->content_end <= pos + 1);
      return found;
    }
    ++pos;
  }
  return std::nullopt;
}

// The first delimiter: at the very start of the body, or at the start of a later line.
std::optional<Delimiter> find_first_delimiter(std::string_view body, std::string_view line_dash) {
  const std::string_view dash = line_dash.substr(1);
  if (body.starts_with(dash)) {
    if (std::optional<Delimiter> found = delimiter_tail(body, dash.size())) {
      return found;
    }
  }
  return find_delimiter(body, 0, line_dash);
}

struct Header {
  std::string_view name;
  std::string value;  // Trimmed; folded lines joined with one space.
};

// Reads the header block starting at `start` up to and including its blank line.
// Returns the index just past the blank line.
Result<std::size_t> read_headers(std::string_view body, std::size_t start,
                                 std::size_t header_bytes_max, std::vector<Header>& headers) {
  TRAIL_ASSERT(start <= body.size());
  const std::string_view window =
      body.substr(0, start + std::min(header_bytes_max, body.size() - start));
  std::size_t pos = start;
  while (true) {
    const std::size_t nl = window.find('\n', pos);
    if (nl == std::string_view::npos) {
      if (window.size() < body.size()) {
        return invalid("header block longer than " + std::to_string(header_bytes_max) + " bytes");
      }
      return invalid("body ends inside the part's headers");
    }
    std::string_view line = body.substr(pos, nl - pos);
    pos = nl + 1;
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    if (line.empty()) {
      return pos;
    }
    if (is_space(line.front())) {  // obs-fold: continues the previous header's value.
      if (headers.empty()) {
        return invalid("folded header line before any header");
      }
      headers.back().value += ' ';
      headers.back().value += trim(line);
      continue;
    }
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || !is_token(line.substr(0, colon))) {
      return invalid("malformed header line");
    }
    headers.push_back(Header{line.substr(0, colon), std::string{trim(line.substr(colon + 1))}});
  }
}

// Fills `part`'s name, filename and content type from its headers.
Status interpret_headers(const std::vector<Header>& headers, Part& part) {
  const Header* disposition = nullptr;
  const Header* type = nullptr;
  for (const Header& header : headers) {
    const Header** slot = iequals(header.name, "content-disposition") ? &disposition
                          : iequals(header.name, "content-type")      ? &type
                                                                      : nullptr;
    if (slot == nullptr) {
      continue;  // Content-Transfer-Encoding and others: deprecated or irrelevant (RFC 7578).
    }
    if (*slot != nullptr) {
      return invalid("repeated " + std::string{header.name} + " header");
    }
    *slot = &header;
  }
  if (disposition == nullptr) {
    return invalid("no Content-Disposition header");
  }
  const std::string_view value = disposition->value;
  const std::size_t semi = std::min(value.find(';'), value.size());
  if (!iequals(trim(value.substr(0, semi)), "form-data")) {
    return invalid("Content-Disposition is not form-data");
  }
  Result<std::vector<Param>> params = parse_params(value.substr(semi));
  if (!params.is_ok()) {
    return invalid("Content-Disposition: " + params.status().detail());
  }
  const Param* name = find_param(*params, "name");
  if (name == nullptr || name->value.empty()) {
    return invalid("no name in Content-Disposition");
  }
  part.name = name->value;
  if (const Param* filename = find_param(*params, "filename")) {
    part.filename = filename->value;
  }
  part.content_type =
      (type == nullptr || type->value.empty()) ? std::string{kDefaultPartType} : type->value;
  return Status::ok();
}

// Parses the headers of the part whose header block starts at `start`; returns where its
// content starts.
Result<std::size_t> read_part_headers(std::string_view body, std::size_t start,
                                      const MultipartLimits& limits, std::size_t part_number,
                                      Part& part) {
  const auto fail = [part_number](const Status& status) {
    return invalid("multipart part " + std::to_string(part_number) + ": " + status.detail());
  };
  std::vector<Header> headers;
  const Result<std::size_t> content_start =
      read_headers(body, start, limits.part_header_bytes_max, headers);
  if (!content_start.is_ok()) {
    return fail(content_start.status());
  }
  if (const Status status = interpret_headers(headers, part); !status.is_ok()) {
    return fail(status);
  }
  TRAIL_ASSERT(*content_start > start);
  return *content_start;
}

}  // namespace

Result<std::string> multipart_boundary(std::string_view content_type) {
  const std::size_t semi = std::min(content_type.find(';'), content_type.size());
  const std::string_view media_type = trim(content_type.substr(0, semi));
  if (media_type.empty()) {
    return invalid("no Content-Type; expected multipart/form-data");
  }
  if (!iequals(media_type, "multipart/form-data")) {
    return invalid("Content-Type is not multipart/form-data");
  }
  Result<std::vector<Param>> params = parse_params(content_type.substr(semi));
  if (!params.is_ok()) {
    return invalid("Content-Type: " + params.status().detail());
  }
  const Param* boundary = find_param(*params, "boundary");
  if (boundary == nullptr) {
    return invalid("multipart/form-data without a boundary parameter");
  }
  TRAIL_TRY(check_boundary(boundary->value));
  return boundary->value;
}

Result<std::vector<Part>> parse_multipart(std::string_view body, std::string_view boundary,
                                          const MultipartLimits& limits) {
  TRAIL_TRY(check_boundary(boundary));
  std::string line_dash = "\n--";
  line_dash += boundary;

  std::optional<Delimiter> delimiter = find_first_delimiter(body, line_dash);
  if (!delimiter) {
    return invalid("no multipart boundary delimiter in the body");
  }
  std::vector<Part> parts;
  while (!delimiter->close) {
    if (parts.size() >= limits.parts_max) {
      return invalid("more than " + std::to_string(limits.parts_max) + " multipart parts");
    }
    Part part;
    TRAIL_ASSIGN_OR_RETURN(
        const std::size_t content_start,
        read_part_headers(body, delimiter->next, limits, parts.size() + 1, part));
    delimiter = find_delimiter(body, content_start, line_dash);
    if (!delimiter) {
      return invalid("multipart body ends without the closing boundary delimiter");
    }
    TRAIL_ASSERT(delimiter->content_end >= content_start);
    TRAIL_ASSERT(delimiter->content_end <= body.size());
    part.body = body.substr(content_start, delimiter->content_end - content_start);
    parts.push_back(std::move(part));
  }
  TRAIL_ASSERT(parts.size() <= limits.parts_max);
  return parts;
}

}  // namespace trail::server
