// Logs of fixed-size entries stored in buckets of aligned seqs: one value per (log, seq /
// bucket size), the entries ascending. A view keeps one such log per owner or per user.
//
// Entries appended in a transaction wait in memory, and each bucket they touch is written
// once, at flush: a batch of one log's events puts a value per bucket rather than one per
// event. The buckets written are kept in memory for the next events under KeptStates' rules (a
// gap in a project's seqs, or an abandoned transaction, forgets them), so the writer seldom
// reads a bucket back. A bucket depends on the events alone, not on how they were committed,
// so rebuilds are byte-identical.
// Thread safety: the writer thread only (read_stored() from any thread).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>

#include "ledger/data_key.h"
#include "ledger/projector.h"
#include "ledger/status.h"
#include "projections/kept_states.h"

namespace trail::proj {

class BucketLog {
 public:
  struct Options {
    std::size_t table = 0;         // The view's table index (Projector::tables()).
    std::string_view table_name;   // Its name: bound into a sealed bucket's associated data.
    std::size_t entry_bytes = 0;   // Every entry's size.
    bool sealed = false;           // Values sealed with the project's data key, or stored plain.
    std::size_t kept_max = 8192;   // Buckets kept in memory, at most.
  };
  explicit BucketLog(Options options) : options_{options}, written_{options.kept_max} {}

  // Every event the view folds, in order (KeptStates::saw).
  void saw(std::string_view project, std::uint64_t seq) { written_.saw(project, seq); }
  // The entries of bucket `bucket_key` as this transaction has them, to append to: from memory,
  // else from the table. `key` seals it at flush. Errors: kCorrupt when the stored bucket does
  // not open or is malformed; storage errors.
  Result<std::string*> entries(ledger::ProjectionTables& tables, std::string bucket_key,
                               const ledger::DataKey& key);
  // Writes every bucket appended to in this transaction, then keeps them. On failure,
  // forgets everything (as discard()).
  Status flush(ledger::ProjectionTables& tables);
  void discard();

  // A stored bucket's entries (for queries). Errors: kCorrupt as entries().
  Status read_stored(const ledger::DataKey& key, ByteView bucket_key, ByteView stored,
                     std::string& entries) const;

 private:
  struct Pending {
    std::string entries;
    const ledger::DataKey* key = nullptr;
  };
  Options options_;
  std::unordered_map<std::string, Pending> pending_;
  KeptStates<std::string> written_;
};

}  // namespace trail::proj
