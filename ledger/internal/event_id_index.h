// The idempotency index, `event_ids` in the view environment: each stored event's id names its
// seq and body MAC (docs/FORMAT.md §10). The writer claims ids in it as it appends (writer.cc);
// this projector is how the index is rebuilt from the chain, like any view: by replay, at a
// rebuild, after a machine stop, or when the view environment fell one commit behind.
//
// Why a view and not part of the synced chain: ids are random, so each new id dirties a leaf of
// its own; synced with the chain, the index was most of the bytes every commit wrote. It holds
// nothing the chain does not (the ids are in the envelopes, the MACs are recomputed from the
// opened payloads), and the writer catches it up to the chain before it checks any id.
//
// Invariants: after replaying seqs 1..n of a project, the index holds exactly one entry per
//             event of them, the same bytes the writer put when it appended the event.
// Thread safety: as any Projector (writer thread only).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "ledger/projector.h"

namespace trail::ledger::detail {

inline constexpr std::string_view kEventIdIndexName = "event_ids";

class EventIdIndex final : public Projector {
 public:
  std::string_view name() const override { return kEventIdIndexName; }
  std::vector<std::string> tables() const override { return {std::string(kEventIdIndexName)}; }
  // Recomputes the event's body MAC from its header and payload under the key that sealed it.
  Status apply(ProjectionTables& tables, const AppendedEvent& event) override;

 private:
  std::string header_;  // Reused buffers.
  std::string prefix_;
};

}  // namespace trail::ledger::detail
