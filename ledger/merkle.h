// RFC 6962 / RFC 9162 Merkle tree over a project's event hashes: roots, inclusion and
// consistency proofs, and their verifiers. Pure: storage is reached only through NodeGet and
// NodePut, so the writer can keep the tree inside its LMDB write transaction and tests can keep
// it in a map.
//
// Tree: MTH({}) = SHA-256(""); MTH({d}) = leaf_hash(d); for n > 1 with k the largest power of
// two below n, MTH(D[n]) = node_hash(MTH(D[0:k]), MTH(D[k:n])) (RFC 6962 2.1). The leaves here
// are already leaf hashes (docs/FORMAT.md §7: the event hash is leaf_hash(envelope)).
//
// Storage: only complete subtrees are stored, addressed by (level, index). Level 0 holds the
// leaf hashes (index = leaf index); node (L, i) is MTH of leaves [i*2^L, (i+1)*2^L). A tree of
// n leaves has exactly the nodes with (i+1)*2^L <= n; they never change once written, so a tree
// of size n is also every tree of size m < n. Every other hash (the root, a proof's right-edge
// sibling) is folded from the stored nodes of the power-of-two decomposition of its range.
//
// Store reads (gets), with n the tree size; asserted for every size and index up to 130 and
// for sizes up to 2^64 - 1 in tests/ledger/merkle_test.cc:
//   append(size, ...)          exactly countr_one(size) gets (the left siblings it completes),
//                              <= floor(log2(size + 1)), and puts == gets + 1.
//   root(n)                    exactly popcount(n) gets, <= floor(log2 n) + 1.
//   inclusion_proof(i, n)      <= proof length + popcount(n) - 1 gets, <= 2 * ceil(log2 n):
//                              one per proof hash, except that at most one of them (a right-edge
//                              sibling) is folded from popcount(its leaf count) stored nodes.
//   consistency_proof(m, n)    <= proof length + popcount(n) - 1 gets, <= 2 * ceil(log2 n) + 1,
//                              likewise. Proof lengths: <= ceil(log2 n), <= ceil(log2 n) + 1.
//
// Invariants: (1) a stored node (L, i) with L > 0 equals node_hash((L-1, 2i), (L-1, 2i+1)).
//             (2) append(size) is called once for each size 0, 1, 2, ... in order.
// Thread safety: the functions hold no state; they are as thread-safe as the NodeGet and NodePut
//                they are given. StreamingRoot is a value: one thread at a time.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "ledger/assert.h"
#include "ledger/bytes.h"
#include "ledger/status.h"

namespace trail::ledger::merkle {

// Levels run 0..63: a complete node covers at most 2^63 leaves of a tree below 2^64.
inline constexpr unsigned kLevelsMax = 64;

// SHA-256(0x00 || entry): the RFC 6962 leaf hash (the same function as trail::leaf_hash).
Digest leaf_hash(ByteView entry);
// SHA-256(0x01 || left || right): the RFC 6962 interior node hash.
Digest node_hash(const Digest& left, const Digest& right);
// SHA-256(""): the root of the empty tree.
Digest empty_root();

// The reference root of a whole list of leaf hashes, by the RFC 6962 recursion. O(n) hashes
// and O(log n) stack: for tests, small inputs and cross-checks, not for a growing ledger.
Digest root_of(std::span<const Digest> leaves);

// A hash that arrived as bytes (base64 in JSON, a wire field) as a Digest.
// Errors: kInvalid unless `bytes` is exactly 32 bytes long.
Result<Digest> digest_from_bytes(ByteView bytes);

// Reads the stored complete node (level, index). Must return the hash that was put, or an
// error, which the merkle functions return unchanged (kNotFound for a missing node is the
// caller's to map: in a ledger that has the leaf it means kCorrupt).
using NodeGet = std::function<Result<Digest>(unsigned level, std::uint64_t index)>;
// Stores the complete node (level, index). Errors are returned unchanged.
using NodePut = std::function<Status(unsigned level, std::uint64_t index, const Digest& hash)>;

// Appends `leaf` as leaf number `size` (0-based) to a tree that has `size` leaves: puts
// (0, size) and then each complete node the new leaf completes, bottom up. Gets only the left
// siblings on that path, all of which existed before the call; it never gets a node it put in
// the same call, so a NodeGet that serves the caller's pending puts works but is not needed.
// Precondition (asserted): size < 2^64 - 1, and nodes for sizes 0..size-1 were appended.
// Errors: whatever `get` or `put` returns; after an error some of this leaf's nodes may be put
// and others not, so the caller must abort its transaction.
Status append(std::uint64_t size, const Digest& leaf, const NodeGet& get, const NodePut& put);

// The same with any callables of NodeGet's and NodePut's signatures, called directly: the
// writer's per-event path, where std::function's indirection is measurable.
template <typename Get, typename Put>
Status append_with(std::uint64_t size, const Digest& leaf, Get&& get, Put&& put) {
  TRAIL_ASSERT(size < UINT64_MAX);
  TRAIL_TRY(put(0U, size, leaf));
  Digest hash = leaf;
  std::uint64_t index = size;
  unsigned level = 0;
  // Each trailing one bit of `size` is a left sibling the new leaf completes a node with.
  while ((index & 1U) != 0) {
    TRAIL_ASSIGN_OR_RETURN(const Digest left, get(level, index - 1));
    hash = node_hash(left, hash);
    index >>= 1U;
    ++level;
    TRAIL_ASSERT(level < kLevelsMax);
    TRAIL_ASSERT(((index + 1) << level) - 1 == size);  // The node ends at the new leaf.
    TRAIL_TRY(put(level, index, hash));
  }
  return Status::ok();
}

// MTH of the first `size` leaves (empty_root() for 0) from popcount(size) stored nodes.
// Errors: whatever `get` returns.
Result<Digest> root(std::uint64_t size, const NodeGet& get);

// RFC 6962 2.1.1 PATH(index, D[size]) (the RFC 9162 2.1.3.1 inclusion proof), leaf end first.
// Each hash is a stored complete node or the root of the tree's right-edge partial subtree,
// folded from stored nodes.
// Errors: kInvalid when index >= size; otherwise whatever `get` returns.
Result<std::vector<Digest>> inclusion_proof(std::uint64_t index, std::uint64_t size,
                                            const NodeGet& get);

// RFC 6962 2.1.2 PROOF(from, D[to]) (the RFC 9162 2.1.4.1 consistency proof). Empty when
// from == to.
// Errors: kInvalid when from == 0 (every tree extends the empty one; there is nothing to
// prove) or from > to; otherwise whatever `get` returns.
Result<std::vector<Digest>> consistency_proof(std::uint64_t from, std::uint64_t to,
                                              const NodeGet& get);

// RFC 9162 2.1.3.2: checks that `proof` takes `leaf` at `index` to `root` of a size-`size` tree.
// Errors: kInvalid when index >= size or the proof has the wrong number of hashes (too many:
// it runs past the root; too few: it stops below it); kCorrupt when the hashes do not lead to
// `root`.
Status verify_inclusion(std::uint64_t index, std::uint64_t size, const Digest& leaf,
                        std::span<const Digest> proof, const Digest& root);

// RFC 9162 2.1.4.2: checks that the tree of size `to` with root `to_root` extends the tree of
// size `from` with root `from_root`. from == to needs an empty proof and equal roots.
// Errors: kInvalid when from == 0, from > to, the proof is non-empty for from == to, or the
// proof has the wrong number of hashes; kCorrupt when it does not reproduce `from_root` or
// `to_root`.
Status verify_consistency(std::uint64_t from, std::uint64_t to, const Digest& from_root,
                          const Digest& to_root, std::span<const Digest> proof);

// The root of a tree fed one leaf hash at a time, for verifiers that have only the leaves in
// order (an exported chain): ask root() at each size of interest while streaming. Holds one
// complete-subtree hash per set bit of size(), so at most 64; add() is amortised O(1) hashes
// and root() costs popcount(size()) - 1 hashes.
// Invariants: stack_[0..count_) are the complete subtrees of the first size_ leaves, largest
//             (leftmost) first, with sizes the set bits of size_.
class StreamingRoot {
 public:
  // Appends one leaf hash. Precondition (asserted): size() < 2^64 - 1.
  void add(const Digest& leaf);
  std::uint64_t size() const { return size_; }
  // MTH of the leaves added so far; empty_root() before the first add().
  Digest root() const;

 private:
  std::array<Digest, kLevelsMax> stack_{};
  unsigned count_ = 0;
  std::uint64_t size_ = 0;
};

}  // namespace trail::ledger::merkle
