#include "projections/access_model.h"

#include <charconv>

namespace trail::proj {
namespace {

struct AuthorityName {
  Authority authority;
  std::string_view name;
};
constexpr AuthorityName kAuthorityNames[] = {
    {kSubmit, "submit"},
    {kViewCases, "view_cases"},
    {kEditCases, "edit_cases"},
    {kViewReports, "view_reports"},
    {kViewAudit, "view_audit"},
    {kExport, "export"},
    {kExportDeidentified, "export_deidentified"},
    {kManageUsers, "manage_users"},
    {kManageProject, "manage_project"},
    {kVerifyLedger, "verify_ledger"},
};

constexpr std::string_view kReachNames[] = {"own", "unit", "scope"};
constexpr std::string_view kAccessNames[] = {"open", "audited", "protected", "closed"};
constexpr std::size_t kAccessNameBytesMax = 64;
constexpr std::size_t kTreeDepthMax = 64;  // A cycle cannot be folded in; this bounds a walk.

std::optional<std::int64_t> parse_int(std::string_view text) {
  std::int64_t out = 0;
  const char* end = text.data() + text.size();
  const auto parsed = std::from_chars(text.data(), end, out);
  if (text.empty() || parsed.ec != std::errc{} || parsed.ptr != end) return std::nullopt;
  return out;
}

Status bounded(std::int64_t& field, std::string_view name, std::string_view value,
               std::int64_t low, std::int64_t high) {
  const auto parsed = parse_int(value);
  if (!parsed || *parsed < low || *parsed > high) {
    return Status::error(Code::kInvalid, std::string(name) + " must be a whole number from " +
                                             std::to_string(low) + " to " + std::to_string(high));
  }
  field = *parsed;
  return Status::ok();
}

Status flag(bool& field, std::string_view name, std::string_view value) {
  if (value != "true" && value != "false") {
    return Status::error(Code::kInvalid, std::string(name) + " must be true or false");
  }
  field = value == "true";
  return Status::ok();
}

}  // namespace

std::optional<Authority> parse_authority(std::string_view name) {
  for (const auto& a : kAuthorityNames) {
    if (a.name == name) return a.authority;
  }
  return std::nullopt;
}

std::vector<std::string> authority_names(std::uint32_t authorities) {
  std::vector<std::string> out;
  for (const auto& a : kAuthorityNames) {
    if ((authorities & a.authority) != 0) out.emplace_back(a.name);
  }
  return out;
}

std::string_view reach_name(CaseReach reach) { return kReachNames[static_cast<std::size_t>(reach)]; }

std::optional<CaseReach> parse_reach(std::string_view name) {
  for (std::size_t i = 0; i < std::size(kReachNames); ++i) {
    if (kReachNames[i] == name) return static_cast<CaseReach>(i);
  }
  return std::nullopt;
}

std::string_view case_access_name(CaseAccess access) {
  return kAccessNames[static_cast<std::size_t>(access)];
}

std::optional<CaseAccess> parse_case_access(std::string_view name) {
  for (std::size_t i = 0; i < std::size(kAccessNames); ++i) {
    if (kAccessNames[i] == name) return static_cast<CaseAccess>(i);
  }
  return std::nullopt;
}

Status validate_access_name(std::string_view what, std::string_view name) {
  if (name.empty() || name.size() > kAccessNameBytesMax) {
    return Status::error(Code::kInvalid, std::string(what) + " must be 1 to 64 characters");
  }
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
                    c == '-';
    if (!ok) {
      return Status::error(Code::kInvalid, std::string(what) +
                                               " may hold only lower-case letters, digits and _ . -");
    }
  }
  const char first = name.front();
  if (first == '_' || first == '.' || first == '-') {
    return Status::error(Code::kInvalid, std::string(what) + " must start with a letter or digit");
  }
  return Status::ok();
}

Status apply_policy_field(ProjectPolicy& policy, std::string_view field, std::string_view value) {
  if (field == "require_2fa") return flag(policy.require_2fa, field, value);
  if (field == "restrict_superusers") return flag(policy.restrict_superusers, field, value);
  if (field == "idle_timeout_minutes") {
    return bounded(policy.idle_timeout_minutes, field, value, 1, 1440);
  }
  if (field == "session_max_hours") return bounded(policy.session_max_hours, field, value, 1, 720);
  if (field == "break_glass_minutes") {
    return bounded(policy.break_glass_minutes, field, value, 1, 1440);
  }
  return Status::error(Code::kInvalid, "unknown policy field \"" + std::string(field) + "\"");
}

bool covers(const OrgTree& tree, const Scope& scope, std::string_view unit) {
  if (scope.all) return true;
  std::string at(unit);
  for (std::size_t depth = 0; depth < kTreeDepthMax && !at.empty(); ++depth) {
    const auto it = tree.find(at);
    if (it == tree.end()) return false;
    if (scope.units.contains(at)) return true;
    at = it->second.parent;
  }
  return false;
}

bool covers_any(const OrgTree& tree, const Scope& scope, const std::vector<std::string>& units) {
  if (scope.all) return true;
  for (const auto& unit : units) {
    if (covers(tree, scope, unit)) return true;
  }
  return false;
}

}  // namespace trail::proj
