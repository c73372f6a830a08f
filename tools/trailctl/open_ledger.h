// Opening the ledger of a data directory the way every trailctl command needs it: with the
// key directory and the views registered, so appends keep the views in step.
#pragma once

#include <memory>

#include "ledger/ledger.h"
#include "projections/case_projector.h"
#include "tools/trailctl/commands.h"

namespace trail::tools {

struct OpenLedger {
  std::unique_ptr<ledger::Ledger> ledger;
  std::shared_ptr<proj::CaseProjector> cases;
};

// Errors: as KeyRing::load and Ledger::open (missing or wrong keys, no data directory).
Result<OpenLedger> open_ledger(const CommonOptions& common, bool read_only);

}  // namespace trail::tools
