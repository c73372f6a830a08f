// Where the ledger keeps each project's RFC 6962 Merkle tree and its signed checkpoints
// (docs/FORMAT.md, "Sub-databases"):
//   merkle       project_key || u8 level || u64 index  ->  32-byte hash of a complete subtree
//                (level 0: the event hashes; level L node i covers events i*2^L+1 .. (i+1)*2^L)
//   checkpoints  project_key || u64 tree size           ->  the signed note, exactly as signed
// The tree grows inside the append's own transaction, so a commit holds its events and their
// nodes or neither.
//
// Thread safety: free functions over one transaction, used by one thread at a time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ledger/internal/lmdb_env.h"
#include "ledger/merkle.h"

namespace trail::ledger::detail {

std::string merkle_key(std::string_view project, unsigned level, std::uint64_t index);
std::string checkpoint_key(std::string_view project, std::uint64_t size);

// Reads the nodes of `project` in `txn` (a ReadTxn or WriteTxn). Errors: kCorrupt for a
// missing or malformed node.
template <typename Txn>
merkle::NodeGet node_reader(const Txn& txn, MDB_dbi dbi, std::string project) {
  return [&txn, dbi, project = std::move(project)](unsigned level,
                                                   std::uint64_t index) -> Result<Digest> {
    TRAIL_ASSIGN_OR_RETURN(auto value, txn.get(dbi, as_bytes(merkle_key(project, level, index))));
    if (!value) {
      return Status::error(Code::kCorrupt, "Merkle node " + std::to_string(level) + "/" +
                                               std::to_string(index) + " of " + project +
                                               " is missing");
    }
    return merkle::digest_from_bytes(*value);
  };
}

// How many leaves of `project`'s tree are stored (at most `head_seq`): O(log n) reads.
template <typename Txn>
Result<std::uint64_t> stored_tree_size(const Txn& txn, MDB_dbi dbi, std::string_view project,
                                       std::uint64_t head_seq) {
  // Leaves are stored densely from index 0: find the first missing one.
  std::uint64_t low = 0;
  std::uint64_t high = head_seq;  // Answer in [low, high].
  while (low < high) {
    const std::uint64_t mid = low + (high - low) / 2;
    TRAIL_ASSIGN_OR_RETURN(auto value, txn.get(dbi, as_bytes(merkle_key(project, 0, mid))));
    if (value) {
      low = mid + 1;
    } else {
      high = mid;
    }
  }
  return low;
}

// The latest checkpoint of `project`: its size and note. nullopt when none was issued.
template <typename Txn>
Result<std::optional<std::pair<std::uint64_t, std::string>>> latest_checkpoint(
    const Txn& txn, MDB_dbi dbi, std::string_view project) {
  std::optional<std::pair<std::uint64_t, std::string>> out;
  Cursor cursor = txn.cursor(dbi);
  const std::string next = checkpoint_key(project, UINT64_MAX);
  TRAIL_ASSIGN_OR_RETURN(bool found, cursor.seek(as_bytes(next)));
  if (found && as_chars(cursor.key()) == next) {
    out.emplace(UINT64_MAX, std::string(as_chars(cursor.value())));
    return out;
  }
  // One step back from the first key after this project's range.
  TRAIL_ASSIGN_OR_RETURN(bool positioned, found ? cursor.prev() : cursor.last());
  if (!positioned) return out;
  const ByteView key = cursor.key();
  const std::string prefix = checkpoint_key(project, 0).substr(0, 1 + project.size());
  if (key.size() != prefix.size() + 8 || as_chars(key.subspan(0, prefix.size())) != prefix) {
    return out;
  }
  out.emplace(get_u64_be(key.data() + prefix.size()), std::string(as_chars(cursor.value())));
  return out;
}

}  // namespace trail::ledger::detail
