// Access administration of a project (organisation units, user scopes and roles, custom roles,
// case-type levels, policy), breaking the glass on a protected case, and the security audit.
// Every change is one event in `_system` (a grant, in the project's chain) and is answered
// only once durable.
#include "projections/view_json.h"
#include "server/api_call.h"
#include "server/request_parts.h"

namespace trail::server {
namespace json = boost::json;

namespace {

constexpr std::size_t kNameBytesMax = 200;
constexpr std::size_t kReasonBytesMax = 1000;

Status invalid(std::string message) { return Status::error(Code::kInvalid, std::move(message)); }

// A scope from JSON: "*" (the whole project) or an array of known unit ids.
Result<proj::Scope> scope_from(const json::value& v, std::string_view field,
                               const proj::OrgTree& units) {
  proj::Scope scope;
  if (v.is_string() && v.get_string() == "*") return scope;
  if (!v.is_array()) return invalid("\"" + std::string(field) + "\" must be \"*\" or an array of unit ids");
  scope.all = false;
  for (const auto& item : v.get_array()) {
    if (!item.is_string()) return invalid("\"" + std::string(field) + "\" holds a non-string");
    std::string unit(item.get_string());
    if (!units.contains(unit)) {
      return invalid("\"" + std::string(field) + "\" names unknown unit \"" + unit + "\"");
    }
    scope.units.insert(std::move(unit));
  }
  return scope;
}

json::value scope_json(const proj::Scope& scope) {
  if (scope.all) return "*";
  json::array out;
  for (const auto& unit : scope.units) out.emplace_back(unit);
  return out;
}

json::object policy_json(const proj::ProjectRecord& p) {
  json::object roles;
  for (const auto& [name, role] : p.roles) {
    json::array authorities;
    for (const auto& a : proj::authority_names(role.authorities)) authorities.emplace_back(a);
    roles[name] = json::object{{"authorities", std::move(authorities)},
                               {"reach", proj::reach_name(role.reach)}};
  }
  json::object case_types;
  for (const auto& [type, access] : p.case_types) case_types[type] = proj::case_access_name(access);
  json::array units;
  for (const auto& [id, unit] : p.units) {
    units.push_back(json::object{{"id", id}, {"name", unit.name}, {"parent", unit.parent}});
  }
  return json::object{{"project", p.id},
                      {"require_2fa", p.policy.require_2fa},
                      {"idle_timeout_minutes", p.policy.idle_timeout_minutes},
                      {"session_max_hours", p.policy.session_max_hours},
                      {"break_glass_minutes", p.policy.break_glass_minutes},
                      {"restrict_superusers", p.policy.restrict_superusers},
                      {"roles", std::move(roles)},
                      {"case_types", std::move(case_types)},
                      {"org_units", std::move(units)}};
}

// The authorities a role would give in `project` (built-in or the project's own).
std::optional<std::uint32_t> role_authorities(std::string_view role,
                                              const proj::ProjectRecord& project) {
  if (const auto builtin = proj::parse_role(role)) {
    if (*builtin == proj::Role::kSystemAdmin) return std::nullopt;
    return proj::authorities_of(*builtin);
  }
  if (const auto it = project.roles.find(std::string(role)); it != project.roles.end()) {
    return it->second.authorities;
  }
  return std::nullopt;
}

}  // namespace

void Api::org_unit_add(const CallPtr& call) {
  if (!authorize(call, proj::kManageProject)) return;
  auto body = call->body_object();
  if (!body) return;
  const auto* id = body->if_contains("id");
  const auto* name = body->if_contains("name");
  const auto* parent = body->if_contains("parent");
  if (id == nullptr || !id->is_string() || name == nullptr || !name->is_string() ||
      (parent != nullptr && !parent->is_string() && !parent->is_null()) ||
      body->size() > 3 || (parent == nullptr && body->size() > 2)) {
    return call->error(http::status::bad_request, "invalid",
                       "body must be {\"id\": string, \"name\": string, \"parent\": string or null}");
  }
  const std::string unit(id->get_string());
  const std::string unit_name(name->get_string());
  const std::string parent_id = parent != nullptr && parent->is_string()
                                    ? std::string(parent->get_string()) : std::string();
  if (Status s = proj::validate_access_name("unit id", unit); !s.is_ok()) return call->fail(s);
  if (unit_name.empty() || unit_name.size() > kNameBytesMax) {
    return call->error(http::status::bad_request, "invalid", "\"name\" must be 1 to 200 bytes");
  }
  const auto& units = call->project_record->units;
  if (units.contains(unit)) {
    return call->error(http::status::conflict, "conflict", "unit \"" + unit + "\" exists");
  }
  if (!parent_id.empty() && !units.contains(parent_id)) {
    return call->error(http::status::bad_request, "invalid",
                       "parent \"" + parent_id + "\" is not a unit of this project");
  }
  append_then_answer(call, std::string(ledger::kSystemProject),
                     {proj::identity::org_unit_added(call->user_id(), schema::Channel::API,
                                                     call->project, unit, unit_name, parent_id)},
                     http::status::created,
                     json::object{{"id", unit}, {"name", unit_name}, {"parent", parent_id}});
}

void Api::user_scopes_put(const CallPtr& call) {
  if (!authorize(call, proj::kManageUsers)) return;
  auto body = call->body_object();
  if (!body) return;
  auto user = views_.identity->user_by_name(ledger_, call->id);
  if (!user.is_ok()) return call->fail(user.status());
  if (!*user) return call->error(http::status::not_found, "not_found", "no such user");
  std::map<std::string, proj::Scope> fields;
  for (const auto& [key, value] : *body) {
    if (key != "capture" && key != "search" && key != "analytics") {
      return call->error(http::status::bad_request, "invalid",
                         "unknown field \"" + std::string(key) + "\" (capture, search, analytics)");
    }
    auto scope = scope_from(value, key, call->project_record->units);
    if (!scope.is_ok()) return call->fail(scope.status());
    fields.emplace(std::string(key), std::move(*scope));
  }
  if (fields.empty()) {
    return call->error(http::status::bad_request, "invalid",
                       "name at least one of capture, search, analytics");
  }
  proj::Scopes after = (*user)->scopes_in(call->project);
  if (auto it = fields.find("capture"); it != fields.end()) after.capture = it->second;
  if (auto it = fields.find("search"); it != fields.end()) after.search = it->second;
  if (auto it = fields.find("analytics"); it != fields.end()) after.analytics = it->second;
  append_then_answer(call, std::string(ledger::kSystemProject),
                     {proj::identity::scopes_changed(call->user_id(), schema::Channel::API,
                                                     (*user)->id, call->project, fields)},
                     http::status::ok,
                     json::object{{"user", call->id},
                                  {"capture", scope_json(after.capture)},
                                  {"search", scope_json(after.search)},
                                  {"analytics", scope_json(after.analytics)}});
}

void Api::user_roles_put(const CallPtr& call) {
  if (!authorize(call, proj::kManageUsers)) return;
  auto body = call->body_object();
  if (!body) return;
  const auto* roles = body->if_contains("roles");
  if (roles == nullptr || !roles->is_array() || body->size() != 1) {
    return call->error(http::status::bad_request, "invalid", "body must be {\"roles\": [...]}");
  }
  auto user = views_.identity->user_by_name(ledger_, call->id);
  if (!user.is_ok()) return call->fail(user.status());
  if (!*user) return call->error(http::status::not_found, "not_found", "no such user");
  std::set<std::string> names;
  const std::uint32_t mine = call->gate->authorities();
  for (const auto& item : roles->get_array()) {
    if (!item.is_string()) {
      return call->error(http::status::bad_request, "invalid", "\"roles\" holds a non-string");
    }
    std::string role(item.get_string());
    const auto authorities = role_authorities(role, *call->project_record);
    if (!authorities) {
      return call->error(http::status::bad_request, "invalid",
                         "\"" + role + "\" is not a role of this project (system_admin is "
                         "granted with trailctl)");
    }
    // No one hands out more than they hold.
    if ((*authorities & ~mine) != 0) {
      return call->error(http::status::forbidden, "forbidden",
                         "role \"" + role + "\" holds authorities you do not have");
    }
    names.insert(std::move(role));
  }
  json::array shown;
  for (const auto& n : names) shown.emplace_back(n);
  append_then_answer(call, std::string(ledger::kSystemProject),
                     {proj::identity::roles_set(call->user_id(), schema::Channel::API, (*user)->id,
                                                call->project, names)},
                     http::status::ok, json::object{{"user", call->id}, {"roles", std::move(shown)}});
}

void Api::role_put(const CallPtr& call) {
  if (!authorize(call, proj::kManageProject)) return;
  auto body = call->body_object();
  if (!body) return;
  if (Status s = proj::validate_access_name("role name", call->id); !s.is_ok()) return call->fail(s);
  if (proj::parse_role(call->id)) {
    return call->error(http::status::bad_request, "invalid",
                       "\"" + call->id + "\" is a built-in role; choose another name");
  }
  const auto* authorities = body->if_contains("authorities");
  const auto* reach = body->if_contains("reach");
  if (authorities == nullptr || !authorities->is_array() ||
      (reach != nullptr && !reach->is_string()) || body->size() > 2 ||
      (reach == nullptr && body->size() > 1)) {
    return call->error(http::status::bad_request, "invalid",
                       "body must be {\"authorities\": [...], \"reach\": \"own|unit|scope\"}");
  }
  proj::RoleDefinition definition;
  if (reach != nullptr) {
    const auto parsed = proj::parse_reach(reach->get_string());
    if (!parsed) {
      return call->error(http::status::bad_request, "invalid", "\"reach\" is own, unit or scope");
    }
    definition.reach = *parsed;
  }
  for (const auto& item : authorities->get_array()) {
    const auto authority = item.is_string() ? proj::parse_authority(item.get_string()) : std::nullopt;
    if (!authority) {
      return call->error(http::status::bad_request, "invalid",
                         "unknown authority " + json::serialize(item));
    }
    definition.authorities |= *authority;
  }
  if ((definition.authorities & ~call->gate->authorities()) != 0) {
    return call->error(http::status::forbidden, "forbidden",
                       "the role holds authorities you do not have");
  }
  json::array shown;
  for (const auto& a : proj::authority_names(definition.authorities)) shown.emplace_back(a);
  append_then_answer(call, std::string(ledger::kSystemProject),
                     {proj::identity::role_defined(call->user_id(), schema::Channel::API,
                                                   call->project, call->id, definition)},
                     http::status::ok,
                     json::object{{"role", call->id},
                                  {"authorities", std::move(shown)},
                                  {"reach", proj::reach_name(definition.reach)}});
}

void Api::case_type_put(const CallPtr& call) {
  if (!authorize(call, proj::kManageProject)) return;
  auto body = call->body_object();
  if (!body) return;
  if (Status s = proj::validate_access_name("case type", call->id); !s.is_ok()) return call->fail(s);
  const auto* access = body->if_contains("access");
  const auto level = access != nullptr && access->is_string()
                         ? proj::parse_case_access(access->get_string()) : std::nullopt;
  if (!level || body->size() != 1) {
    return call->error(http::status::bad_request, "invalid",
                       "body must be {\"access\": \"open|audited|protected|closed\"}");
  }
  append_then_answer(call, std::string(ledger::kSystemProject),
                     {proj::identity::case_type_changed(call->user_id(), schema::Channel::API,
                                                        call->project, call->id, *level)},
                     http::status::ok,
                     json::object{{"case_type", call->id}, {"access", proj::case_access_name(*level)}});
}

void Api::policy_get(const CallPtr& call) {
  if (!authorize(call, proj::kManageProject)) return;
  if (Status s = check_known(call->query, {}); !s.is_ok()) return call->fail(s);
  call->json(http::status::ok, policy_json(*call->project_record));
}

void Api::policy_put(const CallPtr& call) {
  if (!authorize(call, proj::kManageProject)) return;
  auto body = call->body_object();
  if (!body) return;
  if (body->empty()) {
    return call->error(http::status::bad_request, "invalid", "name at least one policy field");
  }
  proj::ProjectRecord after = *call->project_record;
  std::map<std::string, std::string> fields;
  for (const auto& [key, value] : *body) {
    std::string text;
    if (value.is_bool()) {
      text = value.get_bool() ? "true" : "false";
    } else if (value.is_int64()) {
      text = std::to_string(value.get_int64());
    } else if (value.is_uint64()) {
      text = std::to_string(value.get_uint64());
    } else {
      text = "?";  // Refused below with the field's own message.
    }
    if (Status s = proj::apply_policy_field(after.policy, key, text); !s.is_ok()) {
      return call->fail(s);
    }
    fields.emplace(std::string(key), std::move(text));
  }
  append_then_answer(call, std::string(ledger::kSystemProject),
                     {proj::identity::policy_changed(call->user_id(), schema::Channel::API,
                                                     call->project, fields)},
                     http::status::ok, policy_json(after));
}

void Api::break_glass(const CallPtr& call) {
  if (!authorize(call, proj::kViewCases)) return;
  auto body = call->body_object();
  if (!body) return;
  const auto* reason = body->if_contains("reason");
  if (reason == nullptr || !reason->is_string() || body->size() != 1 ||
      reason->get_string().empty() || reason->get_string().size() > kReasonBytesMax) {
    return call->error(http::status::bad_request, "invalid",
                       "body must be {\"reason\": string of 1 to 1000 bytes}");
  }
  const auto id = parse_uuid(call->id);
  if (!id) return call->error(http::status::not_found, "not_found", "no such case");
  auto state = views_.cases->get(ledger_, call->project, *id);
  if (!state.is_ok()) return call->fail(state.status());
  const auto verdict = *state ? call->gate->read((*state)->owner, (*state)->case_type)
                              : proj::ReadVerdict::kHidden;
  if (verdict == proj::ReadVerdict::kHidden) {
    return call->error(http::status::not_found, "not_found", "no such case");
  }
  if (verdict != proj::ReadVerdict::kNeedsGrant) {
    return call->error(http::status::conflict, "break_glass_not_needed",
                       "you may read this case without breaking the glass");
  }
  const TimeUs expires = now() + call->project_record->policy.break_glass_minutes * 60'000'000;
  ledger::EventDraft draft;
  draft.event_id = time_ordered_id();
  draft.kind = schema::Kind::BREAK_GLASS_GRANTED;
  draft.actor = call->user_id();
  draft.channel = schema::Channel::API;
  draft.client_time_us = now();
  draft.subject = *id;
  draft.payload = proj::encode_account_change(
      {call->user_id(),
       {{"address", call->context.remote_address},
        {"expires_us", std::to_string(expires)},
        {"reason", std::string(reason->get_string())}}});
  const EventId grant = draft.event_id;
  append_then_answer(call, call->project, {std::move(draft)}, http::status::created,
                     json::object{{"expires_at", format_rfc3339(expires)},
                                  {"grant_id", format_uuid(grant)}});
}

}  // namespace trail::server
