// Opening the ledger of a data directory the way every trailctl command needs it: with the
// key directory and the views registered, so appends keep the views in step.
#pragma once

#include <memory>

#include "ledger/ledger.h"
#include "projections/access_projector.h"
#include "projections/case_projector.h"
#include "projections/identity.h"
#include "projections/report_projector.h"
#include "projections/sync_projector.h"
#include "tools/trailctl/commands.h"

namespace trail::tools {

struct OpenLedger {
  std::unique_ptr<ledger::Ledger> ledger;
  std::shared_ptr<proj::CaseProjector> cases;
  std::shared_ptr<proj::ReportProjector> reports;
  std::shared_ptr<proj::AccessProjector> access;
  std::shared_ptr<proj::SyncProjector> sync;
  std::shared_ptr<proj::IdentityProjector> identity;  // Users, roles, projects (`_system`).
};

// Records that `reader` read `subjects` (what: case, history, search ...) through `endpoint`
// (the command, e.g. "trailctl case show") and returns once the
// record is durable: personal data leaves only after its access record is on disk.
// Errors: as Ledger::append.
Status record_read(ledger::Ledger& ledger, const std::string& project, const std::string& reader,
                   const std::string& what, std::vector<EventId> subjects,
                   const std::string& reason, const std::string& endpoint);

// The operator's identity for the access audit: "os:<login name>" of the effective user.
std::string operator_identity();

// Errors: as KeyRing::load and Ledger::open (missing or wrong keys, no data directory).
Result<OpenLedger> open_ledger(const CommonOptions& common, bool read_only);

}  // namespace trail::tools
