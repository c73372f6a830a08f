// The access audit: every record.read event ("somebody read personal data") and every
// break_glass.granted event ("somebody claimed emergency access to a protected case"), indexed
// by the cases they name, by their reader and by server time, so that "who looked at this
// case", "what did this user look at" and "what was read last night" are each one range scan;
// and the break-the-glass grants in force, so that the server can ask "may this user read this
// protected case now". The server appends a record.read event on every read
// (make_record_read builds it) and a break_glass.granted event when a user breaks the glass;
// the view folds each one with the append, before it is answered.
//
// Semantics:
//   - Every record.read event is indexed once by reader (its actor) and time, and once per
//     distinct subject by case. Its subjects are the payload's subjects in the order given,
//     followed by the envelope subject when that is set and not among them. Its row carries
//     the payload's outside_capture flag and grant id.
//   - A record.read event whose payload is not a RecordRead (or does not decode) is still an
//     access and is still indexed: with an empty `what` and `reason`, and the envelope subject
//     as its only subject when it has one.
//   - Every break_glass.granted event is an access row too, indexed exactly like a read (so
//     reads() lists it among the reads, in seq order): `what` "break_glass", reader = actor,
//     subjects = [envelope subject] (none when it has none), and reason and address from the
//     AccountChange detail fields `reason` and `address`; grant_expires_us from the detail
//     field `expires_us` (decimal microseconds since the epoch).
//   - Such an event also makes a grant for (envelope subject, actor), replacing any earlier
//     grant of that pair (even one that lasts longer). It makes none when its payload is not an
//     AccountChange (or does not decode), its expires_us is not a decimal integer, or it has no
//     envelope subject; it is then still indexed, with its header fields only (empty reason and
//     address, grant_expires_us 0), so the audit shows the attempt but nothing it did not make.
//   - Other kinds are ignored.
// Invariants: apply() is a pure function of the view and the event (rebuilds are
//   byte-identical). Rows are stored under (project, seq); every index key names a stored row.
//   Server time never decreases along a chain, so every query's (time, seq) order is seq order.
//   A stored grant names the event that made it, which is a stored break_glass row.
// Encryption at rest: each row (reader, device, channel, what, reason, subjects, ids, times,
//   address, endpoint, flags) and each grant (expiry, event id) is sealed deterministically with
//   the project's data key, bound to its table and key. Keys hold only the project id, case
//   ids, reader (user) ids, server times and seqs.
// Compatibility: rows sealed at row version 2 (before outside_capture, grant and
//   grant_expires_us) still decode, with those fields false, nullopt and 0. Record.read payloads
//   encoded before RecordRead.outsideCapture and .grant decode with false and nullopt.
// Errors: queries return kCorrupt when a stored row or grant does not open or decode, or an
//   index key is malformed or names a missing row; storage errors otherwise. An unknown
//   project reads as empty.
// Thread safety: apply() on the writer thread; queries from any thread (each in one read
//   snapshot); make_record_read and the codecs are free functions without shared state
//   (make_record_read draws its id from libsodium, so sodium_init() must have run).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/bytes.h"
#include "ledger/clock.h"
#include "ledger/envelope.h"
#include "ledger/ledger.h"
#include "ledger/projector.h"
#include "ledger/status.h"
#include "schema/event.capnp.h"

namespace trail::proj {

// The plaintext payload of a record.read event (schema::Payload.recordRead).
struct RecordReadData {
  std::string what;               // case, history, search, export, sync ...
  std::vector<EventId> subjects;  // Ids of the records read, in the order given.
  std::string reason;             // Free text; may be personal: stored sealed only.
  std::string address;            // The reader's network address, when read over the network.
  std::string endpoint;           // How: "GET /v1/projects/{p}/cases/{id}", "trailctl case show".
  // Audited case types: the reader's capture scope does not hold the case read.
  bool outside_capture = false;
  // The event id of the break-the-glass grant the read relied on. (Initialised so that the
  // callers' positional aggregate initialisers that stop at `endpoint` stay warning-free.)
  std::optional<EventId> grant = std::nullopt;
};

// Encodes as a Cap'n Proto Payload message (deterministic: the same value, the same bytes).
// `grant` is written only when set.
std::string encode_record_read(const RecordReadData& read);
// Decodes a payload; an empty or absent grant is nullopt. Errors: kCorrupt when it is not a
// Cap'n Proto Payload, or a subject or a non-empty grant is not 16 bytes; kNotFound when it is a
// payload of another kind.
Result<RecordReadData> decode_record_read(std::string_view payload);

// The record.read draft for one read: kind RECORD_READ, the given header fields and a
// RecordRead payload (every field of `read`, the third form; the new fields at their defaults in
// the first two). The envelope subject is set when exactly one record was read (it is an
// opaque id), else left empty. The first form draws a time-ordered UUIDv7 as the event id; the
// second takes the caller's (e.g. derived from a request id, so a retried request is a
// duplicate rather than a second read). Nothing is validated here: append() checks limits.
ledger::EventDraft make_record_read(std::string actor, std::string device_id,
                                    schema::Channel channel, std::string what,
                                    std::vector<EventId> subjects, std::string reason,
                                    TimeUs client_time);
ledger::EventDraft make_record_read(std::string actor, std::string device_id,
                                    schema::Channel channel, std::string what,
                                    std::vector<EventId> subjects, std::string reason,
                                    TimeUs client_time, const EventId& event_id);
ledger::EventDraft make_record_read(std::string actor, std::string device_id,
                                    schema::Channel channel, RecordReadData read,
                                    TimeUs client_time, const EventId& event_id);

// One read, or one break-the-glass grant, as the audit shows it.
struct AccessRow {
  std::uint64_t seq = 0;
  TimeUs server_time_us = 0;
  TimeUs client_time_us = 0;
  std::string reader;  // The event's actor (a user id).
  std::string device_id;
  schema::Channel channel = schema::Channel::API;
  std::string what;               // "break_glass" for a grant.
  std::string reason;
  std::vector<EventId> subjects;  // All of them, whichever one the query matched.
  EventId event_id{};
  std::string address;
  std::string endpoint;
  bool outside_capture = false;   // Reads: as RecordReadData. Grants: false.
  std::optional<EventId> grant;   // Reads: as RecordReadData. Grants: nullopt.
  TimeUs grant_expires_us = 0;    // Grants: when it lapses. 0 for reads and grants that made none.
};

// A break-the-glass grant in force.
struct Grant {
  EventId event_id{};      // The break_glass.granted event that made it.
  TimeUs expires_us = 0;   // Server time (µs since the epoch) from which it no longer holds.
};

// Every set field must hold. Times are server times.
struct AccessFilter {
  std::optional<EventId> case_id;       // Rows whose subjects include this case.
  std::optional<std::string> reader;    // Rows by this actor.
  std::optional<TimeUs> from_us;        // Inclusive.
  std::optional<TimeUs> to_us;          // Exclusive.
  std::optional<std::uint64_t> after_seq;  // Only seq > after_seq: to page on from a last row.
};

class AccessProjector final : public ledger::Projector {
 public:
  // "/2": no access.by_time index (a time range is a seq range of access.reads); a directory
  // written before is caught up at open (LedgerOptions::catch_up_views).
  std::string_view name() const override { return "access/2"; }
  std::vector<std::string> retired_tables() const override { return {"access.by_time"}; }
  // access.reads     (project, seq)                          -> sealed row (reads and grants)
  // access.by_case   (project, case id, server time, seq)    -> empty
  // access.by_reader (project, reader, server time, seq)     -> empty
  // access.grants    (project, case id, reader)              -> sealed {expires_us, event id}
  // project and reader are length-prefixed; ids 16 bytes; seq u64 big-endian; time i64
  // big-endian with the sign bit flipped (order-preserving).
  std::vector<std::string> tables() const override;
  Status apply(ledger::ProjectionTables& tables, const ledger::AppendedEvent& event) override;

  // Reads and grants matching `filter`, in seq order, at most `limit` (0: all). Uses the
  // by-case index when a case is given, else the by-reader index when a reader is given, each
  // scanned only over [from_us, to_us); else the rows themselves from the first seq at or
  // after from_us (Ledger::first_seq_at_or_after) until one reaches to_us.
  Result<std::vector<AccessRow>> reads(const ledger::Ledger& ledger, std::string_view project,
                                       const AccessFilter& filter, std::size_t limit) const;

  // The latest grant of `case_id` to `reader` in `project` when it is still live
  // (expires_us > now_us); nullopt when there is none or it has expired. The caller picks
  // `now_us` (server time) so that the decision and its record use one clock reading.
  // Errors: kCorrupt when the stored grant does not open or decode; storage errors otherwise.
  // An unknown project has no grants.
  Result<std::optional<Grant>> grant(const ledger::Ledger& ledger, std::string_view project,
                                     const EventId& case_id, std::string_view reader,
                                     TimeUs now_us) const;
};

}  // namespace trail::proj
