#include "ledger/merkle.h"

#include <algorithm>
#include <bit>
#include <limits>
#include <string>
#include <utility>

#include "ledger/assert.h"
#include "ledger/sha256.h"

namespace trail::ledger::merkle {
namespace {

constexpr std::uint64_t kSizeMax = std::numeric_limits<std::uint64_t>::max();

// The largest power of two strictly below n: RFC 6962's split point k. n >= 2.
std::uint64_t split_point(std::uint64_t n) {
  TRAIL_ASSERT(n >= 2);
  const std::uint64_t k = std::bit_floor(n - 1);
  TRAIL_ASSERT(k < n);
  return k;
}

// MTH of the `count` leaves starting at `begin`, folded right to left from the stored complete
// nodes of count's power-of-two decomposition: popcount(count) gets. MTH of a list depends only
// on its length, so this is exact for any range; the nodes exist (are complete and addressable)
// because every range the RFC 6962 recursion produces starts at a multiple of bit_floor(count).
Result<Digest> range_hash(std::uint64_t begin, std::uint64_t count, const NodeGet& get) {
  TRAIL_ASSERT(count > 0);
  TRAIL_ASSERT(begin % std::bit_floor(count) == 0);
  std::array<Digest, kLevelsMax> parts{};
  unsigned parts_count = 0;
  std::uint64_t offset = begin;
  for (unsigned level = kLevelsMax; level-- > 0;) {
    const std::uint64_t width = std::uint64_t{1} << level;
    if ((count & width) == 0) {
      continue;
    }
    TRAIL_ASSERT(offset % width == 0);
    TRAIL_ASSIGN_OR_RETURN(parts[parts_count], get(level, offset >> level));
    ++parts_count;
    offset += width;
  }
  TRAIL_ASSERT(parts_count == static_cast<unsigned>(std::popcount(count)));
  Digest hash = parts[parts_count - 1];
  for (unsigned i = parts_count - 1; i-- > 0;) {
    hash = node_hash(parts[i], hash);
  }
  return hash;
}

std::string sizes_text(std::uint64_t a, const char* relation, std::uint64_t b) {
  return std::to_string(a) + relation + std::to_string(b);
}

// RFC 9162's "right-shift fn and sn equally until either LSB(fn) is set or fn is 0".
void shift_while_even(std::uint64_t& fn, std::uint64_t& sn) {
  while ((fn & 1U) == 0 && fn != 0) {
    fn >>= 1U;
    sn >>= 1U;
  }
}

}  // namespace

Digest leaf_hash(ByteView entry) { return ::trail::leaf_hash(entry); }

Digest node_hash(const Digest& left, const Digest& right) {
  return ::trail::node_hash(left, right);
}

Digest empty_root() { return sha256(ByteView{}); }

Digest root_of(std::span<const Digest> leaves) {
  if (leaves.empty()) {
    return empty_root();
  }
  if (leaves.size() == 1) {
    return leaves[0];
  }
  const std::size_t k = std::bit_floor(leaves.size() - 1);
  return node_hash(root_of(leaves.first(k)), root_of(leaves.subspan(k)));
}

Result<Digest> digest_from_bytes(ByteView bytes) {
  Digest out{};
  if (bytes.size() != out.size()) {
    return Status::error(Code::kInvalid,
                         "hash is " + std::to_string(bytes.size()) + " bytes, not 32");
  }
  std::copy(bytes.begin(), bytes.end(), out.begin());
  return out;
}

Status append(std::uint64_t size, const Digest& leaf, const NodeGet& get, const NodePut& put) {
  return append_with(size, leaf, get, put);
}

Result<Digest> root(std::uint64_t size, const NodeGet& get) {
  if (size == 0) {
    return empty_root();
  }
  return range_hash(0, size, get);
}

Result<std::vector<Digest>> inclusion_proof(std::uint64_t index, std::uint64_t size,
                                            const NodeGet& get) {
  if (index >= size) {
    return Status::error(Code::kInvalid,
                         "leaf index " + sizes_text(index, " is not below tree size ", size));
  }
  // Walk PATH's recursion from the root down over the range [lo, lo + n) holding the leaf,
  // collecting the sibling of each half taken; the proof lists them leaf end first.
  std::vector<Digest> proof;
  std::uint64_t lo = 0;
  std::uint64_t n = size;
  while (n > 1) {
    const std::uint64_t k = split_point(n);
    if (index - lo < k) {
      TRAIL_ASSIGN_OR_RETURN(Digest right, range_hash(lo + k, n - k, get));
      proof.push_back(right);
      n = k;
    } else {
      TRAIL_ASSIGN_OR_RETURN(Digest left, range_hash(lo, k, get));  // Complete: one get.
      proof.push_back(left);
      lo += k;
      n -= k;
    }
  }
  TRAIL_ASSERT(lo == index);
  TRAIL_ASSERT(proof.size() <= kLevelsMax);
  std::reverse(proof.begin(), proof.end());
  return proof;
}

Result<std::vector<Digest>> consistency_proof(std::uint64_t from, std::uint64_t to,
                                              const NodeGet& get) {
  if (from == 0) {
    return Status::error(Code::kInvalid, "consistency from size 0 is not defined");
  }
  if (from > to) {
    return Status::error(Code::kInvalid,
                         "consistency from size " + sizes_text(from, " to smaller size ", to));
  }
  // SUBPROOF(m, D[lo:lo+n], whole) from the top: while the old tree (its first m leaves) is
  // not all of the range, record the half it does not decide alone and descend.
  std::vector<Digest> top_down;
  std::uint64_t lo = 0;
  std::uint64_t m = from;
  std::uint64_t n = to;
  bool whole = true;  // RFC 6962's b: the range is still the old tree's root.
  while (m != n) {
    const std::uint64_t k = split_point(n);
    if (m <= k) {
      TRAIL_ASSIGN_OR_RETURN(Digest right, range_hash(lo + k, n - k, get));
      top_down.push_back(right);
      n = k;
    } else {
      TRAIL_ASSIGN_OR_RETURN(Digest left, range_hash(lo, k, get));  // Complete: one get.
      top_down.push_back(left);
      lo += k;
      m -= k;
      n -= k;
      whole = false;
    }
  }
  std::vector<Digest> proof;
  proof.reserve(top_down.size() + 1);
  if (!whole) {
    // Reached only by a left descent, so the range is a complete node: one get.
    TRAIL_ASSERT(std::has_single_bit(n));
    TRAIL_ASSIGN_OR_RETURN(Digest seed, range_hash(lo, n, get));
    proof.push_back(seed);
  }
  proof.insert(proof.end(), top_down.rbegin(), top_down.rend());
  if (from == to) {
    TRAIL_ASSERT(proof.empty());
  }
  return proof;
}

Status verify_inclusion(std::uint64_t index, std::uint64_t size, const Digest& leaf,
                        std::span<const Digest> proof, const Digest& root) {
  if (index >= size) {
    return Status::error(Code::kInvalid,
                         "leaf index " + sizes_text(index, " is not below tree size ", size));
  }
  std::uint64_t fn = index;
  std::uint64_t sn = size - 1;
  Digest r = leaf;
  for (const Digest& p : proof) {
    if (sn == 0) {
      return Status::error(Code::kInvalid,
                           "inclusion proof has " + std::to_string(proof.size()) +
                               " hashes, more than the path from leaf " +
                               sizes_text(index, " to the root of a tree of size ", size));
    }
    if ((fn & 1U) != 0 || fn == sn) {
      r = node_hash(p, r);
      shift_while_even(fn, sn);
    } else {
      r = node_hash(r, p);
    }
    fn >>= 1U;
    sn >>= 1U;
  }
  if (sn != 0) {
    return Status::error(Code::kInvalid,
                         "inclusion proof has " + std::to_string(proof.size()) +
                             " hashes, fewer than the path from leaf " +
                             sizes_text(index, " to the root of a tree of size ", size));
  }
  if (r != root) {
    return Status::error(Code::kCorrupt, "inclusion proof takes leaf " + to_hex(leaf) +
                                             " at index " + std::to_string(index) + " to root " +
                                             to_hex(r) + ", not " + to_hex(root));
  }
  return Status::ok();
}

Status verify_consistency(std::uint64_t from, std::uint64_t to, const Digest& from_root,
                          const Digest& to_root, std::span<const Digest> proof) {
  if (from == 0) {
    return Status::error(Code::kInvalid, "consistency from size 0 is not defined");
  }
  if (from > to) {
    return Status::error(Code::kInvalid,
                         "consistency from size " + sizes_text(from, " to smaller size ", to));
  }
  if (from == to) {
    if (!proof.empty()) {
      return Status::error(Code::kInvalid, "consistency proof between equal sizes has " +
                                               std::to_string(proof.size()) + " hashes, not 0");
    }
    if (from_root != to_root) {
      return Status::error(Code::kCorrupt, "roots of the same size " + std::to_string(to) +
                                               " differ: " + to_hex(from_root) + " and " +
                                               to_hex(to_root));
    }
    return Status::ok();
  }
  if (proof.empty()) {
    return Status::error(Code::kInvalid, "consistency proof from size " +
                                             sizes_text(from, " to ", to) + " is empty");
  }
  // RFC 9162 2.1.4.2 step 2: a power-of-two old tree is a node of the new one and its root
  // seeds the walk; the path is then `from_root` followed by `proof`.
  const bool seeded = std::has_single_bit(from);
  const std::size_t path_size = proof.size() + (seeded ? 1U : 0U);
  const auto path = [&](std::size_t i) -> const Digest& {
    if (seeded) {
      return i == 0 ? from_root : proof[i - 1];
    }
    return proof[i];
  };
  std::uint64_t fn = from - 1;
  std::uint64_t sn = to - 1;
  while ((fn & 1U) != 0) {
    fn >>= 1U;
    sn >>= 1U;
  }
  Digest fr = path(0);
  Digest sr = path(0);
  for (std::size_t i = 1; i < path_size; ++i) {
    const Digest& c = path(i);
    if (sn == 0) {
      return Status::error(Code::kInvalid, "consistency proof from size " +
                                               sizes_text(from, " to ", to) + " has " +
                                               std::to_string(proof.size()) + " hashes, too many");
    }
    if ((fn & 1U) != 0 || fn == sn) {
      fr = node_hash(c, fr);
      sr = node_hash(c, sr);
      shift_while_even(fn, sn);
    } else {
      sr = node_hash(sr, c);
    }
    fn >>= 1U;
    sn >>= 1U;
  }
  if (sn != 0) {
    return Status::error(Code::kInvalid, "consistency proof from size " +
                                             sizes_text(from, " to ", to) + " has " +
                                             std::to_string(proof.size()) + " hashes, too few");
  }
  if (fr != from_root) {
    return Status::error(Code::kCorrupt, "consistency proof gives the size-" +
                                             std::to_string(from) + " root " + to_hex(fr) +
                                             ", not " + to_hex(from_root));
  }
  if (sr != to_root) {
    return Status::error(Code::kCorrupt, "consistency proof gives the size-" + std::to_string(to) +
                                             " root " + to_hex(sr) + ", not " + to_hex(to_root));
  }
  return Status::ok();
}

void StreamingRoot::add(const Digest& leaf) {
  TRAIL_ASSERT(size_ < kSizeMax);
  Digest hash = leaf;
  // Each trailing one bit of size_ is a complete subtree the new leaf merges with.
  for (std::uint64_t bits = size_; (bits & 1U) != 0; bits >>= 1U) {
    TRAIL_ASSERT(count_ > 0);
    --count_;
    hash = node_hash(stack_[count_], hash);
  }
  TRAIL_ASSERT(count_ < kLevelsMax);
  stack_[count_] = hash;
  ++count_;
  ++size_;
  TRAIL_ASSERT(count_ == static_cast<unsigned>(std::popcount(size_)));
}

Digest StreamingRoot::root() const {
  if (count_ == 0) {
    return empty_root();
  }
  Digest hash = stack_[count_ - 1];
  for (unsigned i = count_ - 1; i-- > 0;) {
    hash = node_hash(stack_[i], hash);
  }
  return hash;
}

}  // namespace trail::ledger::merkle
