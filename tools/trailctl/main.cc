// trailctl: the admin and auditor command line of Trail.
#include <sodium.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "tools/trailctl/commands.h"

namespace trail::tools {

int fail(const std::string& message) {
  std::fprintf(stderr, "trailctl: %s\n", message.c_str());
  return kExitError;
}

namespace {

using AddDirs = std::function<void(CLI::App*, bool)>;
// Each leaf sub-command with its AccessCommand::action.
using AccessLeaves = std::vector<std::pair<CLI::App*, const char*>>;

// user scopes|roles (under `user`), org-unit, role, case-type, policy.
AccessLeaves add_access_commands(CLI::App& app, CLI::App* user_cmd, AccessCommand& args,
                                 const AddDirs& add_dirs) {
  auto* scopes = user_cmd->add_subcommand(
      "scopes", "replace a user's capture, search and/or analytics scope in a project");
  for (const char* field : {"capture", "search", "analytics"}) {
    scopes->add_option_function<std::string>(
        std::string("--") + field,
        [&args, field](const std::string& units) { args.scopes[field] = units; },
        "'*' (whole project), '' (nothing) or comma-separated unit ids");
  }
  auto* roles = user_cmd->add_subcommand("roles", "replace a user's roles in a project");
  roles->add_option("--role", args.roles, "built-in role (not system_admin) or the project's own");
  roles->add_flag("--none", args.no_roles, "take every role in the project away");
  for (auto* sub : {scopes, roles}) sub->add_option("name", args.name, "user name")->required();

  auto* org_unit = app.add_subcommand("org-unit", "a project's organisation units");
  org_unit->require_subcommand(1);
  auto* unit_add = org_unit->add_subcommand("add", "add a unit (units never move or go)");
  unit_add->add_option("--id", args.id, "unit id: [a-z0-9_.-], 1 to 64")->required();
  unit_add->add_option("--name", args.name, "display name")->required();
  unit_add->add_option("--parent", args.parent, "parent unit id (default: a root)");
  auto* unit_list = org_unit->add_subcommand("list", "units, as JSON lines");

  auto* role = app.add_subcommand("role", "a project's own roles");
  role->require_subcommand(1);
  auto* role_define = role->add_subcommand("define", "define or redefine a role");
  role_define->add_option("--name", args.id, "role name (not a built-in one)")->required();
  role_define->add_option("--authority", args.authorities, "authority it gives")->required();
  role_define->add_option("--reach", args.reach, "own | unit | scope")->capture_default_str();

  auto* case_type = app.add_subcommand("case-type", "break-the-glass levels of case types");
  case_type->require_subcommand(1);
  auto* type_set = case_type->add_subcommand("set", "set a case type's level");
  type_set->add_option("--type", args.id, "case type")->required();
  type_set->add_option("--access", args.access, "open | audited | protected | closed")
      ->required();

  auto* policy = app.add_subcommand("policy", "a project's security policy");
  policy->require_subcommand(1);
  auto* policy_set = policy->add_subcommand("set", "change policy fields");
  for (const char* field : {"require_2fa", "idle_timeout_minutes", "session_max_hours",
                            "break_glass_minutes", "restrict_superusers"}) {
    std::string flag = std::string("--") + field;
    std::replace(flag.begin(), flag.end(), '_', '-');
    policy_set->add_option_function<std::string>(
        flag, [&args, field](const std::string& value) { args.policy[field] = value; },
        "true | false or minutes / hours");
  }
  auto* policy_show = policy->add_subcommand("show", "the policy, roles and case types, as JSON");

  const AccessLeaves leaves{{scopes, "user-scopes"},      {roles, "user-roles"},
                            {unit_add, "org-unit-add"},   {unit_list, "org-unit-list"},
                            {role_define, "role-define"}, {type_set, "case-type-set"},
                            {policy_set, "policy-set"},   {policy_show, "policy-show"}};
  for (const auto& [leaf, action] : leaves) {
    leaf->add_option("--project", args.project, "project space")->required();
    add_dirs(leaf, true);
  }
  for (auto* parent : {org_unit, role, case_type, policy}) add_dirs(parent, true);
  return leaves;
}

}  // namespace
}  // namespace trail::tools

int main(int argc, char** argv) {
  using namespace trail::tools;
  if (sodium_init() < 0) return fail("libsodium failed to initialise");
  spdlog::set_level(spdlog::level::warn);

  CLI::App app{"trailctl: administer and audit a Trail ledger"};
  app.require_subcommand(1);
  CommonOptions common;
  auto add_dirs = [&](CLI::App* cmd, bool keys) {
    cmd->add_option("--data", common.data_dir, "data directory")->capture_default_str();
    if (keys) cmd->add_option("--keys", common.keys_dir, "key directory")->capture_default_str();
  };

  auto* init = app.add_subcommand("init", "create a key directory and an empty data directory");
  add_dirs(init, true);
  std::string key_name;
  init->add_option("--key-name", key_name, "name of the signing key in signed notes (default: host name)");
  std::string admin_name = "admin";
  init->add_option("--admin", admin_name, "user name of the first system administrator")
      ->capture_default_str();

  auto* append = app.add_subcommand("append", "append JSON-line events from standard input");
  add_dirs(append, true);
  std::string project;
  append->add_option("--project", project, "project space")->required();
  std::size_t batch_max = 1000;
  append->add_option("--batch", batch_max, "lines per batch at most")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();

  auto* verify = app.add_subcommand(
      "verify", "verify hash chains (payload tags with --keys; Merkle trees and checkpoints with "
                "--pubkey; that a saved checkpoint is extended with --against)");
  verify->add_option("--data", common.data_dir, "data directory")->capture_default_str();
  auto* keys_opt = verify->add_option("--keys", common.keys_dir,
                                      "key directory: also check every payload's tag");
  std::string verify_project;
  verify->add_option("--project", verify_project, "only this project");
  VerifyCommand verify_args;
  verify->add_option("--pubkey", verify_args.pubkey,
                     "checkpoint key (name+id+key, or @FILE): also check every Merkle node and "
                     "every stored checkpoint's signature, size and root");
  verify->add_option("--against", verify_args.against,
                     "a checkpoint note saved earlier: prove the chain of its project extends "
                     "it (signature checked with --pubkey, else the key directory's key)");

  auto* keys_cmd = app.add_subcommand("keys", "the key directory's public parts");
  keys_cmd->require_subcommand(1);
  auto* keys_show = keys_cmd->add_subcommand("show", "print the checkpoint verifier key");
  keys_show->add_option("--keys", common.keys_dir, "key directory")->capture_default_str();

  auto* proof = app.add_subcommand("proof", "Merkle proofs as JSON, as the API serves them");
  proof->require_subcommand(1);
  ProofCommand proof_args;
  auto* proof_inclusion = proof->add_subcommand("inclusion", "inclusion proof of one event");
  proof_inclusion->add_option("--seq", proof_args.seq, "the event (leaf index seq - 1)")->required();
  proof_inclusion->add_option("--size", proof_args.size, "tree size (default: the whole tree)");
  auto* proof_consistency =
      proof->add_subcommand("consistency", "consistency proof between two tree sizes");
  proof_consistency->add_option("--from", proof_args.from, "the older tree size")->required();
  proof_consistency->add_option("--to", proof_args.to, "the newer tree size (default: the whole tree)");
  for (auto* sub : {proof_inclusion, proof_consistency}) {
    sub->add_option("--project", proof_args.project, "project space")->required();
    add_dirs(sub, false);
  }

  auto* checkpoint_cmd = app.add_subcommand("checkpoint", "print a signed checkpoint note");
  add_dirs(checkpoint_cmd, true);
  CheckpointCommand checkpoint_args;
  checkpoint_cmd->add_option("--project", checkpoint_args.project, "project space")->required();
  checkpoint_cmd->add_option("--size", checkpoint_args.size, "the one at this size (default: the latest)");
  checkpoint_cmd->add_flag("--now", checkpoint_args.now,
                           "issue one at the head first (needs the key directory, writable)");

  auto* export_chain =
      app.add_subcommand("export-chain", "write a project's chain bundle (envelopes, checkpoints)");
  add_dirs(export_chain, false);
  std::string export_out;
  export_chain->add_option("--project", project, "project space")->required();
  export_chain->add_option("--out", export_out, "bundle file ('-': standard output)")->required();

  auto* verify_bundle = app.add_subcommand("verify-bundle", "check a chain bundle with the checkpoint key");
  std::string bundle_path;
  std::string bundle_pubkey;
  verify_bundle->add_option("bundle", bundle_path, "bundle file ('-': standard input)")->required();
  verify_bundle->add_option("--pubkey", bundle_pubkey, "checkpoint key (name+id+key, or @FILE)")
      ->required();

  auto* cat = app.add_subcommand("cat", "print a project's events, payloads opened");
  add_dirs(cat, true);
  cat->add_option("--project", project, "project space")->required();
  std::uint64_t from = 1;
  std::uint64_t limit = 0;
  cat->add_option("--from", from, "first seq")->capture_default_str();
  cat->add_option("--limit", limit, "events at most (0: all)")->capture_default_str();

  auto* case_cmd = app.add_subcommand("case", "show a case, its history, or list cases");
  add_dirs(case_cmd, true);
  CaseCommand case_args;
  case_cmd->add_option("--project", case_args.project, "project space")->required();
  case_cmd->require_subcommand(1);
  auto* case_show = case_cmd->add_subcommand("show", "a case's current state");
  case_show->add_option("case_id", case_args.case_id, "case id")->required();
  auto* case_history = case_cmd->add_subcommand("history", "who changed what, when, how, from what");
  case_history->add_option("case_id", case_args.case_id, "case id");
  case_history->add_option("--user", case_args.user, "only changes by this user");
  case_history->add_option("--limit", case_args.limit, "entries at most (0: all)");
  auto* case_list = case_cmd->add_subcommand("list", "cases, in case-id order");
  case_list->add_option("--owner", case_args.owner, "owned by");
  case_list->add_option("--type", case_args.type, "of case type");
  case_list->add_flag("--open", case_args.open_only, "open cases only");
  case_list->add_flag("--closed", case_args.closed_only, "closed cases only");
  case_list->add_option("--after", case_args.after, "page after this case id");
  case_list->add_option("--limit", case_args.limit, "cases at most (0: all)");
  for (auto* sub : {case_show, case_history, case_list}) add_dirs(sub, true);

  auto* submit = app.add_subcommand("submit", "append XForm submissions (with case blocks)");
  add_dirs(submit, true);
  SubmitCommand submit_args;
  submit->add_option("--project", submit_args.project, "project space")->required();
  submit->add_option("--user", submit_args.user, "actor when a form names no user")
      ->capture_default_str();
  submit->add_option("--device", submit_args.device, "device when a form names none")
      ->capture_default_str();
  submit->add_option("files", submit_args.files, "XML files")->required();

  case_cmd->add_option("--as", case_args.reader, "who reads, for the access audit (default: OS user)");
  case_cmd->add_option("--reason", case_args.reason, "why, recorded with the read");

  auto* audit = app.add_subcommand("audit", "change history or access audit");
  add_dirs(audit, true);
  AuditCommand audit_args;
  audit->add_option("trail", audit_args.trail, "changes | access")
      ->required()
      ->check(CLI::IsMember({"changes", "access"}));
  audit->add_option("--project", audit_args.project, "project space")->required();
  audit->add_option("--case", audit_args.case_id, "only this case");
  audit->add_option("--user", audit_args.user, "only this user (actor or reader)");
  audit->add_option("--from", audit_args.from, "from (RFC 3339 or YYYY-MM-DD), inclusive");
  audit->add_option("--to", audit_args.to, "to (RFC 3339 or YYYY-MM-DD), exclusive");
  audit->add_option("--reason", audit_args.reason, "why, recorded with the read");
  audit->add_option("--limit", audit_args.limit, "entries at most (0: all)");

  auto* report = app.add_subcommand("report", "aggregates as JSON or CSV");
  add_dirs(report, true);
  ReportCommand report_args;
  report->add_option("name", report_args.name, "submissions | cases | activity")
      ->required()
      ->check(CLI::IsMember({"submissions", "cases", "activity"}));
  report->add_option("--project", report_args.project, "project space")->required();
  report->add_option("--from", report_args.from, "first day (YYYY-MM-DD; default 29 days ago)");
  report->add_option("--to", report_args.to, "last day (YYYY-MM-DD; default today)");
  report->add_option("--format", report_args.format, "json | csv")
      ->check(CLI::IsMember({"json", "csv"}))
      ->capture_default_str();

  auto* rebuild = app.add_subcommand("rebuild", "empty every view and replay every chain into it");
  add_dirs(rebuild, true);

  auto* user_cmd =
      app.add_subcommand("user", "users and their roles (passwords from standard input)");
  add_dirs(user_cmd, true);
  user_cmd->require_subcommand(1);
  UserCommand user_args;
  auto* user_add = user_cmd->add_subcommand("add", "add a user; prints its id");
  auto* user_disable = user_cmd->add_subcommand("disable", "disable a user (ends its sessions)");
  auto* user_grant = user_cmd->add_subcommand("grant", "grant a role in a project");
  auto* user_revoke = user_cmd->add_subcommand("revoke", "revoke a role in a project");
  auto* user_passwd = user_cmd->add_subcommand("passwd", "set a user's password");
  auto* user_list = user_cmd->add_subcommand("list", "every user, as JSON lines");
  auto* user_show = user_cmd->add_subcommand("show", "one user, as JSON");
  for (auto* sub : {user_add, user_disable, user_grant, user_revoke, user_passwd, user_show}) {
    sub->add_option("name", user_args.name, "user name")->required();
  }
  for (auto* sub : {user_add, user_grant, user_revoke}) {
    auto* roles = sub->add_option("--role", user_args.roles,
                                  "mobile_worker | supervisor | report_viewer | auditor | "
                                  "project_admin | system_admin");
    sub->add_option("--project", user_args.projects, "project of the role (system_admin: none)");
    if (sub != user_add) roles->required();
  }
  for (auto* sub : {user_add, user_disable, user_grant, user_revoke, user_passwd, user_list,
                    user_show}) {
    add_dirs(sub, true);
  }

  AccessCommand access_args;
  const AccessLeaves access_leaves = add_access_commands(app, user_cmd, access_args, add_dirs);

  auto* project_cmd = app.add_subcommand("project", "project spaces");
  add_dirs(project_cmd, true);
  project_cmd->require_subcommand(1);
  ProjectCommand project_args;
  auto* project_add = project_cmd->add_subcommand("add", "open a project space");
  project_add->add_option("id", project_args.id, "project id: [a-z0-9-], 1 to 64")->required();
  project_add->add_option("--name", project_args.name, "display name")->required();
  auto* project_list = project_cmd->add_subcommand("list", "project spaces, as JSON lines");
  for (auto* sub : {project_add, project_list}) add_dirs(sub, true);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "trailctl: %s\nRun with --help for usage.\n", e.what());
    return kExitError;
  }

  if (init->parsed()) return run_init(common, key_name, admin_name);
  if (append->parsed()) return run_append(common, project, batch_max);
  if (verify->parsed()) {
    verify_args.use_keys = keys_opt->count() > 0;
    if (!verify_project.empty()) verify_args.project = verify_project;
    return run_verify(common, verify_args);
  }
  if (keys_show->parsed()) return run_keys_show(common);
  if (proof->parsed()) {
    proof_args.kind = proof_inclusion->parsed() ? "inclusion" : "consistency";
    return run_proof(common, proof_args);
  }
  if (checkpoint_cmd->parsed()) return run_checkpoint(common, checkpoint_args);
  if (export_chain->parsed()) return run_export_chain(common, project, export_out);
  if (verify_bundle->parsed()) return run_verify_bundle(bundle_path, bundle_pubkey);
  if (cat->parsed()) return run_cat(common, project, from, limit);
  if (case_cmd->parsed()) {
    case_args.action = case_show->parsed() ? "show" : case_history->parsed() ? "history" : "list";
    return run_case(common, case_args);
  }
  if (rebuild->parsed()) return run_rebuild(common);
  if (submit->parsed()) return run_submit(common, submit_args);
  if (audit->parsed()) return run_audit(common, audit_args);
  if (report->parsed()) return run_report(common, report_args);
  for (const auto& [leaf, action] : access_leaves) {
    if (!leaf->parsed()) continue;
    access_args.action = action;
    const bool of_user = access_args.action.starts_with("user-");
    return of_user ? run_user_access(common, access_args) : run_access(common, access_args);
  }
  if (user_cmd->parsed()) {
    for (const auto& [sub, action] :
         {std::pair{user_add, "add"}, {user_disable, "disable"}, {user_grant, "grant"},
          {user_revoke, "revoke"}, {user_passwd, "passwd"}, {user_list, "list"},
          {user_show, "show"}}) {
      if (sub->parsed()) user_args.action = action;
    }
    return run_user(common, user_args);
  }
  if (project_cmd->parsed()) {
    project_args.action = project_add->parsed() ? "add" : "list";
    return run_project(common, project_args);
  }
  return fail("no command");
}
