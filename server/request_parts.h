// Reading what a request names: its path split into segments, its query string decoded into
// parameters, and the route template it matched (for logs and metrics: never the raw target,
// whose ids and query values may carry personal data).
// Thread safety: free functions and values.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/status.h"
#include "server/http.h"

namespace trail::server {

// Percent-decodes `text` ('+' is a space in queries). Errors: kInvalid for a bad escape.
Result<std::string> percent_decode(std::string_view text, bool plus_is_space);

// The query parameters of a target ("/path?a=1&b=x%20y"), decoded. A repeated name or a bad
// escape is kInvalid naming it.
Result<std::map<std::string, std::string>> parse_query(std::string_view target);

// The path of a target (before '?'), split on '/' and percent-decoded; empty segments are
// dropped, so "/v1//projects/" has the segments v1, projects.
// Errors: kInvalid for a bad escape.
Result<std::vector<std::string>> path_segments(std::string_view target);

// Query parameters a route reads. Every name in `query` must be in `known`, else kInvalid
// naming the first unknown one (so a typo is an error, not a silently ignored filter).
Status check_known(const std::map<std::string, std::string>& query,
                   std::initializer_list<std::string_view> known);

// The value of `name` in `query`, or nullopt.
std::optional<std::string> query_value(const std::map<std::string, std::string>& query,
                                       std::string_view name);

// The decimal whole number at `name`, or `fallback` when absent.
// Errors: kInvalid naming the parameter.
Result<std::uint64_t> query_u64(const std::map<std::string, std::string>& query,
                                std::string_view name, std::uint64_t fallback);

// The page size at "limit": `fallback` when absent, else 1 to `max`.
// Errors: kInvalid naming the range.
Result<std::uint64_t> query_limit(const std::map<std::string, std::string>& query,
                                  std::uint64_t fallback, std::uint64_t max);

// The RFC 3339 time at `name` in microseconds, or nullopt when absent.
// Errors: kInvalid naming the parameter.
Result<std::optional<std::int64_t>> query_time(const std::map<std::string, std::string>& query,
                                               std::string_view name);

}  // namespace trail::server
