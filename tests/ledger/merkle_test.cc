// ledger/merkle.h: RFC 6962 roots and proofs over a node store, and the RFC 9162 verifiers.
// - Every transparency-dev/merkle inclusion and consistency vector (tests/fixtures/merkle,
//   tests/fixtures/SOURCES.md) gives its wantErr result through the verifiers.
// - The transparency-dev leaf inputs give the published roots for sizes 0..8 three ways.
// - For every size 1..130, every inclusion and consistency proof from the store equals a
//   recursive RFC 6962 PATH/PROOF written here, verifies, and reads O(log n) nodes, all of
//   them complete subtrees of the tree asked about; tampered proofs fail.
// - Sizes up to 2^64 - 1 through a uniform tree (all leaves equal, so node (L, i) is the same
//   for every i) to exercise the high levels and the read bounds.
#include <gtest/gtest.h>
#include <sodium.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

// Boost.JSON compiled into this file (header-only mode): ledger_tests does not link
// Boost::json. If another ledger test needs JSON, link Boost::json instead and drop src.hpp.
#include <boost/json.hpp>
#include <boost/json/src.hpp>

#include "ledger/merkle.h"
#include "ledger/sha256.h"

namespace trail::testing {
namespace {

namespace merkle = ledger::merkle;
namespace fs = std::filesystem;

const fs::path kVectors = fs::path(__FILE__).parent_path().parent_path() / "fixtures" / "merkle" /
                          "transparency-dev-merkle" / "testdata";

constexpr std::uint64_t kSizeMax = std::numeric_limits<std::uint64_t>::max();

unsigned ceil_log2(std::uint64_t n) {
  return n <= 1 ? 0U : static_cast<unsigned>(std::bit_width(n - 1));
}
unsigned floor_log2(std::uint64_t n) { return static_cast<unsigned>(std::bit_width(n)) - 1U; }
std::size_t popcount(std::uint64_t n) { return static_cast<std::size_t>(std::popcount(n)); }

Digest leaf_of(std::uint64_t i) {
  std::array<std::uint8_t, 8> bytes{};
  put_u64_be(bytes.data(), i);
  return merkle::leaf_hash(bytes);
}

Digest flip_bit(Digest d, std::size_t bit) {
  d[bit / 8] = static_cast<std::uint8_t>(d[bit / 8] ^ (1U << (bit % 8)));
  return d;
}

// A node store in a map, as the writer keeps one in LMDB. Puts are write-once and must be
// complete subtrees of the tree being appended to; gets through getter(size) must be complete
// subtrees of the tree of `size` leaves (a proof for an older size may not peek at newer nodes).
class MemoryTree {
 public:
  // Appends through merkle::append and returns its (gets, puts).
  std::pair<std::size_t, std::size_t> append(const Digest& leaf) {
    std::size_t gets = 0;
    std::size_t puts = 0;
    const std::uint64_t size = size_;
    const merkle::NodeGet get = getter(size, &gets);
    const merkle::NodePut put = [&](unsigned level, std::uint64_t index, const Digest& hash) {
      ++puts;
      EXPECT_LT(level, 64U);
      EXPECT_LT(index, (size + 1) >> level) << "put of an incomplete node " << level;
      EXPECT_TRUE(nodes_.emplace(std::pair{level, index}, hash).second)
          << "node (" << level << ", " << index << ") put twice";
      return Status::ok();
    };
    const Status status = merkle::append(size, leaf, get, put);
    EXPECT_TRUE(status.is_ok()) << status.to_string();
    ++size_;
    return {gets, puts};
  }

  // Serves the nodes of the tree of the first `size` leaves, counting reads in `*gets`.
  merkle::NodeGet getter(std::uint64_t size, std::size_t* gets) const {
    return [this, size, gets](unsigned level, std::uint64_t index) -> Result<Digest> {
      ++*gets;
      if (level >= 64 || index >= (size >> level)) {
        ADD_FAILURE() << "get of (" << level << ", " << index << "), not a complete node of a "
                      << size << "-leaf tree";
        return Status::error(Code::kInvalid, "not a complete node");
      }
      const auto it = nodes_.find({level, index});
      if (it == nodes_.end()) {
        return Status::error(Code::kNotFound, "no node");
      }
      return it->second;
    };
  }

  std::uint64_t size() const { return size_; }
  const std::map<std::pair<unsigned, std::uint64_t>, Digest>& nodes() const { return nodes_; }

 private:
  std::map<std::pair<unsigned, std::uint64_t>, Digest> nodes_;
  std::uint64_t size_ = 0;
};

// RFC 6962 2.1.1 and 2.1.2 as written, recursively, over a list of leaf hashes.
std::uint64_t largest_power_of_two_below(std::uint64_t n) {
  std::uint64_t k = 1;
  while (k * 2 < n) {
    k *= 2;
  }
  return k;
}

Digest mth(std::span<const Digest> d) { return merkle::root_of(d); }

std::vector<Digest> reference_path(std::uint64_t m, std::span<const Digest> d) {
  const std::uint64_t n = d.size();
  if (n <= 1) {
    return {};
  }
  const std::uint64_t k = largest_power_of_two_below(n);
  std::vector<Digest> path;
  if (m < k) {
    path = reference_path(m, d.first(k));
    path.push_back(mth(d.subspan(k)));
  } else {
    path = reference_path(m - k, d.subspan(k));
    path.push_back(mth(d.first(k)));
  }
  return path;
}

std::vector<Digest> reference_subproof(std::uint64_t m, std::span<const Digest> d, bool b) {
  const std::uint64_t n = d.size();
  if (m == n) {
    return b ? std::vector<Digest>{} : std::vector<Digest>{mth(d)};
  }
  const std::uint64_t k = largest_power_of_two_below(n);
  std::vector<Digest> proof;
  if (m <= k) {
    proof = reference_subproof(m, d.first(k), b);
    proof.push_back(mth(d.subspan(k)));
  } else {
    proof = reference_subproof(m - k, d.subspan(k), false);
    proof.push_back(mth(d.first(k)));
  }
  return proof;
}

std::vector<Digest> reference_proof(std::uint64_t m, std::span<const Digest> d) {
  return reference_subproof(m, d, true);
}

// ---------------------------------------------------------------------------------------------
// transparency-dev/merkle vectors.

std::optional<std::vector<std::uint8_t>> decode_base64(std::string_view text) {
  std::vector<std::uint8_t> out(text.size() / 4 * 3 + 3);
  std::size_t size = 0;
  if (sodium_base642bin(out.data(), out.size(), text.data(), text.size(), nullptr, &size, nullptr,
                        sodium_base64_VARIANT_ORIGINAL) != 0) {
    return std::nullopt;
  }
  out.resize(size);
  return out;
}

// A vector's hash field as a Digest; not 32 bytes is kInvalid, as a server would answer.
Result<Digest> vector_digest(const boost::json::value& v) {
  const boost::json::string& text = v.as_string();
  const auto bytes = decode_base64(std::string_view(text.data(), text.size()));
  if (!bytes) {
    ADD_FAILURE() << "vector hash is not base64: " << v;
    return Status::error(Code::kInvalid, "not base64");
  }
  return merkle::digest_from_bytes(*bytes);
}

Result<std::vector<Digest>> vector_proof(const boost::json::value& v) {
  std::vector<Digest> proof;
  if (v.is_null()) {
    return proof;  // Go's nil slice.
  }
  for (const auto& item : v.as_array()) {
    TRAIL_ASSIGN_OR_RETURN(Digest hash, vector_digest(item));
    proof.push_back(hash);
  }
  return proof;
}

boost::json::object read_vector(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return boost::json::parse(text.str()).as_object();
}

std::vector<fs::path> vector_files(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().extension() == ".json") {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

Status run_inclusion_vector(const boost::json::object& v) {
  const auto index = boost::json::value_to<std::uint64_t>(v.at("leafIdx"));
  const auto size = boost::json::value_to<std::uint64_t>(v.at("treeSize"));
  TRAIL_ASSIGN_OR_RETURN(const Digest root, vector_digest(v.at("root")));
  TRAIL_ASSIGN_OR_RETURN(const Digest leaf, vector_digest(v.at("leafHash")));
  TRAIL_ASSIGN_OR_RETURN(const std::vector<Digest> proof, vector_proof(v.at("proof")));
  return merkle::verify_inclusion(index, size, leaf, proof, root);
}

Status run_consistency_vector(const boost::json::object& v) {
  const auto from = boost::json::value_to<std::uint64_t>(v.at("size1"));
  const auto to = boost::json::value_to<std::uint64_t>(v.at("size2"));
  TRAIL_ASSIGN_OR_RETURN(const Digest from_root, vector_digest(v.at("root1")));
  TRAIL_ASSIGN_OR_RETURN(const Digest to_root, vector_digest(v.at("root2")));
  TRAIL_ASSIGN_OR_RETURN(const std::vector<Digest> proof, vector_proof(v.at("proof")));
  return merkle::verify_consistency(from, to, from_root, to_root, proof);
}

// Runs every vector under `dir`; returns how many there were.
template <typename Run>
std::size_t expect_vectors(const fs::path& dir, Run run,
                           const std::set<std::string>& refused_though_go_accepts) {
  const auto files = vector_files(dir);
  std::size_t divergences_seen = 0;
  for (const auto& path : files) {
    const std::string name = fs::relative(path, kVectors).generic_string();
    SCOPED_TRACE(name);
    const boost::json::object v = read_vector(path);
    const bool want_err = v.at("wantErr").as_bool();
    const Status status = run(v);
    if (refused_though_go_accepts.contains(name)) {
      ++divergences_seen;
      EXPECT_FALSE(want_err);
      EXPECT_EQ(status.code(), Code::kInvalid) << status.to_string();
      continue;
    }
    EXPECT_EQ(!status.is_ok(), want_err) << v.at("desc").as_string() << ": " << status.to_string();
    if (!status.is_ok()) {
      EXPECT_TRUE(status.code() == Code::kInvalid || status.code() == Code::kCorrupt);
      EXPECT_FALSE(status.detail().empty());
    }
  }
  EXPECT_EQ(divergences_seen, refused_though_go_accepts.size());
  return files.size();
}

TEST(MerkleVectors, EveryInclusionVectorGivesItsWantErr) {
  EXPECT_EQ(expect_vectors(kVectors / "inclusion", run_inclusion_vector, {}), 98U);
}

// One deliberate divergence: transparency-dev compares the roots of equal-size trees as byte
// strings of any length, so 12-byte "roots" ("don't care 2") pass there; Trail's roots are
// Digests, and a hash that is not 32 bytes is refused before any comparison.
TEST(MerkleVectors, EveryConsistencyVectorGivesItsWantErr) {
  const std::set<std::string> refused_though_go_accepts = {
      "consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"};
  EXPECT_EQ(
      expect_vectors(kVectors / "consistency", run_consistency_vector, refused_though_go_accepts),
      98U);
}

TEST(MerkleVectors, HappyPathsVerify) {
  // The wantErr=false files, named in tests/fixtures/SOURCES.md: (index, size) and (from, to).
  for (const char* name :
       {"inclusion/0/happy-path.json", "inclusion/1/happy-path.json", "inclusion/2/happy-path.json",
        "inclusion/3/happy-path.json", "inclusion/4/happy-path.json",
        "inclusion/single-entry/matching-root-and-leaf.json"}) {
    const Status status = run_inclusion_vector(read_vector(kVectors / name));
    EXPECT_TRUE(status.is_ok()) << name << ": " << status.to_string();
  }
  for (int dir = 0; dir <= 4; ++dir) {
    const fs::path name = fs::path("consistency") / std::to_string(dir) / "happy-path.json";
    const Status status = run_consistency_vector(read_vector(kVectors / name));
    EXPECT_TRUE(status.is_ok()) << name << ": " << status.to_string();
  }
}

// Leaf inputs and roots from tests/fixtures/SOURCES.md ("transparency-dev/merkle leaf inputs").
// Abbreviated roots ("e3b0c442…b855") are checked on the digits given.
TEST(MerkleVectors, LeafInputsGiveThePublishedRootsForSizes0To8) {
  const std::vector<std::string> inputs_hex = {"",
                                               "00",
                                               "10",
                                               "2021",
                                               "3031",
                                               "40414243",
                                               "5051525354555657",
                                               "606162636465666768696a6b6c6d6e6f"};
  const std::vector<std::string> roots = {
      "e3b0c442…b855",
      "6e340b9c…a01d",
      "fac54203…c125",
      "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
      "d37ee418…14b7",
      "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
      "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
      "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
      "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"};
  const auto matches = [](const Digest& got, const std::string& want) {
    const std::string hex = to_hex(got);
    const std::size_t ellipsis = want.find("…");
    if (ellipsis == std::string::npos) {
      return hex == want;
    }
    const std::string head = want.substr(0, ellipsis);
    const std::string tail = want.substr(ellipsis + std::string("…").size());
    return hex.starts_with(head) && hex.ends_with(tail);
  };

  std::vector<Digest> leaves;
  MemoryTree tree;
  merkle::StreamingRoot streaming;
  for (std::size_t size = 0; size <= 8; ++size) {
    SCOPED_TRACE(size);
    std::size_t gets = 0;
    const Result<Digest> stored = merkle::root(size, tree.getter(size, &gets));
    ASSERT_TRUE(stored.is_ok()) << stored.status().to_string();
    EXPECT_TRUE(matches(merkle::root_of(leaves), roots[size])) << to_hex(merkle::root_of(leaves));
    EXPECT_EQ(*stored, merkle::root_of(leaves));
    EXPECT_EQ(streaming.root(), merkle::root_of(leaves));
    EXPECT_EQ(streaming.size(), size);
    if (size == 8) {
      break;
    }
    std::vector<std::uint8_t> input(inputs_hex[size].size() / 2);
    ASSERT_TRUE(from_hex(inputs_hex[size], input));
    leaves.push_back(merkle::leaf_hash(input));
    tree.append(leaves.back());
    streaming.add(leaves.back());
  }
  EXPECT_EQ(to_hex(merkle::empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  // The module's hashes are the ledger's event hashes (docs/FORMAT.md §7).
  EXPECT_EQ(merkle::leaf_hash(as_bytes("event")), trail::leaf_hash(as_bytes("event")));
}

// ---------------------------------------------------------------------------------------------
// Every size 1..130 against the reference, with read counts.
//
// Bounds asserted (n the tree size; exact where stated):
//   append(size)            gets == countr_one(size) <= floor(log2(size + 1)); puts == gets + 1
//   root(n)                 gets == popcount(n) <= floor(log2 n) + 1
//   inclusion_proof(i, n)   gets <= proof length + popcount(n) - 1 <= 2 * ceil(log2 n)
//   consistency_proof(m, n) gets <= proof length + popcount(n) - 1 <= 2 * ceil(log2 n) + 1

constexpr std::uint64_t kExhaustiveSizeMax = 130;

class MerkleExhaustive : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tree_ = new MemoryTree;
    leaves_ = new std::vector<Digest>;
    for (std::uint64_t i = 0; i < kExhaustiveSizeMax; ++i) {
      leaves_->push_back(leaf_of(i));
      const auto [gets, puts] = tree_->append(leaves_->back());
      append_gets_.push_back(gets);
      append_puts_.push_back(puts);
    }
  }
  static void TearDownTestSuite() {
    delete tree_;
    delete leaves_;
    tree_ = nullptr;
    leaves_ = nullptr;
  }
  static std::span<const Digest> leaves(std::uint64_t size) {
    return std::span<const Digest>(*leaves_).first(size);
  }

  static MemoryTree* tree_;
  static std::vector<Digest>* leaves_;
  static std::vector<std::size_t> append_gets_;
  static std::vector<std::size_t> append_puts_;
};
MemoryTree* MerkleExhaustive::tree_ = nullptr;
std::vector<Digest>* MerkleExhaustive::leaves_ = nullptr;
std::vector<std::size_t> MerkleExhaustive::append_gets_;
std::vector<std::size_t> MerkleExhaustive::append_puts_;

TEST_F(MerkleExhaustive, AppendReadsOnlyTheLeftSiblingsItCompletes) {
  for (std::uint64_t size = 0; size < kExhaustiveSizeMax; ++size) {
    SCOPED_TRACE(size);
    const auto completes = static_cast<std::size_t>(std::countr_one(size));
    EXPECT_EQ(append_gets_[size], completes);
    EXPECT_LE(append_gets_[size], floor_log2(size + 1));
    EXPECT_EQ(append_puts_[size], completes + 1);
  }
}

TEST_F(MerkleExhaustive, StoresExactlyTheCompleteSubtreesAndEachIsItsChildrensHash) {
  std::size_t complete = 0;
  for (unsigned level = 0; level < 64; ++level) {
    complete += static_cast<std::size_t>(kExhaustiveSizeMax >> level);
  }
  EXPECT_EQ(tree_->nodes().size(), complete);
  for (const auto& [at, hash] : tree_->nodes()) {
    const auto [level, index] = at;
    const std::uint64_t first = index << level;
    EXPECT_EQ(hash,
              merkle::root_of(leaves(kExhaustiveSizeMax).subspan(first, std::size_t{1} << level)))
        << level << ", " << index;
    if (level > 0) {
      EXPECT_EQ(hash, merkle::node_hash(tree_->nodes().at({level - 1, 2 * index}),
                                        tree_->nodes().at({level - 1, 2 * index + 1})));
    }
  }
}

TEST_F(MerkleExhaustive, RootAtEverySizeMatchesTheReferenceAndTheStream) {
  merkle::StreamingRoot streaming;
  for (std::uint64_t size = 0; size <= kExhaustiveSizeMax; ++size) {
    SCOPED_TRACE(size);
    std::size_t gets = 0;
    const Result<Digest> root = merkle::root(size, tree_->getter(size, &gets));
    ASSERT_TRUE(root.is_ok()) << root.status().to_string();
    EXPECT_EQ(*root, merkle::root_of(leaves(size)));
    EXPECT_EQ(streaming.root(), *root);
    EXPECT_EQ(gets, popcount(size));
    if (size > 0) {
      EXPECT_LE(gets, floor_log2(size) + 1);
    }
    if (size < kExhaustiveSizeMax) {
      streaming.add((*leaves_)[size]);
    }
  }
}

TEST_F(MerkleExhaustive, InclusionProofsEqualRfc6962PathAndVerify) {
  std::size_t gets_max = 0;
  for (std::uint64_t size = 1; size <= kExhaustiveSizeMax; ++size) {
    const Digest root = merkle::root_of(leaves(size));
    for (std::uint64_t index = 0; index < size; ++index) {
      SCOPED_TRACE(::testing::Message() << "index " << index << " size " << size);
      std::size_t gets = 0;
      const auto proof = merkle::inclusion_proof(index, size, tree_->getter(size, &gets));
      ASSERT_TRUE(proof.is_ok()) << proof.status().to_string();
      EXPECT_EQ(*proof, reference_path(index, leaves(size)));
      EXPECT_LE(proof->size(), ceil_log2(size));
      EXPECT_LE(gets, proof->size() + popcount(size) - 1);
      EXPECT_LE(gets, 2 * ceil_log2(size));
      gets_max = std::max(gets_max, gets);
      const Status verified =
          merkle::verify_inclusion(index, size, (*leaves_)[index], *proof, root);
      EXPECT_TRUE(verified.is_ok()) << verified.to_string();
    }
  }
  RecordProperty("inclusion_gets_max", static_cast<int>(gets_max));
}

TEST_F(MerkleExhaustive, ConsistencyProofsEqualRfc6962ProofAndVerify) {
  std::size_t gets_max = 0;
  for (std::uint64_t to = 1; to <= kExhaustiveSizeMax; ++to) {
    const Digest to_root = merkle::root_of(leaves(to));
    for (std::uint64_t from = 1; from <= to; ++from) {
      SCOPED_TRACE(::testing::Message() << "from " << from << " to " << to);
      std::size_t gets = 0;
      const auto proof = merkle::consistency_proof(from, to, tree_->getter(to, &gets));
      ASSERT_TRUE(proof.is_ok()) << proof.status().to_string();
      EXPECT_EQ(*proof, reference_proof(from, leaves(to)));
      EXPECT_LE(proof->size(), ceil_log2(to) + 1);
      EXPECT_LE(gets, proof->size() + popcount(to) - 1);
      EXPECT_LE(gets, 2 * ceil_log2(to) + 1);
      gets_max = std::max(gets_max, gets);
      const Status verified =
          merkle::verify_consistency(from, to, merkle::root_of(leaves(from)), to_root, *proof);
      EXPECT_TRUE(verified.is_ok()) << verified.to_string();
    }
  }
  RecordProperty("consistency_gets_max", static_cast<int>(gets_max));
}

// ---------------------------------------------------------------------------------------------
// Tampering: every kind of change fails, seeded from gtest's random_seed.

std::uint32_t test_seed() {
  const int seed = ::testing::UnitTest::GetInstance()->random_seed();
  return static_cast<std::uint32_t>(seed == 0 ? 1 : seed);
}

TEST_F(MerkleExhaustive, TamperedInclusionProofsFail) {
  const std::uint32_t seed = test_seed();
  SCOPED_TRACE(::testing::Message() << "random_seed " << seed);
  std::mt19937_64 rng(seed);
  const Digest stranger = leaf_of(1'000'000);
  for (std::uint64_t size = 1; size <= kExhaustiveSizeMax; ++size) {
    const Digest root = merkle::root_of(leaves(size));
    for (std::uint64_t index = 0; index < size; ++index) {
      SCOPED_TRACE(::testing::Message() << "index " << index << " size " << size);
      const Digest leaf = (*leaves_)[index];
      std::size_t gets = 0;
      const std::vector<Digest> proof =
          merkle::inclusion_proof(index, size, tree_->getter(size, &gets)).value();
      const auto fails = [&](const std::vector<Digest>& p, const Digest& l, const Digest& r,
                             const char* what) {
        EXPECT_FALSE(merkle::verify_inclusion(index, size, l, p, r).is_ok()) << what;
      };
      for (std::size_t i = 0; i < proof.size(); ++i) {
        auto tampered = proof;
        tampered[i] = flip_bit(tampered[i], static_cast<std::size_t>(rng() % 256));
        fails(tampered, leaf, root, "flipped bit");
      }
      fails(proof, flip_bit(leaf, static_cast<std::size_t>(rng() % 256)), root, "flipped leaf");
      if (size > 1) {
        fails(proof, (*leaves_)[(index + 1) % size], root, "another leaf");
      }
      fails(proof, leaf, flip_bit(root, static_cast<std::size_t>(rng() % 256)), "flipped root");
      fails(proof, leaf, merkle::empty_root(), "empty root");
      if (!proof.empty()) {
        fails({proof.begin(), proof.end() - 1}, leaf, root, "last hash dropped");
        fails({proof.begin() + 1, proof.end()}, leaf, root, "first hash dropped");
      }
      auto extended = proof;
      extended.push_back(stranger);
      fails(extended, leaf, root, "trailing hash");
      extended.insert(extended.begin(), stranger);
      extended.pop_back();
      fails(extended, leaf, root, "preceding hash");
      // The same proof claimed for the neighbouring index. (Not for a neighbouring size: sizes
      // whose path from `index` has the same shape give the same root, and RFC 9162 verifies
      // the leaf's membership under the root, not the size.)
      if (index + 1 < size) {
        EXPECT_FALSE(merkle::verify_inclusion(index + 1, size, leaf, proof, root).is_ok());
      }
    }
  }
}

TEST_F(MerkleExhaustive, TamperedConsistencyProofsFail) {
  const std::uint32_t seed = test_seed();
  SCOPED_TRACE(::testing::Message() << "random_seed " << seed);
  std::mt19937_64 rng(seed);
  const Digest stranger = leaf_of(1'000'000);
  for (std::uint64_t to = 1; to <= kExhaustiveSizeMax; ++to) {
    const Digest to_root = merkle::root_of(leaves(to));
    for (std::uint64_t from = 1; from <= to; ++from) {
      SCOPED_TRACE(::testing::Message() << "from " << from << " to " << to);
      const Digest from_root = merkle::root_of(leaves(from));
      std::size_t gets = 0;
      const std::vector<Digest> proof =
          merkle::consistency_proof(from, to, tree_->getter(to, &gets)).value();
      const auto fails = [&](const std::vector<Digest>& p, const Digest& r1, const Digest& r2,
                             const char* what) {
        EXPECT_FALSE(merkle::verify_consistency(from, to, r1, r2, p).is_ok()) << what;
      };
      for (std::size_t i = 0; i < proof.size(); ++i) {
        auto tampered = proof;
        tampered[i] = flip_bit(tampered[i], static_cast<std::size_t>(rng() % 256));
        fails(tampered, from_root, to_root, "flipped bit");
      }
      fails(proof, flip_bit(from_root, static_cast<std::size_t>(rng() % 256)), to_root,
            "flipped old root");
      fails(proof, from_root, flip_bit(to_root, static_cast<std::size_t>(rng() % 256)),
            "flipped new root");
      if (from != to) {
        fails(proof, to_root, from_root, "swapped roots");
      }
      if (!proof.empty()) {
        fails({proof.begin(), proof.end() - 1}, from_root, to_root, "last hash dropped");
        fails({proof.begin() + 1, proof.end()}, from_root, to_root, "first hash dropped");
      }
      auto extended = proof;
      extended.push_back(stranger);
      fails(extended, from_root, to_root, "trailing hash");
      extended.insert(extended.begin(), stranger);
      extended.pop_back();
      fails(extended, from_root, to_root, "preceding hash");
      if (std::has_single_bit(from) && from != to) {
        // A power-of-two old root is implicit; sending it as well is one hash too many.
        extended = proof;
        extended.insert(extended.begin(), from_root);
        fails(extended, from_root, to_root, "explicit old root");
      }
    }
  }
}

TEST_F(MerkleExhaustive, EveryBitOfSmallProofsMatters) {
  // (5, 8) and (6 -> 8), (2 -> 5): every single-bit flip of every hash fails.
  const Digest root8 = merkle::root_of(leaves(8));
  std::size_t gets = 0;
  const auto inclusion = merkle::inclusion_proof(5, 8, tree_->getter(8, &gets)).value();
  for (std::size_t i = 0; i < inclusion.size(); ++i) {
    for (std::size_t bit = 0; bit < 256; ++bit) {
      auto tampered = inclusion;
      tampered[i] = flip_bit(tampered[i], bit);
      EXPECT_FALSE(merkle::verify_inclusion(5, 8, (*leaves_)[5], tampered, root8).is_ok());
    }
  }
  const std::vector<std::pair<std::uint64_t, std::uint64_t>> pairs = {{6, 8}, {2, 5}};
  for (const auto& [from, to] : pairs) {
    const auto proof = merkle::consistency_proof(from, to, tree_->getter(to, &gets)).value();
    const Digest from_root = merkle::root_of(leaves(from));
    const Digest to_root = merkle::root_of(leaves(to));
    for (std::size_t i = 0; i < proof.size(); ++i) {
      for (std::size_t bit = 0; bit < 256; ++bit) {
        auto tampered = proof;
        tampered[i] = flip_bit(tampered[i], bit);
        EXPECT_FALSE(merkle::verify_consistency(from, to, from_root, to_root, tampered).is_ok());
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Arguments, errors, and the read path.

TEST(Merkle, RefusesIndexOutsideTheTreeAndSizesOutOfOrder) {
  MemoryTree tree;
  for (std::uint64_t i = 0; i < 4; ++i) {
    tree.append(leaf_of(i));
  }
  std::size_t gets = 0;
  const Digest root =
      merkle::root_of(std::vector<Digest>{leaf_of(0), leaf_of(1), leaf_of(2), leaf_of(3)});
  EXPECT_EQ(merkle::inclusion_proof(4, 4, tree.getter(4, &gets)).status().code(), Code::kInvalid);
  EXPECT_EQ(merkle::inclusion_proof(0, 0, tree.getter(0, &gets)).status().code(), Code::kInvalid);
  EXPECT_EQ(merkle::consistency_proof(0, 4, tree.getter(4, &gets)).status().code(), Code::kInvalid);
  EXPECT_EQ(merkle::consistency_proof(3, 2, tree.getter(4, &gets)).status().code(), Code::kInvalid);
  EXPECT_EQ(merkle::consistency_proof(0, 0, tree.getter(0, &gets)).status().code(), Code::kInvalid);
  EXPECT_EQ(gets, 0U);  // Arguments are checked before any read.
  EXPECT_TRUE(merkle::consistency_proof(4, 4, tree.getter(4, &gets))->empty());

  EXPECT_EQ(merkle::verify_inclusion(4, 4, leaf_of(0), {}, root).code(), Code::kInvalid);
  EXPECT_EQ(merkle::verify_inclusion(0, 0, leaf_of(0), {}, merkle::empty_root()).code(),
            Code::kInvalid);
  EXPECT_EQ(merkle::verify_inclusion(kSizeMax, kSizeMax, leaf_of(0), {}, root).code(),
            Code::kInvalid);
  EXPECT_EQ(merkle::verify_consistency(0, 4, merkle::empty_root(), root, {}).code(),
            Code::kInvalid);
  EXPECT_EQ(merkle::verify_consistency(0, 0, merkle::empty_root(), merkle::empty_root(), {}).code(),
            Code::kInvalid);
  EXPECT_EQ(merkle::verify_consistency(4, 3, root, root, {}).code(), Code::kInvalid);
  EXPECT_EQ(merkle::verify_consistency(2, 4, root, root, {}).code(), Code::kInvalid);
  const std::vector<Digest> one = {root};
  EXPECT_EQ(merkle::verify_consistency(4, 4, root, root, one).code(), Code::kInvalid);
  EXPECT_EQ(merkle::verify_consistency(4, 4, root, leaf_of(0), {}).code(), Code::kCorrupt);
  EXPECT_TRUE(merkle::verify_consistency(4, 4, root, root, {}).is_ok());
}

TEST(Merkle, MismatchesSayWhatDiffers) {
  MemoryTree tree;
  for (std::uint64_t i = 0; i < 5; ++i) {
    tree.append(leaf_of(i));
  }
  std::size_t gets = 0;
  const auto proof = merkle::inclusion_proof(1, 5, tree.getter(5, &gets)).value();
  const Digest root = merkle::root(5, tree.getter(5, &gets)).value();
  const Status wrong_leaf = merkle::verify_inclusion(1, 5, leaf_of(2), proof, root);
  EXPECT_EQ(wrong_leaf.code(), Code::kCorrupt);
  EXPECT_NE(wrong_leaf.detail().find(to_hex(root)), std::string::npos) << wrong_leaf.detail();
  auto longer = proof;
  longer.push_back(root);
  const Status too_long = merkle::verify_inclusion(1, 5, leaf_of(1), longer, root);
  EXPECT_EQ(too_long.code(), Code::kInvalid);
  EXPECT_NE(too_long.detail().find("more than"), std::string::npos) << too_long.detail();
  const Status too_short = merkle::verify_inclusion(
      1, 5, leaf_of(1), std::span<const Digest>(proof).first(proof.size() - 1), root);
  EXPECT_EQ(too_short.code(), Code::kInvalid);
  EXPECT_NE(too_short.detail().find("fewer than"), std::string::npos) << too_short.detail();
}

TEST(Merkle, DigestFromBytesTakesExactly32) {
  std::vector<std::uint8_t> bytes(32, 7);
  ASSERT_TRUE(merkle::digest_from_bytes(bytes).is_ok());
  EXPECT_EQ(merkle::digest_from_bytes(bytes)->front(), 7);
  for (const std::size_t size : {0U, 1U, 31U, 33U, 64U}) {
    bytes.assign(size, 7);
    EXPECT_EQ(merkle::digest_from_bytes(bytes).status().code(), Code::kInvalid) << size;
  }
}

TEST(Merkle, StoreErrorsAreReturnedUnchanged) {
  const merkle::NodeGet missing = [](unsigned, std::uint64_t) -> Result<Digest> {
    return Status::error(Code::kNotFound, "gone");
  };
  const merkle::NodePut refuse = [](unsigned, std::uint64_t, const Digest&) {
    return Status::error(Code::kFatal, "disk");
  };
  const merkle::NodePut accept = [](unsigned, std::uint64_t, const Digest&) {
    return Status::ok();
  };
  EXPECT_EQ(merkle::append(0, leaf_of(0), missing, refuse).code(), Code::kFatal);
  EXPECT_EQ(merkle::append(1, leaf_of(1), missing, accept).code(), Code::kNotFound);
  EXPECT_TRUE(merkle::append(2, leaf_of(2), missing, accept).is_ok());  // No left sibling.
  EXPECT_EQ(merkle::root(3, missing).status().code(), Code::kNotFound);
  EXPECT_TRUE(merkle::root(0, missing).is_ok());
  EXPECT_EQ(merkle::inclusion_proof(0, 3, missing).status().code(), Code::kNotFound);
  EXPECT_EQ(merkle::consistency_proof(1, 3, missing).status().code(), Code::kNotFound);
}

// A tree whose leaves are all the same hash: node (L, i) is u[L] for every i, so any size can
// be served, up to 2^64 - 1 leaves. Positions within a level are invisible to it; levels,
// overflow at the top and read counts are not.
class UniformTree {
 public:
  UniformTree() {
    level_hash_[0] = merkle::leaf_hash(as_bytes("uniform"));
    for (unsigned level = 1; level < 64; ++level) {
      level_hash_[level] = merkle::node_hash(level_hash_[level - 1], level_hash_[level - 1]);
    }
  }
  merkle::NodeGet getter(std::uint64_t size, std::size_t* gets) const {
    return [this, size, gets](unsigned level, std::uint64_t index) -> Result<Digest> {
      ++*gets;
      if (level >= 64 || index >= (size >> level)) {
        ADD_FAILURE() << "get of (" << level << ", " << index << "), not a complete node of a "
                      << size << "-leaf tree";
        return Status::error(Code::kInvalid, "not a complete node");
      }
      return level_hash_[level];
    };
  }
  const Digest& leaf() const { return level_hash_[0]; }
  const Digest& level_hash(unsigned level) const { return level_hash_[level]; }

 private:
  std::array<Digest, 64> level_hash_{};
};

TEST(Merkle, HugeTreesReadLogarithmicallyManyCompleteNodes) {
  const std::uint32_t seed = test_seed();
  SCOPED_TRACE(::testing::Message() << "random_seed " << seed);
  std::mt19937_64 rng(seed);
  const UniformTree tree;
  std::vector<std::uint64_t> sizes = {1,
                                      2,
                                      3,
                                      kSizeMax,
                                      kSizeMax - 1,
                                      1ULL << 63,
                                      (1ULL << 63) + 1,
                                      (1ULL << 63) - 1,
                                      (1ULL << 40) + 12345};
  for (int i = 0; i < 20; ++i) {
    sizes.push_back(rng() | 1U);
    sizes.push_back(rng() >> (rng() % 64));
  }
  for (const std::uint64_t size : sizes) {
    if (size == 0) {
      continue;
    }
    SCOPED_TRACE(size);
    std::size_t gets = 0;
    const Digest root = merkle::root(size, tree.getter(size, &gets)).value();
    EXPECT_EQ(gets, popcount(size));
    for (const std::uint64_t index : {std::uint64_t{0}, size - 1, size / 2, rng() % size}) {
      gets = 0;
      const auto proof = merkle::inclusion_proof(index, size, tree.getter(size, &gets)).value();
      EXPECT_LE(proof.size(), ceil_log2(size));
      EXPECT_LE(gets, proof.size() + popcount(size) - 1);
      EXPECT_LE(gets, 2 * ceil_log2(size));
      EXPECT_TRUE(merkle::verify_inclusion(index, size, tree.leaf(), proof, root).is_ok()) << index;
    }
    for (const std::uint64_t from :
         {std::uint64_t{1}, size, size > 1 ? size - 1 : size, size / 2 + 1, rng() % size + 1}) {
      gets = 0;
      const Digest from_root = merkle::root(from, tree.getter(from, &gets)).value();
      gets = 0;
      const auto proof = merkle::consistency_proof(from, size, tree.getter(size, &gets)).value();
      EXPECT_LE(proof.size(), ceil_log2(size) + 1);
      EXPECT_LE(gets, proof.size() + popcount(size) - 1);
      EXPECT_LE(gets, 2 * ceil_log2(size) + 1);
      EXPECT_TRUE(merkle::verify_consistency(from, size, from_root, root, proof).is_ok()) << from;
    }
  }
  // Appending at the top: the leaf that completes the 2^63 node reads 63 left siblings.
  std::size_t gets = 0;
  std::size_t puts = 0;
  const std::uint64_t last = (1ULL << 63) - 1;
  const merkle::NodePut count_puts = [&](unsigned level, std::uint64_t index, const Digest& h) {
    ++puts;
    EXPECT_EQ(index, last >> level);
    EXPECT_EQ(h, tree.level_hash(level));
    return Status::ok();
  };
  ASSERT_TRUE(merkle::append(last, tree.leaf(), tree.getter(last, &gets), count_puts).is_ok());
  EXPECT_EQ(gets, 63U);
  EXPECT_EQ(puts, 64U);  // The leaf and the nodes of levels 1..63 it completes.
  gets = 0;
  ASSERT_TRUE(merkle::append(kSizeMax - 1, tree.leaf(), tree.getter(kSizeMax - 1, &gets),
                             [](unsigned, std::uint64_t, const Digest&) { return Status::ok(); })
                  .is_ok());
  EXPECT_EQ(gets, 0U);  // 2^64 - 2 is even: the new leaf completes nothing.
}

TEST(Merkle, StreamingRootMatchesTheReferenceAtEverySize) {
  merkle::StreamingRoot streaming;
  std::vector<Digest> leaves;
  EXPECT_EQ(streaming.root(), merkle::empty_root());
  for (std::uint64_t i = 0; i < 600; ++i) {
    leaves.push_back(leaf_of(i));
    streaming.add(leaves.back());
    ASSERT_EQ(streaming.size(), i + 1);
    ASSERT_EQ(streaming.root(), merkle::root_of(leaves)) << i + 1;
  }
}

}  // namespace
}  // namespace trail::testing
