// The identity directory: users, their roles per project, projects, and log-in sessions, all
// kept as events in the `_system` chain and folded by IdentityProjector into a view that
// traild and trailctl read on every request (so what trailctl changes takes effect on the
// server's next request).
//
// Events (all in `_system`, payload schema::AccountChange {user, detail}, detail sorted by name):
//   PROJECT_CREATED  subject: none   user ""      detail: project, name
//   USER_CREATED     user: user id   detail: name, password_hash
//   USER_DISABLED    user: user id   detail: (none)
//   ROLE_CHANGED     user: user id   detail: project ("*" for system_admin), role, op (grant|revoke)
//   PASSWORD_CHANGED user: user id   detail: password_hash
//                    or op "set" with roles (comma-separated role names; a project's own roles
//                    count once the project defines them)
//   LOGIN_SUCCEEDED  user: user id   detail: token (hex SHA-256 of the token; empty for HTTP
//                                    Basic), expires_us, method (password|basic), address, and
//                                    totp_step (a TOTP step now used) or recovery (the digest of
//                                    the recovery code used up)
//   LOGIN_FAILED     user: user id or "" when unknown   detail: address, reason, name_tag (hex
//                                    keyed MAC of the name tried, to throttle by account)
//   SESSION_ENDED    user: user id   detail: token (hex SHA-256), reason
//   ACCOUNT_LOCKED   user: user id or ""   detail: what (account|address), until_us, failures,
//                                    address
//   ORG_UNIT_ADDED   user ""         detail: project, unit, name, parent ("" for a root)
//   SCOPES_CHANGED   user: user id   detail: project, and any of capture, search, analytics:
//                                    "*" (whole project) or comma-separated unit ids
//   ROLE_DEFINED     user ""         detail: project, role, authorities (comma-separated), reach
//   CASE_TYPE_CHANGED user ""        detail: project, case_type, access
//   POLICY_CHANGED   user ""         detail: project and the policy fields changed
//   TOTP_ENROLLED    user: user id   detail: secret (base32; sealed like every payload)
//   TOTP_CONFIRMED   user: user id   detail: recovery (comma-separated hex SHA-256 of the
//                                    codes), totp_step (the step the confirming code used)
// The actor of each is the user id (or "os:<login>" for trailctl, "system" for init) who did it.
// User ids are random UUIDs in text form; names are what people type and never leave the
// sealed payloads and the keyed name index.
//
// Thread safety: free functions; IdentityProjector as every projector (apply on the writer
// thread, queries from any thread).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/bytes.h"
#include "ledger/clock.h"
#include "ledger/envelope.h"
#include "ledger/ledger.h"
#include "ledger/projector.h"
#include "ledger/status.h"
#include "projections/access_model.h"

namespace trail::proj {

enum class Role : std::uint8_t {
  kMobileWorker,
  kSupervisor,
  kReportViewer,
  kAuditor,
  kProjectAdmin,
  kSystemAdmin,
};
// "mobile_worker", "supervisor", "report_viewer", "auditor", "project_admin", "system_admin".
std::string_view role_name(Role role);
std::optional<Role> parse_role(std::string_view name);

// mobile_worker: submit, view cases (its own: the server narrows); supervisor: submit, view
// and edit cases, view reports; report_viewer: view reports, export de-identified;
// auditor: view audit, verify ledger; project_admin: everything but verify ledger;
// system_admin: everything.
std::uint32_t authorities_of(Role role);
// Which cases a built-in role reaches: mobile_worker its own, every other its scopes.
CaseReach reach_of(Role role);

// The system-wide "project" a system_admin grant names.
inline constexpr std::string_view kAllProjects = "*";

// User names: 1 to 64 of [a-z0-9._@-], starting with a letter or digit. Errors: kInvalid.
Status validate_user_name(std::string_view name);

struct ProjectRecord;

struct UserRecord {
  std::string id;    // Random UUID text; the actor of the user's events.
  std::string name;  // What the user logs in with.
  bool disabled = false;
  std::string password_hash;             // Argon2id string.
  std::uint64_t password_seq = 0;        // _system seq of the last password set (creation too).
  // Role names by project id (kAllProjects for system-wide roles): built-in role names or
  // the project's own roles.
  std::map<std::string, std::set<std::string>> roles;
  std::map<std::string, Scopes> scopes;  // By project id; absent: the whole project.
  std::vector<std::string> recent_password_hashes;  // Newest first, the current one included.
  // Sessions issued at or before this _system seq are void: a password change, a role
  // removal or a disable moves it.
  std::uint64_t sessions_after_seq = 0;
  std::string totp_secret;          // Base32, once two-factor log-in is confirmed; else "".
  std::string totp_pending;         // Base32: enrolled, not yet confirmed.
  std::uint64_t totp_last_step = 0;  // The last TOTP step used: never accepted again.
  std::set<std::string> recovery_digests;  // Hex SHA-256 of the unused recovery codes.
  TimeUs created_us = 0;

  // Disabled users have no authorities and are members of nothing (fail closed).
  bool is_system_admin() const;
  // Authorities in `project`: the union of the roles there and of system-wide roles. The
  // project's own roles count only when `project_record` is given. In a project that
  // restricts superusers, system-wide roles do not count at all: only the project's own grants.
  std::uint32_t authorities_in(std::string_view project,
                               const ProjectRecord* project_record = nullptr) const;
  // Whether the user has any role in `project` (a system-wide role makes the user a member of
  // every project, unless `project_record` restricts superusers).
  bool member_of(std::string_view project, const ProjectRecord* project_record = nullptr) const;
  // The widest case reach of the user's roles in `project` (kScope for system-wide roles).
  CaseReach reach_in(std::string_view project, const ProjectRecord& project_record) const;
  // The user's scopes in `project` (whole project until set).
  Scopes scopes_in(std::string_view project) const;
  bool two_factor() const { return !totp_secret.empty(); }
};

struct SessionRecord {
  std::string user_id;
  UserRecord user;               // Filled by IdentityProjector::session() from the same snapshot.
  std::uint64_t issued_seq = 0;  // _system seq of the LOGIN_SUCCEEDED event.
  TimeUs issued_us = 0;
  TimeUs expires_us = 0;
  bool two_factor = false;       // Logged in with a TOTP or recovery code.
};

struct ProjectRecord {
  std::string id;
  std::string name;
  TimeUs created_us = 0;
  OrgTree units;
  std::map<std::string, RoleDefinition> roles;       // The project's own roles.
  std::map<std::string, CaseAccess> case_types;      // Absent: open.
  ProjectPolicy policy;

  CaseAccess access_of(std::string_view case_type) const;
};

// Log-in failures counted against an account name or a source address since its last
// success. After kFreeFailures the next attempt waits 30 s, doubling per further failure, at
// most an hour.
struct Throttle {
  std::uint32_t failures = 0;
  TimeUs last_failure_us = 0;
  static constexpr std::uint32_t kFreeFailures = 5;
  // When the next attempt may be made (0: now).
  TimeUs locked_until() const;
};

// The plaintext payload of every identity event (schema::Payload.account).
struct AccountChangeData {
  std::string user;                           // User id; "" when there is none.
  std::map<std::string, std::string> detail;  // By name; encoded sorted, names unique.
};
// Encodes as a Cap'n Proto Payload message (deterministic: the same value, the same bytes).
std::string encode_account_change(const AccountChangeData& change);
// Decodes a payload. Errors: kCorrupt when it is not a Cap'n Proto Payload or detail names are
// not strictly increasing; kNotFound when it is a payload of another kind.
Result<AccountChangeData> decode_account_change(std::string_view payload);

// The event drafts. Each gets a time-ordered UUIDv7 event id; channel as given (API for the log-in and
// session events, whose actor is the user, or "anonymous" for a failed log-in of an unknown
// user); client time now; the user id as envelope subject when it is UUID text (an opaque id);
// device id empty unless given (callers may set it). The caller appends it to kSystemProject.
// A system_admin grant or revoke always names kAllProjects, whatever `project` says.
// Password hashes come from credentials.h; nothing here validates: append() checks limits and
// IdentityProjector ignores what it cannot use.
namespace identity {
ledger::EventDraft project_created(std::string actor, schema::Channel channel,
                                   std::string_view project, std::string_view name);
ledger::EventDraft user_created(std::string actor, schema::Channel channel,
                                std::string_view user_id, std::string_view name,
                                std::string_view password_hash);
ledger::EventDraft user_disabled(std::string actor, schema::Channel channel,
                                 std::string_view user_id);
ledger::EventDraft role_changed(std::string actor, schema::Channel channel,
                                std::string_view user_id, std::string_view project, Role role,
                                bool grant);
ledger::EventDraft password_changed(std::string actor, schema::Channel channel,
                                    std::string_view user_id, std::string_view password_hash);
ledger::EventDraft role_changed(std::string actor, schema::Channel channel,
                                std::string_view user_id, std::string_view project,
                                std::string_view role, bool grant);
ledger::EventDraft roles_set(std::string actor, schema::Channel channel, std::string_view user_id,
                             std::string_view project, const std::set<std::string>& roles);
ledger::EventDraft login_succeeded(std::string_view user_id, std::string device_id,
                                   const std::optional<Digest>& token, TimeUs expires_us,
                                   std::string_view method, std::string_view address,
                                   std::map<std::string, std::string> second_factor = {});
ledger::EventDraft login_failed(std::string_view user_id, std::string device_id,
                                std::string_view address, std::string_view reason,
                                std::string_view name_tag = {});
ledger::EventDraft session_ended(std::string_view user_id, std::string device_id,
                                 const Digest& token, std::string_view reason = "logout");
ledger::EventDraft account_locked(std::string_view user_id, std::string_view what,
                                  TimeUs until_us, std::uint32_t failures,
                                  std::string_view address);
ledger::EventDraft org_unit_added(std::string actor, schema::Channel channel,
                                  std::string_view project, std::string_view unit,
                                  std::string_view name, std::string_view parent);
// `fields`: capture, search and/or analytics, each "*" or comma-separated unit ids.
ledger::EventDraft scopes_changed(std::string actor, schema::Channel channel,
                                  std::string_view user_id, std::string_view project,
                                  const std::map<std::string, Scope>& fields);
ledger::EventDraft role_defined(std::string actor, schema::Channel channel,
                                std::string_view project, std::string_view role,
                                const RoleDefinition& definition);
ledger::EventDraft case_type_changed(std::string actor, schema::Channel channel,
                                     std::string_view project, std::string_view case_type,
                                     CaseAccess access);
// `fields`: policy field name -> value as apply_policy_field() reads it.
ledger::EventDraft policy_changed(std::string actor, schema::Channel channel,
                                  std::string_view project,
                                  const std::map<std::string, std::string>& fields);
ledger::EventDraft totp_enrolled(std::string_view user_id, std::string_view secret_base32);
ledger::EventDraft totp_confirmed(std::string_view user_id,
                                  const std::vector<std::string>& recovery_digests,
                                  std::uint64_t step);
// A new random user id (UUID text).
std::string new_user_id();
}  // namespace identity

class IdentityProjector final : public ledger::Projector {
 public:
  std::string_view name() const override { return "identity"; }
  // identity.users     (user id)                 -> sealed UserRecord
  // identity.by_name   (keyed MAC of the name)   -> user id
  // identity.sessions  (SHA-256 of the token)    -> sealed SessionRecord
  // identity.projects  (project id)              -> sealed ProjectRecord
  // identity.throttle  ("n" + name tag | "a" + keyed MAC of the address) -> sealed Throttle
  std::vector<std::string> tables() const override;
  // Folds `_system` events; ignores every other project.
  Status apply(ledger::ProjectionTables& tables, const ledger::AppendedEvent& event) override;

  // Each query reads one snapshot. nullopt when absent. Errors: kCorrupt, storage errors.
  Result<std::optional<UserRecord>> user_by_name(const ledger::Ledger& ledger,
                                                 std::string_view name) const;
  Result<std::optional<UserRecord>> user_by_id(const ledger::Ledger& ledger,
                                               std::string_view id) const;
  Result<std::vector<UserRecord>> users(const ledger::Ledger& ledger) const;
  // A live session with its user: present, not ended, not expired at `now_us`, issued after
  // the user's sessions_after_seq (password change, role removal), and its user not disabled.
  // nullopt otherwise.
  Result<std::optional<SessionRecord>> session(const ledger::Ledger& ledger, const Digest& token,
                                               TimeUs now_us) const;
  Result<std::optional<ProjectRecord>> project(const ledger::Ledger& ledger,
                                               std::string_view id) const;
  // A user and a project from one snapshot (either nullopt when absent).
  struct Membership {
    std::optional<UserRecord> user;
    std::optional<ProjectRecord> project;
  };
  Result<Membership> membership(const ledger::Ledger& ledger, std::string_view user_id,
                                std::string_view project) const;
  // The keyed MAC of a name as hex: what LOGIN_FAILED records instead of the name tried.
  Result<std::string> name_tag(const ledger::Ledger& ledger, std::string_view name) const;
  // The failures counted against the name tag and against the address.
  struct Throttles {
    Throttle account;
    Throttle address;
  };
  Result<Throttles> throttles(const ledger::Ledger& ledger, std::string_view name_tag,
                              std::string_view address) const;
  Result<std::vector<ProjectRecord>> projects(const ledger::Ledger& ledger) const;
};

}  // namespace trail::proj
