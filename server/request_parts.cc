#include "server/request_parts.h"

#include "ledger/clock.h"

namespace trail::server {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Result<std::string> percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) {
        return Status::error(Code::kInvalid, "truncated percent escape");
      }
      const int hi = hex_value(text[i + 1]);
      const int lo = hex_value(text[i + 2]);
      if (hi < 0 || lo < 0) return Status::error(Code::kInvalid, "bad percent escape");
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

Result<std::map<std::string, std::string>> parse_query(std::string_view target) {
  std::map<std::string, std::string> out;
  const auto q = target.find('?');
  if (q == std::string_view::npos) return out;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    if (pair.empty()) continue;
    const auto eq = pair.find('=');
    TRAIL_ASSIGN_OR_RETURN(auto name, percent_decode(pair.substr(0, eq), true));
    std::string value;
    if (eq != std::string_view::npos) {
      TRAIL_ASSIGN_OR_RETURN(value, percent_decode(pair.substr(eq + 1), true));
    }
    if (!out.emplace(name, std::move(value)).second) {
      return Status::error(Code::kInvalid, "query parameter '" + name + "' is repeated");
    }
  }
  return out;
}

Result<std::vector<std::string>> path_segments(std::string_view target) {
  std::string_view path = target.substr(0, target.find('?'));
  std::vector<std::string> out;
  while (!path.empty()) {
    const auto slash = path.find('/');
    const std::string_view segment = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view{} : path.substr(slash + 1);
    if (segment.empty()) continue;
    TRAIL_ASSIGN_OR_RETURN(auto decoded, percent_decode(segment, false));
    out.push_back(std::move(decoded));
  }
  return out;
}

Status check_known(const std::map<std::string, std::string>& query,
                   std::initializer_list<std::string_view> known) {
  for (const auto& [name, value] : query) {
    bool found = false;
    for (auto k : known) found = found || k == name;
    if (!found) return Status::error(Code::kInvalid, "unknown query parameter '" + name + "'");
  }
  return Status::ok();
}

std::optional<std::string> query_value(const std::map<std::string, std::string>& query,
                                       std::string_view name) {
  auto it = query.find(std::string(name));
  if (it == query.end()) return std::nullopt;
  return it->second;
}

Result<std::uint64_t> query_u64(const std::map<std::string, std::string>& query,
                                std::string_view name, std::uint64_t fallback) {
  auto it = query.find(std::string(name));
  if (it == query.end()) return fallback;
  const std::string& text = it->second;
  if (text.empty() || text.size() > 19 ||
      text.find_first_not_of("0123456789") != std::string::npos) {
    return Status::error(Code::kInvalid, "'" + std::string(name) + "' must be a whole number");
  }
  return static_cast<std::uint64_t>(std::stoull(text));
}

Result<std::uint64_t> query_limit(const std::map<std::string, std::string>& query,
                                  std::uint64_t fallback, std::uint64_t max) {
  TRAIL_ASSIGN_OR_RETURN(std::uint64_t limit, query_u64(query, "limit", fallback));
  if (limit == 0 || limit > max) {
    return Status::error(Code::kInvalid, "'limit' must be 1 to " + std::to_string(max));
  }
  return limit;
}

Result<std::optional<std::int64_t>> query_time(const std::map<std::string, std::string>& query,
                                               std::string_view name) {
  auto it = query.find(std::string(name));
  if (it == query.end()) return std::optional<std::int64_t>{};
  auto t = parse_rfc3339(it->second);
  if (!t) {
    return Status::error(Code::kInvalid,
                         "'" + std::string(name) + "' must be an RFC 3339 time, e.g. 2026-01-31T08:00:00Z");
  }
  return std::optional<std::int64_t>{*t};
}

}  // namespace trail::server
