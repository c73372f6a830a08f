// The plaintext payload of case events (schema::Payload.caseChange) as a plain C++ value.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ledger/bytes.h"
#include "ledger/projector.h"
#include "ledger/status.h"

namespace trail::proj {

struct CaseIndexData {
  std::string name;          // e.g. "parent"
  std::string case_type;
  std::optional<EventId> case_id;  // Empty: remove the index.
  std::string relationship;  // "child" or "extension"
};

struct CaseChangeData {
  std::string case_type;
  std::string case_name;
  std::string owner;
  std::vector<std::pair<std::string, std::string>> fields;  // In the order given.
  std::vector<CaseIndexData> indices;
};

// Encodes as a Cap'n Proto Payload message. Fields are stored sorted by name (stable for
// equal names, last one wins on decode), so the same change always encodes the same way.
std::string encode_case_change(const CaseChangeData& change);

// Decodes a payload. Errors: kCorrupt when it is not a Cap'n Proto Payload; kNotFound when it
// is a payload of another kind.
Result<CaseChangeData> decode_case_change(std::string_view payload);

// decode_case_change of the event's payload, decoded once for all the projectors that fold the
// event (kept in event.decoded); null when the payload is not a case change.
const CaseChangeData* case_change_of(const ledger::AppendedEvent& event);

// The xmlns (form id) of a form.submitted payload; nullopt for any other payload.
std::optional<std::string> decode_form_xmlns(std::string_view payload);

}  // namespace trail::proj
