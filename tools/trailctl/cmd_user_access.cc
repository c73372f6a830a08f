// trailctl user scopes|roles: what a user may reach and do in one project. Each change is one
// `_system` event (actor: the operator's OS identity, channel system): SCOPES_CHANGED replaces
// the scopes named, ROLE_CHANGED op "set" replaces every role the user holds in the project.
// The output names the user as the operator typed it; never the user's id or anything else.
#include <algorithm>
#include <cstdio>
#include <set>
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

// A scope as typed: "*" the whole project, "" no unit, else comma-separated unit ids.
// Errors: kInvalid (a usage error) naming `field`.
Result<proj::Scope> parse_scope(const std::string& field, std::string_view text) {
  proj::Scope scope;
  if (text == "*") return scope;
  scope.all = false;
  if (text.empty()) return scope;
  for (std::size_t start = 0;;) {
    const std::size_t comma = text.find(',', start);
    const std::string_view unit =
        text.substr(start, comma == std::string_view::npos ? comma : comma - start);
    TRAIL_TRY(proj::validate_access_name("--" + field + " unit id", unit));
    scope.units.emplace(unit);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  TRAIL_ASSERT(!scope.units.empty());
  return scope;
}

// The scopes given, by field. Errors: kInvalid.
Result<std::map<std::string, proj::Scope>> parse_scopes(const AccessCommand& cmd) {
  if (cmd.scopes.empty()) {
    return Status::error(Code::kInvalid, "give at least one of --capture, --search, --analytics");
  }
  std::map<std::string, proj::Scope> out;
  for (const auto& [field, text] : cmd.scopes) {
    TRAIL_ASSERT(field == "capture" || field == "search" || field == "analytics");
    TRAIL_ASSIGN_OR_RETURN(auto scope, parse_scope(field, text));
    out.emplace(field, std::move(scope));
  }
  return out;
}

// Usage checks, before the ledger is opened. Errors: kInvalid.
Status validate(const AccessCommand& cmd) {
  TRAIL_TRY(proj::validate_user_name(cmd.name));
  TRAIL_TRY(validate_access_project(cmd.project));
  if (cmd.action == "user-scopes") {
    if (auto scopes = parse_scopes(cmd); !scopes.is_ok()) return scopes.status();
    return Status::ok();
  }
  if (cmd.no_roles == !cmd.roles.empty()) {
    return Status::error(Code::kInvalid,
                         "give the roles with --role, or --none to take every role away");
  }
  for (const auto& role : cmd.roles) {
    TRAIL_TRY(proj::validate_access_name("role", role));
    if (proj::parse_role(role) == proj::Role::kSystemAdmin) {
      return Status::error(Code::kInvalid,
                           "system_admin is system-wide: use `trailctl user grant NAME --role "
                           "system_admin`");
    }
  }
  return Status::ok();
}

proj::Scope& scope_of(proj::Scopes& scopes, const std::string& field) {
  if (field == "capture") return scopes.capture;
  if (field == "search") return scopes.search;
  TRAIL_ASSERT(field == "analytics");
  return scopes.analytics;
}

json::value scope_json(const proj::Scope& scope) {
  if (scope.all) return "*";
  json::array out;
  for (const auto& unit : scope.units) out.emplace_back(unit);
  return out;
}

int set_scopes(const OpenLedger& opened, const proj::UserRecord& user, const AccessCommand& cmd) {
  auto project = directory_project(opened, cmd.project);
  if (!project.is_ok()) return lookup_failed(project.status());
  auto fields = parse_scopes(cmd);
  TRAIL_ASSERT(fields.is_ok());  // validate() checked them.
  proj::Scopes after = user.scopes_in(cmd.project);
  for (const auto& [field, scope] : *fields) {
    for (const auto& unit : scope.units) {
      if (!project->units.contains(unit)) {
        return rejected("--" + field + " names unknown unit " + unit + " of project " +
                        cmd.project);
      }
    }
    scope_of(after, field) = scope;
  }
  if (after == user.scopes_in(cmd.project)) {
    already("the scopes of " + cmd.name + " in " + cmd.project + " are so");
  } else {
    auto draft = proj::identity::scopes_changed(operator_identity(), schema::Channel::SYSTEM,
                                                user.id, cmd.project, *fields);
    if (Status s = append_system(*opened.ledger, std::move(draft)); !s.is_ok()) {
      return append_failed(s);
    }
  }
  print_line(json::object{{"user", cmd.name},
                          {"project", cmd.project},
                          {"capture", scope_json(after.capture)},
                          {"search", scope_json(after.search)},
                          {"analytics", scope_json(after.analytics)}});
  return kExitOk;
}

// The project's own roles, or none for a project that only holds events (as `user grant`
// accepts). Errors: kNotFound for a project that is neither; storage errors.
Result<std::map<std::string, proj::RoleDefinition>> project_roles(const OpenLedger& opened,
                                                                  const std::string& project) {
  auto record = directory_project(opened, project);
  if (record.is_ok()) return std::move(record->roles);
  if (record.status().code() != Code::kNotFound) return record.status();
  TRAIL_ASSIGN_OR_RETURN(auto with_events, opened.ledger->projects());
  if (std::find(with_events.begin(), with_events.end(), project) == with_events.end()) {
    return record.status();
  }
  return std::map<std::string, proj::RoleDefinition>{};
}

int set_roles(const OpenLedger& opened, const proj::UserRecord& user, const AccessCommand& cmd) {
  auto defined = project_roles(opened, cmd.project);
  if (!defined.is_ok()) return lookup_failed(defined.status());
  const std::set<std::string> after(cmd.roles.begin(), cmd.roles.end());
  for (const auto& role : after) {
    if (!proj::parse_role(role) && !defined->contains(role)) {
      return rejected("no role " + role + " in project " + cmd.project +
                      " (a built-in role or one `trailctl role define` made)");
    }
  }
  const auto held = user.roles.find(cmd.project);
  const std::set<std::string> before =
      held == user.roles.end() ? std::set<std::string>{} : held->second;
  if (after == before) {
    already("the roles of " + cmd.name + " in " + cmd.project + " are so");
  } else {
    auto draft = proj::identity::roles_set(operator_identity(), schema::Channel::SYSTEM, user.id,
                                           cmd.project, after);
    if (Status s = append_system(*opened.ledger, std::move(draft)); !s.is_ok()) {
      return append_failed(s);
    }
  }
  json::array shown;
  for (const auto& role : after) shown.emplace_back(role);
  print_line(
      json::object{{"user", cmd.name}, {"project", cmd.project}, {"roles", std::move(shown)}});
  return kExitOk;
}

}  // namespace

int run_user_access(const CommonOptions& common, const AccessCommand& cmd) {
  TRAIL_ASSERT(cmd.action == "user-scopes" || cmd.action == "user-roles");
  if (Status s = validate(cmd); !s.is_ok()) return fail(s.detail());
  auto opened = open_ledger(common, /*read_only=*/false);
  if (!opened.is_ok()) return fail(opened.status().detail());
  auto user = opened->identity->user_by_name(*opened->ledger, cmd.name);
  if (!user.is_ok()) return fail(user.status().to_string());
  if (!user->has_value()) return rejected("no user " + cmd.name);
  const int code = cmd.action == "user-scopes" ? set_scopes(*opened, **user, cmd)
                                               : set_roles(*opened, **user, cmd);
  std::fflush(stdout);
  return code;
}

}  // namespace trail::tools
