// Reports (aggregates, JSON or CSV) and the audit trails: field-level changes (which show
// values, so reading them is itself recorded) and accesses (who read what, from where).
#include <algorithm>
#include <map>

#include "projections/view_json.h"
#include "server/api_call.h"
#include "server/request_parts.h"

namespace trail::server {
namespace json = boost::json;

namespace {

bool wants_csv(const Request& request) {
  auto it = request.find(http::field::accept);
  if (it == request.end()) return false;
  const std::string_view accept{it->value().data(), it->value().size()};
  return accept.find("text/csv") != std::string_view::npos;
}

// A day bound: YYYY-MM-DD. Errors: kInvalid naming the parameter.
Result<std::optional<proj::Day>> query_day(const std::map<std::string, std::string>& query,
                                           std::string_view name) {
  auto value = query_value(query, name);
  if (!value) return std::optional<proj::Day>{};
  auto day = proj::parse_day(*value);
  if (!day) return Status::error(Code::kInvalid, "'" + std::string(name) + "' must be a YYYY-MM-DD date");
  return std::optional<proj::Day>{*day};
}

// The filter both audit trails take: case, user (actor or reader) and a server-time range.
struct AuditQuery {
  std::optional<EventId> case_id;
  std::optional<std::string> user;
  std::optional<TimeUs> from_us;
  std::optional<TimeUs> to_us;
};

// Errors: kInvalid naming the parameter.
Result<AuditQuery> audit_query(const std::map<std::string, std::string>& query) {
  AuditQuery out;
  if (auto v = query_value(query, "case")) {
    out.case_id = parse_uuid(*v);
    if (!out.case_id) return Status::error(Code::kInvalid, "'case' is not a UUID");
  }
  out.user = query_value(query, "user");
  TRAIL_ASSIGN_OR_RETURN(out.from_us, query_time(query, "from"));
  TRAIL_ASSIGN_OR_RETURN(out.to_us, query_time(query, "to"));
  return out;
}

// Reports cover the caller's analytics scope only: each row is kept when the unit of its owner
// (or of its user's capture scope) lies inside it.
template <typename Row>
void keep_in_analytics(Api::Call& call, std::vector<Row>& rows, std::string Row::*owner) {
  std::erase_if(rows, [&](const Row& row) { return !call.gate->in_analytics(row.*owner); });
}

}  // namespace

void Api::report_get(const CallPtr& call) {
  if (!authorize(call, proj::kViewReports)) return;
  const std::string& name = call->id;
  const bool csv = wants_csv(call->request);
  std::string body;
  if (name == "submissions") {
    if (Status s = check_known(call->query, {"from", "to", "xmlns", "user"}); !s.is_ok()) {
      return call->fail(s);
    }
    const proj::Day today = proj::utc_day(now());
    auto from = query_day(call->query, "from");
    if (!from.is_ok()) return call->fail(from.status());
    auto to = query_day(call->query, "to");
    if (!to.is_ok()) return call->fail(to.status());
    proj::SubmissionFilter filter;
    filter.xmlns = query_value(call->query, "xmlns");
    filter.user = query_value(call->query, "user");
    auto rows = views_.reports->submissions(ledger_, call->project, from->value_or(today - 29),
                                            to->value_or(today), filter);
    if (!rows.is_ok()) return call->fail(rows.status());
    keep_in_analytics(*call, *rows, &proj::SubmissionRow::user);
    body = csv ? proj::to_csv(*rows) : proj::to_json(*rows);
  } else if (name == "cases") {
    if (Status s = check_known(call->query, {}); !s.is_ok()) return call->fail(s);
    auto rows = views_.reports->case_counts(ledger_, call->project);
    if (!rows.is_ok()) return call->fail(rows.status());
    keep_in_analytics(*call, *rows, &proj::CaseCountRow::owner);
    body = csv ? proj::to_csv(*rows) : proj::to_json(*rows);
  } else if (name == "activity") {
    if (Status s = check_known(call->query, {}); !s.is_ok()) return call->fail(s);
    auto rows = views_.reports->activity(ledger_, call->project, now());
    if (!rows.is_ok()) return call->fail(rows.status());
    keep_in_analytics(*call, *rows, &proj::ActivityRow::user);
    body = csv ? proj::to_csv(*rows) : proj::to_json(*rows);
  } else {
    return call->error(http::status::not_found, "not_found",
                       "no such report (submissions, cases, activity)");
  }
  if (!csv) body = "{\"report\":" + json::serialize(json::value(name)) + ",\"rows\":" + body + "}";
  Response response = json_response(call->request, http::status::ok, std::move(body));
  if (csv) response.set(http::field::content_type, "text/csv; charset=utf-8");
  call->reply(std::move(response));
}

void Api::audit_changes(const CallPtr& call) {
  if (!authorize(call, proj::kViewAudit)) return;
  if (Status s = check_known(call->query, {"case", "user", "from", "to", "limit"}); !s.is_ok()) {
    return call->fail(s);
  }
  auto audit = audit_query(call->query);
  if (!audit.is_ok()) return call->fail(audit.status());
  proj::HistoryFilter filter{audit->case_id, audit->user, audit->from_us, audit->to_us};
  auto limit = query_limit(call->query, options_.page_max, options_.page_max);
  if (!limit.is_ok()) return call->fail(limit.status());
  // One more than asked tells whether there is more.
  auto history = views_.cases->history(ledger_, call->project, filter, *limit + 1);
  if (!history.is_ok()) return call->fail(history.status());
  const bool more = history->size() > *limit;
  if (more) history->resize(*limit);
  // The change trail shows values: only of cases the caller may read now (scopes, case-type
  // levels, a live break-the-glass grant), exactly as GET .../cases/{id}/history would.
  std::map<EventId, bool> readable;
  bool flagged = false;
  json::array entries;
  std::vector<EventId> read;
  for (const auto& h : *history) {
    auto [it, fresh] = readable.try_emplace(h.case_id, false);
    if (fresh) {
      auto state = views_.cases->get(ledger_, call->project, h.case_id);
      if (!state.is_ok()) return call->fail(state.status());
      const auto verdict = *state ? call->gate->read((*state)->owner, (*state)->case_type)
                                  : proj::ReadVerdict::kHidden;
      if (verdict == proj::ReadVerdict::kNeedsGrant) {
        auto grant = views_.access->grant(ledger_, call->project, h.case_id, call->user_id(), now());
        if (!grant.is_ok()) return call->fail(grant.status());
        it->second = grant->has_value();
      } else {
        it->second = verdict != proj::ReadVerdict::kHidden;
      }
      flagged = flagged || (it->second && verdict != proj::ReadVerdict::kAllow);
    }
    if (!it->second) continue;
    entries.push_back(proj::history_json(h));
    read.push_back(h.case_id);
  }
  std::sort(read.begin(), read.end());
  read.erase(std::unique(read.begin(), read.end()), read.end());
  json::object body{{"changes", std::move(entries)}, {"more", more}};
  // Changes show values: reading them is a read of personal data.
  proj::RecordReadData record;
  record.what = "history";
  record.subjects = std::move(read);
  record.outside_capture = flagged;
  answer_after_read(call, std::move(record),
                    json_response(call->request, http::status::ok, json::serialize(body)));
}

void Api::audit_access(const CallPtr& call) {
  if (!authorize(call, proj::kViewAudit)) return;
  if (Status s = check_known(call->query, {"case", "user", "from", "to", "limit", "after"});
      !s.is_ok()) {
    return call->fail(s);
  }
  auto audit = audit_query(call->query);
  if (!audit.is_ok()) return call->fail(audit.status());
  proj::AccessFilter filter{audit->case_id, audit->user, audit->from_us, audit->to_us, {}};
  auto after = query_u64(call->query, "after", 0);
  if (!after.is_ok()) return call->fail(after.status());
  if (*after > 0) filter.after_seq = *after;
  auto limit = query_limit(call->query, options_.page_max, options_.page_max);
  if (!limit.is_ok()) return call->fail(limit.status());
  auto rows = views_.access->reads(ledger_, call->project, filter, *limit);
  if (!rows.is_ok()) return call->fail(rows.status());
  // Only cases the caller may know of (search scope, case-type levels; a protected case is
  // known without a grant: the trail shows ids, never values): a row keeps its visible
  // subjects and goes when none is left.
  std::map<EventId, bool> known;
  json::array out;
  for (auto& r : *rows) {
    const bool had_subjects = !r.subjects.empty();
    for (auto it = r.subjects.begin(); it != r.subjects.end();) {
      auto [entry, fresh] = known.try_emplace(*it, false);
      if (fresh) {
        auto state = views_.cases->get(ledger_, call->project, *it);
        if (!state.is_ok()) return call->fail(state.status());
        entry->second = *state && call->gate->read((*state)->owner, (*state)->case_type) !=
                                      proj::ReadVerdict::kHidden;
      }
      it = entry->second ? it + 1 : r.subjects.erase(it);
    }
    if (had_subjects && r.subjects.empty()) continue;
    out.push_back(proj::access_json(r));
  }
  json::object body{{"reads", std::move(out)}};
  if (rows->size() == *limit) {
    body["next_after"] = rows->back().seq;
  } else {
    body["next_after"] = nullptr;
  }
  call->json(http::status::ok, body);
}

}  // namespace trail::server
