// POST /v1/projects/{p}/events (atomic, idempotent batches of case events) and the ledger
// as stored: GET .../ledger/head and .../ledger/events (envelopes, ciphertext only).
#include <chrono>

#include "projections/case_payload.h"
#include "projections/event_json.h"
#include "projections/view_keys.h"
#include "server/api_call.h"
#include "server/request_parts.h"

namespace trail::server {
namespace json = boost::json;

namespace {
// About one receipt's JSON: an id, a seq, a SHA-256 in hex and the flag.
constexpr std::size_t kReceiptJsonBytes = 150;
}  // namespace

bool Api::check_capture(const CallPtr& call, const std::vector<ledger::EventDraft>& drafts,
                        std::shared_ptr<CaptureCheck>& check, ledger::AppendGuard& guard) {
  check = CaptureCheck::make(*call->gate, drafts);
  if (!check) return true;
  auto denial = check->run([&](const EventId& id) { return views_.cases->get(ledger_, call->project, id); });
  if (!denial.is_ok()) {
    call->fail(denial.status());
    return false;
  }
  if (*denial) {
    call->error((*denial)->status, (*denial)->code, (*denial)->message);
    return false;
  }
  // Again inside the commit, where an owner change queued ahead of this append is visible.
  guard = [this, call, check](const ledger::GuardContext& context) -> Status {
    auto refused = check->run(
        [&](const EventId& id) { return views_.cases->get_in(context, call->project, id); },
        /*in_commit=*/true);
    if (!refused.is_ok()) return refused.status();
    if (!*refused) return Status::ok();
    check->denial = std::move(*refused);
    return Status::error(Code::kConflict, "outside the capture scope");
  };
  return true;
}

void Api::answer_failed_append(const CallPtr& call, const std::shared_ptr<CaptureCheck>& check,
                               const Status& failure) {
  if (check && check->denial) {
    return call->error(check->denial->status, check->denial->code, check->denial->message);
  }
  call->fail(failure);
}

void Api::events_append(const CallPtr& call) {
  if (!authorize(call, proj::kSubmit)) return;
  if (Status s = check_known(call->query, {}); !s.is_ok()) return call->fail(s);
  auto body = call->body_object();
  if (!body) return;
  const auto* events = body->if_contains("events");
  if (events == nullptr || !events->is_array() || body->size() != 1) {
    return call->error(http::status::bad_request, "invalid",
                       "body must be {\"events\": [...]} and nothing else");
  }
  const auto& list = events->get_array();
  if (list.empty()) return call->error(http::status::bad_request, "invalid", "\"events\" is empty");
  if (list.size() > ledger::kBatchEventsMax) {
    return call->error(http::status::bad_request, "invalid",
                       "at most " + std::to_string(ledger::kBatchEventsMax) + " events per request");
  }
  std::vector<ledger::EventDraft> drafts;
  drafts.reserve(list.size());
  std::vector<EventId> ids;
  ids.reserve(list.size());
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string where = "events[" + std::to_string(i) + "]: ";
    if (!list[i].is_object()) {
      return call->error(http::status::bad_request, "invalid", where + "must be an object");
    }
    const auto& object = list[i].get_object();
    auto draft = proj::parse_event_object(object, /*actor_required=*/false);
    if (!draft.is_ok()) {
      return call->error(http::status::bad_request, "invalid", where + draft.status().detail());
    }
    // The actor is who authenticated; a body may repeat it but not name someone else.
    if (!draft->actor.empty() && draft->actor != call->user_id()) {
      return call->error(http::status::bad_request, "invalid",
                         where + "\"actor\" must be the authenticated user's id or absent");
    }
    draft->actor = call->user_id();
    if (!object.contains("channel")) draft->channel = schema::Channel::API;
    if (draft->device_id.empty()) draft->device_id = call->device_id();
    ids.push_back(draft->event_id);
    drafts.push_back(std::move(*draft));
  }
  std::shared_ptr<CaptureCheck> check;
  ledger::AppendGuard guard;
  if (!check_capture(call, drafts, check, guard)) return;
  const auto started = std::chrono::steady_clock::now();
  ledger_.append_async(
      call->project, std::move(drafts),
      [this, call, check, ids = std::move(ids), started](Result<std::vector<ledger::Receipt>> r) {
        metrics_.append_latency_seconds().observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
        if (!r.is_ok()) return answer_failed_append(call, check, r.status());
        std::string answer = "{\"receipts\":[";
        answer.reserve(answer.size() + r->size() * kReceiptJsonBytes + 2);
        bool any_new = false;
        for (std::size_t i = 0; i < r->size(); ++i) {
          any_new = any_new || !(*r)[i].duplicate;
          if (i != 0) answer.push_back(',');
          proj::append_receipt_json(answer, ids[i], (*r)[i]);
        }
        answer += "]}";
        call->json_text(any_new ? http::status::created : http::status::ok, std::move(answer));
      },
      std::move(guard));
}

void Api::ledger_head(const CallPtr& call) {
  if (!authorize(call, proj::kVerifyLedger)) return;
  if (Status s = check_known(call->query, {}); !s.is_ok()) return call->fail(s);
  auto head = ledger_.head(call->project);
  if (!head.is_ok()) return call->fail(head.status());
  call->json(http::status::ok,
             json::object{{"size", head->seq},
                          {"head_hash", to_hex(ByteView{head->hash.data(), head->hash.size()})}});
}

void Api::ledger_events(const CallPtr& call) {
  if (!authorize(call, proj::kVerifyLedger)) return;
  if (Status s = check_known(call->query, {"from", "limit"}); !s.is_ok()) return call->fail(s);
  auto from = query_u64(call->query, "from", 1);
  if (!from.is_ok()) return call->fail(from.status());
  if (*from == 0) return call->error(http::status::bad_request, "invalid", "'from' starts at 1");
  auto limit = query_limit(call->query, 100, options_.page_max);
  if (!limit.is_ok()) return call->fail(limit.status());
  json::array events;
  std::uint64_t next = *from;
  Status s = ledger_.scan(call->project, *from, *limit, [&](const ledger::StoredEvent& e) {
    events.push_back(json::object{{"seq", e.seq},
                                  {"envelope", to_base64(as_bytes(e.envelope))},
                                  {"hash", to_hex(ByteView{e.hash.data(), e.hash.size()})}});
    next = e.seq + 1;
    return true;
  });
  if (!s.is_ok()) return call->fail(s);
  call->json(http::status::ok, json::object{{"events", std::move(events)}, {"next", next}});
}

}  // namespace trail::server
