// Cases: one case, its field-level history, a filtered paged list; and sync for phones (the
// cases the caller owns that changed since its token, and those that left its set).
// Every answer carrying case data is sent only after its record.read event is durable.
#include "projections/view_json.h"
#include "server/api_call.h"
#include "server/request_parts.h"

namespace trail::server {
namespace json = boost::json;

namespace {

Response ok_json(const Api::Call& call, const json::value& body) {
  return json_response(call.request, http::status::ok, json::serialize(body));
}

}  // namespace

std::optional<proj::CaseState> Api::visible_case(const CallPtr& call, proj::RecordReadData& read) {
  auto id = parse_uuid(call->id);
  if (!id) {
    call->error(http::status::not_found, "not_found", "no such case");
    return std::nullopt;
  }
  auto state = views_.cases->get(ledger_, call->project, *id);
  if (!state.is_ok()) {
    call->fail(state.status());
    return std::nullopt;
  }
  // A case the caller may not know of is answered exactly as a case that does not exist.
  const auto verdict = *state ? call->gate->read((*state)->owner, (*state)->case_type)
                              : proj::ReadVerdict::kHidden;
  switch (verdict) {
    case proj::ReadVerdict::kHidden:
      call->error(http::status::not_found, "not_found", "no such case");
      return std::nullopt;
    case proj::ReadVerdict::kAllowFlagged: read.outside_capture = true; break;
    case proj::ReadVerdict::kNeedsGrant: {
      auto grant = views_.access->grant(ledger_, call->project, *id, call->user_id(), now());
      if (!grant.is_ok()) {
        call->fail(grant.status());
        return std::nullopt;
      }
      if (!*grant) {
        call->error(http::status::forbidden, "break_glass_required",
                    "this case is protected: POST .../cases/{id}/break-glass with a reason first");
        return std::nullopt;
      }
      read.outside_capture = true;
      read.grant = (*grant)->event_id;
      break;
    }
    case proj::ReadVerdict::kAllow: break;
  }
  return std::move(**state);
}

void Api::case_get(const CallPtr& call) {
  if (!authorize(call, proj::kViewCases)) return;
  if (Status s = check_known(call->query, {}); !s.is_ok()) return call->fail(s);
  proj::RecordReadData read;
  auto state = visible_case(call, read);
  if (!state) return;
  read.what = "case";
  read.subjects = {state->case_id};
  answer_after_read(call, std::move(read), ok_json(*call, proj::case_json(*state)));
}

void Api::case_history(const CallPtr& call) {
  if (!authorize(call, proj::kViewCases)) return;
  if (Status s = check_known(call->query, {}); !s.is_ok()) return call->fail(s);
  proj::RecordReadData read;
  auto state = visible_case(call, read);
  if (!state) return;
  const EventId id = state->case_id;
  read.what = "history";
  read.subjects = {id};
  proj::HistoryFilter filter;
  filter.case_id = id;
  auto history = views_.cases->history(ledger_, call->project, filter, 0);
  if (!history.is_ok()) return call->fail(history.status());
  json::array entries;
  for (const auto& h : *history) entries.push_back(proj::history_json(h));
  answer_after_read(call, std::move(read),
                    ok_json(*call, json::object{{"case_id", call->id}, {"history", std::move(entries)}}));
}

void Api::cases_list(const CallPtr& call) {
  if (!authorize(call, proj::kViewCases)) return;
  if (Status s = check_known(call->query, {"type", "owner", "open", "modified_since", "limit", "cursor"});
      !s.is_ok()) {
    return call->fail(s);
  }
  proj::CaseFilter filter;
  if (auto v = query_value(call->query, "type")) filter.case_type = *v;
  if (auto v = query_value(call->query, "owner")) filter.owner = *v;
  if (call->gate->reach() == proj::CaseReach::kOwn) {
    if (filter.owner && *filter.owner != call->user_id()) {
      return call->error(http::status::forbidden, "forbidden", "you may list only your own cases");
    }
    filter.owner = call->user_id();
  }
  if (auto v = query_value(call->query, "open")) {
    if (*v != "true" && *v != "false") {
      return call->error(http::status::bad_request, "invalid", "'open' is true or false");
    }
    filter.open = *v == "true";
  }
  auto since = query_time(call->query, "modified_since");
  if (!since.is_ok()) return call->fail(since.status());
  auto limit = query_limit(call->query, 100, options_.page_max);
  if (!limit.is_ok()) return call->fail(limit.status());
  std::optional<EventId> after;
  if (auto v = query_value(call->query, "cursor")) {
    after = parse_uuid(*v);
    if (!after) return call->error(http::status::bad_request, "invalid", "'cursor' is not a cursor");
  }
  // Pages of the view, filtered by modification time here, until the page is full.
  json::array cases;
  std::vector<EventId> ids;
  bool exhausted = false;
  bool flagged = false;
  while (ids.size() < *limit && !exhausted) {
    auto page = views_.cases->list(ledger_, call->project, filter, after, *limit);
    if (!page.is_ok()) return call->fail(page.status());
    exhausted = page->size() < *limit;
    for (const auto& c : *page) {
      after = c.case_id;
      if (*since && c.modified_us < **since) continue;
      // Listed: what the caller may read without breaking the glass; flagged reads are
      // recorded as such below.
      const auto verdict = call->gate->read(c.owner, c.case_type);
      if (verdict == proj::ReadVerdict::kHidden || verdict == proj::ReadVerdict::kNeedsGrant) {
        continue;
      }
      flagged = flagged || verdict == proj::ReadVerdict::kAllowFlagged;
      ids.push_back(c.case_id);
      cases.push_back(proj::case_json(c));
      if (ids.size() == *limit) break;
    }
  }
  json::object body{{"cases", std::move(cases)}};
  if (!exhausted && after) {
    body["next_cursor"] = format_uuid(*after);
  } else {
    body["next_cursor"] = nullptr;
  }
  if (ids.empty()) return call->reply(ok_json(*call, body));  // Nothing personal was read.
  proj::RecordReadData read;
  read.what = "search";
  read.subjects = std::move(ids);
  read.outside_capture = flagged;
  answer_after_read(call, std::move(read), ok_json(*call, body));
}

void Api::sync(const CallPtr& call) {
  if (!authorize(call, proj::kSubmit)) return;
  if (Status s = check_known(call->query, {"since"}); !s.is_ok()) return call->fail(s);
  auto since = query_u64(call->query, "since", 0);
  if (!since.is_ok()) {
    return call->error(http::status::bad_request, "invalid", "'since' is not a sync token");
  }
  auto changes = views_.sync->changes(ledger_, call->project, {call->user_id()}, *since);
  if (!changes.is_ok()) {
    if (changes.status().code() == Code::kConflict) {
      return call->error(http::status::conflict, "restore_required",
                         "this sync token is not from this server's history; restore (sync "
                         "without 'since')");
    }
    return call->fail(changes.status());
  }
  json::array cases;
  for (const auto& id : changes->changed) {
    auto state = views_.cases->get(ledger_, call->project, id);
    if (!state.is_ok()) return call->fail(state.status());
    if (*state) cases.push_back(proj::case_json(**state));
  }
  json::array removed;
  for (const auto& id : changes->left) removed.push_back(json::value(format_uuid(id)));
  json::object body{{"cases", std::move(cases)},
                    {"removed", std::move(removed)},
                    {"token", std::to_string(changes->head_seq)},
                    {"restore", *since == 0}};
  if (changes->changed.empty()) return call->reply(ok_json(*call, body));
  proj::RecordReadData read;
  read.what = "sync";
  read.subjects = std::move(changes->changed);
  answer_after_read(call, std::move(read), ok_json(*call, body));
}

}  // namespace trail::server
