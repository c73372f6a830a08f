// The access model's vocabulary (ARCHITECTURE.md, access model): organisation units, a user's
// three scopes, custom roles, per-case-type break-the-glass levels and project policy, with
// their names as the API and trailctl spell them. Pure values and functions; the identity
// directory (identity.h) stores them and the server decides with them.
//
// Thread safety: free functions and plain values.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/clock.h"
#include "ledger/status.h"

namespace trail::proj {

// What a role may do. A bit set.
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
// "submit", "view_cases", "edit_cases", "view_reports", "view_audit", "export",
// "export_deidentified", "manage_users", "manage_project", "verify_ledger".
std::optional<Authority> parse_authority(std::string_view name);
std::vector<std::string> authority_names(std::uint32_t authorities);

// Which cases a role reaches: those its holder owns; those plus the cases owned by the units
// of its capture scope; or every case its scopes cover.
enum class CaseReach : std::uint8_t { kOwn, kUnit, kScope };
std::string_view reach_name(CaseReach reach);  // "own", "unit", "scope"
std::optional<CaseReach> parse_reach(std::string_view name);

// A project's own role, made of authorities.
struct RoleDefinition {
  std::uint32_t authorities = 0;
  CaseReach reach = CaseReach::kScope;
  bool operator==(const RoleDefinition&) const = default;
};

// Break-the-glass level of a case type.
//   open      scopes alone decide;
//   audited   reads outside the reader's capture scope are flagged in the access audit;
//   protected such a read needs a live grant (POST .../break-glass with a reason);
//   closed    only the capture scope reads.
enum class CaseAccess : std::uint8_t { kOpen, kAudited, kProtected, kClosed };
std::string_view case_access_name(CaseAccess access);  // "open", "audited", "protected", "closed"
std::optional<CaseAccess> parse_case_access(std::string_view name);

struct OrgUnit {
  std::string name;
  std::string parent;  // "" for a root.
  bool operator==(const OrgUnit&) const = default;
};

// Unit ids, role names and case types: 1 to 64 of [a-z0-9_.-], starting with a letter or
// digit. Errors: kInvalid naming `what`.
Status validate_access_name(std::string_view what, std::string_view name);

// A set of units, each covering its descendants; `all` covers the whole project, including
// cases owned by no known unit.
struct Scope {
  bool all = true;
  std::set<std::string> units;
  bool operator==(const Scope&) const = default;
};

// A user's scopes in one project. Until set, each is the whole project.
struct Scopes {
  Scope capture;
  Scope search;
  Scope analytics;
  bool operator==(const Scopes&) const = default;
};

struct ProjectPolicy {
  bool require_2fa = false;
  std::int64_t idle_timeout_minutes = 30;
  std::int64_t session_max_hours = 12;
  std::int64_t break_glass_minutes = 60;
  bool restrict_superusers = false;  // System administrators are kept out of the project.
  bool operator==(const ProjectPolicy&) const = default;
};

// Parses one policy field as the API names it ("require_2fa", "idle_timeout_minutes",
// "session_max_hours", "break_glass_minutes", "restrict_superusers") with its value as text
// ("true"/"false" or a decimal), into `policy`. Limits: idle 1..1440 minutes, session 1..720
// hours, break the glass 1..1440 minutes. Errors: kInvalid naming the field.
Status apply_policy_field(ProjectPolicy& policy, std::string_view field, std::string_view value);

// A project's organisation tree: unit id -> unit.
using OrgTree = std::map<std::string, OrgUnit>;

// Whether `scope` covers `unit` (the unit itself or one of its ancestors is in the scope).
// A unit not in the tree is covered only by a whole-project scope.
bool covers(const OrgTree& tree, const Scope& scope, std::string_view unit);
// Whether `scope` covers any of `units`; with no units, only a whole-project scope does.
bool covers_any(const OrgTree& tree, const Scope& scope, const std::vector<std::string>& units);

}  // namespace trail::proj
