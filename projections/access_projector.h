// The access audit: every record.read event ("somebody read personal data"), indexed by the
// cases it read, by its reader and by server time, so that "who looked at this case", "what
// did this user look at" and "what was read last night" are each one range scan. The server
// appends a record.read event on every read (make_record_read builds it); the view folds each
// one inside the append's commit.
//
// Semantics:
//   - Every record.read event is indexed once by reader (its actor) and time, and once per
//     distinct subject by case. Its subjects are the payload's subjects in the order given,
//     followed by the envelope subject when that is set and not among them.
//   - A record.read event whose payload is not a RecordRead (or does not decode) is still an
//     access and is still indexed: with an empty `what` and `reason`, and the envelope subject
//     as its only subject when it has one.
//   - Other kinds are ignored.
// Invariants: apply() is a pure function of the view and the event (rebuilds are
//   byte-identical). Rows are stored under (project, seq); every index key names a stored row.
//   Server time never decreases along a chain, so every query's (time, seq) order is seq order.
// Encryption at rest: each row (reader, device, channel, what, reason, subjects, ids, times) is
//   sealed deterministically with the project's data key, bound to its table and key. Keys hold
//   only the project id, case ids, reader (user) ids, server times and seqs.
// Errors: queries return kCorrupt when a stored row does not open or decode, or an index key is
//   malformed or names a missing row; storage errors otherwise. An unknown project reads as
//   empty.
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
};

// Encodes as a Cap'n Proto Payload message (deterministic: the same value, the same bytes).
std::string encode_record_read(const RecordReadData& read);
// Decodes a payload. Errors: kCorrupt when it is not a Cap'n Proto Payload or a subject is not
// 16 bytes; kNotFound when it is a payload of another kind.
Result<RecordReadData> decode_record_read(std::string_view payload);

// The record.read draft for one read: kind RECORD_READ, the given header fields and a
// RecordRead payload. The envelope subject is set when exactly one record was read (it is an
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

// One read as the audit shows it.
struct AccessRow {
  std::uint64_t seq = 0;
  TimeUs server_time_us = 0;
  TimeUs client_time_us = 0;
  std::string reader;  // The event's actor (a user id).
  std::string device_id;
  schema::Channel channel = schema::Channel::API;
  std::string what;
  std::string reason;
  std::vector<EventId> subjects;  // All of them, whichever one the query matched.
  EventId event_id{};
  std::string address;
  std::string endpoint;
};

// Every set field must hold. Times are server times.
struct AccessFilter {
  std::optional<EventId> case_id;       // Reads whose subjects include this case.
  std::optional<std::string> reader;    // Reads by this actor.
  std::optional<TimeUs> from_us;        // Inclusive.
  std::optional<TimeUs> to_us;          // Exclusive.
  std::optional<std::uint64_t> after_seq;  // Only seq > after_seq: to page on from a last row.
};

class AccessProjector final : public ledger::Projector {
 public:
  std::string_view name() const override { return "access"; }
  // access.reads     (project, seq)                          -> sealed row
  // access.by_case   (project, case id, server time, seq)    -> empty
  // access.by_reader (project, reader, server time, seq)     -> empty
  // access.by_time   (project, server time, seq)             -> empty
  // project and reader are length-prefixed; ids 16 bytes; seq u64 big-endian; time i64
  // big-endian with the sign bit flipped (order-preserving).
  std::vector<std::string> tables() const override;
  Status apply(ledger::ProjectionTables& tables, const ledger::AppendedEvent& event) override;

  // Reads matching `filter`, in seq order, at most `limit` (0: all). Uses the by-case index
  // when a case is given, else the by-reader index when a reader is given, else the by-time
  // index; each is scanned only over [from_us, to_us).
  Result<std::vector<AccessRow>> reads(const ledger::Ledger& ledger, std::string_view project,
                                       const AccessFilter& filter, std::size_t limit) const;
};

}  // namespace trail::proj
