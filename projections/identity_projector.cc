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

enum TableIndex : std::size_t { kUsers, kByName, kSessions, kProjects };
constexpr const char* kTableNames[] = {"identity.users", "identity.by_name", "identity.sessions",
                                       "identity.projects"};
constexpr std::uint8_t kUserVersion = 1;
constexpr std::uint8_t kSessionVersion = 1;
constexpr std::uint8_t kProjectVersion = 1;
constexpr std::uint8_t kRoleCount = static_cast<std::uint8_t>(Role::kSystemAdmin) + 1;
// Domain label of the name index's MAC, so it never equals another use of the key's MAC.
constexpr std::string_view kNameMacLabel = "trail/identity/name/v1";
constexpr std::size_t kUserIdBytesMax = ledger::kActorBytesMax;  // A user id is an actor.

// ---- value codec: a version byte, then fixed-width integers and u32-length-prefixed text ----

using Writer = view::RowWriter;
using Reader = view::RowReader;

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
    w.u32(static_cast<std::uint32_t>(roles.size()));
    for (const Role role : roles) w.u8(static_cast<std::uint8_t>(role));
  }
  return w.take();
}

Result<UserRecord> decode_user(std::string_view bytes) {
  Reader r{bytes};
  UserRecord user;
  std::uint8_t version = 0;
  std::uint32_t projects = 0;
  bool ok = r.u8(version) && version == kUserVersion && r.text(user.id) && r.text(user.name) &&
            r.flag(user.disabled) && r.text(user.password_hash) && r.u64(user.password_seq) &&
            r.i64(user.created_us) && r.u32(projects);
  for (std::uint32_t i = 0; ok && i < projects; ++i) {
    std::string project;
    std::uint32_t count = 0;
    ok = r.text(project) && r.u32(count) && count > 0 && count <= kRoleCount &&
         !user.roles.contains(project);
    std::set<Role> roles;
    for (std::uint32_t j = 0; ok && j < count; ++j) {
      std::uint8_t role = 0;
      ok = r.u8(role) && role < kRoleCount && roles.insert(static_cast<Role>(role)).second;
    }
    if (ok) user.roles.emplace(std::move(project), std::move(roles));
  }
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
};

std::string encode_session(const StoredSession& s) {
  Writer w;
  w.u8(kSessionVersion);
  w.text(s.user_id);
  w.u64(s.issued_seq);
  w.i64(s.issued_us);
  w.i64(s.expires_us);
  w.u8(s.ended ? 1 : 0);
  return w.take();
}

Result<StoredSession> decode_session(std::string_view bytes) {
  Reader r{bytes};
  StoredSession s;
  std::uint8_t version = 0;
  const bool ok = r.u8(version) && version == kSessionVersion && r.text(s.user_id) &&
                  r.u64(s.issued_seq) && r.i64(s.issued_us) && r.i64(s.expires_us) &&
                  r.flag(s.ended) && r.done();
  if (!ok) return Status::error(Code::kCorrupt, "identity session row does not decode");
  return s;
}

std::string encode_project(const ProjectRecord& p) {
  Writer w;
  w.u8(kProjectVersion);
  w.text(p.id);
  w.text(p.name);
  w.i64(p.created_us);
  return w.take();
}

Result<ProjectRecord> decode_project(std::string_view bytes) {
  Reader r{bytes};
  ProjectRecord p;
  std::uint8_t version = 0;
  const bool ok = r.u8(version) && version == kProjectVersion && r.text(p.id) && r.text(p.name) &&
                  r.i64(p.created_us) && r.done();
  if (!ok) return Status::error(Code::kCorrupt, "identity project row does not decode");
  return p;
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

std::string name_key(const ledger::DataKey& key, std::string_view name) {
  const std::string_view nul{"\0", 1};
  const Digest mac = key.mac({as_bytes(kNameMacLabel), as_bytes(nul), as_bytes(name)});
  return std::string(as_chars(mac));
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
  const ProjectRecord record{*project, *name, event.server_time_us};
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
  user.created_us = event.server_time_us;
  TRAIL_TRY(put_user(tables, key, user));
  return tables.put(kByName, as_bytes(nkey), as_bytes(seal(key, kByName, nkey, user.id)));
}

Status fold_user_change(ledger::ProjectionTables& tables, const ledger::AppendedEvent& event,
                        const AccountChangeData& change) {
  const ledger::DataKey& key = *event.key;
  TRAIL_ASSIGN_OR_RETURN(auto user, load_user(tables, key, change.user));
  if (!user) return Status::ok();
  switch (event.draft->kind) {
    case schema::Kind::USER_DISABLED: user->disabled = true; break;
    case schema::Kind::PASSWORD_CHANGED: {
      const std::string* hash = detail(change, "password_hash");
      if (hash == nullptr || hash->empty()) return Status::ok();
      user->password_hash = *hash;
      user->password_seq = event.seq;
      break;
    }
    case schema::Kind::ROLE_CHANGED: {
      const std::string* role_text = detail(change, "role");
      const std::string* project_text = detail(change, "project");
      const std::string* op = detail(change, "op");
      if (role_text == nullptr || project_text == nullptr || op == nullptr) return Status::ok();
      const auto role = parse_role(*role_text);
      if (!role || (*op != "grant" && *op != "revoke")) return Status::ok();
      std::string project = *role == Role::kSystemAdmin ? std::string(kAllProjects) : *project_text;
      if (project != kAllProjects && !valid_project(project)) return Status::ok();
      if (*op == "grant") {
        user->roles[project].insert(*role);
      } else if (auto it = user->roles.find(project); it != user->roles.end()) {
        it->second.erase(*role);
        if (it->second.empty()) user->roles.erase(it);
      }
      break;
    }
    default: TRAIL_ASSERT(false && "not a user change");
  }
  return put_user(tables, key, *user);
}

Status fold_login(ledger::ProjectionTables& tables, const ledger::AppendedEvent& event,
                  const AccountChangeData& change) {
  const auto token = digest_detail(change, "token");
  const std::string* expires = detail(change, "expires_us");
  if (!token || expires == nullptr) return Status::ok();  // HTTP Basic: no session.
  StoredSession session;
  const char* end = expires->data() + expires->size();
  const auto parsed = std::from_chars(expires->data(), end, session.expires_us);
  if (parsed.ec != std::errc{} || parsed.ptr != end) return Status::ok();
  const ledger::DataKey& key = *event.key;
  TRAIL_ASSIGN_OR_RETURN(auto user, load_user(tables, key, change.user));
  if (!user) return Status::ok();
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
    case schema::Kind::SESSION_ENDED: return true;
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
    if (user->disabled || stored->issued_seq <= user->password_seq) return Status::ok();
    SessionRecord session;
    session.user_id = stored->user_id;
    session.user = std::move(*user);
    session.issued_seq = stored->issued_seq;
    session.issued_us = stored->issued_us;
    session.expires_us = stored->expires_us;
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
    TRAIL_ASSIGN_OR_RETURN(out, load<ProjectRecord>(tables, *key, kProjects, id, decode_project));
    if (out && out->id != id) {
      return Status::error(Code::kCorrupt, "identity project row holds another project id");
    }
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
