// The identity directory's vocabulary: roles and their authorities, user names, user records,
// the AccountChange payload codec and the `_system` event drafts. IdentityProjector itself is
// in identity_projector.cc.
#include "projections/identity.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>
#include <sodium.h>

#include "ledger/assert.h"
#include "schema/event.capnp.h"

namespace trail::proj {
namespace {

constexpr std::size_t kUserNameBytesMax = 64;

struct RoleName {
  Role role;
  std::string_view name;
};
constexpr RoleName kRoleNames[] = {
    {Role::kMobileWorker, "mobile_worker"}, {Role::kSupervisor, "supervisor"},
    {Role::kReportViewer, "report_viewer"}, {Role::kAuditor, "auditor"},
    {Role::kProjectAdmin, "project_admin"}, {Role::kSystemAdmin, "system_admin"},
};

capnp::Text::Reader text(std::string_view s) { return {s.data(), s.size()}; }
std::string str(capnp::Text::Reader t) { return {t.begin(), t.size()}; }

EventId random_event_id() {
  EventId id{};
  randombytes_buf(id.data(), id.size());
  id[6] = static_cast<std::uint8_t>((id[6] & 0x0fU) | 0x40U);
  id[8] = static_cast<std::uint8_t>((id[8] & 0x3fU) | 0x80U);
  return id;
}

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '@' ||
         c == '-';
}

// A draft of `kind` in `_system` with an AccountChange payload about `user_id`.
ledger::EventDraft draft(schema::Kind kind, std::string actor, schema::Channel channel,
                         std::string_view user_id, std::map<std::string, std::string> detail) {
  ledger::EventDraft d;
  d.event_id = time_ordered_id();
  d.kind = kind;
  d.actor = std::move(actor);
  d.channel = channel;
  d.client_time_us = now_us();
  if (auto subject = parse_uuid(user_id)) d.subject = *subject;
  d.payload = encode_account_change({std::string(user_id), std::move(detail)});
  return d;
}

std::string join(const std::set<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += ',';
    out += item;
  }
  return out;
}

std::string token_text(const std::optional<Digest>& token) {
  return token ? to_hex(*token) : std::string();
}

}  // namespace

// ---- roles ----

std::string_view role_name(Role role) {
  for (const auto& r : kRoleNames) {
    if (r.role == role) return r.name;
  }
  TRAIL_ASSERT(false && "role without a name");
  return {};
}

std::optional<Role> parse_role(std::string_view name) {
  for (const auto& r : kRoleNames) {
    if (r.name == name) return r.role;
  }
  return std::nullopt;
}

CaseReach reach_of(Role role) {
  return role == Role::kMobileWorker ? CaseReach::kOwn : CaseReach::kScope;
}

std::uint32_t authorities_of(Role role) {
  switch (role) {
    case Role::kMobileWorker: return kSubmit | kViewCases;
    case Role::kSupervisor: return kSubmit | kViewCases | kEditCases | kViewReports;
    case Role::kReportViewer: return kViewReports | kExportDeidentified;
    case Role::kAuditor: return kViewAudit | kVerifyLedger;
    case Role::kProjectAdmin: return kAllAuthorities & ~static_cast<std::uint32_t>(kVerifyLedger);
    case Role::kSystemAdmin: return kAllAuthorities;
  }
  TRAIL_ASSERT(false && "unknown role");
  return 0;
}

Status validate_user_name(std::string_view name) {
  if (name.empty() || name.size() > kUserNameBytesMax) {
    return Status::error(Code::kInvalid, "user name must be 1 to 64 bytes (kUserNameBytesMax)");
  }
  for (const char c : name) {
    if (!name_char(c)) {
      return Status::error(Code::kInvalid,
                           "user name may hold only lower-case letters, digits and . _ @ -");
    }
  }
  if (name.front() == '.' || name.front() == '_' || name.front() == '@' || name.front() == '-') {
    return Status::error(Code::kInvalid, "user name must start with a letter or digit");
  }
  return Status::ok();
}

// ---- user records ----

bool UserRecord::is_system_admin() const {
  if (disabled) return false;
  const auto all = roles.find(std::string(kAllProjects));
  return all != roles.end() && all->second.contains(std::string(role_name(Role::kSystemAdmin)));
}

namespace {

// The roles that count for `user` in `project`: the project's own grants, and the system-wide
// ones unless the project keeps superusers out.
template <typename Visit>
void each_role(const UserRecord& user, std::string_view project,
               const ProjectRecord* project_record, Visit visit) {
  if (user.disabled) return;
  if (const auto it = user.roles.find(std::string(project)); it != user.roles.end()) {
    for (const auto& role : it->second) visit(role);
  }
  if (project_record != nullptr && project_record->policy.restrict_superusers) return;
  if (const auto it = user.roles.find(std::string(kAllProjects)); it != user.roles.end()) {
    for (const auto& role : it->second) visit(role);
  }
}

}  // namespace

std::uint32_t UserRecord::authorities_in(std::string_view project,
                                         const ProjectRecord* project_record) const {
  std::uint32_t out = 0;
  each_role(*this, project, project_record, [&](const std::string& role_text) {
    if (const auto role = parse_role(role_text)) {
      out |= authorities_of(*role);
    } else if (project_record != nullptr) {
      if (const auto it = project_record->roles.find(role_text); it != project_record->roles.end()) {
        out |= it->second.authorities;
      }
    }
  });
  TRAIL_ASSERT((out & ~static_cast<std::uint32_t>(kAllAuthorities)) == 0);
  return out;
}

bool UserRecord::member_of(std::string_view project, const ProjectRecord* project_record) const {
  bool any = false;
  each_role(*this, project, project_record, [&](const std::string&) { any = true; });
  return any;
}

CaseReach UserRecord::reach_in(std::string_view project,
                               const ProjectRecord& project_record) const {
  CaseReach out = CaseReach::kOwn;
  each_role(*this, project, &project_record, [&](const std::string& role_text) {
    CaseReach reach = CaseReach::kOwn;
    if (const auto role = parse_role(role_text)) {
      reach = reach_of(*role);
    } else if (const auto it = project_record.roles.find(role_text); it != project_record.roles.end()) {
      reach = it->second.reach;
    }
    if (reach > out) out = reach;
  });
  return out;
}

Scopes UserRecord::scopes_in(std::string_view project) const {
  const auto it = scopes.find(std::string(project));
  return it == scopes.end() ? Scopes{} : it->second;
}

CaseAccess ProjectRecord::access_of(std::string_view case_type) const {
  const auto it = case_types.find(std::string(case_type));
  return it == case_types.end() ? CaseAccess::kOpen : it->second;
}

TimeUs Throttle::locked_until() const {
  if (failures < kFreeFailures) return 0;
  constexpr TimeUs kBase = 30'000'000;
  constexpr TimeUs kMax = 3600'000'000;
  const std::uint32_t doublings = std::min<std::uint32_t>(failures - kFreeFailures, 7);
  return last_failure_us + std::min(kBase << doublings, kMax);
}

// ---- payload codec ----

std::string encode_account_change(const AccountChangeData& change) {
  capnp::MallocMessageBuilder message;
  auto out = message.initRoot<schema::Payload>().initAccount();
  out.setUser(text(change.user));
  auto detail = out.initDetail(static_cast<unsigned>(change.detail.size()));
  unsigned i = 0;
  for (const auto& [name, value] : change.detail) {  // std::map: sorted, names unique.
    detail[i].setName(text(name));
    detail[i].setValue(text(value));
    ++i;
  }
  const auto words = capnp::messageToFlatArray(message);
  const auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

Result<AccountChangeData> decode_account_change(std::string_view payload) {
  if (payload.empty() || payload.size() % sizeof(capnp::word) != 0) {
    return Status::error(Code::kCorrupt, "payload is not a Cap'n Proto message");
  }
  auto words = kj::heapArray<capnp::word>(payload.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), payload.data(), payload.size());
  AccountChangeData out;
  try {
    capnp::FlatArrayMessageReader message(words);
    const auto root = message.getRoot<schema::Payload>();
    if (!root.isAccount())
      return Status::error(Code::kNotFound, "payload is not an account change");
    const auto account = root.getAccount();
    out.user = str(account.getUser());
    for (const auto field : account.getDetail()) {
      std::string name = str(field.getName());
      if (!out.detail.empty() && out.detail.rbegin()->first >= name) {
        return Status::error(Code::kCorrupt, "account change detail is not sorted by unique name");
      }
      out.detail.emplace_hint(out.detail.end(), std::move(name), str(field.getValue()));
    }
  } catch (const kj::Exception& e) {
    return Status::error(Code::kCorrupt,
                         std::string("payload does not decode: ") + e.getDescription().cStr());
  }
  return out;
}

// ---- drafts ----

namespace identity {

ledger::EventDraft project_created(std::string actor, schema::Channel channel,
                                   std::string_view project, std::string_view name) {
  return draft(schema::Kind::PROJECT_CREATED, std::move(actor), channel, "",
               {{"name", std::string(name)}, {"project", std::string(project)}});
}

ledger::EventDraft user_created(std::string actor, schema::Channel channel,
                                std::string_view user_id, std::string_view name,
                                std::string_view password_hash) {
  return draft(schema::Kind::USER_CREATED, std::move(actor), channel, user_id,
               {{"name", std::string(name)}, {"password_hash", std::string(password_hash)}});
}

ledger::EventDraft user_disabled(std::string actor, schema::Channel channel,
                                 std::string_view user_id) {
  return draft(schema::Kind::USER_DISABLED, std::move(actor), channel, user_id, {});
}

ledger::EventDraft role_changed(std::string actor, schema::Channel channel,
                                std::string_view user_id, std::string_view project, Role role,
                                bool grant) {
  const std::string_view where = role == Role::kSystemAdmin ? kAllProjects : project;
  return draft(schema::Kind::ROLE_CHANGED, std::move(actor), channel, user_id,
               {{"op", grant ? "grant" : "revoke"},
                {"project", std::string(where)},
                {"role", std::string(role_name(role))}});
}

ledger::EventDraft role_changed(std::string actor, schema::Channel channel,
                                std::string_view user_id, std::string_view project,
                                std::string_view role, bool grant) {
  if (const auto builtin = parse_role(role)) {
    return role_changed(std::move(actor), channel, user_id, project, *builtin, grant);
  }
  return draft(schema::Kind::ROLE_CHANGED, std::move(actor), channel, user_id,
               {{"op", grant ? "grant" : "revoke"},
                {"project", std::string(project)},
                {"role", std::string(role)}});
}

ledger::EventDraft roles_set(std::string actor, schema::Channel channel, std::string_view user_id,
                             std::string_view project, const std::set<std::string>& roles) {
  return draft(schema::Kind::ROLE_CHANGED, std::move(actor), channel, user_id,
               {{"op", "set"}, {"project", std::string(project)}, {"roles", join(roles)}});
}

ledger::EventDraft password_changed(std::string actor, schema::Channel channel,
                                    std::string_view user_id, std::string_view password_hash) {
  return draft(schema::Kind::PASSWORD_CHANGED, std::move(actor), channel, user_id,
               {{"password_hash", std::string(password_hash)}});
}

ledger::EventDraft login_succeeded(std::string_view user_id, std::string device_id,
                                   const std::optional<Digest>& token, TimeUs expires_us,
                                   std::string_view method, std::string_view address,
                                   std::map<std::string, std::string> second_factor) {
  second_factor["address"] = std::string(address);
  second_factor["expires_us"] = std::to_string(expires_us);
  second_factor["method"] = std::string(method);
  second_factor["token"] = token_text(token);
  auto d = draft(schema::Kind::LOGIN_SUCCEEDED, std::string(user_id), schema::Channel::API,
                 user_id, std::move(second_factor));
  d.device_id = std::move(device_id);
  return d;
}

ledger::EventDraft login_failed(std::string_view user_id, std::string device_id,
                                std::string_view address, std::string_view reason,
                                std::string_view name_tag) {
  std::map<std::string, std::string> detail{{"address", std::string(address)},
                                            {"reason", std::string(reason)}};
  if (!name_tag.empty()) detail["name_tag"] = std::string(name_tag);
  auto d = draft(schema::Kind::LOGIN_FAILED,
                 user_id.empty() ? std::string("anonymous") : std::string(user_id),
                 schema::Channel::API, user_id, std::move(detail));
  d.device_id = std::move(device_id);
  return d;
}

ledger::EventDraft session_ended(std::string_view user_id, std::string device_id,
                                 const Digest& token, std::string_view reason) {
  auto d = draft(schema::Kind::SESSION_ENDED, std::string(user_id), schema::Channel::API, user_id,
                 {{"reason", std::string(reason)}, {"token", to_hex(token)}});
  d.device_id = std::move(device_id);
  return d;
}

ledger::EventDraft account_locked(std::string_view user_id, std::string_view what,
                                  TimeUs until_us, std::uint32_t failures,
                                  std::string_view address) {
  return draft(schema::Kind::ACCOUNT_LOCKED,
               user_id.empty() ? std::string("anonymous") : std::string(user_id),
               schema::Channel::API, user_id,
               {{"address", std::string(address)},
                {"failures", std::to_string(failures)},
                {"until_us", std::to_string(until_us)},
                {"what", std::string(what)}});
}

ledger::EventDraft org_unit_added(std::string actor, schema::Channel channel,
                                  std::string_view project, std::string_view unit,
                                  std::string_view name, std::string_view parent) {
  return draft(schema::Kind::ORG_UNIT_ADDED, std::move(actor), channel, "",
               {{"name", std::string(name)},
                {"parent", std::string(parent)},
                {"project", std::string(project)},
                {"unit", std::string(unit)}});
}

ledger::EventDraft scopes_changed(std::string actor, schema::Channel channel,
                                  std::string_view user_id, std::string_view project,
                                  const std::map<std::string, Scope>& fields) {
  std::map<std::string, std::string> detail{{"project", std::string(project)}};
  for (const auto& [name, scope] : fields) detail[name] = scope.all ? "*" : join(scope.units);
  return draft(schema::Kind::SCOPES_CHANGED, std::move(actor), channel, user_id,
               std::move(detail));
}

ledger::EventDraft role_defined(std::string actor, schema::Channel channel,
                                std::string_view project, std::string_view role,
                                const RoleDefinition& definition) {
  const auto names = authority_names(definition.authorities);
  return draft(schema::Kind::ROLE_DEFINED, std::move(actor), channel, "",
               {{"authorities", join(std::set<std::string>(names.begin(), names.end()))},
                {"project", std::string(project)},
                {"reach", std::string(reach_name(definition.reach))},
                {"role", std::string(role)}});
}

ledger::EventDraft case_type_changed(std::string actor, schema::Channel channel,
                                     std::string_view project, std::string_view case_type,
                                     CaseAccess access) {
  return draft(schema::Kind::CASE_TYPE_CHANGED, std::move(actor), channel, "",
               {{"access", std::string(case_access_name(access))},
                {"case_type", std::string(case_type)},
                {"project", std::string(project)}});
}

ledger::EventDraft policy_changed(std::string actor, schema::Channel channel,
                                  std::string_view project,
                                  const std::map<std::string, std::string>& fields) {
  auto detail = fields;
  detail["project"] = std::string(project);
  return draft(schema::Kind::POLICY_CHANGED, std::move(actor), channel, "", std::move(detail));
}

ledger::EventDraft totp_enrolled(std::string_view user_id, std::string_view secret_base32) {
  return draft(schema::Kind::TOTP_ENROLLED, std::string(user_id), schema::Channel::API, user_id,
               {{"secret", std::string(secret_base32)}});
}

ledger::EventDraft totp_confirmed(std::string_view user_id,
                                  const std::vector<std::string>& recovery_digests,
                                  std::uint64_t step) {
  return draft(schema::Kind::TOTP_CONFIRMED, std::string(user_id), schema::Channel::API, user_id,
               {{"recovery", join(std::set<std::string>(recovery_digests.begin(),
                                                        recovery_digests.end()))},
                {"totp_step", std::to_string(step)}});
}

std::string new_user_id() { return format_uuid(random_event_id()); }

}  // namespace identity
}  // namespace trail::proj
