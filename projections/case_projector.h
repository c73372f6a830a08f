// The case view: current state of every case, its lookups (by owner, type, parent), and its
// field-level change history ("who changed what, when, how, from which prior value", and the
// submission that caused it with its form xmlns), kept in step with the ledger by folding each
// case event (and each form submission, for its xmlns) with the append, before it is answered.
//
// Semantics (documented in docs/CASES.md):
//   - An update, close, index or reassignment of a case that does not exist creates it
//     implicitly (as CommCare HQ does); the history says so (action implicit_create).
//   - A close of a closed case changes nothing; the history records it (close_closed).
//   - An index to a case that does not exist is kept: the parent may arrive later.
//   - A field set to the value it already had is recorded with unchanged = true.
//   - State follows device time within a user's burst of submissions (kReorderWindowUs): an
//     event older, by its device clock, than one the same user sent just before re-folds the
//     case's events in device-time order. The history stays in arrival order, with the prior
//     values the server held when each event arrived.
// Encryption at rest: every value is sealed with the project's data key (deterministically,
// so rebuilds are byte-identical); keys hold only project ids, case ids, case types, owner ids,
// user ids, times and seqs.
// Thread safety: apply() on the writer thread; queries from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "ledger/ledger.h"
#include "ledger/projector.h"
#include "projections/bucket_log.h"
#include "projections/case_payload.h"
#include "projections/kept_states.h"
#include "schema/views.capnp.h"

namespace trail::proj {

// One event of a case's history index: its seq, and the time its device gave it (which the
// fold of a late event needs, without loading the event).
struct HistoryEntry {
  std::uint64_t seq = 0;
  TimeUs client_us = 0;
};

struct CaseState {
  EventId case_id{};
  std::string case_type;
  std::string name;
  std::string owner;
  bool closed = false;
  std::vector<std::pair<std::string, std::string>> fields;  // Sorted by name.
  std::vector<CaseIndexData> indices;                       // Sorted by name.
  TimeUs opened_us = 0;
  TimeUs modified_us = 0;
  TimeUs closed_us = 0;
  std::string last_user;
  std::uint64_t last_seq = 0;
  bool implicit = false;
  TimeUs last_client_us = 0;  // Latest device time among the events folded.
  // Where the run of the latest event began (its seq and server time): the run is the events
  // reconciled together, the same user's, each within kReorderWindowUs of the run's first.
  std::uint64_t run_first_seq = 0;
  TimeUs run_first_us = 0;
  // Storage, not state: the case's latest events (ascending seq) that are not yet in one of
  // its history chunks (docs/CASES.md, "Storage").
  std::vector<HistoryEntry> recent;
};

// Events of one case by the same user whose server times lie within this window of each other
// are folded in device-time order (date_modified), as CommCare HQ reconciles a phone's backlog
// that reached the server out of order. The history keeps arrival order.
inline constexpr TimeUs kReorderWindowUs = 3600LL * 1'000'000;

struct FieldChange {
  schema::Action action = schema::Action::UPDATE;
  std::string field;
  std::optional<std::string> prior;
  std::string value;
  bool unchanged = false;
};

struct HistoryItem {
  EventId case_id{};
  std::uint64_t seq = 0;
  TimeUs server_time_us = 0;
  TimeUs client_time_us = 0;
  std::string actor;
  std::string device_id;
  schema::Channel channel = schema::Channel::API;
  EventId event_id{};
  std::optional<EventId> via;
  schema::Kind kind = schema::Kind::CASE_UPDATED;
  std::string form_xmlns;  // The submission's form (xmlns) when `via` names one Trail holds.
  std::vector<FieldChange> changes;
};

struct CaseFilter {
  std::optional<std::string> owner;
  std::optional<std::string> case_type;
  std::optional<EventId> parent;
  std::optional<bool> open;  // true: open only; false: closed only.
};

struct HistoryFilter {
  std::optional<EventId> case_id;
  std::optional<std::string> actor;
  std::optional<TimeUs> from_us;  // Server time, inclusive.
  std::optional<TimeUs> to_us;    // Server time, exclusive.
};

std::string_view action_name(schema::Action action);

class CaseProjector final : public ledger::Projector {
 public:
  // A late event (one its user's device dated before the case's latest, within
  // kReorderWindowUs) changes the reconciled order. By default only what follows it in that
  // order is folded again, from the state before it; with `refold_from_scratch` every event
  // of the case is (the reference the tests hold the default to: the states are identical).
  explicit CaseProjector(bool refold_from_scratch = false);
  // How many late events were folded that way (not by folding the whole case), for tests.
  std::uint64_t late_events_folded_in_place() const { return in_place_; }

  // A user's entries in case.history_by_user share one value per this many aligned seqs.
  static constexpr std::uint64_t kUserBucketSeqs = 64;

  // "/5": case.history_by_user holds a user's entries in buckets of kUserBucketSeqs seqs, and
  // the history chunks are in case.chunks, apart from the states.
  // "/4": history chunks hold each event's device time beside its seq, and the state where the
  // latest run began (docs/CASES.md). A view written in an earlier layout is rebuilt from the
  // chains at open (LedgerOptions::catch_up_views): a new name starts from empty tables.
  std::string_view name() const override { return "case/5"; }
  std::vector<std::string> tables() const override;
  std::vector<std::string> retired_tables() const override { return {"case.state", "case.history"}; }
  Status apply(ledger::ProjectionTables& tables, const ledger::AppendedEvent& event) override;
  // Builds and seals the records of the states folded in this transaction (flush() puts them).
  void prepare_flush() override;
  // Case states folded in this transaction are kept in memory and written once, here.
  Status flush(ledger::ProjectionTables& tables) override;
  void discard() override;

  // The case's state, or nullopt. Errors: kCorrupt when a stored value does not open.
  Result<std::optional<CaseState>> get(const ledger::Ledger& ledger, std::string_view project,
                                       const EventId& case_id) const;
  // The same inside the writer's transaction, for an append guard: a state folded earlier in
  // the transaction (kept back until flush) is answered from memory. Writer thread only.
  Result<std::optional<CaseState>> get_in(const ledger::GuardContext& context,
                                          std::string_view project, const EventId& case_id) const;
  // Cases matching `filter` in case-id order, starting after `after`, at most `limit`.
  Result<std::vector<CaseState>> list(const ledger::Ledger& ledger, std::string_view project,
                                      const CaseFilter& filter, std::optional<EventId> after,
                                      std::size_t limit) const;
  // History entries matching `filter`: per case in seq order; by actor or time in seq order.
  Result<std::vector<HistoryItem>> history(const ledger::Ledger& ledger, std::string_view project,
                                           const HistoryFilter& filter, std::size_t limit) const;

 private:
  // States folded in the open transaction and not yet written, by state key. Writer thread only.
  struct Pending {
    CaseState state;
    const ledger::DataKey* key = nullptr;
  };
  std::unordered_map<std::string, Pending> pending_;  // Flushed in key order.
  // pending_'s records, sealed by prepare_flush(), in key order; empty until it runs.
  std::vector<std::pair<const std::string*, std::string>> sealed_;
  // States as this instance last wrote them, by state key (docs/CASES.md, "States kept in
  // memory"). Writer thread only.
  KeptStates<CaseState> written_{8192};
  // case.history_by_user: each user's log. Writer thread only.
  BucketLog by_user_;
  bool from_scratch_ = false;
  std::uint64_t in_place_ = 0;  // Writer thread only.
};

}  // namespace trail::proj
