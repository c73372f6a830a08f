// The JSON line form of a case event (what `trailctl append` reads) and of a stored event
// (what `trailctl cat` prints), shared by trailctl and the server's API.
//
//   {"event_id": "<uuid>", "kind": "case.created", "case_id": "<uuid>", "actor": "u-17",
//    "device_id": "phone-3", "client_time": "2024-05-01T09:30:00Z",
//    "fields": {"name": "value", ...},
//    optional: "channel", "via", "case_type", "case_name", "owner"}
#pragma once

#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "ledger/envelope.h"
#include "ledger/ledger.h"
#include "ledger/status.h"

namespace trail::proj {

inline constexpr std::size_t kLineBytesMax = 8U << 20U;       // One JSON line.
inline constexpr std::size_t kFieldsMax = 1024;               // Fields in one event.
inline constexpr std::size_t kFieldNameBytesMax = 128;
inline constexpr std::size_t kFieldValueBytesMax = 64U << 10U;
inline constexpr std::size_t kCaseTextBytesMax = 256;         // case_type, case_name, owner.

// Parses one JSON line into a draft whose payload is a Cap'n Proto CaseChange.
// Errors: kInvalid naming the key and the rule it breaks (malformed JSON, unknown or missing
//         key, unknown kind, invalid UUID or time, a field over its limit).
Result<ledger::EventDraft> parse_event_line(std::string_view line);
// The same from an already parsed object. With actor_required false, "actor" may be absent
// (the caller sets it, e.g. the server from the authenticated user).
Result<ledger::EventDraft> parse_event_object(const boost::json::object& object,
                                              bool actor_required);

// One stored event, opened, as a JSON object on one line (no newline).
// Errors: kCorrupt when the payload does not decode.
Result<std::string> event_to_json(const ledger::OpenedEvent& event);

// A receipt as {"event_id", "seq", "hash", "duplicate"}.
std::string receipt_to_json(const EventId& event_id, const ledger::Receipt& receipt);
// The same appended to `out`, written in place: a batch's receipts are its answer's bulk.
void append_receipt_json(std::string& out, const EventId& event_id, const ledger::Receipt& receipt);

}  // namespace trail::proj
