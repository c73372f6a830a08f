// trailctl org-unit add|list, role define, case-type set, policy set|show: a project's access
// model (projections/access_model.h) in the identity directory. Each change is one `_system`
// event (actor: the operator's OS identity, channel system) that IdentityProjector folds in the
// same commit, so traild decides with it on its next request. Everything is checked before
// anything is appended. Units, roles, case types and policy are no personal data: showing them
// is not recorded in the access audit.
#include <cstdio>
#include <string>

#include <boost/json.hpp>

#include "projections/access_model.h"
#include "projections/identity.h"
#include "tools/trailctl/commands.h"
#include "tools/trailctl/open_ledger.h"
#include "tools/trailctl/print_line.h"
#include "tools/trailctl/system_change.h"

namespace trail::tools {
namespace {

namespace json = boost::json;

constexpr std::size_t kUnitNameBytesMax = 200;  // As the API's.

Status validate_unit_name(std::string_view name) {
  if (name.empty() || name.size() > kUnitNameBytesMax) {
    return Status::error(Code::kInvalid, "unit name must be 1 to " +
                                             std::to_string(kUnitNameBytesMax) +
                                             " bytes (kUnitNameBytesMax)");
  }
  for (const char c : name) {
    if (static_cast<unsigned char>(c) < 0x20U || c == '\x7f') {
      return Status::error(Code::kInvalid, "unit name must not hold control characters");
    }
  }
  return Status::ok();
}

// --authority and --reach as a role definition. Errors: kInvalid (a usage error).
Result<proj::RoleDefinition> role_definition(const AccessCommand& cmd) {
  proj::RoleDefinition definition;
  const auto reach = proj::parse_reach(cmd.reach);
  if (!reach) return Status::error(Code::kInvalid, "--reach is own, unit or scope");
  definition.reach = *reach;
  if (cmd.authorities.empty()) {
    return Status::error(Code::kInvalid, "give at least one --authority");
  }
  for (const auto& name : cmd.authorities) {
    const auto authority = proj::parse_authority(name);
    if (!authority) {
      return Status::error(
          Code::kInvalid, "unknown authority " + name +
                              " (submit, view_cases, edit_cases, view_reports, view_audit, export, "
                              "export_deidentified, manage_users, manage_project, verify_ledger)");
    }
    definition.authorities |= *authority;
  }
  TRAIL_ASSERT(definition.authorities != 0);
  return definition;
}

// Usage checks, before the ledger is opened. Errors: kInvalid.
Status validate(const AccessCommand& cmd) {
  TRAIL_TRY(validate_access_project(cmd.project));
  if (cmd.action == "org-unit-add") {
    TRAIL_TRY(proj::validate_access_name("unit id", cmd.id));
    TRAIL_TRY(validate_unit_name(cmd.name));
    if (!cmd.parent.empty()) TRAIL_TRY(proj::validate_access_name("parent unit id", cmd.parent));
  } else if (cmd.action == "role-define") {
    TRAIL_TRY(proj::validate_access_name("role name", cmd.id));
    if (proj::parse_role(cmd.id)) {
      return Status::error(Code::kInvalid, cmd.id + " is a built-in role; choose another name");
    }
    if (auto definition = role_definition(cmd); !definition.is_ok()) return definition.status();
  } else if (cmd.action == "case-type-set") {
    TRAIL_TRY(proj::validate_access_name("case type", cmd.id));
    if (!proj::parse_case_access(cmd.access)) {
      return Status::error(Code::kInvalid, "--access is open, audited, protected or closed");
    }
  } else if (cmd.action == "policy-set") {
    if (cmd.policy.empty()) return Status::error(Code::kInvalid, "give at least one policy option");
    proj::ProjectPolicy policy;
    for (const auto& [field, value] : cmd.policy) {
      TRAIL_TRY(proj::apply_policy_field(policy, field, value));
    }
  }
  return Status::ok();
}

json::object unit_json(const std::string& id, const proj::OrgUnit& unit) {
  return json::object{{"id", id}, {"name", unit.name}, {"parent", unit.parent}};
}

json::array authorities_json(std::uint32_t authorities) {
  json::array out;
  for (const auto& a : proj::authority_names(authorities)) out.emplace_back(a);
  return out;
}

json::object role_json(const std::string& project, const std::string& name,
                       const proj::RoleDefinition& role) {
  return json::object{{"project", project},
                      {"role", name},
                      {"authorities", authorities_json(role.authorities)},
                      {"reach", proj::reach_name(role.reach)}};
}

// As GET /v1/projects/{p}/policy answers: the policy, the project's own roles and the case
// types that are not open.
json::object policy_json(const proj::ProjectRecord& p) {
  json::object roles;
  for (const auto& [name, role] : p.roles) {
    roles[name] = json::object{{"authorities", authorities_json(role.authorities)},
                               {"reach", proj::reach_name(role.reach)}};
  }
  json::object case_types;
  for (const auto& [type, access] : p.case_types) case_types[type] = proj::case_access_name(access);
  return json::object{{"project", p.id},
                      {"require_2fa", p.policy.require_2fa},
                      {"idle_timeout_minutes", p.policy.idle_timeout_minutes},
                      {"session_max_hours", p.policy.session_max_hours},
                      {"break_glass_minutes", p.policy.break_glass_minutes},
                      {"restrict_superusers", p.policy.restrict_superusers},
                      {"roles", std::move(roles)},
                      {"case_types", std::move(case_types)}};
}

int add_unit(const OpenLedger& opened, const AccessCommand& cmd) {
  auto project = directory_project(opened, cmd.project);
  if (!project.is_ok()) return lookup_failed(project.status());
  if (project->units.contains(cmd.id)) {
    return rejected("unit " + cmd.id + " already exists in project " + cmd.project);
  }
  if (!cmd.parent.empty() && !project->units.contains(cmd.parent)) {
    return rejected("no unit " + cmd.parent + " in project " + cmd.project + " to be the parent");
  }
  auto draft = proj::identity::org_unit_added(operator_identity(), schema::Channel::SYSTEM,
                                              cmd.project, cmd.id, cmd.name, cmd.parent);
  if (Status s = append_system(*opened.ledger, std::move(draft)); !s.is_ok()) {
    return append_failed(s);
  }
  // Another operator may have added the same id meanwhile: the first ORG_UNIT_ADDED wins.
  auto stored = directory_project(opened, cmd.project);
  if (!stored.is_ok()) return fail(stored.status().to_string());
  const auto it = stored->units.find(cmd.id);
  const proj::OrgUnit mine{cmd.name, cmd.parent};
  if (it == stored->units.end() || it->second != mine) {
    return rejected("unit " + cmd.id + " was added meanwhile by someone else");
  }
  print_line(unit_json(cmd.id, mine));
  return kExitOk;
}

int define_role(const OpenLedger& opened, const AccessCommand& cmd) {
  auto project = directory_project(opened, cmd.project);
  if (!project.is_ok()) return lookup_failed(project.status());
  auto definition = role_definition(cmd);
  TRAIL_ASSERT(definition.is_ok());  // validate() checked it.
  const auto it = project->roles.find(cmd.id);
  if (it != project->roles.end() && it->second == *definition) {
    already("role " + cmd.id + " in " + cmd.project + " is so");
  } else {
    auto draft = proj::identity::role_defined(operator_identity(), schema::Channel::SYSTEM,
                                              cmd.project, cmd.id, *definition);
    if (Status s = append_system(*opened.ledger, std::move(draft)); !s.is_ok()) {
      return append_failed(s);
    }
  }
  print_line(role_json(cmd.project, cmd.id, *definition));
  return kExitOk;
}

int set_case_type(const OpenLedger& opened, const AccessCommand& cmd) {
  auto project = directory_project(opened, cmd.project);
  if (!project.is_ok()) return lookup_failed(project.status());
  const auto access = proj::parse_case_access(cmd.access);
  TRAIL_ASSERT(access.has_value());  // validate() checked it.
  if (project->access_of(cmd.id) == *access) {
    already("case type " + cmd.id + " in " + cmd.project + " is " + cmd.access);
  } else {
    auto draft = proj::identity::case_type_changed(operator_identity(), schema::Channel::SYSTEM,
                                                   cmd.project, cmd.id, *access);
    if (Status s = append_system(*opened.ledger, std::move(draft)); !s.is_ok()) {
      return append_failed(s);
    }
  }
  print_line(json::object{{"project", cmd.project},
                          {"case_type", cmd.id},
                          {"access", proj::case_access_name(*access)}});
  return kExitOk;
}

int set_policy(const OpenLedger& opened, const AccessCommand& cmd) {
  auto project = directory_project(opened, cmd.project);
  if (!project.is_ok()) return lookup_failed(project.status());
  proj::ProjectPolicy after = project->policy;
  for (const auto& [field, value] : cmd.policy) {
    const Status applied = proj::apply_policy_field(after, field, value);
    TRAIL_ASSERT(applied.is_ok());  // validate() checked it.
  }
  if (after == project->policy) {
    already("the policy of " + cmd.project + " is so");
    print_line(policy_json(*project));
    return kExitOk;
  }
  auto draft = proj::identity::policy_changed(operator_identity(), schema::Channel::SYSTEM,
                                              cmd.project, cmd.policy);
  if (Status s = append_system(*opened.ledger, std::move(draft)); !s.is_ok()) {
    return append_failed(s);
  }
  auto stored = directory_project(opened, cmd.project);
  if (!stored.is_ok()) return fail(stored.status().to_string());
  print_line(policy_json(*stored));
  return kExitOk;
}

int show(const OpenLedger& opened, const AccessCommand& cmd) {
  auto project = directory_project(opened, cmd.project);
  if (!project.is_ok()) return lookup_failed(project.status());
  if (cmd.action == "policy-show") {
    print_line(policy_json(*project));
  } else {
    for (const auto& [id, unit] : project->units) print_line(unit_json(id, unit));
  }
  return kExitOk;
}

}  // namespace

int run_access(const CommonOptions& common, const AccessCommand& cmd) {
  if (Status s = validate(cmd); !s.is_ok()) return fail(s.detail());
  const bool read_only = cmd.action == "org-unit-list" || cmd.action == "policy-show";
  auto opened = open_ledger(common, read_only);
  if (!opened.is_ok()) return fail(opened.status().detail());
  int code = kExitOk;
  if (read_only) {
    code = show(*opened, cmd);
  } else if (cmd.action == "org-unit-add") {
    code = add_unit(*opened, cmd);
  } else if (cmd.action == "role-define") {
    code = define_role(*opened, cmd);
  } else if (cmd.action == "case-type-set") {
    code = set_case_type(*opened, cmd);
  } else {
    TRAIL_ASSERT(cmd.action == "policy-set");
    code = set_policy(*opened, cmd);
  }
  std::fflush(stdout);
  return code;
}

}  // namespace trail::tools
