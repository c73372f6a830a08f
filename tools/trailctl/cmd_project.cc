// trailctl project add|list: project spaces in the identity directory. Opening one appends a
// project.created event to `_system` (actor: the operator's OS identity, channel system); its
// chain starts with its first event.
#include <cstdio>
#include <string>

#include <boost/json.hpp>

#include "ledger/ledger.h"
#include "projections/identity.h"
#include "tools/trailctl/commands.h"
#include "tools/trailctl/open_ledger.h"
#include "tools/trailctl/print_line.h"

namespace trail::tools {
namespace {

constexpr std::size_t kProjectNameBytesMax = 200;

Status validate_project_name(std::string_view name) {
  if (name.empty() || name.size() > kProjectNameBytesMax) {
    return Status::error(Code::kInvalid, "project name must be 1 to " +
                                             std::to_string(kProjectNameBytesMax) +
                                             " bytes (kProjectNameBytesMax)");
  }
  for (const char c : name) {
    if (static_cast<unsigned char>(c) < 0x20U || c == '\x7f') {
      return Status::error(Code::kInvalid, "project name must not hold control characters");
    }
  }
  return Status::ok();
}

boost::json::object project_json(const proj::ProjectRecord& p) {
  boost::json::object out;
  out["id"] = p.id;
  out["name"] = p.name;
  out["created"] = format_rfc3339(p.created_us);
  return out;
}

int add(OpenLedger& opened, const ProjectCommand& cmd) {
  const auto& identity = *opened.identity;
  auto existing = identity.project(*opened.ledger, cmd.id);
  if (!existing.is_ok()) return fail(existing.status().to_string());
  if (existing->has_value()) {
    std::fprintf(stderr, "trailctl: project %s already exists\n", cmd.id.c_str());
    return kExitRejected;
  }
  auto draft = proj::identity::project_created(operator_identity(), schema::Channel::SYSTEM,
                                               cmd.id, cmd.name);
  draft.device_id = "trailctl";
  auto receipts =
      opened.ledger->append(std::string(ledger::kSystemProject), {std::move(draft)}).get();
  if (!receipts.is_ok()) {
    std::fprintf(stderr, "trailctl: not appended: %s\n", receipts.status().to_string().c_str());
    const Code code = receipts.status().code();
    return code == Code::kConflict || code == Code::kInvalid ? kExitRejected : kExitError;
  }
  // The first project.created wins: another operator may have opened the same id meanwhile.
  auto stored = identity.project(*opened.ledger, cmd.id);
  if (!stored.is_ok()) return fail(stored.status().to_string());
  if (!stored->has_value() || (*stored)->name != cmd.name) {
    std::fprintf(stderr, "trailctl: project %s was created meanwhile by someone else\n",
                 cmd.id.c_str());
    return kExitRejected;
  }
  print_line(project_json(**stored));
  return kExitOk;
}

}  // namespace

int run_project(const CommonOptions& common, const ProjectCommand& cmd) {
  if (cmd.action == "add") {
    if (Status s = ledger::validate_project(cmd.id); !s.is_ok()) return fail(s.detail());
    if (cmd.id == ledger::kSystemProject) return fail("_system is reserved for the system chain");
    if (Status s = validate_project_name(cmd.name); !s.is_ok()) return fail(s.detail());
  }
  auto opened = open_ledger(common, /*read_only=*/cmd.action != "add");
  if (!opened.is_ok()) return fail(opened.status().detail());
  int code = kExitOk;
  if (cmd.action == "add") {
    code = add(*opened, cmd);
  } else {
    auto projects = opened->identity->projects(*opened->ledger);
    if (!projects.is_ok()) return fail(projects.status().to_string());
    for (const auto& p : *projects) print_line(project_json(p));
  }
  std::fflush(stdout);
  return code;
}

}  // namespace trail::tools
