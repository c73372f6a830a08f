#include "projections/case_gate.h"

#include <utility>

namespace trail::proj {

CaseGate::CaseGate(const UserRecord& caller, std::string_view project, const ProjectRecord& record,
                   OwnerUnits owner_units)
    : caller_id_{caller.id},
      record_{record},
      authorities_{caller.authorities_in(project, &record)},
      reach_{caller.reach_in(project, record)},
      scopes_{caller.scopes_in(project)},
      owner_units_{std::move(owner_units)} {}

const std::vector<std::string>& CaseGate::units_of(std::string_view owner) {
  if (auto it = units_.find(owner); it != units_.end()) return it->second;
  std::vector<std::string> units;
  if (record_.units.contains(std::string(owner))) {
    units.emplace_back(owner);
  } else if (!owner.empty() && owner_units_) {
    units = owner_units_(owner);
  }
  return units_.emplace(std::string(owner), std::move(units)).first->second;
}

bool CaseGate::in_capture(std::string_view owner) {
  if (!owner.empty() && owner == caller_id_) return true;
  return covers_any(record_.units, scopes_.capture, units_of(owner));
}

bool CaseGate::in_search(std::string_view owner) {
  if (in_capture(owner)) return true;
  return covers_any(record_.units, scopes_.search, units_of(owner));
}

bool CaseGate::in_analytics(std::string_view owner) {
  return covers_any(record_.units, scopes_.analytics, units_of(owner));
}

ReadVerdict CaseGate::read(std::string_view owner, std::string_view case_type) {
  const bool own = !owner.empty() && owner == caller_id_;
  if (own) return ReadVerdict::kAllow;
  switch (reach_) {
    case CaseReach::kOwn: return ReadVerdict::kHidden;
    case CaseReach::kUnit:
      // Own cases and those of the capture units: always inside capture scope.
      return covers_any(record_.units, scopes_.capture, units_of(owner)) && !scopes_.capture.all
                 ? ReadVerdict::kAllow
                 : ReadVerdict::kHidden;
    case CaseReach::kScope: break;
  }
  if (in_capture(owner)) return ReadVerdict::kAllow;
  if (!in_search(owner)) return ReadVerdict::kHidden;
  switch (record_.access_of(case_type)) {
    case CaseAccess::kOpen: return ReadVerdict::kAllow;
    case CaseAccess::kAudited: return ReadVerdict::kAllowFlagged;
    case CaseAccess::kProtected: return ReadVerdict::kNeedsGrant;
    case CaseAccess::kClosed: return ReadVerdict::kHidden;
  }
  return ReadVerdict::kHidden;
}

}  // namespace trail::proj
