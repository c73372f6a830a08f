// Checkpoints (ledger/checkpoint.h) against the serverless-log test log, strict body parsing,
// and the KeyRing's checkpoint signing key.
#include "ledger/checkpoint.h"

#include <gtest/gtest.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ledger/key_ring.h"
#include "ledger/sha256.h"
#include "tests/support/temp_dir.h"

namespace trail::testing {
namespace {

namespace fs = std::filesystem;
namespace note = ledger::note;
using ledger::Checkpoint;
using ledger::KeyRing;

const fs::path kLog = fs::path(__FILE__).parent_path().parent_path() / "fixtures" / "merkle" /
                      "serverless-log" / "testdata" / "log";
constexpr const char* kLogVkey = "astra+cad5a3d2+AZJqeuyE/GnknsCNh1eCtDtwdAwKBddOlS8M2eI1Jt4b";
constexpr std::size_t kLogLeaves = 15;
// Roots of checkpoint.0 .. checkpoint.15 as listed in tests/fixtures/SOURCES.md.
constexpr const char* kLogRoots[kLogLeaves + 1] = {
    "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", "0Nc2CrefWKseHj/mStd+LqC8B+NrX0btIiPt2SmN+ek=",
    "T1X2GdkhUjV3iyufF9b0kVsWFxIU0VI4EpNml2Teci4=", "Wqx3HImawpLnS/Gv4ubjAvi1WIOy0b8Ze0amvqbavKk=",
    "zY1lN35vrXYAPixXSd59LsU29xUJtuW4o2dNNg5Y2Co=", "gy5gl3aksFyiCO95a/1vLXz88A3dRq+0l9Sxte8ZqZQ=",
    "a6sWvsc2eEzmj72vah7mZ5dwFltivehh2b11qwlp5Jg=", "IrSXADBqJ7EQoUODSDKROySgNveeL6CFhik2w/+fS7U=",
    "bC+VwvrJbalNVjfkdI8kUgs7mJoXrqiXCE7bgnD28pY=", "CvhHViE3S9E3htHLR+25mapWoGCJ3WckMq1UtC3VmEY=",
    "y8/gZsZCtitsMan09tY+k8I7Qpr7Y5fbO2tLi9GQnfU=", "Yok1cS5VdokGLBy73BC2I16b3atss6KBN9jnIi6Fz/A=",
    "uZo6M+IhVna+CLgWCrJs0xBPUHbozHkYTQASduHSLME=", "av0kLH0VkkVDrTuZzBGIx7d9z5G1l/GlKz/nAV/8woQ=",
    "SvCd38yNade7xEPY1a/aAc1M3A2AHYVF8lIiUnsH1ao=", "rKbDipCvhuX1GZ7g5BBe8sA6BbJ7ja/1nk427v383cs=",
};

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing fixture " << path;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

Digest root_from_base64(const char* text) {
  Digest out{};
  auto bytes = from_base64(text);
  EXPECT_TRUE(bytes.has_value() && bytes->size() == out.size()) << text;
  if (bytes.has_value() && bytes->size() == out.size()) {
    std::copy(bytes->begin(), bytes->end(), out.begin());
  }
  return out;
}

// RFC 6962 MTH, written out independently of the ledger: SHA-256("") for no leaves,
// SHA-256(0x00 || d) for one, else SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])) with k the
// largest power of two below n.
Digest mth(std::span<const std::string> leaves) {
  if (leaves.empty()) return sha256({});
  if (leaves.size() == 1) return sha256(as_bytes(std::string(1, '\0') + leaves[0]));
  std::size_t k = 1;
  while (k * 2 < leaves.size()) k *= 2;
  const Digest left = mth(leaves.first(k));
  const Digest right = mth(leaves.subspan(k));
  std::string node(1, '\x01');
  node.append(reinterpret_cast<const char*>(left.data()), left.size());
  node.append(reinterpret_cast<const char*>(right.data()), right.size());
  return sha256(as_bytes(node));
}

std::vector<std::string> log_leaves() {
  std::vector<std::string> leaves;
  for (std::size_t i = 0; i < kLogLeaves; ++i) {
    char name[3];
    std::snprintf(name, sizeof name, "%02zx", i);
    leaves.push_back(read_file(kLog / "seq" / "00" / "00" / "00" / "00" / name));
  }
  return leaves;
}

note::Verifier log_verifier() {
  auto verifier = note::Verifier::parse(kLogVkey);
  EXPECT_TRUE(verifier.is_ok());
  return std::move(verifier).value();
}

TEST(Checkpoint, ServerlessLogCheckpointsOpenAndMatchTheirLeaves) {
  const note::Verifier verifier = log_verifier();
  const std::vector<std::string> leaves = log_leaves();
  ASSERT_EQ(leaves[0], "one");
  ASSERT_EQ(leaves[14], "fivten");
  for (std::size_t n = 0; n <= kLogLeaves + 1; ++n) {
    const bool latest = n == kLogLeaves + 1;  // "checkpoint" is the latest: checkpoint.15.
    const std::size_t size = latest ? kLogLeaves : n;
    const std::string file = latest ? "checkpoint" : "checkpoint." + std::to_string(n);
    const std::string signed_note = read_file(kLog / file);
    auto checkpoint = ledger::open_checkpoint(signed_note, std::span(&verifier, 1));
    ASSERT_TRUE(checkpoint.is_ok()) << file << ": " << checkpoint.status().to_string();
    EXPECT_EQ(checkpoint->origin, "example.com/testdata") << file;
    EXPECT_EQ(checkpoint->size, size) << file;
    EXPECT_EQ(checkpoint->root, root_from_base64(kLogRoots[size])) << file;
    EXPECT_EQ(checkpoint->root, mth(std::span(leaves).first(size))) << file;
    EXPECT_TRUE(checkpoint->extensions.empty());
    // body() writes back exactly the signed text.
    EXPECT_EQ(ledger::body(*checkpoint), signed_note.substr(0, signed_note.rfind("\n\n") + 1));
  }
}

TEST(Checkpoint, ServerlessLogCheckpointFailsWithAnotherKeyOrAlteredSize) {
  const std::string signed_note = read_file(kLog / "checkpoint.7");
  auto other = note::Signer::generate("astra");
  ASSERT_TRUE(other.is_ok());
  const note::Verifier other_v = other->verifier();
  EXPECT_EQ(ledger::open_checkpoint(signed_note, std::span(&other_v, 1)).status().code(),
            Code::kNotFound);
  std::string altered = signed_note;
  altered.replace(altered.find("\n7\n"), 3, "\n8\n");
  const note::Verifier verifier = log_verifier();
  EXPECT_EQ(ledger::open_checkpoint(altered, std::span(&verifier, 1)).status().code(),
            Code::kCorrupt);
}

TEST(Checkpoint, SignOpenRoundTrip) {
  ASSERT_GE(sodium_init(), 0);
  auto signer = note::Signer::generate("trail.example");
  ASSERT_TRUE(signer.is_ok());
  const note::Verifier verifier = signer->verifier();
  Checkpoint checkpoint{"trail.example/clinic-a", 1234, sha256(as_bytes("x")), {}};
  for (const auto& extensions :
       {std::vector<std::string>{}, std::vector<std::string>{"ext one", "— two"}}) {
    checkpoint.extensions = extensions;
    auto signed_note = ledger::sign_checkpoint(checkpoint, *signer);
    ASSERT_TRUE(signed_note.is_ok()) << signed_note.status().to_string();
    EXPECT_EQ(signed_note->substr(0, 28), "trail.example/clinic-a\n1234\n");
    auto opened = ledger::open_checkpoint(*signed_note, std::span(&verifier, 1));
    ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
    EXPECT_EQ(*opened, checkpoint);
  }
}

TEST(Checkpoint, BodyOfAnEmptyTreeAndTheLargestSize) {
  const Checkpoint empty{"o", 0, sha256({}), {}};
  EXPECT_EQ(ledger::body(empty), "o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n");
  const Checkpoint largest{"o", UINT64_MAX, sha256({}), {}};
  auto parsed = ledger::parse_body(ledger::body(largest));
  ASSERT_TRUE(parsed.is_ok());
  EXPECT_EQ(*parsed, largest);
}

TEST(Checkpoint, ParseBodyIsStrict) {
  const std::string root = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
  ASSERT_TRUE(ledger::parse_body("o\n5\n" + root + "\n").is_ok());
  const std::vector<std::pair<std::string, std::string>> cases{
      {"empty", ""},
      {"no final newline", "o\n5\n" + root},
      {"two lines", "o\n5\n"},
      {"empty origin", "\n5\n" + root + "\n"},
      {"tab in origin", "o\tp\n5\n" + root + "\n"},
      {"CR line ends", "o\r\n5\r\n" + root + "\r\n"},
      {"invalid UTF-8 origin", "o\xFF\n5\n" + root + "\n"},
      {"empty size", "o\n\n" + root + "\n"},
      {"leading zero", "o\n05\n" + root + "\n"},
      {"double zero", "o\n00\n" + root + "\n"},
      {"plus sign", "o\n+5\n" + root + "\n"},
      {"minus sign", "o\n-5\n" + root + "\n"},
      {"space in size", "o\n 5\n" + root + "\n"},
      {"hex size", "o\n0x5\n" + root + "\n"},
      {"size above 2^64-1", "o\n18446744073709551616\n" + root + "\n"},
      {"root of 31 bytes", "o\n5\n" + to_base64(ByteView(sha256({})).first(31)) + "\n"},
      {"root of 33 bytes", "o\n5\n" + to_base64(std::vector<std::uint8_t>(33, 1)) + "\n"},
      {"unpadded root", "o\n5\n" + root.substr(0, root.size() - 1) + "\n"},
      {"non-canonical root", "o\n5\n" + root.substr(0, root.size() - 2) + "V=\n"},
      {"hex root", "o\n5\n" + to_hex(sha256({})) + "\n"},
      {"empty extension line", "o\n5\n" + root + "\n\n"},
      {"empty line between extensions", "o\n5\n" + root + "\na\n\nb\n"},
  };
  for (const auto& [what, text] : cases) {
    auto parsed = ledger::parse_body(text);
    ASSERT_FALSE(parsed.is_ok()) << what;
    EXPECT_EQ(parsed.status().code(), Code::kInvalid) << what;
  }
  auto largest = ledger::parse_body("o\n18446744073709551615\n" + root + "\next\n");
  ASSERT_TRUE(largest.is_ok());
  EXPECT_EQ(largest->size, UINT64_MAX);
  EXPECT_EQ(largest->extensions, std::vector<std::string>{"ext"});
}

TEST(Checkpoint, InvalidCheckpointsAreNotSigned) {
  auto signer = note::Signer::generate("trail.example");
  ASSERT_TRUE(signer.is_ok());
  for (const Checkpoint& bad :
       {Checkpoint{"", 1, {}, {}}, Checkpoint{"a\nb", 1, {}, {}}, Checkpoint{"a\tb", 1, {}, {}},
        Checkpoint{"a", 1, {}, {""}}, Checkpoint{"a", 1, {}, {"x\ny"}}}) {
    EXPECT_EQ(ledger::validate(bad).code(), Code::kInvalid) << bad.origin;
    EXPECT_EQ(ledger::sign_checkpoint(bad, *signer).status().code(), Code::kInvalid);
  }
}

TEST(Checkpoint, SignedNoteWhoseTextIsNoCheckpointIsInvalid) {
  auto signer = note::Signer::generate("trail.example");
  ASSERT_TRUE(signer.is_ok());
  const note::Verifier verifier = signer->verifier();
  auto signed_note = signer->sign("origin\n01\nroot\n");
  ASSERT_TRUE(signed_note.is_ok());
  EXPECT_EQ(ledger::open_checkpoint(*signed_note, std::span(&verifier, 1)).status().code(),
            Code::kInvalid);
}

// ---- The KeyRing's checkpoint signing key ----

class KeyRingSigner : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_GE(sodium_init(), 0); }
  fs::path keys() const { return dir_ / "keys"; }
  TempDir dir_;
};

unsigned mode_of(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777U;
}

std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.insert(entry.path().filename());
  return names;
}

TEST_F(KeyRingSigner, SigningKeySurvivesReload) {
  ASSERT_TRUE(KeyRing::create(keys(), "node-1").is_ok());
  EXPECT_EQ(mode_of(keys() / "signing.key"), 0600U);
  auto first = KeyRing::load(keys());
  auto second = KeyRing::load(keys(), "trail.example");
  ASSERT_TRUE(first.is_ok() && second.is_ok());
  const note::Signer& a = (*first)->signer();
  const note::Signer& b = (*second)->signer();
  EXPECT_EQ(a.name(), "node-1");  // The stored key_name unless load names the signer.
  EXPECT_EQ(b.name(), "trail.example");
  EXPECT_EQ(a.public_key(), b.public_key());
  EXPECT_EQ((*first)->signing_public_key(), a.public_key());
  EXPECT_EQ(read_file(keys() / "signing.pub"),
            std::string(a.public_key().begin(), a.public_key().end()));

  // A checkpoint signed after one load opens with the vkey of the next.
  auto third = KeyRing::load(keys(), "trail.example");
  ASSERT_TRUE(third.is_ok());
  const Checkpoint checkpoint{"trail.example/clinic-a", 3, sha256(as_bytes("r")), {}};
  auto signed_note = ledger::sign_checkpoint(checkpoint, b);
  ASSERT_TRUE(signed_note.is_ok());
  auto verifier = note::Verifier::parse((*third)->signer().verifier_key());
  ASSERT_TRUE(verifier.is_ok());
  auto opened = ledger::open_checkpoint(*signed_note, std::span(&*verifier, 1));
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  EXPECT_EQ(*opened, checkpoint);
}

TEST_F(KeyRingSigner, OldKeyDirectoryGetsASigningKeyOnFirstLoad) {
  ASSERT_TRUE(KeyRing::create(keys(), "node-1").is_ok());
  fs::remove(keys() / "signing.key");
  fs::remove(keys() / "signing.pub");
  auto first = KeyRing::load(keys());
  ASSERT_TRUE(first.is_ok()) << first.status().to_string();
  EXPECT_EQ(names_in(keys()),
            (std::set<std::string>{"kek", "key_name", "signing.key", "signing.pub"}));
  EXPECT_EQ(mode_of(keys() / "signing.key"), 0600U);
  EXPECT_EQ(mode_of(keys() / "signing.pub"), 0600U);
  EXPECT_EQ(fs::file_size(keys() / "signing.key"), note::kSeedBytes);
  const auto& public_key = (*first)->signer().public_key();
  EXPECT_EQ(read_file(keys() / "signing.pub"), std::string(public_key.begin(), public_key.end()));
  auto again = KeyRing::load(keys());
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ((*again)->signer().public_key(), public_key);
}

TEST_F(KeyRingSigner, ConcurrentFirstLoadsAgreeOnOneSigningKey) {
  ASSERT_TRUE(KeyRing::create(keys(), "node-1").is_ok());
  fs::remove(keys() / "signing.key");
  fs::remove(keys() / "signing.pub");
  constexpr std::size_t kLoaders = 8;
  std::vector<std::shared_ptr<const KeyRing>> rings(kLoaders);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < kLoaders; ++i) {
    threads.emplace_back([&, i] {
      auto ring = KeyRing::load(keys());
      if (ring.is_ok()) rings[i] = *ring;
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& ring : rings) {
    ASSERT_NE(ring, nullptr);
    EXPECT_EQ(ring->signer().public_key(), rings[0]->signer().public_key());
  }
  auto after = KeyRing::load(keys());
  ASSERT_TRUE(after.is_ok());
  EXPECT_EQ((*after)->signer().public_key(), rings[0]->signer().public_key());
  const auto& public_key = rings[0]->signer().public_key();
  EXPECT_EQ(read_file(keys() / "signing.pub"), std::string(public_key.begin(), public_key.end()));
  EXPECT_EQ(names_in(keys()),
            (std::set<std::string>{"kek", "key_name", "signing.key", "signing.pub"}));
}

TEST_F(KeyRingSigner, NoSigningKeyIsMadeOutsideAWritableKeyDirectory) {
  // With the KEK in the environment a wrong path gets as far as the signing key: nothing may
  // be written there.
  ::setenv(ledger::kKekEnvVar, std::string(64, 'a').c_str(), 1);
  auto missing = KeyRing::load(dir_ / "nowhere");
  fs::create_directory(dir_ / "other");
  auto other = KeyRing::load(dir_ / "other");
  ::unsetenv(ledger::kKekEnvVar);
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_EQ(other.status().code(), Code::kNotFound);
  EXPECT_TRUE(fs::is_empty(dir_ / "other"));
  EXPECT_FALSE(fs::exists(dir_ / "nowhere"));
}

TEST_F(KeyRingSigner, ReadOnlyKeyDirectoryWithoutSigningKeyIsNotFound) {
  ASSERT_TRUE(KeyRing::create(keys(), "node-1").is_ok());
  fs::remove(keys() / "signing.key");
  if (::geteuid() == 0) GTEST_SKIP() << "root may write any directory";
  ::chmod(keys().c_str(), 0500);
  auto read_only = KeyRing::load(keys());
  ::chmod(keys().c_str(), 0700);
  ASSERT_FALSE(read_only.is_ok());
  EXPECT_EQ(read_only.status().code(), Code::kNotFound);
  EXPECT_NE(read_only.status().detail().find("not writable"), std::string::npos);
}

TEST_F(KeyRingSigner, RefusesBadSignerNamesAndReadableKeys) {
  ASSERT_TRUE(KeyRing::create(keys(), "node-1").is_ok());
  EXPECT_EQ(KeyRing::load(keys(), "has space").status().code(), Code::kInvalid);
  EXPECT_EQ(KeyRing::load(keys(), "a+b").status().code(), Code::kInvalid);
  EXPECT_EQ(KeyRing::create(dir_ / "k2", "tab\tname").code(), Code::kInvalid);
  EXPECT_EQ(KeyRing::create(dir_ / "k3", "nbsp\xC2\xA0name").code(), Code::kInvalid);
  ::chmod((keys() / "signing.key").c_str(), 0640);
  EXPECT_EQ(KeyRing::load(keys()).status().code(), Code::kInvalid);
  ::chmod((keys() / "signing.key").c_str(), 0600);
  fs::resize_file(keys() / "signing.key", 31);
  EXPECT_EQ(KeyRing::load(keys()).status().code(), Code::kInvalid);
}

}  // namespace
}  // namespace trail::testing
