// The JSON shapes trailctl prints for the views: one object per line.
#pragma once

#include <boost/json.hpp>

#include "projections/access_projector.h"
#include "projections/case_projector.h"

namespace trail::tools {

boost::json::object case_json(const proj::CaseState& state);
boost::json::object history_json(const proj::HistoryItem& item);
boost::json::object access_json(const proj::AccessRow& row);
// Writes `object` and a newline to stdout.
void print_line(const boost::json::object& object);

}  // namespace trail::tools
