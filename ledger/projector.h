// Projectors: deterministic views kept in step with the ledger. The writer applies every new
// event to every projector in a write transaction of the view environment (DATA/views), which
// it commits right after the append's own and before it answers, so no reader ever sees an
// acknowledged event without its projections, and the views never hold an event the chain
// does not. The ledger knows nothing of what a view means; it hands each projector its own
// named sub-databases and the event with its plaintext.
//
// Invariants: apply() is a pure function of the view's prior contents and the event: replaying
//             a chain into empty sub-databases reproduces them byte for byte (rebuild relies on
//             it). apply() never rejects an event; what it cannot use it records or ignores.
// Thread safety: apply() runs on the writer thread only; queries run on any thread through
//                ProjectionTables views of their own read transactions.
#pragma once

#include <any>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/bytes.h"
#include "ledger/clock.h"
#include "ledger/data_key.h"
#include "ledger/envelope.h"
#include "ledger/status.h"

namespace trail::ledger {

// A projector's sub-databases inside one transaction, addressed by their index in
// Projector::tables(). Views returned by get() and scan() are valid until the next write
// through this object or until the transaction ends.
class ProjectionTables {
 public:
  virtual ~ProjectionTables() = default;
  virtual Result<std::optional<ByteView>> get(std::size_t table, ByteView key) const = 0;
  // Errors: kInvalid on a read-only view; kBusy when the map is full (the writer grows it and
  // replays the commit); kFatal otherwise.
  virtual Status put(std::size_t table, ByteView key, ByteView value) = 0;
  // Deleting a missing key is not an error.
  virtual Status del(std::size_t table, ByteView key) = 0;
  // Visits entries with key >= `from`, in key order, while `visit` returns true.
  virtual Status scan(std::size_t table, ByteView from,
                      const std::function<bool(ByteView key, ByteView value)>& visit) const = 0;
};

// An earlier event of the same project, as a projector may load it.
struct LoadedEvent {
  EventDraft draft;  // Header fields and plaintext payload.
  TimeUs server_time_us = 0;
};
// Loads event `seq` of the event's project inside the same transaction.
// Errors: kCorrupt when it is missing, does not decode or does not open.
using EventLoader = std::function<Result<LoadedEvent>(std::uint64_t seq)>;

// An event as the writer appends it: envelope fields, assigned place and plaintext payload.
struct AppendedEvent {
  std::string_view project;
  std::uint64_t seq = 0;
  TimeUs server_time_us = 0;
  const EventDraft* draft = nullptr;  // Header fields and plaintext payload.
  const DataKey* key = nullptr;       // The project's data key, to seal what the view stores.
  const EventLoader* load = nullptr;  // Earlier events of the project (e.g. to re-fold a case).
  const DataKey* payload_key = nullptr;  // The key that sealed this event (null: `key`).
  // Shared by the projectors folding this event, in turn on one thread: the first to decode
  // the payload may keep the result here for the others (see proj::case_change_of).
  mutable std::any decoded{};
};

class Projector {
 public:
  virtual ~Projector() = default;
  // Stable name, used for the view's bookkeeping (last applied seq per project).
  virtual std::string_view name() const = 0;
  // Names of the sub-databases this projector owns, created when the ledger opens.
  virtual std::vector<std::string> tables() const = 0;
  // Names of sub-databases an earlier layout of this view owned: deleted at a writable open,
  // once the view caught up in its present tables. Default: none.
  virtual std::vector<std::string> retired_tables() const { return {}; }
  // Folds `event` into the view. Errors are storage errors only (they void the commit).
  virtual Status apply(ProjectionTables& tables, const AppendedEvent& event) = 0;
  // Called once the last event of a transaction has been applied, before flush(), possibly on
  // another thread while the writer commits the chain (nothing else calls the projector
  // meanwhile): does what flush() will need no tables for, such as sealing what it will
  // write. Optional: flush() must do the same itself when this was not called since the last
  // apply(). Default: nothing.
  virtual void prepare_flush() {}
  // Called once the last event of a transaction has been applied, before the views commit:
  // writes what apply() kept back (e.g. a case folded several times in one commit is written
  // once). The data keys apply() was given are still alive. Default: nothing kept back.
  virtual Status flush(ProjectionTables& tables) {
    (void)tables;
    return Status::ok();
  }
  // Called when the transaction apply() wrote into is abandoned, before or after flush() (a
  // failed commit): forget what was kept back, and anything kept of what flush() wrote.
  virtual void discard() {}
};

// What an append's guard (Ledger::append_async) may read: the views inside the writer's
// views transaction, just before the append is applied, so it sees every earlier append, including
// those of the same commit. A projector that keeps state back until flush() must answer
// guards from what it kept back (e.g. CaseProjector::get_in).
// Thread safety: used on the writer thread, during the guard's call only.
class GuardContext {
 public:
  virtual ~GuardContext() = default;
  // The sub-databases of `projector`, read-only. Errors: kNotFound when it is not registered
  // with this ledger.
  virtual Result<const ProjectionTables*> tables(const Projector& projector) const = 0;
  // The project's data key.
  virtual const DataKey& key() const = 0;
};

// Decides inside the writer's transaction whether an append may go ahead: ok, or the status
// the append fails with (nothing of it is written; other appends of the commit go on).
// Runs on the writer thread, so keep it short and never block in it.
using AppendGuard = std::function<Status(const GuardContext&)>;

}  // namespace trail::ledger
