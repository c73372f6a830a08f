// The security audit: the `_system` chain's account and access events (log-ins, failures,
// lock-outs, sessions ended, password changes, enrolments, roles, scopes, units, policy),
// opened and shown without their secrets. GET /v1/audit/security shows all of them to system
// administrators; GET /v1/projects/{p}/audit/security shows a project's auditors the changes
// that name their project.
#include "ledger/envelope.h"
#include "server/api_call.h"
#include "server/request_parts.h"

namespace trail::server {
namespace json = boost::json;

namespace {

constexpr std::uint64_t kScanMax = 100'000;  // Events looked at per page, matching or not.

// Detail fields never shown: credentials, secrets and the keyed name tags.
bool secret_field(std::string_view name) {
  return name == "password_hash" || name == "secret" || name == "token" || name == "recovery" ||
         name == "name_tag";
}

}  // namespace

void Api::security_audit(const CallPtr& call) {
  const bool system_wide = call->project.empty();
  if (system_wide) {
    if (!call->caller->user.is_system_admin()) {
      return call->error(http::status::forbidden, "forbidden",
                         "the system security audit is for system administrators");
    }
  } else if (!authorize(call, proj::kViewAudit)) {
    return;
  }
  if (Status s = check_known(call->query, {"after", "limit", "user", "kind"}); !s.is_ok()) {
    return call->fail(s);
  }
  auto after = query_u64(call->query, "after", 0);
  if (!after.is_ok()) return call->fail(after.status());
  auto limit = query_limit(call->query, 100, options_.page_max);
  if (!limit.is_ok()) return call->fail(limit.status());
  std::optional<schema::Kind> kind;
  if (auto v = query_value(call->query, "kind")) {
    kind = ledger::parse_kind(*v);
    if (!kind) return call->error(http::status::bad_request, "invalid", "'kind' is not a kind");
  }
  std::optional<std::string> user_id;
  if (auto v = query_value(call->query, "user")) {
    auto user = views_.identity->user_by_name(ledger_, *v);
    if (!user.is_ok()) return call->fail(user.status());
    user_id = *user ? (*user)->id : std::string("\n");  // An unknown name matches nothing.
  }
  json::array events;
  std::uint64_t last = *after;
  Status inner = Status::ok();
  Status scanned = ledger_.scan(
                   ledger::kSystemProject, *after + 1, kScanMax,
                   [&](const ledger::StoredEvent& stored) {
                     last = stored.seq;
                     auto opened = ledger_.open_event(stored);
                     if (!opened.is_ok()) {
                       inner = opened.status();
                       return false;
                     }
                     const auto& env = opened->envelope;
                     if (kind && env.kind != *kind) return true;
                     auto change = proj::decode_account_change(opened->payload);
                     if (!change.is_ok()) return true;
                     if (user_id && env.actor != *user_id && change->user != *user_id) return true;
                     if (!system_wide) {
                       const auto it = change->detail.find("project");
                       if (it == change->detail.end() || it->second != call->project) return true;
                     }
                     json::object detail;
                     for (const auto& [name, value] : change->detail) {
                       if (!secret_field(name)) detail[name] = value;
                     }
                     events.push_back(json::object{
                         {"seq", stored.seq},
                         {"time", format_rfc3339(env.server_time_us)},
                         {"kind", ledger::kind_name(env.kind)},
                         {"actor", env.actor},
                         {"user", change->user},
                         {"detail", std::move(detail)}});
                     return events.size() < *limit;
                   });
  if (!scanned.is_ok()) return call->fail(scanned);
  if (!inner.is_ok()) return call->fail(inner);
  auto head = ledger_.head(ledger::kSystemProject);
  if (!head.is_ok()) return call->fail(head.status());
  json::object body{{"events", std::move(events)}};
  if (last < head->seq) {
    body["next"] = last;
  } else {
    body["next"] = nullptr;
  }
  call->json(http::status::ok, body);
}

}  // namespace trail::server
