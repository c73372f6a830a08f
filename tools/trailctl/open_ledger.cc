#include "tools/trailctl/open_ledger.h"

#include <pwd.h>
#include <unistd.h>

namespace trail::tools {

Result<OpenLedger> open_ledger(const CommonOptions& common, bool read_only) {
  TRAIL_ASSIGN_OR_RETURN(auto keys, ledger::KeyRing::load(common.keys_dir));
  OpenLedger out;
  out.cases = std::make_shared<proj::CaseProjector>();
  out.reports = std::make_shared<proj::ReportProjector>();
  out.access = std::make_shared<proj::AccessProjector>();
  out.sync = std::make_shared<proj::SyncProjector>();
  out.identity = std::make_shared<proj::IdentityProjector>();
  ledger::LedgerOptions options;
  options.data_dir = common.data_dir;
  options.keys = std::move(keys);
  options.read_only = read_only;
  options.projectors = {out.cases, out.reports, out.access, out.sync, out.identity};
  TRAIL_ASSIGN_OR_RETURN(out.ledger, ledger::Ledger::open(options));
  return out;
}

Status record_read(ledger::Ledger& ledger, const std::string& project, const std::string& reader,
                   const std::string& what, std::vector<EventId> subjects,
                   const std::string& reason, const std::string& endpoint) {
  if (subjects.empty()) return Status::ok();  // Nothing personal was read.
  auto draft = proj::make_record_read(
      reader, "trailctl", schema::Channel::SYSTEM,
      proj::RecordReadData{what, std::move(subjects), reason, "", endpoint}, now_us(),
      time_ordered_id());
  auto receipts = ledger.append(project, {std::move(draft)}).get();
  if (!receipts.is_ok()) return std::move(receipts).take_status();
  return Status::ok();
}

std::string operator_identity() {
  const passwd* pw = ::getpwuid(::geteuid());
  return std::string("os:") + (pw != nullptr && pw->pw_name != nullptr ? pw->pw_name : "unknown");
}

}  // namespace trail::tools
