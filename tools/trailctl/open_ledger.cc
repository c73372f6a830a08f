#include "tools/trailctl/open_ledger.h"

namespace trail::tools {

Result<OpenLedger> open_ledger(const CommonOptions& common, bool read_only) {
  TRAIL_ASSIGN_OR_RETURN(auto keys, ledger::KeyRing::load(common.keys_dir));
  OpenLedger out;
  out.cases = std::make_shared<proj::CaseProjector>();
  ledger::LedgerOptions options;
  options.data_dir = common.data_dir;
  options.keys = std::move(keys);
  options.read_only = read_only;
  options.projectors = {out.cases};
  TRAIL_ASSIGN_OR_RETURN(out.ledger, ledger::Ledger::open(options));
  return out;
}

}  // namespace trail::tools
