// The ledger's Merkle routes over real HTTP, checked by an independent verifier written here
// from the specifications alone (RFC 6962 2.1, RFC 9162 2.1.3.2 and 2.1.4.2, c2sp.org/
// signed-note, c2sp.org/tlog-checkpoint) with OpenSSL's SHA-256 and libsodium's Ed25519: no
// ledger/merkle, ledger/signed_note or ledger/checkpoint code. The public key, the signed
// checkpoints, the stored envelopes and the proofs must all agree; only the verify_ledger
// authority reaches them, and bad parameters are refused by name.
#include <openssl/sha.h>
#include <sodium.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/api/api_fixture.h"

namespace trail::testing {
namespace {

namespace json = boost::json;

// ---- the independent verifier ----

using Hash = std::array<unsigned char, 32>;
using PublicKey = std::array<unsigned char, 32>;

Hash sha256(std::string_view bytes) {
  Hash out{};
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), out.data());
  return out;
}

std::string_view chars(const Hash& h) { return {reinterpret_cast<const char*>(h.data()), h.size()}; }

// RFC 6962 2.1: leaf hash SHA-256(0x00 || entry), interior SHA-256(0x01 || left || right).
Hash leaf_hash(std::string_view entry) { return sha256(std::string(1, '\x00') + std::string(entry)); }

Hash node_hash(const Hash& left, const Hash& right) {
  std::string bytes(1, '\x01');
  bytes += chars(left);
  bytes += chars(right);
  return sha256(bytes);
}

// MTH(D[begin:end]) by the RFC 6962 recursion: k is the largest power of two below n.
Hash mth(const std::vector<Hash>& leaves, std::size_t begin, std::size_t end) {
  const std::size_t n = end - begin;
  if (n == 0) return sha256("");
  if (n == 1) return leaves[begin];
  std::size_t k = 1;
  while (k * 2 < n) k *= 2;
  return node_hash(mth(leaves, begin, begin + k), mth(leaves, begin + k, end));
}

// Standard base64 with padding, decoded by libsodium.
std::optional<std::string> from_b64(std::string_view text) {
  std::string out(text.size(), '\0');
  std::size_t length = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                        text.size(), nullptr, &length, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != text.data() + text.size()) {
    return std::nullopt;
  }
  out.resize(length);
  return out;
}

std::string to_b64(std::string_view bytes) {
  std::string out(sodium_base64_ENCODED_LEN(bytes.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
                    bytes.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(out.size() - 1);  // The terminating NUL.
  return out;
}

std::optional<Hash> hash_from_b64(std::string_view text) {
  auto bytes = from_b64(text);
  if (!bytes || bytes->size() != 32) return std::nullopt;
  Hash out{};
  std::copy(bytes->begin(), bytes->end(), out.begin());
  return out;
}

// Flips one bit of `h`: a tampered hash.
void flip(Hash& h, std::size_t at) { h[at] = static_cast<unsigned char>(h[at] ^ 1U); }

std::string hex(const Hash& h) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (const unsigned char c : h) {
    out += digits[c >> 4U];
    out += digits[c & 15U];
  }
  return out;
}

// RFC 9162 2.1.3.2: does `path` take `leaf` at `index` to `root` of a tree of `size`?
bool verify_inclusion(std::uint64_t index, std::uint64_t size, const Hash& leaf,
                      const std::vector<Hash>& path, const Hash& root) {
  if (index >= size) return false;
  std::uint64_t fn = index;
  std::uint64_t sn = size - 1;
  Hash r = leaf;
  for (const Hash& p : path) {
    if (sn == 0) return false;
    if ((fn & 1U) == 1U || fn == sn) {
      r = node_hash(p, r);
      while ((fn & 1U) == 0U && fn != 0U) {
        fn >>= 1U;
        sn >>= 1U;
      }
    } else {
      r = node_hash(r, p);
    }
    fn >>= 1U;
    sn >>= 1U;
  }
  return sn == 0 && r == root;
}

// RFC 9162 2.1.4.2: does `path` prove that the tree (second, second_hash) extends the tree
// (first, first_hash)? Equal sizes need an empty path and equal roots.
bool verify_consistency(std::uint64_t first, std::uint64_t second, const Hash& first_hash,
                        const Hash& second_hash, std::vector<Hash> path) {
  if (first == 0 || first > second) return false;
  if (first == second) return path.empty() && first_hash == second_hash;
  if (path.empty()) return false;
  if ((first & (first - 1)) == 0) path.insert(path.begin(), first_hash);
  std::uint64_t fn = first - 1;
  std::uint64_t sn = second - 1;
  while ((fn & 1U) == 1U) {
    fn >>= 1U;
    sn >>= 1U;
  }
  Hash fr = path[0];
  Hash sr = path[0];
  for (std::size_t i = 1; i < path.size(); ++i) {
    const Hash& c = path[i];
    if (sn == 0) return false;
    if ((fn & 1U) == 1U || fn == sn) {
      fr = node_hash(c, fr);
      sr = node_hash(c, sr);
      while ((fn & 1U) == 0U && fn != 0U) {
        fn >>= 1U;
        sn >>= 1U;
      }
    } else {
      sr = node_hash(sr, c);
    }
    fn >>= 1U;
    sn >>= 1U;
  }
  return fr == first_hash && sr == second_hash && sn == 0;
}

// A signed-note verifier key: "<name>+<8 hex digits of key id>+<base64(0x01 || public key)>".
struct VerifierKey {
  std::string name;
  std::uint32_t key_id = 0;
  PublicKey public_key{};
};

std::uint32_t key_id_of(std::string_view name, const PublicKey& key) {
  std::string bytes(name);
  bytes += '\n';
  bytes += '\x01';
  bytes.append(reinterpret_cast<const char*>(key.data()), key.size());
  const Hash h = sha256(bytes);
  return (std::uint32_t{h[0]} << 24U) | (std::uint32_t{h[1]} << 16U) | (std::uint32_t{h[2]} << 8U) |
         std::uint32_t{h[3]};
}

std::optional<VerifierKey> parse_vkey(std::string_view line) {
  const auto plus1 = line.find('+');
  if (plus1 == std::string_view::npos || plus1 == 0) return std::nullopt;
  // A name holds no '+', nor does the hex key id; the base64 key may.
  const auto plus2 = line.find('+', plus1 + 1);
  if (plus2 == std::string_view::npos) return std::nullopt;
  VerifierKey out;
  out.name = std::string(line.substr(0, plus1));
  const std::string_view id = line.substr(plus1 + 1, plus2 - plus1 - 1);
  if (id.size() != 8) return std::nullopt;
  for (const char c : id) {
    std::uint32_t digit = 0;
    if (c >= '0' && c <= '9') {
      digit = static_cast<std::uint32_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = static_cast<std::uint32_t>(c - 'a' + 10);
    } else {
      return std::nullopt;
    }
    out.key_id = (out.key_id << 4U) | digit;
  }
  auto key = from_b64(line.substr(plus2 + 1));
  if (!key || key->size() != 33 || (*key)[0] != '\x01') return std::nullopt;
  std::copy(key->begin() + 1, key->end(), out.public_key.begin());
  if (key_id_of(out.name, out.public_key) != out.key_id) return std::nullopt;
  return out;
}

// The text of `note` when a signature line by `key` verifies over it and no line by `key` fails
// (c2sp.org/signed-note: text, a blank line, then "— <name> <base64(key id || signature)>"
// lines; lines by other keys are ignored). nullopt otherwise.
std::optional<std::string> open_note(std::string_view note, const VerifierKey& key) {
  const auto blank = note.rfind("\n\n");
  if (blank == std::string_view::npos) return std::nullopt;
  const std::string text(note.substr(0, blank + 1));
  std::string_view signatures = note.substr(blank + 2);
  if (signatures.empty() || signatures.back() != '\n') return std::nullopt;
  bool verified = false;
  while (!signatures.empty()) {
    const auto eol = signatures.find('\n');
    std::string_view line = signatures.substr(0, eol);
    signatures.remove_prefix(eol + 1);
    constexpr std::string_view kDash = "\xE2\x80\x94 ";  // U+2014 EM DASH, space.
    if (line.substr(0, kDash.size()) != kDash) return std::nullopt;
    line.remove_prefix(kDash.size());
    const auto space = line.find(' ');
    if (space == std::string_view::npos) return std::nullopt;
    const std::string_view name = line.substr(0, space);
    auto blob = from_b64(line.substr(space + 1));
    if (!blob || blob->size() < 5) return std::nullopt;
    const auto* b = reinterpret_cast<const unsigned char*>(blob->data());
    const std::uint32_t id = (std::uint32_t{b[0]} << 24U) | (std::uint32_t{b[1]} << 16U) |
                             (std::uint32_t{b[2]} << 8U) | std::uint32_t{b[3]};
    if (name != key.name || id != key.key_id) continue;
    if (blob->size() != 4 + crypto_sign_BYTES ||
        crypto_sign_verify_detached(b + 4, reinterpret_cast<const unsigned char*>(text.data()),
                                    text.size(), key.public_key.data()) != 0) {
      return std::nullopt;
    }
    verified = true;
  }
  if (!verified) return std::nullopt;
  return text;
}

// c2sp.org/tlog-checkpoint: origin, decimal size, base64 root, then optional extension lines.
struct CheckpointBody {
  std::string origin;
  std::uint64_t size = 0;
  Hash root{};
};

std::optional<CheckpointBody> parse_checkpoint(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const auto eol = text.find('\n');
    if (eol == std::string_view::npos) return std::nullopt;
    lines.push_back(text.substr(0, eol));
    text.remove_prefix(eol + 1);
  }
  if (lines.size() < 3 || lines[0].empty()) return std::nullopt;
  CheckpointBody out;
  out.origin = std::string(lines[0]);
  const std::string_view size = lines[1];
  if (size.empty() || size.size() > 19 || (size.size() > 1 && size[0] == '0')) return std::nullopt;
  for (const char c : size) {
    if (c < '0' || c > '9') return std::nullopt;
    out.size = out.size * 10 + static_cast<std::uint64_t>(c - '0');
  }
  auto root = hash_from_b64(lines[2]);
  if (!root) return std::nullopt;
  out.root = *root;
  for (std::size_t i = 3; i < lines.size(); ++i) {
    if (lines[i].empty()) return std::nullopt;
  }
  return out;
}

// ---- the fixture ----

json::object events_body(json::array events) { return json::object{{"events", std::move(events)}}; }

class LedgerProofApiTest : public ApiTest {
 protected:
  static constexpr const char* kSecret = "Wanjiku Otieno, HIV+";

  // Appends `count` case events to clinic-a as `who`, `per_batch` to a request.
  void append(HttpClient& who, const std::string& owner, int count, int per_batch) {
    for (int done = 0; done < count;) {
      json::array batch;
      for (int i = 0; i < per_batch && done < count; ++i, ++done) {
        batch.push_back(case_event(uuid(), "case.created", uuid(), owner,
                                   {{"name", kSecret}, {"i", std::to_string(done)}}));
      }
      auto r = who.post_json("/v1/projects/clinic-a/events", events_body(std::move(batch)));
      ASSERT_EQ(r.status, 201U) << r.body;
    }
  }

  std::uint64_t head_size(HttpClient& aud) {
    auto head = aud.get("/v1/projects/clinic-a/ledger/head");
    EXPECT_EQ(head.status, 200U) << head.body;
    return static_cast<std::uint64_t>(head.json().at("size").as_int64());
  }

  // Every stored envelope of clinic-a, paged through GET .../ledger/events; each one's listed
  // hash must be its leaf hash, and none may carry the plaintext.
  std::vector<std::string> envelopes(HttpClient& aud) {
    std::vector<std::string> out;
    for (std::uint64_t from = 1;;) {
      auto page = aud.get("/v1/projects/clinic-a/ledger/events?limit=7&from=" + std::to_string(from));
      EXPECT_EQ(page.status, 200U) << page.body;
      const auto& events = page.json().at("events").as_array();
      if (events.empty()) break;
      for (const auto& e : events) {
        EXPECT_EQ(static_cast<std::uint64_t>(e.at("seq").as_int64()), out.size() + 1);
        auto envelope = from_b64(std::string(e.at("envelope").as_string()));
        EXPECT_TRUE(envelope.has_value());
        if (!envelope) return out;
        EXPECT_EQ(envelope->find(kSecret), std::string::npos);
        EXPECT_EQ(std::string(e.at("hash").as_string()), hex(leaf_hash(*envelope)));
        out.push_back(std::move(*envelope));
      }
      from = static_cast<std::uint64_t>(page.json().at("next").as_int64());
    }
    return out;
  }

  static std::vector<Hash> leaves_of(const std::vector<std::string>& envelopes) {
    std::vector<Hash> out;
    for (const auto& e : envelopes) out.push_back(leaf_hash(e));
    return out;
  }

  // The "hashes" of a proof answer, decoded; a test failure when one is not 32 bytes.
  static std::vector<Hash> proof_hashes(const HttpResult& r) {
    std::vector<Hash> out;
    for (const auto& h : r.json().at("hashes").as_array()) {
      auto hash = hash_from_b64(std::string(h.as_string()));
      EXPECT_TRUE(hash.has_value()) << h;
      if (hash) out.push_back(*hash);
    }
    return out;
  }

  // The server's verifier key, fetched without authentication and parsed here.
  std::optional<VerifierKey> public_key() {
    auto r = client()->get("/v1/ledger/public-key");
    EXPECT_EQ(r.status, 200U) << r.body;
    EXPECT_EQ(r.header("content-type"), "text/plain; charset=utf-8");
    EXPECT_FALSE(r.body.empty());
    if (r.body.empty() || r.body.back() != '\n') {
      ADD_FAILURE() << "the key line must end in a newline: " << r.body;
      return std::nullopt;
    }
    auto key = parse_vkey(std::string_view(r.body).substr(0, r.body.size() - 1));
    EXPECT_TRUE(key.has_value()) << r.body;
    return key;
  }

  // Opens and parses a checkpoint note, checking that it is clinic-a's.
  static std::optional<CheckpointBody> open_checkpoint(std::string_view note, const VerifierKey& key) {
    auto text = open_note(note, key);
    EXPECT_TRUE(text.has_value()) << note;
    if (!text) return std::nullopt;
    auto body = parse_checkpoint(*text);
    EXPECT_TRUE(body.has_value()) << *text;
    if (!body) return std::nullopt;
    const std::string suffix = "/clinic-a";
    EXPECT_TRUE(body->origin.size() > suffix.size() &&
                body->origin.compare(body->origin.size() - suffix.size(), suffix.size(), suffix) == 0)
        << body->origin;
    return body;
  }
};

// ---- the verifier itself, so a pass below means something ----

TEST(LedgerProofVerifierTest, AcceptsOnlyTheRightProofs) {
  std::vector<Hash> leaves;
  for (int i = 0; i < 9; ++i) leaves.push_back(leaf_hash("entry " + std::to_string(i)));
  const Hash root = mth(leaves, 0, 9);
  // PATH(2, D[9]) by hand: leaf 3, MTH(0:2), MTH(4:8), leaf 8.
  const std::vector<Hash> path{leaves[3], mth(leaves, 0, 2), mth(leaves, 4, 8), leaves[8]};
  EXPECT_TRUE(verify_inclusion(2, 9, leaves[2], path, root));
  EXPECT_FALSE(verify_inclusion(3, 9, leaves[2], path, root));
  EXPECT_FALSE(verify_inclusion(2, 9, leaves[3], path, root));
  EXPECT_FALSE(verify_inclusion(2, 9, leaves[2], {path.begin(), path.end() - 1}, root));
  EXPECT_FALSE(verify_inclusion(9, 9, leaves[2], path, root));
  EXPECT_TRUE(verify_inclusion(0, 1, leaves[0], {}, leaves[0]));
  // PROOF(3, D[9]) by hand: leaf 2, leaf 3, MTH(0:2), MTH(4:8), leaf 8.
  const std::vector<Hash> proof{leaves[2], leaves[3], mth(leaves, 0, 2), mth(leaves, 4, 8), leaves[8]};
  EXPECT_TRUE(verify_consistency(3, 9, mth(leaves, 0, 3), root, proof));
  EXPECT_FALSE(verify_consistency(3, 9, mth(leaves, 0, 4), root, proof));
  EXPECT_FALSE(verify_consistency(3, 9, mth(leaves, 0, 3), mth(leaves, 0, 8), proof));
  // PROOF(4, D[9]): MTH(4:8), leaf 8 (the 4-leaf root is the implied first hash).
  EXPECT_TRUE(verify_consistency(4, 9, mth(leaves, 0, 4), root, {mth(leaves, 4, 8), leaves[8]}));
  EXPECT_TRUE(verify_consistency(9, 9, root, root, {}));
  EXPECT_FALSE(verify_consistency(9, 9, root, root, {root}));
}

TEST(LedgerProofVerifierTest, ParsesKeysAndOpensNotesItSigned) {
  ASSERT_GE(sodium_init(), 0);
  const std::string name = "example.org/log";
  int with_plus = 0;
  for (unsigned s = 0; s < 64; ++s) {
    std::array<unsigned char, crypto_sign_SEEDBYTES> seed{};
    seed.fill(static_cast<unsigned char>(s));
    PublicKey pk{};
    std::array<unsigned char, crypto_sign_SECRETKEYBYTES> sk{};
    crypto_sign_seed_keypair(pk.data(), sk.data(), seed.data());
    const std::uint32_t id = key_id_of(name, pk);
    char id_hex[9];
    std::snprintf(id_hex, sizeof id_hex, "%08x", static_cast<unsigned>(id));
    std::string typed(1, '\x01');
    typed.append(reinterpret_cast<const char*>(pk.data()), pk.size());
    const std::string key_b64 = to_b64(typed);
    with_plus += key_b64.find('+') != std::string::npos ? 1 : 0;
    const std::string vkey = name + "+" + id_hex + "+" + key_b64;
    auto key = parse_vkey(vkey);
    ASSERT_TRUE(key.has_value()) << vkey;
    EXPECT_EQ(key->public_key, pk);
    EXPECT_EQ(key->key_id, id);
    std::string wrong_id = vkey;
    wrong_id[name.size() + 1] = wrong_id[name.size() + 1] == '0' ? '1' : '0';
    EXPECT_FALSE(parse_vkey(wrong_id).has_value());
    EXPECT_FALSE(parse_vkey("other" + vkey.substr(name.size())).has_value());

    const std::string text = name + "\n3\n" + to_b64(chars(sha256("root"))) + "\n";
    std::array<unsigned char, crypto_sign_BYTES> sig{};
    crypto_sign_detached(sig.data(), nullptr, reinterpret_cast<const unsigned char*>(text.data()),
                         text.size(), sk.data());
    std::string blob;
    for (const unsigned shift : {24U, 16U, 8U, 0U}) blob += static_cast<char>((id >> shift) & 0xffU);
    blob.append(reinterpret_cast<const char*>(sig.data()), sig.size());
    const std::string line = "\xE2\x80\x94 " + name + " " + to_b64(blob) + "\n";
    const std::string cosigned = "\xE2\x80\x94 witness " + to_b64(std::string(68, 'w')) + "\n";
    EXPECT_EQ(open_note(text + "\n" + line, *key), text);
    EXPECT_EQ(open_note(text + "\n" + cosigned + line, *key), text);  // Others are ignored.
    EXPECT_FALSE(open_note(text + "\n" + cosigned, *key).has_value());
    std::string forged = text;
    forged[name.size() + 1] = '4';
    EXPECT_FALSE(open_note(forged + "\n" + line, *key).has_value());
    auto body = parse_checkpoint(text);
    ASSERT_TRUE(body.has_value());
    EXPECT_EQ(body->origin, name);
    EXPECT_EQ(body->size, 3U);
    EXPECT_EQ(body->root, sha256("root"));
  }
  EXPECT_GT(with_plus, 0);  // Base64 keys with '+' in them were parsed too.
}

// ---- the routes ----

TEST_F(LedgerProofApiTest, PublicKeyIsServedWithoutAuthenticationAndIsWellFormed) {
  auto key = public_key();
  ASSERT_TRUE(key.has_value());
  EXPECT_FALSE(key->name.empty());
  // The same bytes for everyone, logged in or not.
  auto aud = login("aud");
  ASSERT_NE(aud, nullptr);
  auto again = aud->get("/v1/ledger/public-key");
  EXPECT_EQ(again.status, 200U);
  EXPECT_EQ(again.body, client()->get("/v1/ledger/public-key").body);
  EXPECT_EQ(client()->get("/v1/ledger/public-key?x=1").status, 400U);
  EXPECT_EQ(client()->post("/v1/ledger/public-key", "").status, 405U);
}

TEST_F(LedgerProofApiTest, CheckpointsAndProofsVerifyAgainstTheStoredEnvelopes) {
  auto sup = login("sup");
  auto chw = login("chw");
  auto aud = login("aud");
  ASSERT_TRUE(sup && chw && aud);
  const auto key = public_key();
  ASSERT_TRUE(key.has_value());
  append(*sup, ids_["sup"], 9, 4);
  append(*chw, ids_["chw"], 4, 1);
  const std::uint64_t n = head_size(*aud);
  ASSERT_GE(n, 13U);

  // The first checkpoint, issued on demand at the head.
  auto first = aud->get("/v1/projects/clinic-a/ledger/checkpoint?fresh=true");
  ASSERT_EQ(first.status, 200U) << first.body;
  EXPECT_EQ(first.header("content-type"), "text/plain; charset=utf-8");
  EXPECT_EQ(first.body.find(kSecret), std::string::npos);
  const auto cp1 = open_checkpoint(first.body, *key);
  ASSERT_TRUE(cp1.has_value());
  EXPECT_EQ(cp1->size, n);
  // Without fresh: the same latest checkpoint.
  EXPECT_EQ(aud->get("/v1/projects/clinic-a/ledger/checkpoint").body, first.body);
  // A tampered note does not verify.
  std::string tampered = first.body;
  char& digit = tampered[tampered.find('\n') + 1];  // The size line.
  digit = digit == '1' ? '2' : '1';
  EXPECT_FALSE(open_note(tampered, *key).has_value());

  // Its root is the RFC 6962 root of the envelopes as stored.
  const auto stored = envelopes(*aud);
  ASSERT_EQ(stored.size(), n);
  const std::vector<Hash> leaves = leaves_of(stored);
  EXPECT_EQ(hex(mth(leaves, 0, n)), hex(cp1->root));

  // Inclusion: every event in the checkpointed tree, and a spread of (seq, size) in older ones.
  for (std::uint64_t seq = 1; seq <= n; ++seq) {
    auto r = aud->get("/v1/projects/clinic-a/ledger/proof/inclusion?seq=" + std::to_string(seq) +
                      "&size=" + std::to_string(n));
    ASSERT_EQ(r.status, 200U) << r.body;
    EXPECT_EQ(r.json().at("leaf_index").as_int64(), static_cast<std::int64_t>(seq - 1));
    EXPECT_EQ(r.json().at("tree_size").as_int64(), static_cast<std::int64_t>(n));
    auto path = proof_hashes(r);
    EXPECT_TRUE(verify_inclusion(seq - 1, n, leaves[seq - 1], path, cp1->root)) << "seq " << seq;
    // The proof is for this leaf only.
    if (seq > 1) {
      EXPECT_FALSE(verify_inclusion(seq - 1, n, leaves[seq - 2], path, cp1->root));
    }
    if (!path.empty()) {
      flip(path.back(), 0);
      EXPECT_FALSE(verify_inclusion(seq - 1, n, leaves[seq - 1], path, cp1->root));
    }
  }
  const std::vector<std::pair<std::uint64_t, std::uint64_t>> pairs{
      {1, 1}, {1, 2}, {2, 2}, {3, 3}, {3, 4}, {2, 5}, {5, 7}, {7, 8}, {8, 8}, {1, 9}, {6, 11}, {12, 12}};
  for (const auto& [seq, size] : pairs) {
    auto r = aud->get("/v1/projects/clinic-a/ledger/proof/inclusion?seq=" + std::to_string(seq) +
                      "&size=" + std::to_string(size));
    ASSERT_EQ(r.status, 200U) << r.body;
    EXPECT_TRUE(verify_inclusion(seq - 1, size, leaves[seq - 1], proof_hashes(r),
                                 mth(leaves, 0, size)))
        << seq << " in " << size;
  }
  // Without size: the whole tree.
  auto whole = aud->get("/v1/projects/clinic-a/ledger/proof/inclusion?seq=3");
  ASSERT_EQ(whole.status, 200U) << whole.body;
  EXPECT_EQ(whole.json().at("tree_size").as_int64(), static_cast<std::int64_t>(n));
  EXPECT_TRUE(verify_inclusion(2, n, leaves[2], proof_hashes(whole), cp1->root));

  // Consistency: every pair of sizes in the checkpointed tree.
  for (std::uint64_t from = 1; from <= n; ++from) {
    for (std::uint64_t to = from; to <= n; ++to) {
      auto r = aud->get("/v1/projects/clinic-a/ledger/proof/consistency?from=" +
                        std::to_string(from) + "&to=" + std::to_string(to));
      ASSERT_EQ(r.status, 200U) << r.body;
      EXPECT_EQ(r.json().at("from").as_int64(), static_cast<std::int64_t>(from));
      EXPECT_EQ(r.json().at("to").as_int64(), static_cast<std::int64_t>(to));
      auto proof = proof_hashes(r);
      const Hash from_root = mth(leaves, 0, from);
      const Hash to_root = mth(leaves, 0, to);
      EXPECT_TRUE(verify_consistency(from, to, from_root, to_root, proof)) << from << " -> " << to;
      if (!proof.empty()) {
        flip(proof.front(), 31);
        EXPECT_FALSE(verify_consistency(from, to, from_root, to_root, proof)) << from << " -> " << to;
      }
    }
  }

  // More events, a second checkpoint, and the proof that it extends the first.
  append(*sup, ids_["sup"], 6, 3);
  append(*chw, ids_["chw"], 2, 2);
  const std::uint64_t m = head_size(*aud);
  ASSERT_GE(m, n + 8);
  auto second = aud->get("/v1/projects/clinic-a/ledger/checkpoint?fresh=true");
  ASSERT_EQ(second.status, 200U) << second.body;
  const auto cp2 = open_checkpoint(second.body, *key);
  ASSERT_TRUE(cp2.has_value());
  EXPECT_EQ(cp2->size, m);
  EXPECT_EQ(cp2->origin, cp1->origin);
  auto between = aud->get("/v1/projects/clinic-a/ledger/proof/consistency?from=" +
                          std::to_string(cp1->size) + "&to=" + std::to_string(cp2->size));
  ASSERT_EQ(between.status, 200U) << between.body;
  EXPECT_TRUE(verify_consistency(cp1->size, cp2->size, cp1->root, cp2->root, proof_hashes(between)));
  // Without to: up to the whole tree, which the second checkpoint covers.
  auto to_head = aud->get("/v1/projects/clinic-a/ledger/proof/consistency?from=" +
                          std::to_string(cp1->size));
  ASSERT_EQ(to_head.status, 200U) << to_head.body;
  EXPECT_EQ(to_head.json().at("to").as_int64(), static_cast<std::int64_t>(m));
  EXPECT_TRUE(verify_consistency(cp1->size, m, cp1->root, cp2->root, proof_hashes(to_head)));
  // The new events are in the second tree.
  const auto stored2 = envelopes(*aud);
  ASSERT_GE(stored2.size(), m);
  const std::vector<Hash> leaves2 = leaves_of(stored2);
  EXPECT_EQ(hex(mth(leaves2, 0, m)), hex(cp2->root));
  auto last = aud->get("/v1/projects/clinic-a/ledger/proof/inclusion?seq=" + std::to_string(m) +
                       "&size=" + std::to_string(m));
  ASSERT_EQ(last.status, 200U);
  EXPECT_TRUE(verify_inclusion(m - 1, m, leaves2[m - 1], proof_hashes(last), cp2->root));

  // The list holds both (and any the timer issued); each one by size is a valid checkpoint of
  // the same log, at its own size and root.
  auto list = aud->get("/v1/projects/clinic-a/ledger/checkpoints");
  ASSERT_EQ(list.status, 200U) << list.body;
  std::vector<std::uint64_t> sizes;
  for (const auto& c : list.json().at("checkpoints").as_array()) {
    sizes.push_back(static_cast<std::uint64_t>(c.at("size").as_int64()));
  }
  EXPECT_TRUE(std::is_sorted(sizes.begin(), sizes.end()));
  EXPECT_NE(std::find(sizes.begin(), sizes.end(), n), sizes.end()) << list.body;
  EXPECT_NE(std::find(sizes.begin(), sizes.end(), m), sizes.end()) << list.body;
  for (const std::uint64_t size : sizes) {
    ASSERT_LE(size, stored2.size());
    auto at = aud->get("/v1/projects/clinic-a/ledger/checkpoints?size=" + std::to_string(size));
    ASSERT_EQ(at.status, 200U) << at.body;
    EXPECT_EQ(at.header("content-type"), "text/plain; charset=utf-8");
    auto cp = open_checkpoint(at.body, *key);
    ASSERT_TRUE(cp.has_value());
    EXPECT_EQ(cp->size, size);
    EXPECT_EQ(cp->origin, cp1->origin);
    EXPECT_EQ(hex(cp->root), hex(mth(leaves2, 0, size)));
  }
  EXPECT_TRUE(list.json().at("next").is_null()) << list.body;
  // The same sizes a page at a time, each page starting where the last one said.
  std::vector<std::uint64_t> paged;
  std::string from = "0";
  for (int pages = 0; pages <= static_cast<int>(sizes.size()); ++pages) {
    auto page = aud->get("/v1/projects/clinic-a/ledger/checkpoints?limit=1&from=" + from);
    ASSERT_EQ(page.status, 200U) << page.body;
    const auto& got = page.json().at("checkpoints").as_array();
    ASSERT_LE(got.size(), 1U);
    for (const auto& c : got) paged.push_back(static_cast<std::uint64_t>(c.at("size").as_int64()));
    const auto& next = page.json().at("next");
    if (next.is_null()) break;
    from = std::to_string(next.as_int64());
  }
  EXPECT_EQ(paged, sizes);
  auto after_n = aud->get("/v1/projects/clinic-a/ledger/checkpoints?from=" + std::to_string(n + 1));
  ASSERT_EQ(after_n.status, 200U);
  for (const auto& c : after_n.json().at("checkpoints").as_array()) {
    EXPECT_GT(c.at("size").as_int64(), static_cast<std::int64_t>(n));
  }
  for (const char* bad : {"limit=0", "limit=10001", "limit=x", "from=-1"}) {
    auto r = aud->get(std::string("/v1/projects/clinic-a/ledger/checkpoints?") + bad);
    EXPECT_EQ(r.status, 400U) << bad;
    EXPECT_EQ(r.json().at("error").at("code").as_string(), "invalid") << bad;
  }
  EXPECT_EQ(aud->get("/v1/projects/clinic-a/ledger/checkpoints?size=" + std::to_string(n)).body,
            first.body);
  EXPECT_EQ(aud->get("/v1/projects/clinic-a/ledger/checkpoints?size=" + std::to_string(m)).body,
            second.body);
}

TEST_F(LedgerProofApiTest, OnlyTheVerifyLedgerAuthorityReachesCheckpointsAndProofs) {
  auto sup = login("sup");
  ASSERT_NE(sup, nullptr);
  append(*sup, ids_["sup"], 5, 5);
  const std::vector<std::string> routes{
      "/v1/projects/clinic-a/ledger/checkpoint?fresh=true",
      "/v1/projects/clinic-a/ledger/checkpoint",
      "/v1/projects/clinic-a/ledger/checkpoints",
      "/v1/projects/clinic-a/ledger/checkpoints?size=5",
      "/v1/projects/clinic-a/ledger/proof/inclusion?seq=2&size=5",
      "/v1/projects/clinic-a/ledger/proof/consistency?from=2&to=5",
  };
  // The auditor (and the system administrator, who holds every authority) may.
  auto aud = login("aud");
  ASSERT_NE(aud, nullptr);
  for (HttpClient* who : {aud.get(), admin_.get()}) {
    for (const auto& route : routes) {
      auto r = who->get(route);
      EXPECT_EQ(r.status, 200U) << (who == aud.get() ? "aud " : "admin ") << route << ": " << r.body;
    }
  }
  // Members without verify_ledger get 403; a member of another project 404, as if the project
  // did not exist; no credentials 401.
  for (const char* name : {"chw", "sup", "viewer", "padmin"}) {
    auto who = login(name);
    ASSERT_NE(who, nullptr);
    for (const auto& route : routes) {
      auto r = who->get(route);
      EXPECT_EQ(r.status, 403U) << name << " " << route << ": " << r.body;
      EXPECT_EQ(r.error_code(), "forbidden") << name << " " << route;
      EXPECT_EQ(r.body.find("clinic-a/"), std::string::npos) << r.body;  // No checkpoint leaks.
    }
  }
  auto supb = login("supb");
  ASSERT_NE(supb, nullptr);
  for (const auto& route : routes) {
    auto r = supb->get(route);
    EXPECT_EQ(r.status, 404U) << "supb " << route << ": " << r.body;
    EXPECT_EQ(r.error_code(), "not_found");
  }
  auto anonymous = client();
  for (const auto& route : routes) EXPECT_EQ(anonymous->get(route).status, 401U) << route;
  // The auditor of clinic-a is no member of clinic-b.
  EXPECT_EQ(aud->get("/v1/projects/clinic-b/ledger/checkpoint").status, 404U);
  EXPECT_EQ(aud->get("/v1/projects/nowhere/ledger/proof/inclusion?seq=1").status, 404U);
}

TEST_F(LedgerProofApiTest, BadParametersAreRefusedNamingThem) {
  auto sup = login("sup");
  auto aud = login("aud");
  ASSERT_TRUE(sup && aud);
  // Before any event: no checkpoint, none to issue, no proofs.
  auto none = aud->get("/v1/projects/clinic-a/ledger/checkpoint");
  EXPECT_EQ(none.status, 404U) << none.body;
  EXPECT_EQ(none.error_code(), "not_found");
  EXPECT_EQ(aud->get("/v1/projects/clinic-a/ledger/checkpoint?fresh=true").status, 404U);
  auto empty_list = aud->get("/v1/projects/clinic-a/ledger/checkpoints");
  ASSERT_EQ(empty_list.status, 200U) << empty_list.body;
  EXPECT_TRUE(empty_list.json().at("checkpoints").as_array().empty());
  EXPECT_EQ(aud->get("/v1/projects/clinic-a/ledger/proof/inclusion?seq=1").status, 400U);

  append(*sup, ids_["sup"], 6, 6);
  const std::uint64_t n = head_size(*aud);
  ASSERT_EQ(aud->get("/v1/projects/clinic-a/ledger/checkpoint?fresh=true").status, 200U);
  const std::string past = std::to_string(n + 1);
  struct Case {
    std::string target;
    std::string names;  // The message must name this.
  };
  const std::vector<Case> cases{
      {"checkpoint?fresh=yes", "'fresh'"},
      {"checkpoint?size=3", "size"},
      {"checkpoints?size=abc", "'size'"},
      {"checkpoints?size=-1", "'size'"},
      {"checkpoints?from=x", "'from'"},
      {"checkpoints?limit=0", "'limit'"},
      {"checkpoints?after=1", "after"},
      {"proof/inclusion", "'seq'"},
      {"proof/inclusion?seq=", "'seq'"},
      {"proof/inclusion?seq=0", "'seq'"},
      {"proof/inclusion?seq=abc", "'seq'"},
      {"proof/inclusion?seq=1.5", "'seq'"},
      {"proof/inclusion?seq=99999999999999999999", "'seq'"},
      {"proof/inclusion?seq=" + past, "'seq'"},
      {"proof/inclusion?seq=3&size=2", "'seq'"},
      {"proof/inclusion?seq=1&size=" + past, "'size'"},
      {"proof/inclusion?seq=1&size=x", "'size'"},
      {"proof/inclusion?seq=1&size=0", "'seq'"},
      {"proof/inclusion?seq=1&leaf=1", "leaf"},
      {"proof/consistency", "'from'"},
      {"proof/consistency?from=0", "'from'"},
      {"proof/consistency?from=0&to=3", "'from'"},
      {"proof/consistency?from=x", "'from'"},
      {"proof/consistency?from=3&to=2", "'from'"},
      {"proof/consistency?from=" + past, "'from'"},
      {"proof/consistency?from=1&to=" + past, "'to'"},
      {"proof/consistency?from=1&to=-2", "'to'"},
      {"proof/consistency?from=1&size=3", "size"},
  };
  for (const auto& c : cases) {
    auto r = aud->get("/v1/projects/clinic-a/ledger/" + c.target);
    EXPECT_EQ(r.status, 400U) << c.target << ": " << r.body;
    EXPECT_EQ(r.error_code(), "invalid") << c.target << ": " << r.body;
    EXPECT_EQ(r.header("content-type"), "application/json") << c.target;
    EXPECT_NE(r.body.find(c.names), std::string::npos) << c.target << ": " << r.body;
  }
  // A size with no checkpoint is not found, whether inside the tree or beyond it.
  for (const std::string& size : {std::string("0"), std::to_string(n + 1000)}) {
    auto r = aud->get("/v1/projects/clinic-a/ledger/checkpoints?size=" + size);
    EXPECT_EQ(r.status, 404U) << size << ": " << r.body;
    EXPECT_EQ(r.error_code(), "not_found") << r.body;
  }
  // The edges that are valid.
  EXPECT_EQ(aud->get("/v1/projects/clinic-a/ledger/proof/inclusion?seq=" + std::to_string(n)).status,
            200U);
  auto same = aud->get("/v1/projects/clinic-a/ledger/proof/consistency?from=" + std::to_string(n) +
                       "&to=" + std::to_string(n));
  ASSERT_EQ(same.status, 200U) << same.body;
  EXPECT_TRUE(same.json().at("hashes").as_array().empty());
}

}  // namespace
}  // namespace trail::testing
