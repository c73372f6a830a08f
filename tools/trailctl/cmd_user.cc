// trailctl user add|disable|grant|revoke|passwd|list|show: the identity directory (user scopes
// and roles: cmd_user_access.cc). Changes are `_system` events (actor: the operator's OS
// identity, channel system) that IdentityProjector folds in the same commit, so traild sees them
// on its next request. Passwords come from the first line of standard input; neither they nor
// their hashes are ever printed. Listing or showing users is a read of personal data (names): it
// is recorded in the access audit first.
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "ledger/ledger.h"
#include "projections/credentials.h"
#include "projections/password_policy.h"
#include "projections/identity.h"
#include "tools/trailctl/commands.h"
#include "tools/trailctl/line_reader.h"
#include "tools/trailctl/open_ledger.h"
#include "tools/trailctl/print_line.h"

namespace trail::tools {
namespace {

namespace json = boost::json;
using proj::Role;
using proj::UserRecord;

constexpr std::size_t kPasswordLineBytesMax = 8192;  // hash_password refuses more than 4096.
constexpr const char* kDevice = "trailctl";

int rejected(const std::string& message) {
  std::fprintf(stderr, "trailctl: %s\n", message.c_str());
  return kExitRejected;
}

// Exit code for a failed append: the ledger said no (1) or could not (2).
int append_failed(const Status& status) {
  std::fprintf(stderr, "trailctl: not appended: %s\n", status.to_string().c_str());
  const Code code = status.code();
  return code == Code::kConflict || code == Code::kInvalid ? kExitRejected : kExitError;
}

// The first line of standard input without its line end. On a terminal it prompts on stderr
// and turns echo off while the password is typed.
// Errors: kInvalid when the line is empty or too long; kIo when standard input fails.
Result<std::string> read_password() {
  termios saved{};
  bool restore = false;
  if (::isatty(STDIN_FILENO) == 1 && ::tcgetattr(STDIN_FILENO, &saved) == 0) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    restore = ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
    std::fputs("password: ", stderr);
  }
  LineReader reader{STDIN_FILENO, kPasswordLineBytesMax};
  std::string line;
  const auto next = reader.next(line, /*wait=*/true);
  if (restore) {
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
    std::fputs("\n", stderr);
  }
  if (next == LineReader::Next::kError)
    return Status::error(Code::kIo, "cannot read standard input");
  if (next == LineReader::Next::kTooLong) {
    return Status::error(Code::kInvalid, "password line exceeds " +
                                             std::to_string(kPasswordLineBytesMax) + " bytes");
  }
  if (next != LineReader::Next::kLine) line.clear();
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) {
    return Status::error(Code::kInvalid,
                         "empty password: give it on the first line of standard input");
  }
  return line;
}

struct Grant {
  std::string project;
  Role role = Role::kMobileWorker;
};

bool grantable_project(std::string_view project) {
  if (project == proj::kAllProjects) return true;
  return ledger::validate_project(project).is_ok() && project != ledger::kSystemProject;
}

// Pairs --role with --project values: one project per role in the order given, except that
// system_admin (system-wide) takes none; when there are as many projects as roles, they pair
// one to one and a system_admin's must be "*". Errors: kInvalid (a usage error).
Result<std::vector<Grant>> parse_grants(const UserCommand& cmd) {
  std::vector<Role> roles;
  for (const auto& name : cmd.roles) {
    const auto role = proj::parse_role(name);
    if (!role) {
      return Status::error(Code::kInvalid,
                           "unknown role " + name +
                               " (mobile_worker, supervisor, report_viewer, auditor, "
                               "project_admin, system_admin)");
    }
    roles.push_back(*role);
  }
  const auto system_wide =
      static_cast<std::size_t>(std::count(roles.begin(), roles.end(), Role::kSystemAdmin));
  std::vector<Grant> out;
  if (cmd.projects.size() == roles.size()) {
    for (std::size_t i = 0; i < roles.size(); ++i) {
      if (roles[i] == Role::kSystemAdmin && cmd.projects[i] != proj::kAllProjects) {
        return Status::error(Code::kInvalid, "system_admin is system-wide: give it no --project");
      }
      out.push_back({cmd.projects[i], roles[i]});
    }
  } else if (cmd.projects.size() == roles.size() - system_wide) {
    std::size_t next = 0;
    for (const Role role : roles) {
      const bool all = role == Role::kSystemAdmin;
      out.push_back({all ? std::string(proj::kAllProjects) : cmd.projects[next++], role});
    }
  } else {
    return Status::error(Code::kInvalid, "give one --project per --role (system_admin takes none)");
  }
  for (const auto& g : out) {
    if (!grantable_project(g.project)) {
      return Status::error(Code::kInvalid, "not a project one can hold a role in: " + g.project);
    }
  }
  TRAIL_ASSERT(out.size() == roles.size());
  return out;
}

// "*" for the whole project, else the unit ids.
json::value scope_json(const proj::Scope& scope) {
  if (scope.all) return "*";
  json::array units;
  for (const auto& unit : scope.units) units.emplace_back(unit);
  return units;
}

json::object user_json(const UserRecord& user) {
  json::object roles;
  for (const auto& [project, held] : user.roles) {
    json::array names;
    for (const auto& role : held) names.emplace_back(role);
    roles[project] = std::move(names);
  }
  json::object scopes;  // Only the projects where they were set: elsewhere the whole project.
  for (const auto& [project, s] : user.scopes) {
    scopes[project] = json::object{{"capture", scope_json(s.capture)},
                                   {"search", scope_json(s.search)},
                                   {"analytics", scope_json(s.analytics)}};
  }
  json::object out;
  out["id"] = user.id;
  out["name"] = user.name;
  out["disabled"] = user.disabled;
  out["roles"] = std::move(roles);
  out["scopes"] = std::move(scopes);
  out["two_factor"] = user.two_factor();
  out["created"] = format_rfc3339(user.created_us);
  return out;  // Never the password hash, the TOTP secret or the recovery codes.
}

class UserAdmin {
 public:
  UserAdmin(OpenLedger& opened, const UserCommand& cmd, std::vector<Grant> grants)
      : ledger_{*opened.ledger},
        identity_{*opened.identity},
        cmd_{cmd},
        grants_{std::move(grants)} {}

  int run() {
    if (cmd_.action == "list") return list();
    auto user = identity_.user_by_name(ledger_, cmd_.name);
    if (!user.is_ok()) return fail(user.status().to_string());
    if (cmd_.action == "add") return add(user->has_value());
    if (!user->has_value()) return rejected("no user " + cmd_.name);
    const UserRecord& found = **user;
    if (cmd_.action == "show") return show(found);
    if (cmd_.action == "disable") return disable(found);
    if (cmd_.action == "passwd") return passwd(found);
    return change_role(found, cmd_.action == "grant");
  }

 private:
  // Appends `batch` to `_system` and waits until it is durable.
  Status append(std::vector<ledger::EventDraft> batch) {
    for (auto& d : batch) d.device_id = kDevice;
    auto receipts = ledger_.append(std::string(ledger::kSystemProject), std::move(batch)).get();
    if (!receipts.is_ok()) return std::move(receipts).take_status();
    return Status::ok();
  }

  // kNotFound unless `project` was created in the directory or already holds events.
  Status known_project(const std::string& project) {
    if (project == proj::kAllProjects) return Status::ok();
    TRAIL_ASSIGN_OR_RETURN(auto created, identity_.project(ledger_, project));
    if (created) return Status::ok();
    TRAIL_ASSIGN_OR_RETURN(auto with_events, ledger_.projects());
    if (std::find(with_events.begin(), with_events.end(), project) != with_events.end()) {
      return Status::ok();
    }
    return Status::error(Code::kNotFound, "unknown project " + project);
  }

  // Checks every grant's project; returns the exit code, or -1 when all are known.
  int check_projects(const std::vector<Grant>& grants) {
    for (const auto& g : grants) {
      const Status known = known_project(g.project);
      if (known.code() == Code::kNotFound) return rejected(known.detail());
      if (!known.is_ok()) return fail(known.to_string());
    }
    return -1;
  }

  // Records that the operator read `users`, durably, before they are printed.
  Status audited(const std::vector<UserRecord>& users) {
    std::vector<EventId> subjects;
    for (const auto& u : users) {
      if (auto id = parse_uuid(u.id)) subjects.push_back(*id);
    }
    return record_read(ledger_, std::string(ledger::kSystemProject), operator_identity(), "user",
                       std::move(subjects), "", "trailctl user " + cmd_.action);
  }

  int add(bool exists) {
    if (exists) return rejected("user " + cmd_.name + " already exists");
    if (int code = check_projects(grants_); code >= 0) return code;
    auto password = read_password();
    if (!password.is_ok()) return password.status().code() == Code::kInvalid
                                      ? rejected(password.status().detail())
                                      : fail(password.status().detail());
    if (Status s = proj::check_new_password(*password, cmd_.name); !s.is_ok()) {
      return rejected(s.detail());
    }
    auto hash = proj::hash_password(*password);
    if (!hash.is_ok()) return rejected(hash.status().detail());
    const std::string id = proj::identity::new_user_id();
    const std::string actor = operator_identity();
    std::vector<ledger::EventDraft> batch;
    batch.push_back(
        proj::identity::user_created(actor, schema::Channel::SYSTEM, id, cmd_.name, *hash));
    for (const auto& g : grants_) {
      batch.push_back(proj::identity::role_changed(actor, schema::Channel::SYSTEM, id, g.project,
                                                   g.role, /*grant=*/true));
    }
    if (Status s = append(std::move(batch)); !s.is_ok()) return append_failed(s);
    // Another operator may have taken the name between the check and the commit: the first
    // USER_CREATED wins and ours (with its grants) was ignored.
    auto stored = identity_.user_by_name(ledger_, cmd_.name);
    if (!stored.is_ok()) return fail(stored.status().to_string());
    if (!stored->has_value() || (*stored)->id != id) {
      return rejected("user " + cmd_.name + " was created meanwhile by someone else");
    }
    std::printf("%s\n", id.c_str());
    return kExitOk;
  }

  int disable(const UserRecord& user) {
    if (user.disabled) {
      std::fprintf(stderr, "trailctl: user %s is already disabled\n", user.name.c_str());
      return kExitOk;
    }
    auto d = proj::identity::user_disabled(operator_identity(), schema::Channel::SYSTEM, user.id);
    if (Status s = append({std::move(d)}); !s.is_ok()) return append_failed(s);
    std::printf("disabled user %s\n", user.name.c_str());
    return kExitOk;
  }

  int passwd(const UserRecord& user) {
    auto password = read_password();
    if (!password.is_ok()) return password.status().code() == Code::kInvalid
                                      ? rejected(password.status().detail())
                                      : fail(password.status().detail());
    if (Status s = proj::check_new_password(*password, user.name); !s.is_ok()) {
      return rejected(s.detail());
    }
    if (proj::password_reused(*password, user.recent_password_hashes)) {
      return rejected("the password was one of the user's last 5; choose another");
    }
    auto hash = proj::hash_password(*password);
    if (!hash.is_ok()) return rejected(hash.status().detail());
    auto d = proj::identity::password_changed(operator_identity(), schema::Channel::SYSTEM,
                                              user.id, *hash);
    if (Status s = append({std::move(d)}); !s.is_ok()) return append_failed(s);
    std::printf("changed the password of %s; its sessions have ended\n", user.name.c_str());
    return kExitOk;
  }

  int change_role(const UserRecord& user, bool grant) {
    TRAIL_ASSERT(grants_.size() == 1);
    const Grant& g = grants_.front();
    const auto where = user.roles.find(g.project);
    const bool holds = where != user.roles.end() &&
                       where->second.contains(std::string(proj::role_name(g.role)));
    const std::string what = std::string(proj::role_name(g.role)) + " in " + g.project;
    if (holds == grant) {
      std::fprintf(stderr, "trailctl: %s %s %s already\n", user.name.c_str(),
                   grant ? "holds" : "does not hold", what.c_str());
      return kExitOk;
    }
    if (grant) {
      if (int code = check_projects(grants_); code >= 0) return code;
    }
    auto d = proj::identity::role_changed(operator_identity(), schema::Channel::SYSTEM, user.id,
                                          g.project, g.role, grant);
    if (Status s = append({std::move(d)}); !s.is_ok()) return append_failed(s);
    std::printf("%s %s %s %s\n", grant ? "granted" : "revoked", what.c_str(),
                grant ? "to" : "from", user.name.c_str());
    return kExitOk;
  }

  int show(const UserRecord& user) {
    if (Status s = audited({user}); !s.is_ok()) return fail(s.to_string());
    print_line(user_json(user));
    return kExitOk;
  }

  int list() {
    auto users = identity_.users(ledger_);
    if (!users.is_ok()) return fail(users.status().to_string());
    std::sort(users->begin(), users->end(),
              [](const UserRecord& a, const UserRecord& b) { return a.name < b.name; });
    if (Status s = audited(*users); !s.is_ok()) return fail(s.to_string());
    for (const auto& u : *users) print_line(user_json(u));
    return kExitOk;
  }

  ledger::Ledger& ledger_;
  const proj::IdentityProjector& identity_;
  const UserCommand& cmd_;
  const std::vector<Grant> grants_;  // add, grant, revoke.
};

}  // namespace

int run_user(const CommonOptions& common, const UserCommand& cmd) {
  // Usage errors first, before the ledger is opened.
  if (cmd.action != "list") {
    if (Status s = proj::validate_user_name(cmd.name); !s.is_ok()) return fail(s.detail());
  }
  std::vector<Grant> grants;
  if (cmd.action == "add" || cmd.action == "grant" || cmd.action == "revoke") {
    auto parsed = parse_grants(cmd);
    if (!parsed.is_ok()) return fail(parsed.status().detail());
    grants = std::move(parsed).value();
    if (cmd.action != "add" && grants.size() != 1) return fail("give exactly one --role");
  }
  auto opened = open_ledger(common, /*read_only=*/false);  // Reads are recorded: it appends.
  if (!opened.is_ok()) return fail(opened.status().detail());
  const int code = UserAdmin{*opened, cmd, std::move(grants)}.run();
  std::fflush(stdout);
  return code;
}

}  // namespace trail::tools
