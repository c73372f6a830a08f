#include "projections/report_projector.h"
#include "projections/view_keys.h"

#include <algorithm>
#include <cstring>
#include <tuple>
#include <utility>

#include <boost/json.hpp>
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

#include "ledger/assert.h"
#include "ledger/envelope.h"
#include "ledger/sha256.h"
#include "projections/case_payload.h"
#include "schema/event.capnp.h"

namespace trail::proj {
namespace {

// Shared key helpers: projections/view_keys.h.
std::string pk(std::string_view project) { return view::project_prefix(project); }
using view::add_u64;
using view::is_case_kind;

enum TableIndex : std::size_t { kSubmissions, kUserDays, kUsers, kCases, kCaseCounts };
constexpr const char* kTableNames[] = {"report.submissions", "report.user_days", "report.users",
                                       "report.cases", "report.case_counts"};

constexpr TimeUs kUsPerDay = 86'400'000'000;
constexpr std::uint64_t kSignBit = 1ULL << 63U;
constexpr std::uint8_t kCaseRecordVersion = 1;

Status malformed(std::string_view what) {
  return Status::error(Code::kCorrupt,
                       "report view: malformed " + std::string(what) + "; rebuild the views");
}



bool is_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0U) == 0x80U; }

// ---- keys ----

// `s` as keys hold it: as is when short enough, else a prefix cut at a UTF-8 boundary, '#',
// and 16 hex digits of its SHA-256.
std::string key_text(std::string_view s) {
  if (s.size() <= kReportKeyTextMax) return std::string(s);
  std::size_t cut = 128;
  while (cut > 0 && is_continuation(s[cut])) --cut;
  std::string out(s.substr(0, cut));
  out.push_back('#');
  out.append(to_hex(sha256(as_bytes(s))).substr(0, 16));
  return out;
}

// Signed values, order-preserving: flip the sign bit.
void add_i64(std::string& k, std::int64_t v) {
  add_u64(k, static_cast<std::uint64_t>(v) ^ kSignBit);
}
std::int64_t get_i64(const std::uint8_t* in) {
  return static_cast<std::int64_t>(get_u64_be(in) ^ kSignBit);
}
// A text already in key form (at most kReportKeyTextMax bytes).
void add_raw_text(std::string& k, std::string_view t) {
  k.push_back(static_cast<char>(static_cast<std::uint8_t>(t.size())));
  k.append(t);
}
void add_text(std::string& k, std::string_view s) { add_raw_text(k, key_text(s)); }

bool has_prefix(ByteView k, std::string_view prefix) {
  return k.size() >= prefix.size() && as_chars(k.subspan(0, prefix.size())) == prefix;
}

// Reads the parts of a key after its project prefix.
class KeyReader {
 public:
  explicit KeyReader(ByteView rest) : rest_(rest) {}
  bool i64(std::int64_t& out) {
    if (rest_.size() < 8) return false;
    out = get_i64(rest_.data());
    rest_ = rest_.subspan(8);
    return true;
  }
  bool text(std::string& out) {
    if (rest_.empty()) return false;
    const std::size_t len = rest_[0];
    if (rest_.size() < 1 + len) return false;
    out.assign(as_chars(rest_.subspan(1, len)));
    rest_ = rest_.subspan(1 + len);
    return true;
  }
  bool done() const { return rest_.empty(); }

 private:
  ByteView rest_;
};

std::string submission_key(std::string_view project, Day day, std::string_view xmlns,
                           std::string_view user) {
  std::string k = pk(project);
  add_i64(k, day);
  add_text(k, xmlns);
  add_text(k, user);
  return k;
}
std::string user_day_key(std::string_view project, std::string_view user, Day day) {
  std::string k = pk(project);
  add_text(k, user);
  add_i64(k, day);
  return k;
}
std::string user_key(std::string_view project, std::string_view user) {
  std::string k = pk(project);
  add_text(k, user);
  return k;
}
std::string case_key(std::string_view project, const EventId& id) {
  std::string k = pk(project);
  k.append(as_chars(id));
  return k;
}
std::string count_key(std::string_view project, std::string_view case_type,
                      std::string_view owner) {
  std::string k = pk(project);
  add_text(k, case_type);
  add_text(k, owner);
  return k;
}

// ---- values ----

std::string u64_value(std::uint64_t v) {
  std::string out;
  add_u64(out, v);
  return out;
}

// Adds one to the counter at `key` of `table`.
Status increment(ledger::ProjectionTables& tables, std::size_t table, const std::string& key) {
  TRAIL_ASSIGN_OR_RETURN(auto stored, tables.get(table, as_bytes(key)));
  std::uint64_t count = 0;
  if (stored) {
    if (stored->size() != 8) return malformed("counter");
    count = get_u64_be(stored->data());
  }
  return tables.put(table, as_bytes(key), as_bytes(u64_value(count + 1)));
}

struct CaseRecord {
  std::string case_type;
  std::string owner;
  bool closed = false;
  bool operator==(const CaseRecord&) const = default;
};

std::string aad_for(std::size_t table, std::string_view key) {
  return view::aad_for(kTableNames[table], key);
}

void add_len_text(std::string& out, std::string_view s) {
  std::uint8_t b[4];
  put_u32_be(b, static_cast<std::uint32_t>(s.size()));
  out.append(reinterpret_cast<const char*>(b), 4);
  out.append(s);
}

// version u8 || closed u8 || u32 BE length || case type || u32 BE length || owner, sealed.
std::string seal_record(const ledger::DataKey& key, const std::string& k, const CaseRecord& r) {
  std::string plain;
  plain.push_back(static_cast<char>(kCaseRecordVersion));
  plain.push_back(r.closed ? '\1' : '\0');
  add_len_text(plain, r.case_type);
  add_len_text(plain, r.owner);
  return key.seal_deterministic(as_bytes(aad_for(kCases, k)), as_bytes(plain));
}

Result<CaseRecord> open_record(const ledger::DataKey& key, const std::string& k, ByteView sealed) {
  std::string plain;
  TRAIL_TRY(key.open_deterministic(as_bytes(aad_for(kCases, k)), sealed, plain));
  ByteView rest = as_bytes(plain);
  if (rest.size() < 2 || rest[0] != kCaseRecordVersion || rest[1] > 1)
    return malformed("case record");
  CaseRecord r;
  r.closed = rest[1] == 1;
  rest = rest.subspan(2);
  for (std::string* out : {&r.case_type, &r.owner}) {
    if (rest.size() < 4) return malformed("case record");
    const std::size_t len = get_u32_be(rest.data());
    if (rest.size() - 4 < len) return malformed("case record");
    out->assign(as_chars(rest.subspan(4, len)));
    rest = rest.subspan(4 + len);
  }
  if (!rest.empty()) return malformed("case record");
  return r;
}

// Counts the case `r` in (`add`) or out of (!`add`) its (type, owner) row, as open or closed.
Status count_case(ledger::ProjectionTables& tables, std::string_view project, const CaseRecord& r,
                  bool add) {
  const std::string k = count_key(project, r.case_type, r.owner);
  TRAIL_ASSIGN_OR_RETURN(auto stored, tables.get(kCaseCounts, as_bytes(k)));
  std::uint64_t open = 0;
  std::uint64_t closed = 0;
  if (stored) {
    if (stored->size() != 16) return malformed("case counter");
    open = get_u64_be(stored->data());
    closed = get_u64_be(stored->data() + 8);
  }
  std::uint64_t& counter = r.closed ? closed : open;
  if (add) {
    ++counter;
  } else if (counter > 0) {  // Never below zero, whatever the tables hold.
    --counter;
  }
  if (open == 0 && closed == 0) return tables.del(kCaseCounts, as_bytes(k));
  std::string value = u64_value(open);
  add_u64(value, closed);
  return tables.put(kCaseCounts, as_bytes(k), as_bytes(value));
}

Status apply_form(ledger::ProjectionTables& tables, const ledger::AppendedEvent& event) {
  const ledger::EventDraft& draft = *event.draft;
  auto xmlns = decode_form_xmlns(draft.payload);
  if (!xmlns) return Status::ok();
  const Day day = utc_day(event.server_time_us);
  TRAIL_TRY(
      increment(tables, kSubmissions, submission_key(event.project, day, *xmlns, draft.actor)));
  TRAIL_TRY(increment(tables, kUserDays, user_day_key(event.project, draft.actor, day)));
  const std::string uk = user_key(event.project, draft.actor);
  TRAIL_ASSIGN_OR_RETURN(auto stored, tables.get(kUsers, as_bytes(uk)));
  TimeUs last = event.server_time_us;
  if (stored) {
    if (stored->size() != 8) return malformed("last submission");
    last = std::max(last, get_i64(stored->data()));
  }
  std::string value;
  add_i64(value, last);
  return tables.put(kUsers, as_bytes(uk), as_bytes(value));
}

Status apply_case(ledger::ProjectionTables& tables, const ledger::AppendedEvent& event,
                  KeptStates<bool>& known) {
  const ledger::EventDraft& draft = *event.draft;
  if (!draft.subject) return Status::ok();
  const CaseChangeData* change = case_change_of(event);
  if (change == nullptr) return Status::ok();  // Not a case change: nothing to fold.
  const std::string k = case_key(event.project, *draft.subject);
  // Most events only set fields: nothing in them can change a counted case, so its record is
  // not even opened, nor read when this writer knows it is stored.
  const bool may_change = !change->case_type.empty() || !change->owner.empty() ||
                          draft.kind == schema::Kind::CASE_CLOSED ||
                          draft.kind == schema::Kind::CASE_REOPENED;
  if (!may_change && known.contains(k)) return Status::ok();
  TRAIL_ASSIGN_OR_RETURN(auto stored, tables.get(kCases, as_bytes(k)));
  if (stored) known.keep(k, true);
  if (stored && !may_change) return Status::ok();
  CaseRecord before;
  if (stored) {
    TRAIL_ASSIGN_OR_RETURN(before, open_record(*event.key, k, *stored));
  }
  CaseRecord after = before;
  if (!change->case_type.empty()) after.case_type = change->case_type;
  if (!change->owner.empty()) after.owner = change->owner;
  if (draft.kind == schema::Kind::CASE_CLOSED) after.closed = true;
  if (draft.kind == schema::Kind::CASE_REOPENED) after.closed = false;
  if (stored && after == before) return Status::ok();
  if (stored) TRAIL_TRY(count_case(tables, event.project, before, false));
  TRAIL_TRY(count_case(tables, event.project, after, true));
  TRAIL_TRY(tables.put(kCases, as_bytes(k), as_bytes(seal_record(*event.key, k, after))));
  known.keep(k, true);  // Committed next, or discard() forgets it.
  return Status::ok();
}

// Runs `query` over `projector`'s tables in one snapshot of `ledger`.
template <typename Row, typename Query>
Result<std::vector<Row>> in_snapshot(const ledger::Ledger& ledger,
                                     const ledger::Projector& projector, Query&& query) {
  std::vector<Row> out;
  TRAIL_TRY(
      ledger.read_projection(projector, [&](const ledger::ProjectionTables& tables) -> Status {
        TRAIL_ASSIGN_OR_RETURN(out, query(tables));
        return Status::ok();
      }));
  return out;
}

// ---- output ----

std::string valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80U) {
      out.push_back(s[i++]);
      continue;
    }
    std::size_t len = 0;
    std::uint32_t cp = 0;
    std::uint32_t min = 0;
    if ((c & 0xE0U) == 0xC0U) {
      len = 2;
      cp = c & 0x1FU;
      min = 0x80;
    } else if ((c & 0xF0U) == 0xE0U) {
      len = 3;
      cp = c & 0x0FU;
      min = 0x800;
    } else if ((c & 0xF8U) == 0xF0U) {
      len = 4;
      cp = c & 0x07U;
      min = 0x10000;
    }
    bool ok = len != 0 && i + len <= s.size();
    for (std::size_t j = 1; ok && j < len; ++j) {
      ok = is_continuation(s[i + j]);
      cp = (cp << 6U) | (static_cast<unsigned char>(s[i + j]) & 0x3FU);
    }
    ok = ok && cp >= min && cp <= 0x10FFFFU && (cp < 0xD800U || cp > 0xDFFFU);
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out.append("\xEF\xBF\xBD");
      ++i;
    }
  }
  return out;
}

void csv_field(std::string& out, std::string_view v) {
  if (v.find_first_of(",\"\r\n") == std::string_view::npos) {
    out.append(v);
    return;
  }
  out.push_back('"');
  for (const char c : v) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
}

std::string csv(std::initializer_list<std::string_view> header,
                const std::vector<std::vector<std::string>>& lines) {
  std::string out;
  auto line = [&out](const auto& fields) {
    bool first = true;
    for (const auto& f : fields) {
      if (!first) out.push_back(',');
      first = false;
      csv_field(out, f);
    }
    out.append("\r\n");
  };
  line(header);
  for (const auto& l : lines) line(l);
  return out;
}

boost::json::string json_text(std::string_view s) { return boost::json::string(valid_utf8(s)); }

}  // namespace

Day utc_day(TimeUs t) {
  Day day = t / kUsPerDay;
  if (t % kUsPerDay < 0) --day;
  return day;
}

std::string format_day(Day day) { return format_rfc3339(day * kUsPerDay).substr(0, 10); }

std::optional<Day> parse_day(std::string_view text) {
  if (text.size() != 10) return std::nullopt;
  auto t = parse_rfc3339(std::string(text) + "T00:00:00Z");
  if (!t) return std::nullopt;
  return utc_day(*t);
}

std::vector<std::string> ReportProjector::tables() const {
  return {std::begin(kTableNames), std::end(kTableNames)};
}

Status ReportProjector::apply(ledger::ProjectionTables& tables,
                              const ledger::AppendedEvent& event) {
  TRAIL_ASSERT(event.draft != nullptr && event.key != nullptr);
  known_cases_.saw(event.project, event.seq);
  if (event.draft->kind == schema::Kind::FORM_SUBMITTED) return apply_form(tables, event);
  if (is_case_kind(event.draft->kind)) return apply_case(tables, event, known_cases_);
  return Status::ok();
}

void ReportProjector::discard() { known_cases_.forget(); }

Result<std::vector<SubmissionRow>> ReportProjector::submissions(
    const ledger::ProjectionTables& tables, std::string_view project, Day from_day, Day to_day,
    const SubmissionFilter& filter) const {
  TRAIL_TRY(ledger::validate_project(project));
  std::vector<std::tuple<Day, std::string, std::string, std::uint64_t>> found;
  if (from_day > to_day) return std::vector<SubmissionRow>{};
  const std::string prefix = pk(project);
  std::string from = prefix;
  add_i64(from, from_day);
  const std::optional<std::string> want_xmlns =
      filter.xmlns ? std::optional<std::string>(key_text(*filter.xmlns)) : std::nullopt;
  const std::optional<std::string> want_user =
      filter.user ? std::optional<std::string>(key_text(*filter.user)) : std::nullopt;
  Status inner = Status::ok();
  TRAIL_TRY(tables.scan(kSubmissions, as_bytes(from), [&](ByteView k, ByteView v) {
    if (!has_prefix(k, prefix)) return false;
    KeyReader r(k.subspan(prefix.size()));
    Day day = 0;
    std::string xmlns;
    std::string user;
    if (!r.i64(day) || !r.text(xmlns) || !r.text(user) || !r.done() || v.size() != 8) {
      inner = malformed("submission entry");
      return false;
    }
    if (day > to_day) return false;
    if ((!want_xmlns || xmlns == *want_xmlns) && (!want_user || user == *want_user)) {
      found.emplace_back(day, std::move(xmlns), std::move(user), get_u64_be(v.data()));
    }
    return true;
  }));
  TRAIL_TRY(inner);
  std::sort(found.begin(), found.end());
  std::vector<SubmissionRow> rows;
  rows.reserve(found.size());
  for (auto& [day, xmlns, user, count] : found) {
    rows.push_back({format_day(day), std::move(xmlns), std::move(user), count});
  }
  return rows;
}

Result<std::vector<CaseCountRow>> ReportProjector::case_counts(
    const ledger::ProjectionTables& tables, std::string_view project) const {
  TRAIL_TRY(ledger::validate_project(project));
  std::vector<CaseCountRow> rows;
  const std::string prefix = pk(project);
  Status inner = Status::ok();
  TRAIL_TRY(tables.scan(kCaseCounts, as_bytes(prefix), [&](ByteView k, ByteView v) {
    if (!has_prefix(k, prefix)) return false;
    KeyReader r(k.subspan(prefix.size()));
    CaseCountRow row;
    if (!r.text(row.case_type) || !r.text(row.owner) || !r.done() || v.size() != 16) {
      inner = malformed("case counter");
      return false;
    }
    row.open = get_u64_be(v.data());
    row.closed = get_u64_be(v.data() + 8);
    rows.push_back(std::move(row));
    return true;
  }));
  TRAIL_TRY(inner);
  std::sort(rows.begin(), rows.end(), [](const CaseCountRow& a, const CaseCountRow& b) {
    return std::tie(a.case_type, a.owner) < std::tie(b.case_type, b.owner);
  });
  return rows;
}

Result<std::vector<ActivityRow>> ReportProjector::activity(const ledger::ProjectionTables& tables,
                                                           std::string_view project,
                                                           TimeUs now) const {
  TRAIL_TRY(ledger::validate_project(project));
  std::vector<ActivityRow> rows;
  const std::string prefix = pk(project);
  Status inner = Status::ok();
  TRAIL_TRY(tables.scan(kUsers, as_bytes(prefix), [&](ByteView k, ByteView v) {
    if (!has_prefix(k, prefix)) return false;
    KeyReader r(k.subspan(prefix.size()));
    ActivityRow row;
    if (!r.text(row.user) || !r.done() || v.size() != 8) {
      inner = malformed("last submission");
      return false;
    }
    row.last_submission = get_i64(v.data());
    rows.push_back(std::move(row));
    return true;
  }));
  TRAIL_TRY(inner);
  const Day today = utc_day(now);
  for (ActivityRow& row : rows) {
    std::string user_prefix = prefix;
    add_raw_text(user_prefix, row.user);
    std::string from = user_prefix;
    add_i64(from, today - 29);
    TRAIL_TRY(tables.scan(kUserDays, as_bytes(from), [&](ByteView k, ByteView v) {
      if (!has_prefix(k, user_prefix)) return false;
      KeyReader r(k.subspan(user_prefix.size()));
      Day day = 0;
      if (!r.i64(day) || !r.done() || v.size() != 8) {
        inner = malformed("day counter");
        return false;
      }
      if (day > today) return false;
      const std::uint64_t count = get_u64_be(v.data());
      row.last_30_days += count;
      if (day > today - 7) row.last_7_days += count;
      return true;
    }));
    TRAIL_TRY(inner);
  }
  std::sort(rows.begin(), rows.end(),
            [](const ActivityRow& a, const ActivityRow& b) { return a.user < b.user; });
  return rows;
}

Result<std::vector<SubmissionRow>> ReportProjector::submissions(
    const ledger::Ledger& ledger, std::string_view project, Day from_day, Day to_day,
    const SubmissionFilter& filter) const {
  return in_snapshot<SubmissionRow>(ledger, *this, [&](const ledger::ProjectionTables& tables) {
    return submissions(tables, project, from_day, to_day, filter);
  });
}

Result<std::vector<CaseCountRow>> ReportProjector::case_counts(const ledger::Ledger& ledger,
                                                               std::string_view project) const {
  return in_snapshot<CaseCountRow>(ledger, *this, [&](const ledger::ProjectionTables& tables) {
    return case_counts(tables, project);
  });
}

Result<std::vector<ActivityRow>> ReportProjector::activity(const ledger::Ledger& ledger,
                                                           std::string_view project,
                                                           TimeUs now) const {
  return in_snapshot<ActivityRow>(ledger, *this, [&](const ledger::ProjectionTables& tables) {
    return activity(tables, project, now);
  });
}

std::string to_csv(const std::vector<SubmissionRow>& rows) {
  std::vector<std::vector<std::string>> lines;
  for (const auto& r : rows) lines.push_back({r.day, r.xmlns, r.user, std::to_string(r.count)});
  return csv({"day", "xmlns", "user", "count"}, lines);
}

std::string to_csv(const std::vector<CaseCountRow>& rows) {
  std::vector<std::vector<std::string>> lines;
  for (const auto& r : rows) {
    lines.push_back({r.case_type, r.owner, std::to_string(r.open), std::to_string(r.closed)});
  }
  return csv({"case_type", "owner", "open", "closed"}, lines);
}

std::string to_csv(const std::vector<ActivityRow>& rows) {
  std::vector<std::vector<std::string>> lines;
  for (const auto& r : rows) {
    lines.push_back({r.user, format_rfc3339(r.last_submission), std::to_string(r.last_7_days),
                     std::to_string(r.last_30_days)});
  }
  return csv({"user", "last_submission", "last_7_days", "last_30_days"}, lines);
}

std::string to_json(const std::vector<SubmissionRow>& rows) {
  boost::json::array out;
  for (const auto& r : rows) {
    out.push_back(boost::json::object{{"day", json_text(r.day)},
                                      {"xmlns", json_text(r.xmlns)},
                                      {"user", json_text(r.user)},
                                      {"count", r.count}});
  }
  return boost::json::serialize(out);
}

std::string to_json(const std::vector<CaseCountRow>& rows) {
  boost::json::array out;
  for (const auto& r : rows) {
    out.push_back(boost::json::object{{"case_type", json_text(r.case_type)},
                                      {"owner", json_text(r.owner)},
                                      {"open", r.open},
                                      {"closed", r.closed}});
  }
  return boost::json::serialize(out);
}

std::string to_json(const std::vector<ActivityRow>& rows) {
  boost::json::array out;
  for (const auto& r : rows) {
    out.push_back(boost::json::object{{"user", json_text(r.user)},
                                      {"last_submission", format_rfc3339(r.last_submission)},
                                      {"last_7_days", r.last_7_days},
                                      {"last_30_days", r.last_30_days}});
  }
  return boost::json::serialize(out);
}

}  // namespace trail::proj
