// The sync index: for a phone whose user owns a set of owner ids (the user and the groups it
// belongs to), which cases changed since the phone last synced and which cases left its set
// (closed, or re-assigned to an owner outside the set), so the phone can download the first
// and purge the second. A full restore is the same query from seq 0.
//
// The view keeps, per case, its owner, whether it is closed, and the seq of its last case
// event; and, per owner, a change log: one entry for every case event that touches a case the
// owner holds before or after the event, saying whether the case was "in" the owner's set
// (owned by it and open) just before and just after the event.
//
// Folding (case.created/updated/closed/reopened/indexed/reassigned with a subject and a
// CaseChange payload; anything else, or a payload that does not decode, is ignored, as the case
// view ignores it):
//   - A case not yet seen is created by any case event, open, with owner "" until one is set.
//   - A non-empty payload owner sets the owner; case.closed closes; case.reopened reopens.
//   - Every such event writes a log entry for the owner after it and, when the owner changed,
//     one for the owner before it; entries that are "out" both before and after are not
//     written (an owner's closed case changing does not concern its phones). Owner "" has no
//     log: an unowned case is in no phone's set.
//
// changes(owners O, since S), answered as of H = head_seq, the view's last applied seq (read
// before the query's snapshot, so the view holds at least everything up to H; entries after H
// are ignored, so the answer is exactly as of H whatever was appended meanwhile):
//   in(c, t)  := at seq t, case c is open and its owner is in O.
//   changed   := { c : in(c, H) and c has a case event with seq in (S, H] }
//                (open, owned by O now, changed since S: download it).
//   left      := { c : in(c, S) and not in(c, H) }
//                (the phone held it after syncing at S; it was since closed or re-assigned
//                outside O: purge it). A case that entered and left the set after S is not in
//                `left` (the phone never had it); a case closed at or before S is in neither.
//   Both sorted by case id. From S = 0: changed = every open case owned by O; left = {}.
// A phone that applies the answer (download `changed`, purge `left`) and keeps head_seq as its
// next S holds exactly { c : in(c, H) }. The same O must be used from sync to sync: when the
// user's owner set changes, restore from 0. Owner "" in O matches nothing.
// Cost: each owner in O: its log buckets from the one of S + 1 on; a restore reads its whole log
//   (its history, not only its open cases).
//
// Invariants: apply() is a pure function of the view and the event (rebuilds are
//   byte-identical). For every owner o and case c, the last log entry of (o, c) at or before t
//   says "in" exactly when c is owned by o and open at t (no entry: not in).
// Storage: an owner's log entries are kept in buckets of kBucketSeqs aligned seqs, one sealed
//   value each; a bucket is a function of the events alone (not of how they were committed), so
//   rebuilds stay byte-identical. The writer keeps the records and buckets it wrote in memory
//   for the next events, as the case view keeps its states (projections/kept_states.h).
// Encryption at rest: values (case record: owner, closed, last seq; log bucket: its entries'
//   seqs, case ids and in/out flags) are sealed deterministically with the project's data key,
//   bound to table and key. Keys hold only project ids, case ids, owner ids and seqs / kBucketSeqs.
// Errors: changes() returns kConflict when S is beyond the view's head (a sync token from
//   another data directory or from before a restore: restore from 0); kCorrupt when a stored
//   value does not open or a key is malformed; storage errors otherwise. A project without
//   events answers empty with head_seq 0.
// Thread safety: apply() on the writer thread; queries from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ledger/bytes.h"
#include "ledger/ledger.h"
#include "ledger/projector.h"
#include "ledger/status.h"
#include "projections/bucket_log.h"
#include "projections/kept_states.h"

namespace trail::proj {

struct SyncChanges {
  std::vector<EventId> changed;  // Sorted by case id.
  std::vector<EventId> left;     // Sorted by case id.
  std::uint64_t head_seq = 0;    // The answer is exactly as of this seq: the next `since`.
};

// The view's record of one case.
struct SyncCase {
  std::string owner;  // "" until an event names one.
  bool closed = false;
  std::uint64_t last_seq = 0;  // Seq of the last event that created, moved, closed or reopened it.
};

class SyncProjector final : public ledger::Projector {
 public:
  // Entries of an owner's change log with seqs in one such aligned range share one sealed
  // value (a bucket), so a batch of one owner's events seals and puts a value per range rather
  // than one per event. Bounded so that a full bucket stays inside an LMDB page.
  static constexpr std::uint64_t kBucketSeqs = 64;

  SyncProjector();

  std::string_view name() const override { return "sync/2"; }
  // sync.case    (project, case id)             -> sealed {owner, closed, last seq}
  // sync.changes (project, owner, seq / 64)     -> sealed [seq u64, case id, flags u8]...,
  //                                                ascending seq (flags: in before 1, after 2)
  // project and owner are length-prefixed (an owner over 254 bytes: 0xff, then its SHA-256);
  // ids 16 bytes; seq u64 big-endian. (View "sync", before: one sync.log entry per event.)
  std::vector<std::string> tables() const override;
  std::vector<std::string> retired_tables() const override { return {"sync.log"}; }
  Status apply(ledger::ProjectionTables& tables, const ledger::AppendedEvent& event) override;
  // Writes the case records and log buckets apply() changed, once each per transaction.
  Status flush(ledger::ProjectionTables& tables) override;
  void discard() override;

  // See the header comment.
  Result<SyncChanges> changes(const ledger::Ledger& ledger, std::string_view project,
                              const std::set<std::string>& owners, std::uint64_t since_seq) const;
  // The view's record of `case_id` now, or nullopt when it has not seen the case.
  Result<std::optional<SyncCase>> get(const ledger::Ledger& ledger, std::string_view project,
                                      const EventId& case_id) const;

 private:
  struct PendingCase {
    SyncCase state;
    const ledger::DataKey* key = nullptr;
    bool dirty = false;  // Changed in this transaction: written at flush.
  };
  // The case's record as this transaction has it, or null when the view has never seen it.
  Result<PendingCase*> case_record(ledger::ProjectionTables& tables,
                                   const ledger::AppendedEvent& event, const EventId& case_id);
  Status log_entry(ledger::ProjectionTables& tables, const ledger::AppendedEvent& event,
                   std::string_view owner, const EventId& case_id, bool in_before,
                   bool in_after);

  // The case records this transaction changed (writer thread only), and those the last
  // transactions wrote, kept for the next events as the case view keeps its states
  // (projections/kept_states.h).
  std::unordered_map<std::string, PendingCase> pending_cases_;
  KeptStates<SyncCase> written_cases_{65536};
  // sync.changes: each owner's log.
  BucketLog log_;
};

}  // namespace trail::proj
