// trailctl case show|history|list: the case view, as JSON.
#include <cstdio>

#include <boost/json.hpp>

#include "tools/trailctl/commands.h"
#include "tools/trailctl/open_ledger.h"

namespace trail::tools {
namespace json = boost::json;

namespace {

json::object case_json(const proj::CaseState& s) {
  json::object out;
  out["case_id"] = format_uuid(s.case_id);
  out["case_type"] = s.case_type;
  out["name"] = s.name;
  out["owner"] = s.owner;
  out["closed"] = s.closed;
  out["opened"] = format_rfc3339(s.opened_us);
  out["modified"] = format_rfc3339(s.modified_us);
  if (s.closed_us != 0) out["closed_at"] = format_rfc3339(s.closed_us);
  out["last_user"] = s.last_user;
  out["last_seq"] = s.last_seq;
  if (s.implicit) out["implicit"] = true;
  json::object fields;
  for (const auto& [name, value] : s.fields) fields[name] = value;
  out["fields"] = std::move(fields);
  json::array indices;
  for (const auto& i : s.indices) {
    indices.push_back({{"name", i.name},
                       {"case_type", i.case_type},
                       {"case_id", i.case_id ? format_uuid(*i.case_id) : ""},
                       {"relationship", i.relationship}});
  }
  out["indices"] = std::move(indices);
  return out;
}

json::object history_json(const proj::HistoryItem& h) {
  json::object out;
  out["case_id"] = format_uuid(h.case_id);
  out["seq"] = h.seq;
  out["server_time"] = format_rfc3339(h.server_time_us);
  out["client_time"] = format_rfc3339(h.client_time_us);
  out["actor"] = h.actor;
  out["device_id"] = h.device_id;
  out["channel"] = ledger::channel_name(h.channel);
  out["event_id"] = format_uuid(h.event_id);
  if (h.via) out["via"] = format_uuid(*h.via);
  out["kind"] = ledger::kind_name(h.kind);
  if (!h.form_xmlns.empty()) out["form_xmlns"] = h.form_xmlns;
  json::array changes;
  for (const auto& c : h.changes) {
    json::object change;
    change["action"] = proj::action_name(c.action);
    if (!c.field.empty()) change["field"] = c.field;
    if (c.prior) change["prior"] = *c.prior;
    if (!c.value.empty() || c.prior) change["value"] = c.value;
    if (c.unchanged) change["unchanged"] = true;
    changes.push_back(std::move(change));
  }
  out["changes"] = std::move(changes);
  return out;
}

void print_line(const json::object& o) {
  const std::string line = json::serialize(o) + "\n";
  std::fwrite(line.data(), 1, line.size(), stdout);
}

}  // namespace

int run_case(const CommonOptions& common, const CaseCommand& cmd) {
  if (Status s = ledger::validate_project(cmd.project); !s.is_ok()) return fail(s.detail());
  std::optional<EventId> case_id;
  if (!cmd.case_id.empty()) {
    case_id = parse_uuid(cmd.case_id);
    if (!case_id) return fail("case id is not a UUID: " + cmd.case_id);
  }
  auto opened = open_ledger(common, /*read_only=*/true);
  if (!opened.is_ok()) return fail(opened.status().detail());
  const auto& ledger = *opened->ledger;
  const auto& cases = *opened->cases;

  if (cmd.action == "show") {
    if (!case_id) return fail("case show needs a case id");
    auto got = cases.get(ledger, cmd.project, *case_id);
    if (!got.is_ok()) return fail(got.status().detail());
    if (!got->has_value()) {
      std::fprintf(stderr, "trailctl: no case %s in %s\n", cmd.case_id.c_str(), cmd.project.c_str());
      return kExitRejected;
    }
    print_line(case_json(**got));
  } else if (cmd.action == "history") {
    proj::HistoryFilter filter;
    filter.case_id = case_id;
    if (!cmd.user.empty()) filter.actor = cmd.user;
    if (!case_id && !filter.actor) return fail("case history needs a case id or --user");
    auto got = cases.history(ledger, cmd.project, filter, cmd.limit);
    if (!got.is_ok()) return fail(got.status().detail());
    for (const auto& h : *got) print_line(history_json(h));
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
    for (const auto& s : *got) print_line(case_json(s));
  }
  std::fflush(stdout);
  return kExitOk;
}

}  // namespace trail::tools
