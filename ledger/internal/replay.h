// Replays stored events into projectors: how a rebuild fills empty views, and how the writer
// brings views that fell behind their chain up to date before it folds anything new.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "ledger/data_key.h"
#include "ledger/internal/lmdb_env.h"
#include "ledger/internal/projection_tables.h"

namespace trail::ledger::detail {

using KeyLookup = std::function<Result<std::shared_ptr<const DataKey>>(std::uint32_t key_id)>;

// Applies events after_seq+1 .. to_seq of `project`, read through `txn` (the chain's
// environment), to every projector in `bindings`, inside `views` (the view environment), and
// records to_seq there as their last applied seq. `project_key` is the project's data key
// (what projectors seal with); `keys` opens each event's payload.
// Errors: kCorrupt when an event is missing, does not decode or does not open; storage errors.
Status replay(const WriteTxn& txn, WriteTxn& views, std::string_view project, std::uint64_t after_seq,
              std::uint64_t to_seq, const std::vector<ProjectorBinding>& bindings,
              const DataKey& project_key, const KeyLookup& keys);

// Event `seq` of `project`, decoded and opened, read through `txn`.
// Errors: kCorrupt when it is missing, does not decode or does not open.
Result<LoadedEvent> load_event(const WriteTxn& txn, std::string_view project, std::uint64_t seq,
                               const KeyLookup& keys);
// The last seq of `project` that `projector` applied (0: none), from the view environment.
Result<std::uint64_t> applied_seq(const WriteTxn& views, std::string_view projector,
                                  std::string_view project);

}  // namespace trail::ledger::detail
