// What the access commands (cmd_access.cc, cmd_user_access.cc) share: checking the project
// they name, appending one change to `_system` as the operator, and reporting the outcome
// with trailctl's exit codes.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ledger/envelope.h"
#include "ledger/ledger.h"
#include "ledger/status.h"
#include "projections/identity.h"
#include "tools/trailctl/open_ledger.h"

namespace trail::tools {

// Prints "trailctl: <message>" on stderr and returns kExitRejected (the data says no).
int rejected(const std::string& message);

// For a failed look-up: kNotFound is rejected input (its detail on stderr, kExitRejected);
// anything else is kExitError.
int lookup_failed(const Status& status);

// Says on stderr that `what` is so already and nothing was appended.
void already(const std::string& what);

// Prints why an append failed and returns kExitRejected when the ledger said no (kConflict,
// kInvalid), else kExitError.
int append_failed(const Status& status);

// Whether `project` can have an access model: a well-formed project id other than `_system`.
// Errors: kInvalid (a usage error).
Status validate_access_project(std::string_view project);

// The project as the identity directory holds it. Errors: kNotFound when `trailctl project add`
// never opened it; kCorrupt and storage errors as IdentityProjector::project.
Result<proj::ProjectRecord> directory_project(const OpenLedger& opened, std::string_view project);

// Appends `draft` (device "trailctl") to `_system` and returns once it is durable.
// Errors: as Ledger::append.
Status append_system(ledger::Ledger& ledger, ledger::EventDraft draft);

}  // namespace trail::tools
