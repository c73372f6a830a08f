// Intake: turns what a phone submits (an XForm instance with OpenRosa <meta> and CommCare
// CaseXML 1.0 / 2.0 case blocks) into the ledger events that record it: one form.submitted
// event holding the XML byte for byte, then the case events its case blocks cause, each
// naming the form in `via`. Every id is derived deterministically from the form's instanceID,
// so re-submitting the same XML yields the same drafts and the ledger reports duplicates.
// docs/INTAKE.md gives the semantics and every decision (id mapping, dates, limits, gaps).
//
// Errors: parse_submission returns kInvalid, naming the problem or the limit (never echoing a
// value from the form, which may be personal data), for: a DOCTYPE or entity declaration,
// a document over max_bytes or nested deeper than max_depth, malformed XML, a missing
// instanceID, a case block without a case_id or with an empty one, a case that indexes
// itself, an index with an empty relationship, an action repeated within a block, and any
// name, value, id or count over the limits below.
// Thread safety: free functions without shared state.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/bytes.h"
#include "ledger/clock.h"
#include "ledger/envelope.h"
#include "ledger/status.h"
#include "schema/event.capnp.h"

namespace trail::proj {

// Limits. Each is named in the error that enforces it.
inline constexpr std::size_t kIntakeBytesMax = 16U << 20U;  // Default IntakeOptions::max_bytes.
inline constexpr std::size_t kIntakeDepthMax = 64;          // Default IntakeOptions::max_depth.
inline constexpr std::size_t kIntakeTagsMax = 1'000'000;    // '<' bytes, counted before parsing.
inline constexpr std::size_t kCaseBlocksMax = 1000;         // Case blocks in one form.
inline constexpr std::size_t kIntakeFieldsMax = 1024;       // Properties in one create/update.
inline constexpr std::size_t kIndicesPerBlockMax = 64;      // Children of one <index>.
inline constexpr std::size_t kAttachmentsPerBlockMax = 64;  // Children of one <attachment>.
inline constexpr std::size_t kIntakeNameBytesMax = 128;     // Property, index, attachment names.
inline constexpr std::size_t kIntakeValueBytesMax = 64U << 10U;  // One property value.
inline constexpr std::size_t kIntakeCaseTextBytesMax = 256;      // case_type, case_name, owner_id.
inline constexpr std::size_t kIntakeIdBytesMax = 1024;  // instanceID, case_id, index target.

struct IntakeOptions {
  std::string fallback_actor;  // Used when the form names no user (meta userID / username).
  std::string device_id;       // Used when meta has no deviceID.
  schema::Channel channel = schema::Channel::MOBILE_FORM;
  std::size_t max_bytes = kIntakeBytesMax;
  std::size_t max_depth = kIntakeDepthMax;  // Element nesting; the root element is depth 1.
};

struct Submission {
  std::string xmlns;          // The form id: the root's namespace URI, else its id attribute
                              // (ODK); may be empty.
  std::string instance_id;    // meta/instanceID as given, surrounding whitespace trimmed.
  std::string deprecated_id;  // meta/deprecatedID (an edit names the instance it revises).
  // [0] is the form.submitted event; then the case events in document order.
  std::vector<ledger::EventDraft> events;
};

// Parses one submission. Nothing is appended: the caller appends `events` in one batch.
Result<Submission> parse_submission(std::string_view xml, const IntakeOptions& options);

// Adds a file sent with the form (a multipart part beside xml_submission_file: a photo, a
// signature) as an attachment.added event after the others: payload Attachment {name,
// content type, body}, via the form, the form's actor, device, channel and device time, and
// an event id derived from the instanceID and the name, so re-sending is a duplicate.
// Errors: kInvalid for an empty or over-long name or content type, or a full batch.
Status add_file(Submission& submission, std::string_view name, std::string_view content_type,
                std::string_view body);

// The event id of the form whose meta/instanceID is `instance_id`: the UUID itself when the
// text (after an optional "uuid:" prefix) is a canonical lower-case UUID, else a v8 UUID
// derived with SHA-256. Lets a caller find a form by its instanceID.
EventId form_event_id(std::string_view instance_id);

// The subject of the case whose CaseXML case_id is `case_id`: the UUID itself when the text is
// a canonical lower-case UUID, else a v8 UUID derived with SHA-256 (see docs/INTAKE.md).
EventId case_subject_id(std::string_view case_id);

// Parses a device time leniently: RFC 3339, a date alone (midnight UTC), a date-time without
// a zone (UTC), hour-only or HHMM offsets, fractions of any length. nullopt when unparseable.
std::optional<TimeUs> parse_device_time(std::string_view text);

}  // namespace trail::proj
