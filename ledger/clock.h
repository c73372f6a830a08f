// Times as Trail stores them: signed microseconds since the Unix epoch, UTC.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace trail {

using TimeUs = std::int64_t;

// Wall-clock now.
TimeUs now_us();

// Parses an RFC 3339 date-time ("2024-05-01T09:30:00Z", "2024-05-01T11:30:00.123+02:00").
// Fractions beyond microseconds are truncated. Returns nullopt for anything else, including
// out-of-range fields (month 13, hour 24, years before 1 or after 9999).
std::optional<TimeUs> parse_rfc3339(std::string_view text);

// Formats as RFC 3339 in UTC with microseconds: "2024-05-01T09:30:00.000000Z".
std::string format_rfc3339(TimeUs t);

}  // namespace trail
