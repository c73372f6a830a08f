// Sealing, key wrapping, the key directory and the binding of keys to a data directory.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <set>
#include <fstream>

#include "ledger/data_key.h"
#include "ledger/internal/lmdb_env.h"
#include "ledger/key_ring.h"
#include "ledger/ledger.h"
#include "ledger/sha256.h"
#include "tests/support/ledger_fixture.h"

namespace trail::testing {
namespace {

using ledger::DataKey;
using ledger::KeyRing;
using ledger::SecretKey;

std::unique_ptr<DataKey> random_data_key(std::uint32_t id) {
  SecretKey secret;
  randombytes_buf(secret.data(), secret.size());
  return std::make_unique<DataKey>(id, secret);
}

TEST(Seal, RoundTripsAndPicksAesGcmWhenTheCpuHasIt) {
  auto key = random_data_key(7);
  EXPECT_EQ(key->cipher(), crypto_aead_aes256gcm_is_available() != 0
                               ? schema::Cipher::AES256GCM
                               : schema::Cipher::XCHACHA20POLY1305);
  std::string nonce, sealed, plain;
  key->seal(as_bytes("header"), as_bytes("patient is 34"), nonce, sealed);
  EXPECT_EQ(sealed.size(), std::string("patient is 34").size() + ledger::kAeadTagBytes);
  EXPECT_EQ(sealed.find("patient"), std::string::npos);
  ASSERT_TRUE(key->open(key->cipher(), as_bytes(nonce), as_bytes("header"), as_bytes(sealed), plain)
                  .is_ok());
  EXPECT_EQ(plain, "patient is 34");
}

TEST(Seal, NoncesNeverRepeat) {
  auto key = random_data_key(1);
  std::set<std::string> nonces;
  std::string nonce, sealed;
  for (int i = 0; i < 1000; ++i) {
    key->seal(as_bytes("h"), as_bytes("p"), nonce, sealed);
    EXPECT_TRUE(nonces.insert(nonce).second);
  }
}

TEST(Seal, AlteredCiphertextNonceOrHeaderFailsToOpen) {
  auto key = random_data_key(1);
  std::string nonce, sealed, plain;
  key->seal(as_bytes("header"), as_bytes("secret payload"), nonce, sealed);
  std::string bad = sealed;
  bad[3] = static_cast<char>(bad[3] ^ 1);
  EXPECT_EQ(key->open(key->cipher(), as_bytes(nonce), as_bytes("header"), as_bytes(bad), plain).code(),
            Code::kCorrupt);
  std::string bad_nonce = nonce;
  bad_nonce[0] = static_cast<char>(bad_nonce[0] ^ 1);
  EXPECT_EQ(key->open(key->cipher(), as_bytes(bad_nonce), as_bytes("header"), as_bytes(sealed), plain)
                .code(),
            Code::kCorrupt);
  EXPECT_EQ(key->open(key->cipher(), as_bytes(nonce), as_bytes("headex"), as_bytes(sealed), plain)
                .code(),
            Code::kCorrupt);
  auto other = random_data_key(1);
  EXPECT_EQ(other->open(key->cipher(), as_bytes(nonce), as_bytes("header"), as_bytes(sealed), plain)
                .code(),
            Code::kCorrupt);
  EXPECT_EQ(key->open(key->cipher(), as_bytes(nonce), as_bytes("header"), as_bytes("short"), plain)
                .code(),
            Code::kCorrupt);
}

TEST(Seal, XChaChaEventsOpenToo) {
  // Events sealed on a machine without AES-NI carry XChaCha20-Poly1305; any machine opens them.
  SecretKey secret;
  randombytes_buf(secret.data(), secret.size());
  DataKey key{3, secret};
  std::string nonce(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, '\0');
  randombytes_buf(nonce.data(), nonce.size());
  std::string sealed(5 + ledger::kAeadTagBytes, '\0');
  unsigned long long size = 0;
  ASSERT_EQ(crypto_aead_xchacha20poly1305_ietf_encrypt(
                reinterpret_cast<unsigned char*>(sealed.data()), &size,
                reinterpret_cast<const unsigned char*>("hello"), 5,
                reinterpret_cast<const unsigned char*>("aad"), 3, nullptr,
                reinterpret_cast<const unsigned char*>(nonce.data()), secret.data()),
            0);
  std::string plain;
  ASSERT_TRUE(key.open(schema::Cipher::XCHACHA20POLY1305, as_bytes(nonce), as_bytes("aad"),
                       as_bytes(sealed), plain)
                  .is_ok());
  EXPECT_EQ(plain, "hello");
}

TEST(Seal, MacIsKeyedAndDeterministic) {
  auto a = random_data_key(1);
  auto b = random_data_key(1);
  EXPECT_EQ(a->mac(as_bytes("body")), a->mac(as_bytes("body")));
  EXPECT_NE(a->mac(as_bytes("body")), a->mac(as_bytes("bodY")));
  EXPECT_NE(a->mac(as_bytes("body")), b->mac(as_bytes("body")));
}

TEST(Sha256, MatchesKnownVectors) {
  // FIPS 180-2 "abc"; RFC 6962 empty-leaf hash SHA-256(0x00).
  EXPECT_EQ(to_hex(sha256(as_bytes("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(to_hex(leaf_hash({})),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
}

class KeyDir : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_GE(sodium_init(), 0); }
  TempDir dir_;
};

TEST_F(KeyDir, CreatesPrivateFilesAndRefusesToOverwrite) {
  const auto keys = dir_ / "keys";
  ASSERT_TRUE(KeyRing::create(keys, "node-1").is_ok());
  struct stat st {};
  ASSERT_EQ(::stat(keys.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777U, 0700U);
  for (const char* name : {"kek", "signing.key", "signing.pub", "key_name"}) {
    ASSERT_EQ(::stat((keys / name).c_str(), &st), 0) << name;
    EXPECT_EQ(st.st_mode & 0777U, 0600U) << name;
  }
  EXPECT_EQ(std::filesystem::file_size(keys / "kek"), 32U);
  auto again = KeyRing::create(keys, "node-1");
  EXPECT_EQ(again.code(), Code::kConflict);
  auto ring = KeyRing::load(keys);
  ASSERT_TRUE(ring.is_ok());
  EXPECT_EQ((*ring)->key_name(), "node-1");
}

TEST_F(KeyDir, RefusesKeyFilesOthersCanRead) {
  const auto keys = dir_ / "keys";
  ASSERT_TRUE(KeyRing::create(keys, "n").is_ok());
  ::chmod((keys / "kek").c_str(), 0644);
  auto ring = KeyRing::load(keys);
  ASSERT_FALSE(ring.is_ok());
  EXPECT_EQ(ring.status().code(), Code::kInvalid);
  EXPECT_NE(ring.status().detail().find("chmod 600"), std::string::npos);
}

TEST_F(KeyDir, MissingOrTruncatedKeysAreReported) {
  EXPECT_EQ(KeyRing::load(dir_ / "none").status().code(), Code::kNotFound);
  const auto keys = dir_ / "keys";
  ASSERT_TRUE(KeyRing::create(keys, "n").is_ok());
  std::filesystem::resize_file(keys / "kek", 16);
  EXPECT_EQ(KeyRing::load(keys).status().code(), Code::kInvalid);
}

TEST_F(KeyDir, RejectsBadKeyNames) {
  EXPECT_EQ(KeyRing::create(dir_ / "a", "").code(), Code::kInvalid);
  EXPECT_EQ(KeyRing::create(dir_ / "b", "has space").code(), Code::kInvalid);
}

TEST_F(KeyDir, WrappedKeyOpensOnlyForItsIdAndProject) {
  ASSERT_TRUE(KeyRing::create(dir_ / "k", "n").is_ok());
  auto ring = *KeyRing::load(dir_ / "k");
  SecretKey secret;
  randombytes_buf(secret.data(), secret.size());
  const auto wrapped = ring->wrap(5, "clinic", secret);
  SecretKey out;
  ASSERT_TRUE(ring->unwrap(5, "clinic", wrapped, out).is_ok());
  EXPECT_EQ(std::memcmp(out.data(), secret.data(), secret.size()), 0);
  EXPECT_EQ(ring->unwrap(6, "clinic", wrapped, out).code(), Code::kCorrupt);
  EXPECT_EQ(ring->unwrap(5, "clinix", wrapped, out).code(), Code::kCorrupt);
}

TEST_F(KeyDir, KekFromEnvironmentOverridesTheFile) {
  ASSERT_TRUE(KeyRing::create(dir_ / "k", "n").is_ok());
  auto from_file = *KeyRing::load(dir_ / "k");
  ::setenv(ledger::kKekEnvVar, std::string(64, 'a').c_str(), 1);
  auto from_env = KeyRing::load(dir_ / "k");
  ::setenv(ledger::kKekEnvVar, "not-hex", 1);
  auto bad_env = KeyRing::load(dir_ / "k");
  ::unsetenv(ledger::kKekEnvVar);
  ASSERT_TRUE(from_env.is_ok());
  EXPECT_NE((*from_env)->kek_check(), from_file->kek_check());
  EXPECT_EQ(bad_env.status().code(), Code::kInvalid);
}

class KeysInLmdb : public LedgerTest {};

TEST_F(KeysInLmdb, DataKeysAreStoredOnlyWrappedAndPayloadsOnlySealed) {
  auto drafts = make_drafts(3);
  for (auto& d : drafts) d.payload = "NAME=Achieng Otieno;PHONE=+254700000000";
  append_ok("clinic", drafts);
  ledger_.reset();
  // Read every byte of the LMDB file: no plaintext, and no unwrapped data key.
  std::ifstream in(data_dir() / "data.mdb", std::ios::binary);
  const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(file.find("Achieng"), std::string::npos);
  EXPECT_EQ(file.find("+254700000000"), std::string::npos);
  auto env = ledger::detail::Env::open(data_dir(), {});
  ASSERT_TRUE(env.is_ok());
  auto txn = (*env)->begin_read();
  ASSERT_TRUE(txn.is_ok());
  auto record = txn->get(ledger::detail::Table::kKeys, as_bytes(std::string("\0\0\0\1", 4)));
  ASSERT_TRUE(record.is_ok() && record->has_value());
  // Unwrap with the ring and make sure the raw key bytes appear nowhere in the file.
  std::string project;
  ledger::WrappedKey wrapped;
  const ByteView value = **record;
  ASSERT_EQ(value[0], 1);
  project.assign(as_chars(value.subspan(2, value[1])));
  EXPECT_EQ(project, "clinic");
  std::copy_n(value.data() + 2 + value[1], 24, wrapped.nonce.begin());
  std::copy_n(value.data() + 2 + value[1] + 24, 48, wrapped.sealed.begin());
  SecretKey raw;
  ASSERT_TRUE(keys_->unwrap(1, "clinic", wrapped, raw).is_ok());
  EXPECT_EQ(file.find(std::string(reinterpret_cast<const char*>(raw.data()), raw.size())),
            std::string::npos);
  // Nor the KEK.
  std::ifstream kek_in(keys_dir() / "kek", std::ios::binary);
  const std::string kek((std::istreambuf_iterator<char>(kek_in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(file.find(kek), std::string::npos);
}

TEST_F(KeysInLmdb, AnotherKeyDirectoryIsRefusedAtOpen) {
  ASSERT_TRUE(KeyRing::create(dir_ / "other", "x").is_ok());
  ledger_.reset();
  ledger::LedgerOptions options;
  options.data_dir = data_dir();
  options.keys = *KeyRing::load(dir_ / "other");
  auto opened = ledger::Ledger::open(options);
  ASSERT_FALSE(opened.is_ok());
  EXPECT_EQ(opened.status().code(), Code::kInvalid);
}

TEST_F(KeysInLmdb, CreateRefusesAnInitialisedDirectory) {
  ledger_.reset();
  EXPECT_EQ(ledger::Ledger::create(data_dir(), *keys_).code(), Code::kConflict);
}

TEST_F(KeysInLmdb, EachProjectGetsItsOwnDataKey) {
  append_ok("a", make_drafts(1));
  append_ok("b", make_drafts(1));
  auto a = ledger_->open_event(*ledger_->read("a", 1));
  auto b = ledger_->open_event(*ledger_->read("b", 1));
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_NE(a->envelope.key_id, b->envelope.key_id);
  reopen();  // Keys survive a restart.
  EXPECT_TRUE(ledger_->open_event(*ledger_->read("b", 1)).is_ok());
}

}  // namespace
}  // namespace trail::testing
