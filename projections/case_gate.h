// Who may read and write which case: the decision the server makes for every case it shows or
// changes, from the caller's roles and scopes, the project's tree and case-type levels, and
// the case's owner and type (ARCHITECTURE.md, access model).
//
// A case sits where its owner sits: at the owner's unit when the owner is a unit of the
// project; at the units of the owner's capture scope when the owner is a user; nowhere
// (reachable by whole-project scopes only) otherwise. A caller's own cases are always inside
// the caller's capture scope.
//
// Thread safety: CaseGate is immutable after construction; its owner lookup is called from
// the deciding thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "projections/access_model.h"
#include "projections/identity.h"

namespace trail::proj {

enum class ReadVerdict : std::uint8_t {
  kAllow,         // Read it.
  kAllowFlagged,  // Read it, flagged in the access audit (audited type, outside capture).
  kNeedsGrant,    // Protected type outside capture scope: break the glass first.
  kHidden,        // Not for this caller: answer as if it did not exist.
};

class CaseGate final {
 public:
  // The capture units of a user who owns cases (empty for a whole-project or unknown user).
  using OwnerUnits = std::function<std::vector<std::string>(std::string_view user_id)>;

  CaseGate(const UserRecord& caller, std::string_view project, const ProjectRecord& record,
             OwnerUnits owner_units);

  std::uint32_t authorities() const { return authorities_; }
  CaseReach reach() const { return reach_; }
  const Scopes& scopes() const { return scopes_; }
  const ProjectRecord& project() const { return record_; }

  // Where a case owned by `owner` sits (memoised per owner).
  const std::vector<std::string>& units_of(std::string_view owner);
  bool in_capture(std::string_view owner);
  bool in_search(std::string_view owner);
  bool in_analytics(std::string_view owner);
  // A case owned by `owner` of type `case_type`, for reading.
  ReadVerdict read(std::string_view owner, std::string_view case_type);
  // Whether the caller may append to a case owned by `owner` (or give a case to `owner`).
  bool may_write(std::string_view owner) { return in_capture(owner); }

 private:
  std::string caller_id_;
  const ProjectRecord& record_;
  std::uint32_t authorities_ = 0;
  CaseReach reach_ = CaseReach::kOwn;
  Scopes scopes_;
  OwnerUnits owner_units_;
  std::map<std::string, std::vector<std::string>, std::less<>> units_;
};

}  // namespace trail::proj
