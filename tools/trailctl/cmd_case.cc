// trailctl case show|history|list: the case view, as JSON.
#include <algorithm>
#include <cstdio>

#include <boost/json.hpp>

#include "tools/trailctl/commands.h"
#include "tools/trailctl/open_ledger.h"
#include "projections/view_json.h"
#include "tools/trailctl/print_line.h"

namespace trail::tools {
namespace json = boost::json;



int run_case(const CommonOptions& common, const CaseCommand& cmd) {
  if (Status s = ledger::validate_project(cmd.project); !s.is_ok()) return fail(s.detail());
  std::optional<EventId> case_id;
  if (!cmd.case_id.empty()) {
    case_id = parse_uuid(cmd.case_id);
    if (!case_id) return fail("case id is not a UUID: " + cmd.case_id);
  }
  auto opened = open_ledger(common, /*read_only=*/false);  // Reads are recorded: it appends.
  if (!opened.is_ok()) return fail(opened.status().detail());
  auto& ledger = *opened->ledger;
  const auto& cases = *opened->cases;
  const std::string reader = cmd.reader.empty() ? operator_identity() : cmd.reader;
  // No audit record, no data: each read is durable in the access audit before it is printed.
  auto audited = [&](const std::string& what, std::vector<EventId> subjects) {
    std::sort(subjects.begin(), subjects.end());
    subjects.erase(std::unique(subjects.begin(), subjects.end()), subjects.end());
    return record_read(ledger, cmd.project, reader, what, std::move(subjects), cmd.reason,
                       "trailctl case " + cmd.action);
  };

  if (cmd.action == "show") {
    if (!case_id) return fail("case show needs a case id");
    auto got = cases.get(ledger, cmd.project, *case_id);
    if (!got.is_ok()) return fail(got.status().detail());
    if (!got->has_value()) {
      std::fprintf(stderr, "trailctl: no case %s in %s\n", cmd.case_id.c_str(), cmd.project.c_str());
      return kExitRejected;
    }
    if (Status s = audited("case", {(*got)->case_id}); !s.is_ok()) return fail(s.to_string());
    print_line(proj::case_json(**got));
  } else if (cmd.action == "history") {
    proj::HistoryFilter filter;
    filter.case_id = case_id;
    if (!cmd.user.empty()) filter.actor = cmd.user;
    if (!case_id && !filter.actor) return fail("case history needs a case id or --user");
    auto got = cases.history(ledger, cmd.project, filter, cmd.limit);
    if (!got.is_ok()) return fail(got.status().detail());
    std::vector<EventId> read;
    for (const auto& h : *got) read.push_back(h.case_id);
    if (Status s = audited("history", std::move(read)); !s.is_ok()) return fail(s.to_string());
    for (const auto& h : *got) print_line(proj::history_json(h));
  } else {
    proj::CaseFilter filter;
    if (!cmd.owner.empty()) filter.owner = cmd.owner;
    if (!cmd.type.empty()) filter.case_type = cmd.type;
    if (cmd.open_only && cmd.closed_only) return fail("--open and --closed exclude each other");
    if (cmd.open_only) filter.open = true;
    if (cmd.closed_only) filter.open = false;
    std::optional<EventId> after;
    if (!cmd.after.empty()) {
      after = parse_uuid(cmd.after);
      if (!after) return fail("--after is not a UUID");
    }
    auto got = cases.list(ledger, cmd.project, filter, after, cmd.limit);
    if (!got.is_ok()) return fail(got.status().detail());
    std::vector<EventId> read;
    for (const auto& c : *got) read.push_back(c.case_id);
    if (Status s = audited("search", std::move(read)); !s.is_ok()) return fail(s.to_string());
    for (const auto& c : *got) print_line(proj::case_json(c));
  }
  std::fflush(stdout);
  return kExitOk;
}

}  // namespace trail::tools
