// The JSON shapes of the views, as trailctl prints them (one object per line) and the API
// answers them.
#pragma once

#include <boost/json.hpp>

#include "projections/access_projector.h"
#include "projections/case_projector.h"

namespace trail::proj {

boost::json::object case_json(const CaseState& state);
boost::json::object history_json(const HistoryItem& item);
boost::json::object access_json(const AccessRow& row);

}  // namespace trail::proj
