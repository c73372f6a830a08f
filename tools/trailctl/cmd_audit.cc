// trailctl audit changes|access and trailctl report: the audit trails and the aggregates.
#include <algorithm>
#include <cstdio>

#include "projections/report_projector.h"
#include "tools/trailctl/commands.h"
#include "tools/trailctl/open_ledger.h"
#include "projections/view_json.h"
#include "tools/trailctl/print_line.h"

namespace trail::tools {

namespace {

// Parses --from/--to: an RFC 3339 time or a date (midnight UTC).
Result<std::optional<TimeUs>> parse_bound(const std::string& text, const char* name) {
  if (text.empty()) return std::optional<TimeUs>{};
  if (auto t = parse_rfc3339(text)) return std::optional<TimeUs>{*t};
  if (auto day = proj::parse_day(text)) return std::optional<TimeUs>{*day * 86'400'000'000LL};
  return Status::error(Code::kInvalid,
                       std::string(name) + " is neither an RFC 3339 time nor a YYYY-MM-DD date");
}

}  // namespace

int run_audit(const CommonOptions& common, const AuditCommand& cmd) {
  if (Status s = ledger::validate_project(cmd.project); !s.is_ok()) return fail(s.detail());
  auto from = parse_bound(cmd.from, "--from");
  if (!from.is_ok()) return fail(from.status().detail());
  auto to = parse_bound(cmd.to, "--to");
  if (!to.is_ok()) return fail(to.status().detail());
  std::optional<EventId> case_id;
  if (!cmd.case_id.empty()) {
    case_id = parse_uuid(cmd.case_id);
    if (!case_id) return fail("--case is not a UUID");
  }
  auto opened = open_ledger(common, /*read_only=*/cmd.trail == "access");
  if (!opened.is_ok()) return fail(opened.status().detail());
  auto& ledger = *opened->ledger;

  if (cmd.trail == "changes") {
    proj::HistoryFilter filter;
    filter.case_id = case_id;
    if (!cmd.user.empty()) filter.actor = cmd.user;
    filter.from_us = *from;
    filter.to_us = *to;
    auto got = opened->cases->history(ledger, cmd.project, filter, cmd.limit);
    if (!got.is_ok()) return fail(got.status().detail());
    // Change history shows values: a read of personal data, recorded before it is shown.
    std::vector<EventId> read;
    for (const auto& h : *got) read.push_back(h.case_id);
    std::sort(read.begin(), read.end());
    read.erase(std::unique(read.begin(), read.end()), read.end());
    const Status recorded = record_read(ledger, cmd.project, operator_identity(), "history",
                                        std::move(read), cmd.reason, "trailctl audit changes");
    if (!recorded.is_ok()) return fail(recorded.to_string());
    for (const auto& h : *got) print_line(proj::history_json(h));
  } else {
    proj::AccessFilter filter;
    filter.case_id = case_id;
    if (!cmd.user.empty()) filter.reader = cmd.user;
    filter.from_us = *from;
    filter.to_us = *to;
    auto got = opened->access->reads(ledger, cmd.project, filter, cmd.limit);
    if (!got.is_ok()) return fail(got.status().detail());
    for (const auto& r : *got) print_line(proj::access_json(r));
  }
  std::fflush(stdout);
  return kExitOk;
}

int run_report(const CommonOptions& common, const ReportCommand& cmd) {
  if (Status s = ledger::validate_project(cmd.project); !s.is_ok()) return fail(s.detail());
  if (cmd.format != "json" && cmd.format != "csv") return fail("--format is json or csv");
  auto opened = open_ledger(common, /*read_only=*/true);
  if (!opened.is_ok()) return fail(opened.status().detail());
  const auto& ledger = *opened->ledger;
  const auto& reports = *opened->reports;
  const bool csv = cmd.format == "csv";
  std::string out;
  if (cmd.name == "submissions") {
    const proj::Day today = proj::utc_day(now_us());
    proj::Day from = today - 29;
    proj::Day to = today;
    if (!cmd.from.empty()) {
      auto day = proj::parse_day(cmd.from);
      if (!day) return fail("--from is not a YYYY-MM-DD date");
      from = *day;
    }
    if (!cmd.to.empty()) {
      auto day = proj::parse_day(cmd.to);
      if (!day) return fail("--to is not a YYYY-MM-DD date");
      to = *day;
    }
    auto rows = reports.submissions(ledger, cmd.project, from, to);
    if (!rows.is_ok()) return fail(rows.status().detail());
    out = csv ? proj::to_csv(*rows) : proj::to_json(*rows);
  } else if (cmd.name == "cases") {
    auto rows = reports.case_counts(ledger, cmd.project);
    if (!rows.is_ok()) return fail(rows.status().detail());
    out = csv ? proj::to_csv(*rows) : proj::to_json(*rows);
  } else if (cmd.name == "activity") {
    auto rows = reports.activity(ledger, cmd.project, now_us());
    if (!rows.is_ok()) return fail(rows.status().detail());
    out = csv ? proj::to_csv(*rows) : proj::to_json(*rows);
  } else {
    return fail("unknown report '" + cmd.name + "' (submissions, cases, activity)");
  }
  if (!csv) out += '\n';
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
  return kExitOk;
}

}  // namespace trail::tools
