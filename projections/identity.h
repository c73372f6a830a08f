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
//   LOGIN_SUCCEEDED  user: user id   detail: token (hex SHA-256 of the token; empty for HTTP
//                                    Basic), expires_us, method (password|basic), address
//   LOGIN_FAILED     user: user id or "" when unknown   detail: address, reason
//   SESSION_ENDED    user: user id   detail: token (hex SHA-256)
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

// What a role may do (ARCHITECTURE.md, access model). A bit set.
enum Authority : std::uint32_t {
  kSubmit = 1U << 0U,
  kViewCases = 1U << 1U,
  kEditCases = 1U << 2U,
  kViewReports = 1U << 3U,
  kViewAudit = 1U << 4U,
  kExport = 1U << 5U,
  kExportDeidentified = 1U << 6U,
  kManageUsers = 1U << 7U,
  kManageProject = 1U << 8U,
  kVerifyLedger = 1U << 9U,
  kAllAuthorities = (1U << 10U) - 1U,
};
// mobile_worker: submit, view cases (its own: the server narrows); supervisor: submit, view
// and edit cases, view reports; report_viewer: view reports, export de-identified;
// auditor: view audit, verify ledger; project_admin: everything but verify ledger;
// system_admin: everything.
std::uint32_t authorities_of(Role role);

// The system-wide "project" a system_admin grant names.
inline constexpr std::string_view kAllProjects = "*";

// User names: 1 to 64 of [a-z0-9._@-], starting with a letter or digit. Errors: kInvalid.
Status validate_user_name(std::string_view name);

struct UserRecord {
  std::string id;    // Random UUID text; the actor of the user's events.
  std::string name;  // What the user logs in with.
  bool disabled = false;
  std::string password_hash;             // Argon2id string.
  std::uint64_t password_seq = 0;        // _system seq of the last password set (creation too).
  std::map<std::string, std::set<Role>> roles;  // By project id; kAllProjects for system_admin.
  TimeUs created_us = 0;

  // Disabled users have no authorities and are members of nothing (fail closed).
  bool is_system_admin() const;
  // Authorities in `project`: the union of the roles there and of system-wide roles.
  std::uint32_t authorities_in(std::string_view project) const;
  // Whether the user has any role in `project` (a system-wide role, such as system_admin,
  // makes the user a member of every project).
  bool member_of(std::string_view project) const;
};

struct SessionRecord {
  std::string user_id;
  UserRecord user;               // Filled by IdentityProjector::session() from the same snapshot.
  std::uint64_t issued_seq = 0;  // _system seq of the LOGIN_SUCCEEDED event.
  TimeUs issued_us = 0;
  TimeUs expires_us = 0;
};

struct ProjectRecord {
  std::string id;
  std::string name;
  TimeUs created_us = 0;
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
ledger::EventDraft login_succeeded(std::string_view user_id, std::string device_id,
                                   const std::optional<Digest>& token, TimeUs expires_us,
                                   std::string_view method, std::string_view address);
ledger::EventDraft login_failed(std::string_view user_id, std::string device_id,
                                std::string_view address, std::string_view reason);
ledger::EventDraft session_ended(std::string_view user_id, std::string device_id,
                                 const Digest& token);
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
  // the user's last password change, and its user not disabled. nullopt otherwise.
  Result<std::optional<SessionRecord>> session(const ledger::Ledger& ledger, const Digest& token,
                                               TimeUs now_us) const;
  Result<std::optional<ProjectRecord>> project(const ledger::Ledger& ledger,
                                               std::string_view id) const;
  Result<std::vector<ProjectRecord>> projects(const ledger::Ledger& ledger) const;
};

}  // namespace trail::proj
