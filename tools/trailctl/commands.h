// trailctl's sub-commands. Each returns the process exit code:
//   0 success; 1 the data says no (tampered chain, rejected input); 2 usage or I/O error.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace trail::tools {

inline constexpr int kExitOk = 0;
inline constexpr int kExitRejected = 1;
inline constexpr int kExitError = 2;

struct CommonOptions {
  std::string data_dir = "./var/data";
  std::string keys_dir = "./var/keys";
};

// Also creates the first system administrator `admin_name` and prints its generated password
// once, on a line "admin password: <password>".
int run_init(const CommonOptions& common, const std::string& key_name,
             const std::string& admin_name);
int run_append(const CommonOptions& common, const std::string& project, std::size_t batch_max);
// trailctl verify. Exit 1 with "TAMPERED project=P[ seq=N]: reason" for the first problem, or
// "REJECTED saved checkpoint F: ..." when --against's note is not signed by the key.
struct VerifyCommand {
  bool use_keys = false;               // --keys given: also check payload tags.
  std::optional<std::string> project;  // Only this project.
  std::string pubkey;   // --pubkey KEY|@FILE: also every Merkle node and stored checkpoint.
  std::string against;  // --against FILE: the chain extends this saved checkpoint.
};
int run_verify(const CommonOptions& common, const VerifyCommand& command);
int run_cat(const CommonOptions& common, const std::string& project, std::uint64_t from,
            std::uint64_t limit);

struct CaseCommand {
  std::string action;  // show, history, list
  std::string project;
  std::string case_id;
  std::string owner;
  std::string type;
  std::string user;
  std::string after;
  bool open_only = false;
  bool closed_only = false;
  std::size_t limit = 0;
  std::string reader;  // Who reads, for the access audit (default: the OS user).
  std::string reason;  // Why, recorded with the read.
};
int run_case(const CommonOptions& common, const CaseCommand& command);
int run_rebuild(const CommonOptions& common);

struct AuditCommand {
  std::string trail;  // changes, access
  std::string project;
  std::string case_id;
  std::string user;
  std::string from;
  std::string to;
  std::string reason;
  std::size_t limit = 0;
};
int run_audit(const CommonOptions& common, const AuditCommand& command);

struct ReportCommand {
  std::string name;  // submissions, cases, activity
  std::string project;
  std::string from;
  std::string to;
  std::string format = "json";
};
int run_report(const CommonOptions& common, const ReportCommand& command);

struct SubmitCommand {
  std::string project;
  std::vector<std::string> files;
  std::string user = "trailctl";  // Actor when a form names no user.
  std::string device = "trailctl";
};
int run_submit(const CommonOptions& common, const SubmitCommand& command);

// trailctl user: the identity directory. Passwords come from standard input (first line).
// Malformed names, roles or projects are usage errors (2); an unknown user or project, a name
// already taken or an empty password are rejected input (1).
struct UserCommand {
  std::string action;  // add, disable, grant, revoke, passwd, list, show
  std::string name;
  std::vector<std::string> projects;  // One per role; system_admin needs none.
  std::vector<std::string> roles;
};
int run_user(const CommonOptions& common, const UserCommand& command);

// trailctl project: project spaces in the identity directory.
struct ProjectCommand {
  std::string action;  // add, list
  std::string id;
  std::string name;
};
int run_project(const CommonOptions& common, const ProjectCommand& command);

// trailctl org-unit | role | case-type | policy, and user scopes | roles: a project's access
// model in the identity directory, one `_system` event per change. Malformed names, lists or
// values are usage errors (2); an unknown project, user, unit, parent or project role, or a
// unit that exists, are rejected input (1). Nothing is appended unless all of it is valid.
struct AccessCommand {
  // org-unit-add, org-unit-list, role-define, case-type-set, policy-set, policy-show,
  // user-scopes, user-roles.
  std::string action;
  std::string project;
  std::string id;      // Unit id, role name or case type.
  std::string name;    // Unit display name; user name for user-scopes and user-roles.
  std::string parent;  // Parent unit ("" for a root).
  std::map<std::string, std::string> scopes;  // capture|search|analytics -> "*", "" or "u1,u2".
  std::vector<std::string> roles;
  bool no_roles = false;  // --none: take every role in the project away.
  std::vector<std::string> authorities;
  std::string reach = "scope";
  std::string access;  // open, audited, protected, closed.
  std::map<std::string, std::string> policy;  // Policy field (API spelling) -> value as typed.
};
// org-unit-*, role-define, case-type-set, policy-*.
int run_access(const CommonOptions& common, const AccessCommand& command);
// user-scopes, user-roles.
int run_user_access(const CommonOptions& common, const AccessCommand& command);

// trailctl keys show: the checkpoint verifier key (signed-note form) of the key directory.
int run_keys_show(const CommonOptions& common);

// trailctl proof inclusion|consistency: JSON exactly as the API's proof routes answer.
struct ProofCommand {
  std::string kind;  // inclusion, consistency
  std::string project;
  std::uint64_t seq = 0;               // inclusion: the event (leaf index seq - 1).
  std::optional<std::uint64_t> size;   // inclusion: tree size (default: the whole tree).
  std::uint64_t from = 0;              // consistency
  std::optional<std::uint64_t> to;     // consistency (default: the whole tree).
};
int run_proof(const CommonOptions& common, const ProofCommand& command);

// trailctl checkpoint: a stored checkpoint note exactly as signed; --now issues one first.
struct CheckpointCommand {
  std::string project;
  std::optional<std::uint64_t> size;  // Default: the latest.
  bool now = false;
};
int run_checkpoint(const CommonOptions& common, const CheckpointCommand& command);

// trailctl export-chain: a chain bundle (docs/FORMAT.md, "Chain bundles") to `out` ("-":
// standard output).
int run_export_chain(const CommonOptions& common, const std::string& project,
                     const std::string& out);
// trailctl verify-bundle: checks a chain bundle ("-": standard input) with the checkpoint key.
int run_verify_bundle(const std::string& path, const std::string& pubkey);

// Prints "trailctl: <message>" on stderr and returns kExitError.
int fail(const std::string& message);

}  // namespace trail::tools
