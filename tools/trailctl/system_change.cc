#include "tools/trailctl/system_change.h"

#include <cstdio>
#include <utility>

namespace trail::tools {

int rejected(const std::string& message) {
  std::fprintf(stderr, "trailctl: %s\n", message.c_str());
  return kExitRejected;
}

int lookup_failed(const Status& status) {
  TRAIL_ASSERT(!status.is_ok());
  if (status.code() == Code::kNotFound) return rejected(status.detail());
  return fail(status.to_string());
}

void already(const std::string& what) {
  std::fprintf(stderr, "trailctl: %s already; nothing appended\n", what.c_str());
}

int append_failed(const Status& status) {
  std::fprintf(stderr, "trailctl: not appended: %s\n", status.to_string().c_str());
  const Code code = status.code();
  return code == Code::kConflict || code == Code::kInvalid ? kExitRejected : kExitError;
}

Status validate_access_project(std::string_view project) {
  TRAIL_TRY(ledger::validate_project(project));
  if (project == ledger::kSystemProject) {
    return Status::error(Code::kInvalid, "_system is the system chain, not a project");
  }
  return Status::ok();
}

Result<proj::ProjectRecord> directory_project(const OpenLedger& opened, std::string_view project) {
  TRAIL_ASSIGN_OR_RETURN(auto record, opened.identity->project(*opened.ledger, project));
  if (!record) {
    return Status::error(Code::kNotFound, "unknown project " + std::string(project) +
                                              " (open it with `trailctl project add`)");
  }
  TRAIL_ASSERT(record->id == project);
  return std::move(*record);
}

Status append_system(ledger::Ledger& ledger, ledger::EventDraft draft) {
  draft.device_id = "trailctl";
  std::vector<ledger::EventDraft> batch;
  batch.push_back(std::move(draft));
  auto receipts = ledger.append(std::string(ledger::kSystemProject), std::move(batch)).get();
  if (!receipts.is_ok()) return std::move(receipts).take_status();
  TRAIL_ASSERT(receipts->size() == 1);
  return Status::ok();
}

}  // namespace trail::tools
