// IdentityProjector: folds the `_system` chain's identity events into users, a keyed name index,
// sessions and projects.
//
// Semantics (apply() never rejects an event; what it cannot use it ignores):
//   - Only `_system` events of kinds PROJECT_CREATED, USER_CREATED, USER_DISABLED, ROLE_CHANGED,
//     PASSWORD_CHANGED, LOGIN_SUCCEEDED and SESSION_ENDED are folded; a payload that is not an
//     AccountChange, or lacks what its kind needs, is ignored.
//   - USER_CREATED for an id or name already present is ignored: the first one wins.
//   - Changes to an unknown user are ignored. A system_admin role always lives under "*".
//   - LOGIN_SUCCEEDED without a token (HTTP Basic) opens no session; one whose token digest is
//     already known is ignored, so an ended session stays ended.
//   - SESSION_ENDED ends the session whatever user it names (failing closed).
// Encryption at rest: every value is sealed deterministically with the `_system` data key,
//   bound to its table and key. Keys hold only user ids, project ids, token digests and keyed
//   MACs of names: never a name in clear.
#include "projections/identity.h"

#include <charconv>
#include <utility>

#include "ledger/assert.h"
#include "projections/row_codec.h"
#include "projections/view_keys.h"

namespace trail::proj {
namespace {

enum TableIndex : std::size_t { kUsers, kByName, kSessions, kProjects, kThrottle };
constexpr const char* kTableNames[] = {"identity.users", "identity.by_name", "identity.sessions",
                                       "identity.projects", "identity.throttle"};
constexpr std::uint8_t kUserVersion = 2;  // 1: before scopes and two-factor log-in.
constexpr std::uint8_t kSessionVersion = 2;  // 1: before two_factor.
constexpr std::uint8_t kProjectVersion = 2;  // 1: before units, roles, case types, policy.
constexpr std::uint8_t kThrottleVersion = 1;
constexpr std::size_t kPasswordHistory = 5;  // Hashes kept to refuse reuse.
constexpr std::uint8_t kRoleCount = static_cast<std::uint8_t>(Role::kSystemAdmin) + 1;
// Domain label of the name index's MAC, so it never equals another use of the key's MAC.
constexpr std::string_view kNameMacLabel = "trail/identity/name/v1";
constexpr std::string_view kAddressMacLabel = "trail/identity/address/v1";
constexpr std::size_t kUserIdBytesMax = ledger::kActorBytesMax;  // A user id is an actor.

// ---- value codec: a version byte, then fixed-width integers and u32-length-prefixed text ----

using Writer = view::RowWriter;
using Reader = view::RowReader;

void put_texts(Writer& w, const std::set<std::string>& items) {
  w.u32(static_cast<std::uint32_t>(items.size()));
  for (const auto& item : items) w.text(item);
}

bool get_texts(Reader& r, std::set<std::string>& items) {
  std::uint32_t count = 0;
  if (!r.u32(count)) return false;
  for (std::uint32_t i = 0; i < count; ++i) {
    std::string item;
    if (!r.text(item) || !items.insert(std::move(item)).second) return false;
  }
  return true;
}

void put_scope(Writer& w, const Scope& scope) {
  w.flag(scope.all);
  put_texts(w, scope.units);
}

bool get_scope(Reader& r, Scope& scope) { return r.flag(scope.all) && get_texts(r, scope.units); }

std::string encode_user(const UserRecord& user) {
  Writer w;
  w.u8(kUserVersion);
  w.text(user.id);
  w.text(user.name);
  w.u8(user.disabled ? 1 : 0);
  w.text(user.password_hash);
  w.u64(user.password_seq);
  w.i64(user.created_us);
  w.u32(static_cast<std::uint32_t>(user.roles.size()));
  for (const auto& [project, roles] : user.roles) {  // Sorted maps and sets: deterministic.
    TRAIL_ASSERT(!roles.empty());
    w.text(project);
    put_texts(w, roles);
  }
  w.u32(static_cast<std::uint32_t>(user.scopes.size()));
  for (const auto& [project, scopes] : user.scopes) {
    w.text(project);
    put_scope(w, scopes.capture);
    put_scope(w, scopes.search);
    put_scope(w, scopes.analytics);
  }
  w.u32(static_cast<std::uint32_t>(user.recent_password_hashes.size()));
  for (const auto& hash : user.recent_password_hashes) w.text(hash);
  w.u64(user.sessions_after_seq);
  w.text(user.totp_secret);
  w.text(user.totp_pending);
  w.u64(user.totp_last_step);
  put_texts(w, user.recovery_digests);
  return w.take();
}

// Version 1 rows (before scopes and two-factor log-in) held built-in roles as one byte each.
bool decode_user_roles_v1(Reader& r, UserRecord& user) {
  std::uint32_t projects = 0;
  bool ok = r.u32(projects);
  for (std::uint32_t i = 0; ok && i < projects; ++i) {
    std::string project;
    std::uint32_t count = 0;
    ok = r.text(project) && r.u32(count) && count > 0 && count <= kRoleCount &&
         !user.roles.contains(project);
    std::set<std::string> roles;
    for (std::uint32_t j = 0; ok && j < count; ++j) {
      std::uint8_t role = 0;
      ok = r.u8(role) && role < kRoleCount &&
           roles.insert(std::string(role_name(static_cast<Role>(role)))).second;
    }
    if (ok) user.roles.emplace(std::move(project), std::move(roles));
  }
  if (ok) {
    user.recent_password_hashes = {user.password_hash};
    user.sessions_after_seq = user.password_seq;
  }
  return ok;
}

bool decode_user_v2(Reader& r, UserRecord& user) {
  std::uint32_t projects = 0;
  bool ok = r.u32(projects);
  for (std::uint32_t i = 0; ok && i < projects; ++i) {
    std::string project;
    std::set<std::string> roles;
    ok = r.text(project) && get_texts(r, roles) && !roles.empty() &&
         user.roles.emplace(std::move(project), std::move(roles)).second;
  }
  std::uint32_t scoped = 0;
  ok = ok && r.u32(scoped);
  for (std::uint32_t i = 0; ok && i < scoped; ++i) {
    std::string project;
    Scopes scopes;
    ok = r.text(project) && get_scope(r, scopes.capture) && get_scope(r, scopes.search) &&
         get_scope(r, scopes.analytics) &&
         user.scopes.emplace(std::move(project), std::move(scopes)).second;
  }
  std::uint32_t hashes = 0;
  ok = ok && r.u32(hashes) && hashes <= kPasswordHistory;
  for (std::uint32_t i = 0; ok && i < hashes; ++i) {
    ok = r.text(user.recent_password_hashes.emplace_back());
  }
  return ok && r.u64(user.sessions_after_seq) && r.text(user.totp_secret) &&
         r.text(user.totp_pending) && r.u64(user.totp_last_step) &&
         get_texts(r, user.recovery_digests);
}

Result<UserRecord> decode_user(std::string_view bytes) {
  Reader r{bytes};
  UserRecord user;
  std::uint8_t version = 0;
  bool ok = r.u8(version) && (version == 1 || version == kUserVersion) && r.text(user.id) &&
            r.text(user.name) && r.flag(user.disabled) && r.text(user.password_hash) &&
            r.u64(user.password_seq) && r.i64(user.created_us);
  ok = ok && (version == 1 ? decode_user_roles_v1(r, user) : decode_user_v2(r, user));
  if (!ok || !r.done()) return Status::error(Code::kCorrupt, "identity user row does not decode");
  return user;
}

// A session as stored: SessionRecord's own fields and whether it has ended.
struct StoredSession {
  std::string user_id;
  std::uint64_t issued_seq = 0;
  TimeUs issued_us = 0;
  TimeUs expires_us = 0;
  bool ended = false;
  bool two_factor = false;
};

std::string encode_session(const StoredSession& s) {
  Writer w;
  w.u8(kSessionVersion);
  w.text(s.user_id);
  w.u64(s.issued_seq);
  w.i64(s.issued_us);
  w.i64(s.expires_us);
  w.u8(s.ended ? 1 : 0);
  w.flag(s.two_factor);
  return w.take();
}

Result<StoredSession> decode_session(std::string_view bytes) {
  Reader r{bytes};
  StoredSession s;
  std::uint8_t version = 0;
  bool ok = r.u8(version) && (version == 1 || version == kSessionVersion) && r.text(s.user_id) &&
             r.u64(s.issued_seq) && r.i64(s.issued_us) && r.i64(s.expires_us) && r.flag(s.ended);
  if (ok && version == kSessionVersion) ok = r.flag(s.two_factor);
  ok = ok && r.done();
  if (!ok) return Status::error(Code::kCorrupt, "identity session row does not decode");
  return s;
}

std::string encode_project(const ProjectRecord& p) {
  Writer w;
  w.u8(kProjectVersion);
  w.text(p.id);
  w.text(p.name);
  w.i64(p.created_us);
  w.u32(static_cast<std::uint32_t>(p.units.size()));
  for (const auto& [id, unit] : p.units) {
    w.text(id);
    w.text(unit.name);
    w.text(unit.parent);
  }
  w.u32(static_cast<std::uint32_t>(p.roles.size()));
  for (const auto& [name, role] : p.roles) {
    w.text(name);
    w.u32(role.authorities);
    w.u8(static_cast<std::uint8_t>(role.reach));
  }
  w.u32(static_cast<std::uint32_t>(p.case_types.size()));
  for (const auto& [type, access] : p.case_types) {
    w.text(type);
    w.u8(static_cast<std::uint8_t>(access));
  }
  w.flag(p.policy.require_2fa);
  w.i64(p.policy.idle_timeout_minutes);
  w.i64(p.policy.session_max_hours);
  w.i64(p.policy.break_glass_minutes);
  w.flag(p.policy.restrict_superusers);
  return w.take();
}

bool decode_project_v2(Reader& r, ProjectRecord& p) {
  std::uint32_t count = 0;
  bool ok = r.u32(count);
  for (std::uint32_t i = 0; ok && i < count; ++i) {
    std::string id;
    OrgUnit unit;
    ok = r.text(id) && r.text(unit.name) && r.text(unit.parent) &&
         p.units.emplace(std::move(id), std::move(unit)).second;
  }
  ok = ok && r.u32(count);
  for (std::uint32_t i = 0; ok && i < count; ++i) {
    std::string name;
    RoleDefinition role;
    std::uint8_t reach = 0;
    ok = r.text(name) && r.u32(role.authorities) && r.u8(reach) &&
         reach <= static_cast<std::uint8_t>(CaseReach::kScope) &&
         (role.authorities & ~static_cast<std::uint32_t>(kAllAuthorities)) == 0;
    role.reach = static_cast<CaseReach>(reach);
    ok = ok && p.roles.emplace(std::move(name), role).second;
  }
  ok = ok && r.u32(count);
  for (std::uint32_t i = 0; ok && i < count; ++i) {
    std::string type;
    std::uint8_t access = 0;
    ok = r.text(type) && r.u8(access) && access <= static_cast<std::uint8_t>(CaseAccess::kClosed) &&
         p.case_types.emplace(std::move(type), static_cast<CaseAccess>(access)).second;
  }
  return ok && r.flag(p.policy.require_2fa) && r.i64(p.policy.idle_timeout_minutes) &&
         r.i64(p.policy.session_max_hours) && r.i64(p.policy.break_glass_minutes) &&
         r.flag(p.policy.restrict_superusers);
}

Result<ProjectRecord> decode_project(std::string_view bytes) {
  Reader r{bytes};
  ProjectRecord p;
  std::uint8_t version = 0;
  bool ok = r.u8(version) && (version == 1 || version == kProjectVersion) && r.text(p.id) &&
            r.text(p.name) && r.i64(p.created_us);
  if (ok && version == kProjectVersion) ok = decode_project_v2(r, p);
  if (!ok || !r.done()) return Status::error(Code::kCorrupt, "identity project row does not decode");
  return p;
}

std::string encode_throttle(const Throttle& t) {
  Writer w;
  w.u8(kThrottleVersion);
  w.u32(t.failures);
  w.i64(t.last_failure_us);
  return w.take();
}

Result<Throttle> decode_throttle(std::string_view bytes) {
  Reader r{bytes};
  Throttle t;
  std::uint8_t version = 0;
  const bool ok = r.u8(version) && version == kThrottleVersion && r.u32(t.failures) &&
                  r.i64(t.last_failure_us) && r.done();
  if (!ok) return Status::error(Code::kCorrupt, "identity throttle row does not decode");
  return t;
}

// ---- sealing and keys ----

std::string seal(const ledger::DataKey& key, std::size_t table, std::string_view k,
                 std::string_view plain) {
  return key.seal_deterministic(as_bytes(view::aad_for(kTableNames[table], k)), as_bytes(plain));
}

Status open(const ledger::DataKey& key, std::size_t table, std::string_view k, ByteView sealed,
            std::string& plain) {
  return key.open_deterministic(as_bytes(view::aad_for(kTableNames[table], k)), sealed, plain);
}

Digest name_tag_digest(const ledger::DataKey& key, std::string_view name) {
  const std::string_view nul{"\0", 1};
  return key.mac({as_bytes(kNameMacLabel), as_bytes(nul), as_bytes(name)});
}

std::string name_key(const ledger::DataKey& key, std::string_view name) {
  return std::string(as_chars(name_tag_digest(key, name)));
}

std::string session_key(const Digest& token) { return std::string(as_chars(token)); }

// Reads, opens and decodes the value under `k` in `table`; nullopt when absent.
template <typename T>
Result<std::optional<T>> load(const ledger::ProjectionTables& tables, const ledger::DataKey& key,
                              std::size_t table, std::string_view k,
                              Result<T> (*decode)(std::string_view)) {
  TRAIL_ASSIGN_OR_RETURN(auto stored, tables.get(table, as_bytes(k)));
  if (!stored) return std::optional<T>{};
  std::string plain;
  TRAIL_TRY(open(key, table, k, *stored, plain));
  TRAIL_ASSIGN_OR_RETURN(T value, decode(plain));
  return std::optional<T>{std::move(value)};
}

Result<std::optional<UserRecord>> load_user(const ledger::ProjectionTables& tables,
                                            const ledger::DataKey& key, std::string_view id) {
  if (id.empty() || id.size() > kUserIdBytesMax) return std::optional<UserRecord>{};
  TRAIL_ASSIGN_OR_RETURN(auto user, load<UserRecord>(tables, key, kUsers, id, decode_user));
  if (user && user->id != id) {
    return Status::error(Code::kCorrupt, "identity user row holds another user id");
  }
  return user;
}

Result<std::optional<UserRecord>> load_user_by_name(const ledger::ProjectionTables& tables,
                                                    const ledger::DataKey& key,
                                                    std::string_view name) {
  const std::string nkey = name_key(key, name);
  TRAIL_ASSIGN_OR_RETURN(auto stored, tables.get(kByName, as_bytes(nkey)));
  if (!stored) return std::optional<UserRecord>{};
  std::string id;
  TRAIL_TRY(open(key, kByName, nkey, *stored, id));
  TRAIL_ASSIGN_OR_RETURN(auto user, load_user(tables, key, id));
  if (!user || user->name != name) {
    return Status::error(Code::kCorrupt, "identity name index names a missing or other user");
  }
  return user;
}

Status put_user(ledger::ProjectionTables& tables, const ledger::DataKey& key,
                const UserRecord& user) {
  TRAIL_ASSERT(!user.id.empty() && user.id.size() <= kUserIdBytesMax);
  return tables.put(kUsers, as_bytes(user.id),
                    as_bytes(seal(key, kUsers, user.id, encode_user(user))));
}

const std::string* detail(const AccountChangeData& change, std::string_view name) {
  const auto it = change.detail.find(std::string(name));
  return it == change.detail.end() ? nullptr : &it->second;
}

std::optional<Digest> digest_detail(const AccountChangeData& change, std::string_view name) {
  const std::string* hex = detail(change, name);
  Digest out{};
  if (hex == nullptr || hex->size() != 2 * out.size() || !from_hex(*hex, out)) return std::nullopt;
  return out;
}

bool valid_project(std::string_view project) {
  return ledger::validate_project(project).is_ok() && project != ledger::kSystemProject;
}

// ---- folds, one per kind; each ignores what it cannot use ----

Status fold_project_created(ledger::ProjectionTables& tables, const ledger::AppendedEvent& event,
                            const AccountChangeData& change) {
  const std::string* project = detail(change, "project");
  const std::string* name = detail(change, "name");
  if (project == nullptr || name == nullptr || !valid_project(*project)) return Status::ok();
  TRAIL_ASSIGN_OR_RETURN(auto existing, tables.get(kProjects, as_bytes(*project)));
  if (existing) return Status::ok();  // First one wins.
  ProjectRecord record;
  record.id = *project;
  record.name = *name;
  record.created_us = event.server_time_us;
  return tables.put(kProjects, as_bytes(*project),
                    as_bytes(seal(*event.key, kProjects, *project, encode_project(record))));
}

Status fold_user_created(ledger::ProjectionTables& tables, const ledger::AppendedEvent& event,
                         const AccountChangeData& change) {
  const std::string* name = detail(change, "name");
  const std::string* hash = detail(change, "password_hash");
  if (change.user.empty() || change.user.size() > kUserIdBytesMax || name == nullptr ||
      !validate_user_name(*name).is_ok() || hash == nullptr || hash->empty()) {
    return Status::ok();
  }
  const ledger::DataKey& key = *event.key;
  TRAIL_ASSIGN_OR_RETURN(auto by_id, tables.get(kUsers, as_bytes(change.user)));
  const std::string nkey = name_key(key, *name);
  TRAIL_ASSIGN_OR_RETURN(auto by_name, tables.get(kByName, as_bytes(nkey)));
  if (by_id || by_name) return Status::ok();  // First one wins.
  UserRecord user;
  user.id = change.user;
  user.name = *name;
  user.password_hash = *hash;
  user.password_seq = event.seq;
  user.sessions_after_seq = event.seq;
  user.recent_password_hashes = {*hash};
  user.created_us = event.server_time_us;
  TRAIL_TRY(put_user(tables, key, user));
  return tables.put(kByName, as_bytes(nkey), as_bytes(seal(key, kByName, nkey, user.id)));
}

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const auto comma = text.find(',');
    out.emplace_back(text.substr(0, comma));
    text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
  }
  return out;
}

std::optional<std::uint64_t> parse_u64(const std::string* text) {
  if (text == nullptr) return std::nullopt;
  std::uint64_t out = 0;
  const char* end = text->data() + text->size();
  const auto parsed = std::from_chars(text->data(), end, out);
  if (text->empty() || parsed.ec != std::errc{} || parsed.ptr != end) return std::nullopt;
  return out;
}

Result<std::optional<ProjectRecord>> load_project(const ledger::ProjectionTables& tables,
                                                  const ledger::DataKey& key,
                                                  std::string_view id) {
  if (!valid_project(id)) return std::optional<ProjectRecord>{};
  TRAIL_ASSIGN_OR_RETURN(auto project,
                         load<ProjectRecord>(tables, key, kProjects, id, decode_project));
  if (project && project->id != id) {
    return Status::error(Code::kCorrupt, "identity project row holds another project id");
  }
  return project;
}

Status put_project(ledger::ProjectionTables& tables, const ledger::DataKey& key,
                   const ProjectRecord& project) {
  return tables.put(kProjects, as_bytes(project.id),
                    as_bytes(seal(key, kProjects, project.id, encode_project(project))));
}

// Whether `role` may be granted in `project`: a built-in role (system_admin only system-wide)
// or, in a project, one of its own roles.
bool grantable(std::string_view role, std::string_view project,
               const std::optional<ProjectRecord>& record) {
  if (const auto builtin = parse_role(role)) {
    return (*builtin == Role::kSystemAdmin) == (project == kAllProjects);
  }
  return record && record->roles.contains(std::string(role));
}

Status fold_roles(ledger::ProjectionTables& tables, const ledger::AppendedEvent& event,
                  const AccountChangeData& change, UserRecord& user) {
  const std::string* op = detail(change, "op");
  const std::string* project_text = detail(change, "project");
  if (op == nullptr || project_text == nullptr) return Status::ok();
  std::string project = *project_text;
  const std::string* role = detail(change, "role");
  if (role != nullptr && parse_role(*role) == Role::kSystemAdmin) project = kAllProjects;
  if (project != kAllProjects && !valid_project(project)) return Status::ok();
  TRAIL_ASSIGN_OR_RETURN(auto record, load_project(tables, *event.key, project));
  std::set<std::string> before = user.roles.contains(project) ? user.roles[project]
                                                              : std::set<std::string>{};
  std::set<std::string> after = before;
  if (*op == "grant" || *op == "revoke") {
    if (role == nullptr) return Status::ok();
    if (*op == "grant") {
      if (!grantable(*role, project, record)) return Status::ok();
      after.insert(*role);
    } else {
      after.erase(*role);
    }
  } else if (*op == "set") {
    const std::string* roles = detail(change, "roles");
    if (roles == nullptr || project == kAllProjects) return Status::ok();
    after.clear();
    for (auto& name : split_list(*roles)) {
      if (grantable(name, project, record)) after.insert(std::move(name));
    }
  } else {
    return Status::ok();
  }
  if (after.empty()) {
    user.roles.erase(project);
  } else {
    user.roles[project] = after;
  }
  // A role taken away ends every session the user holds.
  if (!std::includes(after.begin(), after.end(), before.begin(), before.end())) {
    user.sessions_after_seq = event.seq;
  }
  return Status::ok();
}

// Reads one scope field: "*" or comma-separated units of the project (unknown ones dropped).
std::optional<Scope> scope_detail(const AccountChangeData& change, std::string_view name,
                                  const ProjectRecord& project) {
  const std::string* text = detail(change, name);
  if (text == nullptr) return std::nullopt;
  Scope scope;
  if (*text == "*") return scope;
  scope.all = false;
  for (auto& unit : split_list(*text)) {
    if (project.units.contains(unit)) scope.units.insert(std::move(unit));
  }
  return scope;
}

Status fold_scopes(ledger::ProjectionTables& tables, const ledger::AppendedEvent& event,
                   const AccountChangeData& change, UserRecord& user) {
  const std::string* project = detail(change, "project");
  if (project == nullptr) return Status::ok();
  TRAIL_ASSIGN_OR_RETURN(auto record, load_project(tables, *event.key, *project));
  if (!record) return Status::ok();
  Scopes scopes = user.scopes_in(*project);
  if (auto scope = scope_detail(change, "capture", *record)) scopes.capture = std::move(*scope);
  if (auto scope = scope_detail(change, "search", *record)) scopes.search = std::move(*scope);
  if (auto scope = scope_detail(change, "analytics", *record)) scopes.analytics = std::move(*scope);
  if (scopes == Scopes{}) {
    user.scopes.erase(*project);
  } else {
    user.scopes[*project] = std::move(scopes);
  }
  return Status::ok();
}

Status fold_user_change(ledger::ProjectionTables& tables, const ledger::AppendedEvent& event,
                        const AccountChangeData& change) {
  const ledger::DataKey& key = *event.key;
  TRAIL_ASSIGN_OR_RETURN(auto user, load_user(tables, key, change.user));
  if (!user) return Status::ok();
  switch (event.draft->kind) {
    case schema::Kind::USER_DISABLED:
      user->disabled = true;
      user->sessions_after_seq = event.seq;
      break;
    case schema::Kind::PASSWORD_CHANGED: {
      const std::string* hash = detail(change, "password_hash");
      if (hash == nullptr || hash->empty()) return Status::ok();
      user->password_hash = *hash;
      user->password_seq = event.seq;
      user->sessions_after_seq = event.seq;
      auto& recent = user->recent_password_hashes;
      recent.insert(recent.begin(), *hash);
      if (recent.size() > kPasswordHistory) recent.resize(kPasswordHistory);
      break;
    }
    case schema::Kind::ROLE_CHANGED: TRAIL_TRY(fold_roles(tables, event, change, *user)); break;
    case schema::Kind::SCOPES_CHANGED: TRAIL_TRY(fold_scopes(tables, event, change, *user)); break;
    case schema::Kind::TOTP_ENROLLED: {
      const std::string* secret = detail(change, "secret");
      if (secret == nullptr || secret->empty()) return Status::ok();
      user->totp_pending = *secret;
      break;
    }
    case schema::Kind::TOTP_CONFIRMED: {
      const std::string* recovery = detail(change, "recovery");
      const auto step = parse_u64(detail(change, "totp_step"));
      if (user->totp_pending.empty() || recovery == nullptr || !step) return Status::ok();
      user->totp_secret = std::exchange(user->totp_pending, std::string());
      user->totp_last_step = *step;
      user->recovery_digests.clear();
      for (auto& digest : split_list(*recovery)) user->recovery_digests.insert(std::move(digest));
      break;
    }
    default: TRAIL_ASSERT(false && "not a user change");
  }
  return put_user(tables, key, *user);
}

Status fold_project_change(ledger::ProjectionTables& tables, const ledger::AppendedEvent& event,
                           const AccountChangeData& change) {
  const std::string* project_id = detail(change, "project");
  if (project_id == nullptr) return Status::ok();
  TRAIL_ASSIGN_OR_RETURN(auto project, load_project(tables, *event.key, *project_id));
  if (!project) return Status::ok();
  switch (event.draft->kind) {
    case schema::Kind::ORG_UNIT_ADDED: {
      const std::string* unit = detail(change, "unit");
      const std::string* name = detail(change, "name");
      const std::string* parent = detail(change, "parent");
      if (unit == nullptr || name == nullptr || parent == nullptr ||
          !validate_access_name("unit", *unit).is_ok() || project->units.contains(*unit) ||
          (!parent->empty() && !project->units.contains(*parent))) {
        return Status::ok();  // Units never move or repeat; parents come first.
      }
      project->units.emplace(*unit, OrgUnit{*name, *parent});
      break;
    }
    case schema::Kind::ROLE_DEFINED: {
      const std::string* role = detail(change, "role");
      const std::string* authorities = detail(change, "authorities");
      const std::string* reach_text = detail(change, "reach");
      if (role == nullptr || authorities == nullptr || reach_text == nullptr ||
          parse_role(*role) || !validate_access_name("role", *role).is_ok()) {
        return Status::ok();
      }
      const auto reach = parse_reach(*reach_text);
      if (!reach) return Status::ok();
      RoleDefinition definition{0, *reach};
      for (const auto& name : split_list(*authorities)) {
        const auto authority = parse_authority(name);
        if (!authority) return Status::ok();
        definition.authorities |= *authority;
      }
      project->roles[*role] = definition;
      break;
    }
    case schema::Kind::CASE_TYPE_CHANGED: {
      const std::string* type = detail(change, "case_type");
      const std::string* access_text = detail(change, "access");
      if (type == nullptr || access_text == nullptr || type->empty()) return Status::ok();
      const auto access = parse_case_access(*access_text);
      if (!access) return Status::ok();
      if (*access == CaseAccess::kOpen) {
        project->case_types.erase(*type);
      } else {
        project->case_types[*type] = *access;
      }
      break;
    }
    case schema::Kind::POLICY_CHANGED: {
      ProjectPolicy policy = project->policy;
      for (const auto& [field, value] : change.detail) {
        if (field == "project") continue;
        if (!apply_policy_field(policy, field, value).is_ok()) return Status::ok();  // All or none.
      }
      project->policy = policy;
      break;
    }
    default: TRAIL_ASSERT(false && "not a project change");
  }
  return put_project(tables, *event.key, *project);
}

// ---- log-in throttling ----

std::string address_key(const ledger::DataKey& key, std::string_view address) {
  const std::string_view nul{"\0", 1};
  const Digest mac = key.mac({as_bytes(kAddressMacLabel), as_bytes(nul), as_bytes(address)});
  return "a" + std::string(as_chars(mac));
}

std::string tag_key(const Digest& tag) { return "n" + std::string(as_chars(tag)); }

Result<Throttle> load_throttle(const ledger::ProjectionTables& tables, const ledger::DataKey& key,
                               const std::string& k) {
  TRAIL_ASSIGN_OR_RETURN(auto row, load<Throttle>(tables, key, kThrottle, k, decode_throttle));
  return row ? *row : Throttle{};
}

Status count_failure(ledger::ProjectionTables& tables, const ledger::DataKey& key,
                     const std::string& k, TimeUs at) {
  TRAIL_ASSIGN_OR_RETURN(Throttle t, load_throttle(tables, key, k));
  t.failures += 1;
  t.last_failure_us = at;
  return tables.put(kThrottle, as_bytes(k), as_bytes(seal(key, kThrottle, k, encode_throttle(t))));
}

Status fold_login_failed(ledger::ProjectionTables& tables, const ledger::AppendedEvent& event,
                         const AccountChangeData& change) {
  const std::string* reason = detail(change, "reason");
  // Not guesses: attempts refused unheard while throttled, and a right password missing its code.
  if (reason != nullptr && (*reason == "throttled" || *reason == "totp_required")) {
    return Status::ok();
  }
  const ledger::DataKey& key = *event.key;
  if (const auto tag = digest_detail(change, "name_tag")) {
    TRAIL_TRY(count_failure(tables, key, tag_key(*tag), event.server_time_us));
  }
  if (const std::string* address = detail(change, "address"); address != nullptr) {
    TRAIL_TRY(count_failure(tables, key, address_key(key, *address), event.server_time_us));
  }
  return Status::ok();
}

// A log-in: resets the throttles of the account and the address, uses up the second factor,
// and opens the session (when there is a token).
Status fold_login(ledger::ProjectionTables& tables, const ledger::AppendedEvent& event,
                  const AccountChangeData& change) {
  const ledger::DataKey& key = *event.key;
  TRAIL_ASSIGN_OR_RETURN(auto user, load_user(tables, key, change.user));
  if (!user) return Status::ok();
  TRAIL_TRY(tables.del(kThrottle, as_bytes(tag_key(name_tag_digest(key, user->name)))));
  if (const std::string* address = detail(change, "address"); address != nullptr) {
    TRAIL_TRY(tables.del(kThrottle, as_bytes(address_key(key, *address))));
  }
  bool two_factor = false;
  if (const auto step = parse_u64(detail(change, "totp_step")); step && !user->totp_secret.empty()) {
    user->totp_last_step = std::max(user->totp_last_step, *step);
    two_factor = true;
  }
  if (const std::string* recovery = detail(change, "recovery"); recovery != nullptr) {
    two_factor = user->recovery_digests.erase(*recovery) > 0;
  }
  if (two_factor) TRAIL_TRY(put_user(tables, key, *user));
  const auto token = digest_detail(change, "token");
  const std::string* expires = detail(change, "expires_us");
  if (!token || expires == nullptr) return Status::ok();  // HTTP Basic: no session.
  StoredSession session;
  session.two_factor = two_factor;
  const char* end = expires->data() + expires->size();
  const auto parsed = std::from_chars(expires->data(), end, session.expires_us);
  if (parsed.ec != std::errc{} || parsed.ptr != end) return Status::ok();
  const std::string skey = session_key(*token);
  TRAIL_ASSIGN_OR_RETURN(auto existing, tables.get(kSessions, as_bytes(skey)));
  if (existing) return Status::ok();  // Never reopen or take over a known session.
  session.user_id = user->id;
  session.issued_seq = event.seq;
  session.issued_us = event.server_time_us;
  return tables.put(kSessions, as_bytes(skey),
                    as_bytes(seal(key, kSessions, skey, encode_session(session))));
}

Status fold_session_ended(ledger::ProjectionTables& tables, const ledger::AppendedEvent& event,
                          const AccountChangeData& change) {
  const auto token = digest_detail(change, "token");
  if (!token) return Status::ok();
  const ledger::DataKey& key = *event.key;
  const std::string skey = session_key(*token);
  TRAIL_ASSIGN_OR_RETURN(auto session,
                         load<StoredSession>(tables, key, kSessions, skey, decode_session));
  if (!session || session->ended) return Status::ok();
  session->ended = true;
  return tables.put(kSessions, as_bytes(skey),
                    as_bytes(seal(key, kSessions, skey, encode_session(*session))));
}

bool folded_kind(schema::Kind kind) {
  switch (kind) {
    case schema::Kind::PROJECT_CREATED:
    case schema::Kind::USER_CREATED:
    case schema::Kind::USER_DISABLED:
    case schema::Kind::ROLE_CHANGED:
    case schema::Kind::PASSWORD_CHANGED:
    case schema::Kind::LOGIN_SUCCEEDED:
    case schema::Kind::LOGIN_FAILED:
    case schema::Kind::SESSION_ENDED:
    case schema::Kind::SCOPES_CHANGED:
    case schema::Kind::TOTP_ENROLLED:
    case schema::Kind::TOTP_CONFIRMED:
    case schema::Kind::ORG_UNIT_ADDED:
    case schema::Kind::ROLE_DEFINED:
    case schema::Kind::CASE_TYPE_CHANGED:
    case schema::Kind::POLICY_CHANGED: return true;
    default: return false;
  }
}

// Scans every row of `table`, opening and decoding each into `out`.
template <typename T>
Status scan_all(const ledger::ProjectionTables& tables, const ledger::DataKey& key,
                std::size_t table, Result<T> (*decode)(std::string_view), std::vector<T>& out) {
  Status inner = Status::ok();
  TRAIL_TRY(tables.scan(table, {}, [&](ByteView k, ByteView value) {
    std::string plain;
    inner = open(key, table, as_chars(k), value, plain);
    if (!inner.is_ok()) return false;
    auto row = decode(plain);
    if (!row.is_ok()) {
      inner = std::move(row).take_status();
      return false;
    }
    out.push_back(std::move(row).value());
    return true;
  }));
  return inner;
}

}  // namespace

std::vector<std::string> IdentityProjector::tables() const {
  return {std::begin(kTableNames), std::end(kTableNames)};
}

Status IdentityProjector::apply(ledger::ProjectionTables& tables,
                                const ledger::AppendedEvent& event) {
  TRAIL_ASSERT(event.draft != nullptr && event.key != nullptr);
  if (event.project != ledger::kSystemProject || !folded_kind(event.draft->kind)) {
    return Status::ok();
  }
  auto change = decode_account_change(event.draft->payload);
  if (!change.is_ok()) return Status::ok();  // Not an account change: nothing to fold.
  switch (event.draft->kind) {
    case schema::Kind::PROJECT_CREATED: return fold_project_created(tables, event, *change);
    case schema::Kind::USER_CREATED: return fold_user_created(tables, event, *change);
    case schema::Kind::LOGIN_SUCCEEDED: return fold_login(tables, event, *change);
    case schema::Kind::SESSION_ENDED: return fold_session_ended(tables, event, *change);
    case schema::Kind::LOGIN_FAILED: return fold_login_failed(tables, event, *change);
    case schema::Kind::ORG_UNIT_ADDED:
    case schema::Kind::ROLE_DEFINED:
    case schema::Kind::CASE_TYPE_CHANGED:
    case schema::Kind::POLICY_CHANGED: return fold_project_change(tables, event, *change);
    default: return fold_user_change(tables, event, *change);
  }
}

Result<std::optional<UserRecord>> IdentityProjector::user_by_name(const ledger::Ledger& ledger,
                                                                  std::string_view name) const {
  std::optional<UserRecord> out;
  if (!validate_user_name(name).is_ok()) return out;  // No such user can exist.
  TRAIL_ASSIGN_OR_RETURN(auto key, view::project_key(ledger, ledger::kSystemProject));
  if (key == nullptr) return out;
  TRAIL_TRY(ledger.read_projection(*this, [&](const ledger::ProjectionTables& tables) -> Status {
    TRAIL_ASSIGN_OR_RETURN(out, load_user_by_name(tables, *key, name));
    return Status::ok();
  }));
  return out;
}

Result<std::optional<UserRecord>> IdentityProjector::user_by_id(const ledger::Ledger& ledger,
                                                                std::string_view id) const {
  std::optional<UserRecord> out;
  TRAIL_ASSIGN_OR_RETURN(auto key, view::project_key(ledger, ledger::kSystemProject));
  if (key == nullptr) return out;
  TRAIL_TRY(ledger.read_projection(*this, [&](const ledger::ProjectionTables& tables) -> Status {
    TRAIL_ASSIGN_OR_RETURN(out, load_user(tables, *key, id));
    return Status::ok();
  }));
  return out;
}

Result<std::vector<UserRecord>> IdentityProjector::users(const ledger::Ledger& ledger) const {
  std::vector<UserRecord> out;
  TRAIL_ASSIGN_OR_RETURN(auto key, view::project_key(ledger, ledger::kSystemProject));
  if (key == nullptr) return out;
  TRAIL_TRY(ledger.read_projection(*this, [&](const ledger::ProjectionTables& tables) {
    return scan_all<UserRecord>(tables, *key, kUsers, decode_user, out);
  }));
  return out;
}

Result<std::optional<SessionRecord>> IdentityProjector::session(const ledger::Ledger& ledger,
                                                                const Digest& token,
                                                                TimeUs now_us) const {
  std::optional<SessionRecord> out;
  TRAIL_ASSIGN_OR_RETURN(auto key, view::project_key(ledger, ledger::kSystemProject));
  if (key == nullptr) return out;
  TRAIL_TRY(ledger.read_projection(*this, [&](const ledger::ProjectionTables& tables) -> Status {
    const std::string skey = session_key(token);
    TRAIL_ASSIGN_OR_RETURN(auto stored,
                           load<StoredSession>(tables, *key, kSessions, skey, decode_session));
    if (!stored || stored->ended || now_us >= stored->expires_us) return Status::ok();
    TRAIL_ASSIGN_OR_RETURN(auto user, load_user(tables, *key, stored->user_id));
    if (!user) return Status::error(Code::kCorrupt, "identity session names a missing user");
    if (user->disabled || stored->issued_seq <= user->sessions_after_seq) return Status::ok();
    SessionRecord session;
    session.user_id = stored->user_id;
    session.user = std::move(*user);
    session.issued_seq = stored->issued_seq;
    session.issued_us = stored->issued_us;
    session.expires_us = stored->expires_us;
    session.two_factor = stored->two_factor;
    out = std::move(session);
    return Status::ok();
  }));
  if (out) TRAIL_ASSERT(out->user.id == out->user_id && !out->user.disabled);
  return out;
}

Result<std::optional<ProjectRecord>> IdentityProjector::project(const ledger::Ledger& ledger,
                                                                std::string_view id) const {
  std::optional<ProjectRecord> out;
  if (!valid_project(id)) return out;
  TRAIL_ASSIGN_OR_RETURN(auto key, view::project_key(ledger, ledger::kSystemProject));
  if (key == nullptr) return out;
  TRAIL_TRY(ledger.read_projection(*this, [&](const ledger::ProjectionTables& tables) -> Status {
    TRAIL_ASSIGN_OR_RETURN(out, load_project(tables, *key, id));
    return Status::ok();
  }));
  return out;
}

Result<IdentityProjector::Membership> IdentityProjector::membership(
    const ledger::Ledger& ledger, std::string_view user_id, std::string_view project) const {
  Membership out;
  TRAIL_ASSIGN_OR_RETURN(auto key, view::project_key(ledger, ledger::kSystemProject));
  if (key == nullptr) return out;
  TRAIL_TRY(ledger.read_projection(*this, [&](const ledger::ProjectionTables& tables) -> Status {
    TRAIL_ASSIGN_OR_RETURN(out.user, load_user(tables, *key, user_id));
    TRAIL_ASSIGN_OR_RETURN(out.project, load_project(tables, *key, project));
    return Status::ok();
  }));
  return out;
}

Result<std::string> IdentityProjector::name_tag(const ledger::Ledger& ledger,
                                                std::string_view name) const {
  TRAIL_ASSIGN_OR_RETURN(auto key, view::project_key(ledger, ledger::kSystemProject));
  if (key == nullptr) return Status::error(Code::kNotFound, "no _system key yet");
  return to_hex(name_tag_digest(*key, name));
}

Result<IdentityProjector::Throttles> IdentityProjector::throttles(const ledger::Ledger& ledger,
                                                                  std::string_view name_tag,
                                                                  std::string_view address) const {
  Throttles out;
  TRAIL_ASSIGN_OR_RETURN(auto key, view::project_key(ledger, ledger::kSystemProject));
  if (key == nullptr) return out;
  Digest tag{};
  const bool has_tag = name_tag.size() == 2 * tag.size() && from_hex(name_tag, tag);
  TRAIL_TRY(ledger.read_projection(*this, [&](const ledger::ProjectionTables& tables) -> Status {
    if (has_tag) {
      TRAIL_ASSIGN_OR_RETURN(out.account, load_throttle(tables, *key, tag_key(tag)));
    }
    TRAIL_ASSIGN_OR_RETURN(out.address, load_throttle(tables, *key, address_key(*key, address)));
    return Status::ok();
  }));
  return out;
}

Result<std::vector<ProjectRecord>> IdentityProjector::projects(const ledger::Ledger& ledger) const {
  std::vector<ProjectRecord> out;
  TRAIL_ASSIGN_OR_RETURN(auto key, view::project_key(ledger, ledger::kSystemProject));
  if (key == nullptr) return out;
  TRAIL_TRY(ledger.read_projection(*this, [&](const ledger::ProjectionTables& tables) {
    return scan_all<ProjectRecord>(tables, *key, kProjects, decode_project, out);
  }));
  return out;
}

}  // namespace trail::proj
