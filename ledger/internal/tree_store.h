// Where the ledger keeps each project's RFC 6962 Merkle tree and its signed checkpoints
// (docs/FORMAT.md, "Sub-databases"):
//   merkle       project_key || u8 level || u64 index  ->  32-byte hash of a complete subtree,
//                for levels kStoredLevelMin..63 only (level L node i covers events
//                i*2^L+1 .. (i+1)*2^L)
//                project_key || u8 0xFF               ->  u64 tree size (the leaves it covers)
//   checkpoints  project_key || u64 tree size           ->  the signed note, exactly as signed
// Nodes below kStoredLevelMin cover at most 16 events and are recomputed from their envelopes
// when read. The tree grows inside the append's own transaction, so a commit holds its events,
// their nodes and the new size or none of them.
//
// Thread safety: free functions over one transaction, used by one thread at a time.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ledger/internal/layout.h"
#include "ledger/internal/lmdb_env.h"
#include "ledger/merkle.h"

namespace trail::ledger::detail {

// The lowest stored level: levels 0..3 (up to 16 events) are folded from the events.
inline constexpr unsigned kStoredLevelMin = 4;
// The level byte of the size record's key; no node has it (levels stop at 63).
inline constexpr std::uint8_t kTreeSizeLevel = 0xFF;

std::string merkle_key(std::string_view project, unsigned level, std::uint64_t index);
std::string tree_size_key(std::string_view project);
std::string checkpoint_key(std::string_view project, std::uint64_t size);

// Node (level, index) with level < kStoredLevelMin, folded from the leaf hashes of the events
// it covers. Errors: kCorrupt when one of them is missing.
template <typename Txn>
Result<Digest> node_from_events(const Txn& txn, std::string_view project, unsigned level,
                                std::uint64_t index) {
  std::array<Digest, std::size_t{1} << kStoredLevelMin> hashes;
  const std::size_t count = std::size_t{1} << level;
  const std::uint64_t first = (index << level) + 1;
  std::string key = event_key(project, first);
  for (std::size_t k = 0; k < count; ++k) {
    put_u64_be(reinterpret_cast<std::uint8_t*>(key.data() + key.size() - 8), first + k);
    TRAIL_ASSIGN_OR_RETURN(auto envelope, txn.get(Table::kEvents, as_bytes(key)));
    if (!envelope) {
      return Status::error(Code::kCorrupt, "event " + std::to_string(first + k) + " of " +
                                               std::string(project) + " is missing");
    }
    hashes[k] = merkle::leaf_hash(*envelope);
  }
  for (std::size_t width = count; width > 1; width /= 2) {
    for (std::size_t j = 0; j < width / 2; ++j) {
      hashes[j] = merkle::node_hash(hashes[2 * j], hashes[2 * j + 1]);
    }
  }
  return hashes[0];
}

// Reads the nodes of `project` in `txn` (a ReadTxn or WriteTxn): stored ones from `dbi`, the
// lower levels from the events. Errors: kCorrupt for a missing or malformed node or event.
template <typename Txn>
merkle::NodeGet node_reader(const Txn& txn, MDB_dbi dbi, std::string project) {
  return [&txn, dbi, project = std::move(project)](unsigned level,
                                                   std::uint64_t index) -> Result<Digest> {
    if (level < kStoredLevelMin) return node_from_events(txn, project, level, index);
    TRAIL_ASSIGN_OR_RETURN(auto value, txn.get(dbi, as_bytes(merkle_key(project, level, index))));
    if (!value) {
      return Status::error(Code::kCorrupt, "Merkle node " + std::to_string(level) + "/" +
                                               std::to_string(index) + " of " + project +
                                               " is missing");
    }
    return merkle::digest_from_bytes(*value);
  };
}

// Stores node (level, index) if its level is stored at all.
Status put_node(WriteTxn& txn, MDB_dbi dbi, std::string_view project, unsigned level,
                std::uint64_t index, const Digest& node);
Status put_tree_size(WriteTxn& txn, MDB_dbi dbi, std::string_view project, std::uint64_t size);

// The size record of `project`: nullopt when it has no tree yet.
// Errors: kCorrupt when the record is malformed.
template <typename Txn>
Result<std::optional<std::uint64_t>> read_tree_size(const Txn& txn, MDB_dbi dbi,
                                                    std::string_view project) {
  TRAIL_ASSIGN_OR_RETURN(auto value, txn.get(dbi, as_bytes(tree_size_key(project))));
  if (!value) return std::optional<std::uint64_t>{};
  if (value->size() != 8) {
    return Status::error(Code::kCorrupt, "the Merkle tree size record of " +
                                             std::string(project) + " is malformed");
  }
  return std::optional<std::uint64_t>{get_u64_be(value->data())};
}

// How many leaves of `project`'s tree are stored (0 without a tree).
// Errors: kCorrupt when the size record is malformed or exceeds `head_seq`.
template <typename Txn>
Result<std::uint64_t> stored_tree_size(const Txn& txn, MDB_dbi dbi, std::string_view project,
                                       std::uint64_t head_seq) {
  TRAIL_ASSIGN_OR_RETURN(auto size, read_tree_size(txn, dbi, project));
  if (size && *size > head_seq) {
    return Status::error(Code::kCorrupt, "the Merkle tree of " + std::string(project) +
                                             " says " + std::to_string(*size) +
                                             " leaves but the chain has " +
                                             std::to_string(head_seq) + " events");
  }
  return size.value_or(0);
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
