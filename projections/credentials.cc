// Credentials: Argon2id password hashes, bearer tokens and generated passwords, all through
// libsodium (SHA-256 of tokens through ledger/sha256.h).
#include "projections/credentials.h"

#include <array>
#include <cstring>

#include <sodium.h>

#include "ledger/assert.h"
#include "ledger/sha256.h"

namespace trail::proj {
namespace {

constexpr std::size_t kPasswordBytesMax = 4096;
constexpr std::size_t kTokenBytes = 32;
constexpr std::size_t kGeneratedPasswordChars = 20;
// 56 letters without look-alikes: no I, O, l, o, 0, 1.
constexpr std::string_view kPasswordAlphabet =
    "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";
static_assert(kPasswordAlphabet.size() == 56);

}  // namespace

Result<std::string> hash_password(std::string_view password) {
  if (password.empty()) return Status::error(Code::kInvalid, "password is empty");
  if (password.size() > kPasswordBytesMax) {
    return Status::error(Code::kInvalid, "password exceeds " + std::to_string(kPasswordBytesMax) +
                                             " bytes (kPasswordBytesMax)");
  }
  std::array<char, crypto_pwhash_STRBYTES> out{};
  if (crypto_pwhash_str(out.data(), password.data(), password.size(),
                        crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
    return Status::error(Code::kFatal, "out of memory while hashing a password");
  }
  std::string hash(out.data());  // NUL-terminated by libsodium.
  TRAIL_ASSERT(hash.starts_with(crypto_pwhash_STRPREFIX));
  return hash;
}

bool verify_password(std::string_view hash, std::string_view password) {
  // Only Argon2id strings that fit libsodium's buffer with their NUL, and no embedded NUL:
  // anything else (including other algorithms' strings, which could name costly parameters
  // we never chose) is malformed.
  if (hash.size() >= crypto_pwhash_STRBYTES || !hash.starts_with(crypto_pwhash_STRPREFIX) ||
      hash.find('\0') != std::string_view::npos) {
    return false;
  }
  std::array<char, crypto_pwhash_STRBYTES> str{};
  std::memcpy(str.data(), hash.data(), hash.size());
  return crypto_pwhash_str_verify(str.data(), password.data(), password.size()) == 0;
}

const std::string& dummy_hash() {
  static const std::string hash = [] {
    std::array<std::uint8_t, 32> random{};
    randombytes_buf(random.data(), random.size());
    auto hashed = hash_password(to_hex(random));
    TRAIL_ASSERT(hashed.is_ok());
    return std::move(hashed).value();
  }();
  return hash;
}

std::string new_token() {
  std::array<std::uint8_t, kTokenBytes> random{};
  randombytes_buf(random.data(), random.size());
  std::string out(
      sodium_base64_encoded_len(random.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING), '\0');
  sodium_bin2base64(out.data(), out.size(), random.data(), random.size(),
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out.resize(std::strlen(out.c_str()));  // Drop the NUL the encoded length counts.
  sodium_memzero(random.data(), random.size());
  TRAIL_ASSERT(out.size() == 43);
  return out;
}

Digest token_digest(std::string_view token) { return sha256(as_bytes(token)); }

std::string generate_password() {
  std::string out;
  out.reserve(kGeneratedPasswordChars);
  for (std::size_t i = 0; i < kGeneratedPasswordChars; ++i) {
    out.push_back(kPasswordAlphabet[randombytes_uniform(
        static_cast<std::uint32_t>(kPasswordAlphabet.size()))]);
  }
  TRAIL_ASSERT(out.size() == kGeneratedPasswordChars);
  return out;
}

}  // namespace trail::proj
