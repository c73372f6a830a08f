#include "server/capture_check.h"

#include "projections/case_payload.h"
#include "projections/view_keys.h"

namespace trail::server {
namespace http = boost::beast::http;

std::shared_ptr<CaptureCheck> CaptureCheck::make(proj::CaseGate& gate,
                                                 const std::vector<ledger::EventDraft>& drafts) {
  if (gate.scopes().capture.all) return nullptr;  // The whole project: nothing to look up.
  std::vector<CaseWrite> writes;
  for (std::size_t i = 0; i < drafts.size(); ++i) {
    const auto& d = drafts[i];
    if (!proj::view::is_case_kind(d.kind) || !d.subject) continue;
    auto change = proj::decode_case_change(d.payload);
    writes.push_back({i, *d.subject, change.is_ok() ? change->owner : std::string()});
  }
  if (writes.empty()) return nullptr;
  return std::shared_ptr<CaptureCheck>(new CaptureCheck(gate, std::move(writes)));
}

Result<std::optional<CaptureDenial>> CaptureCheck::run(const CaseLookup& lookup, bool in_commit) {
  const char* changed = in_commit ? " (its owner changed while this append was queued)" : "";
  for (const auto& write : writes_) {
    const std::string where = "events[" + std::to_string(write.index) + "]: ";
    TRAIL_ASSIGN_OR_RETURN(auto state, lookup(write.case_id));
    if (state && !gate_.may_write(state->owner)) {
      if (gate_.read(state->owner, state->case_type) == proj::ReadVerdict::kHidden) {
        return std::optional<CaptureDenial>{
            CaptureDenial{http::status::not_found, "not_found", where + "no such case"}};
      }
      return std::optional<CaptureDenial>{
          CaptureDenial{http::status::forbidden, "outside_capture_scope",
                        where + "the case is outside your capture scope" + changed}};
    }
    if (!write.owner.empty() && !gate_.may_write(write.owner)) {
      return std::optional<CaptureDenial>{
          CaptureDenial{http::status::forbidden, "outside_capture_scope",
                        where + "the owner named is outside your capture scope"}};
    }
  }
  return std::optional<CaptureDenial>{};
}

}  // namespace trail::server
