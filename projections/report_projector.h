// The reports view: submissions per UTC day per form (xmlns) per user; cases open and closed
// per case type per owner; worker activity (last submission, submissions in the last 7 and 30
// days). Kept in step with the ledger by folding each form.submitted and case event inside the
// append's commit; served as rows, CSV or JSON.
//
// Semantics:
//   - A submission counts on the UTC calendar day of its server time (never the device
//     clock), for its form's xmlns and the event's actor. A form.submitted event whose payload
//     is not a form is ignored.
//   - "Last N days" at `now` means the N UTC calendar days ending with now's day, today
//     included: a submission on day D counts when day(now) - N < D <= day(now). Submissions
//     on days after now's day are not counted; last_submission is the latest ever folded.
//   - Case counters follow the case view's rules (docs/CASES.md): any case event on a case the
//     view has not seen creates it (implicitly unless case.created); a non-empty case_type or
//     owner in the change sets it; case.closed closes, case.reopened re-opens; a close of a
//     closed case or a re-open of an open one changes nothing. Every case is counted in
//     exactly one (case_type, owner) row, as open or closed; rows at 0/0 are removed.
//   - Texts in keys (xmlns, user, case type, owner) longer than kReportKeyTextMax bytes are
//     stored, filtered and reported as their first bytes (cut at a UTF-8 boundary) followed by
//     "#" and 16 hex digits of their SHA-256, so that keys stay within LMDB's limit.
//
// Tables (pk = u8 length || project; text = u8 length || key text; day = u64 big-endian of
// the UTC day number with the sign bit flipped; counts are u64 big-endian):
//   report.submissions  pk | day | text(xmlns) | text(user)  ->  count
//   report.user_days    pk | text(user) | day                 ->  count (all forms)
//   report.users        pk | text(user)                       ->  last submission server time
//                                                                 (u64 BE, sign bit flipped)
//   report.cases        pk | case id (16 bytes)               ->  sealed case record
//   report.case_counts  pk | text(case_type) | text(owner)    ->  open count || closed count
// Encryption at rest: ARCHITECTURE allows LMDB keys and indexes to hold opaque ids, types,
// times and counts, and nothing else appears in clear: keys hold project ids, days, form
// xmlns, user and owner ids, case types and case ids; counters and times are plain integers
// (they carry no personal data). The per-case record (case type, owner, closed) is sealed
// with the project's data key (DataKey::seal_deterministic, associated data = table name,
// NUL, key), so rebuilds are byte-identical.
// Invariants: apply() is a pure function of the view and the event (no wall clock); the sum
//             of the case_counts rows equals the number of records in report.cases.
// Errors: queries return kInvalid for a malformed project id or when the view is not
//         registered with the ledger, and kCorrupt when a stored key or value is malformed
//         (rebuild the views); a project without events gives no rows. apply() fails only on
//         storage errors or a case record that does not open (kCorrupt), as the case view does.
// Thread safety: apply() on the writer thread; queries and the free functions from any
//                thread (the projector holds no state).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/clock.h"
#include "ledger/ledger.h"
#include "ledger/projector.h"
#include "ledger/status.h"
#include "projections/kept_states.h"

namespace trail::proj {

// Longest text kept as is in a key; longer ones are shortened as described above.
inline constexpr std::size_t kReportKeyTextMax = 160;

// A UTC calendar day: days since 1970-01-01.
using Day = std::int64_t;

// The UTC day of `t` (floor division, so times before the epoch work too).
Day utc_day(TimeUs t);
// "YYYY-MM-DD".
std::string format_day(Day day);
// Parses "YYYY-MM-DD" (a real date, years 1 to 9999); nullopt for anything else.
std::optional<Day> parse_day(std::string_view text);

struct SubmissionRow {
  std::string day;  // "YYYY-MM-DD", UTC.
  std::string xmlns;
  std::string user;
  std::uint64_t count = 0;
  bool operator==(const SubmissionRow&) const = default;
};

struct CaseCountRow {
  std::string case_type;
  std::string owner;
  std::uint64_t open = 0;
  std::uint64_t closed = 0;
  bool operator==(const CaseCountRow&) const = default;
};

struct ActivityRow {
  std::string user;
  TimeUs last_submission = 0;  // Server time of the user's latest submission.
  std::uint64_t last_7_days = 0;
  std::uint64_t last_30_days = 0;
  bool operator==(const ActivityRow&) const = default;
};

struct SubmissionFilter {
  std::optional<std::string> xmlns;
  std::optional<std::string> user;
};

class ReportProjector final : public ledger::Projector {
 public:
  std::string_view name() const override { return "report"; }
  std::vector<std::string> tables() const override;
  Status apply(ledger::ProjectionTables& tables, const ledger::AppendedEvent& event) override;
  void discard() override;

  // Submission counts on days from_day to to_day (both inclusive) matching `filter`, ordered
  // by day, xmlns, user. An empty range (from_day > to_day) gives no rows.
  Result<std::vector<SubmissionRow>> submissions(const ledger::Ledger& ledger,
                                                 std::string_view project, Day from_day, Day to_day,
                                                 const SubmissionFilter& filter = {}) const;
  // Open and closed cases per (case type, owner), ordered by case type, owner.
  Result<std::vector<CaseCountRow>> case_counts(const ledger::Ledger& ledger,
                                                std::string_view project) const;
  // Every user who has submitted, ordered by user, with counts relative to `now`.
  Result<std::vector<ActivityRow>> activity(const ledger::Ledger& ledger, std::string_view project,
                                            TimeUs now) const;

  // The same over this view's sub-databases in one snapshot (e.g. inside
  // Ledger::read_projection), addressed as in tables().
  Result<std::vector<SubmissionRow>> submissions(const ledger::ProjectionTables& tables,
                                                 std::string_view project, Day from_day, Day to_day,
                                                 const SubmissionFilter& filter = {}) const;
  Result<std::vector<CaseCountRow>> case_counts(const ledger::ProjectionTables& tables,
                                                std::string_view project) const;
  Result<std::vector<ActivityRow>> activity(const ledger::ProjectionTables& tables,
                                            std::string_view project, TimeUs now) const;

 private:
  // Cases this writer saw stored or stored itself (records are never removed), so that an event
  // that cannot change a counted case skips reading its record; forgotten by the rules of
  // projections/kept_states.h. Writer thread only.
  KeptStates<bool> known_cases_{65536};
};

// CSV (RFC 4180): a header line, then one line per row, lines ending in CRLF; a field holding
// a comma, a double quote, CR or LF is quoted with its quotes doubled. Times are RFC 3339 UTC.
//   submissions: day,xmlns,user,count
//   case counts: case_type,owner,open,closed
//   activity:    user,last_submission,last_7_days,last_30_days
// Values are written as they are (a spreadsheet may read a leading '=' as a formula).
std::string to_csv(const std::vector<SubmissionRow>& rows);
std::string to_csv(const std::vector<CaseCountRow>& rows);
std::string to_csv(const std::vector<ActivityRow>& rows);

// JSON: an array of objects with the CSV header names as keys, counts as numbers, times as
// RFC 3339 strings; bytes that are not valid UTF-8 become U+FFFD.
std::string to_json(const std::vector<SubmissionRow>& rows);
std::string to_json(const std::vector<CaseCountRow>& rows);
std::string to_json(const std::vector<ActivityRow>& rows);

}  // namespace trail::proj
