#include "ledger/data_key.h"

#include <cstring>

namespace trail::ledger {
namespace {
constexpr std::uint64_t kMacSubkeyId = 1;
constexpr char kMacContext[crypto_kdf_CONTEXTBYTES + 1] = "trailmac";
}  // namespace

DataKey::DataKey(std::uint32_t id, const SecretKey& key)
    : id_{id},
      cipher_{crypto_aead_aes256gcm_is_available() != 0 ? schema::Cipher::AES256GCM
                                                        : schema::Cipher::XCHACHA20POLY1305} {
  TRAIL_ASSERT(sodium_init() >= 0);
  std::memcpy(key_.data(), key.data(), key_.size());
  TRAIL_ASSERT(crypto_kdf_derive_from_key(mac_key_.data(), mac_key_.size(), kMacSubkeyId,
                                          kMacContext, key_.data()) == 0);
  std::memset(&aes_state_, 0, sizeof aes_state_);
  if (crypto_aead_aes256gcm_is_available() != 0) {
    TRAIL_ASSERT(crypto_aead_aes256gcm_beforenm(&aes_state_, key_.data()) == 0);
  }
}

std::size_t DataKey::nonce_bytes() const {
  return cipher_ == schema::Cipher::AES256GCM ? crypto_aead_aes256gcm_NPUBBYTES
                                              : crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
}

void DataKey::seal(ByteView aad, ByteView plain, std::string& nonce, std::string& sealed) const {
  nonce.resize(nonce_bytes());
  randombytes_buf(nonce.data(), nonce.size());
  seal_with_nonce(aad, plain, as_bytes(nonce), sealed);
}

void DataKey::seal_with_nonce(ByteView aad, ByteView plain, ByteView nonce,
                              std::string& sealed) const {
  TRAIL_ASSERT(nonce.size() == nonce_bytes());
  sealed.resize(plain.size() + kAeadTagBytes);
  unsigned long long sealed_size = 0;
  auto* out = reinterpret_cast<unsigned char*>(sealed.data());
  if (cipher_ == schema::Cipher::AES256GCM) {
    TRAIL_ASSERT(crypto_aead_aes256gcm_encrypt_afternm(out, &sealed_size, plain.data(),
                                                       plain.size(), aad.data(), aad.size(),
                                                       nullptr, nonce.data(), &aes_state_) == 0);
  } else {
    TRAIL_ASSERT(crypto_aead_xchacha20poly1305_ietf_encrypt(out, &sealed_size, plain.data(),
                                                            plain.size(), aad.data(), aad.size(),
                                                            nullptr, nonce.data(), key_.data()) == 0);
  }
  TRAIL_ASSERT(sealed_size == sealed.size());
}

std::string DataKey::seal_deterministic(ByteView aad, ByteView plain) const {
  static constexpr std::string_view kLabel = "trail/siv/v1";
  std::uint8_t length[8];
  put_u64_be(length, aad.size());
  const Digest iv = mac({as_bytes(kLabel), length, aad, plain});
  const ByteView nonce{iv.data(), nonce_bytes()};
  std::string sealed;
  seal_with_nonce(aad, plain, nonce, sealed);
  std::string out;
  out.reserve(1 + nonce.size() + sealed.size());
  out.push_back(static_cast<char>(cipher_));
  out.append(as_chars(nonce));
  out.append(sealed);
  return out;
}

Status DataKey::open_deterministic(ByteView aad, ByteView sealed, std::string& plain) const {
  if (sealed.empty()) return Status::error(Code::kCorrupt, "sealed value is empty");
  const auto cipher = static_cast<schema::Cipher>(sealed[0]);
  const std::size_t nonce_size = cipher == schema::Cipher::AES256GCM
                                     ? crypto_aead_aes256gcm_NPUBBYTES
                                     : crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
  if (sealed.size() < 1 + nonce_size + kAeadTagBytes) {
    return Status::error(Code::kCorrupt, "sealed value is too short");
  }
  return open(cipher, sealed.subspan(1, nonce_size), aad, sealed.subspan(1 + nonce_size), plain);
}

Status DataKey::open(schema::Cipher cipher, ByteView nonce, ByteView aad, ByteView sealed,
                     std::string& plain) const {
  if (sealed.size() < kAeadTagBytes) {
    return Status::error(Code::kCorrupt, "ciphertext shorter than its tag");
  }
  plain.resize(sealed.size() - kAeadTagBytes);
  unsigned long long plain_size = 0;
  auto* out = reinterpret_cast<unsigned char*>(plain.data());
  int rc = -1;
  switch (cipher) {
    case schema::Cipher::AES256GCM:
      if (crypto_aead_aes256gcm_is_available() == 0) {
        return Status::error(Code::kInvalid, "AES-256-GCM is not available on this CPU");
      }
      if (nonce.size() != crypto_aead_aes256gcm_NPUBBYTES) {
        return Status::error(Code::kCorrupt, "AES-256-GCM nonce has the wrong size");
      }
      rc = crypto_aead_aes256gcm_decrypt_afternm(out, &plain_size, nullptr, sealed.data(),
                                                 sealed.size(), aad.data(), aad.size(),
                                                 nonce.data(), &aes_state_);
      break;
    case schema::Cipher::XCHACHA20POLY1305:
      if (nonce.size() != crypto_aead_xchacha20poly1305_ietf_NPUBBYTES) {
        return Status::error(Code::kCorrupt, "XChaCha20-Poly1305 nonce has the wrong size");
      }
      rc = crypto_aead_xchacha20poly1305_ietf_decrypt(out, &plain_size, nullptr, sealed.data(),
                                                      sealed.size(), aad.data(), aad.size(),
                                                      nonce.data(), key_.data());
      break;
    default:
      return Status::error(Code::kCorrupt, "unknown cipher");
  }
  if (rc != 0) {
    plain.clear();
    return Status::error(Code::kCorrupt, "authentication tag does not verify");
  }
  TRAIL_ASSERT(plain_size == plain.size());
  return Status::ok();
}

Digest DataKey::mac(std::initializer_list<ByteView> parts) const {
  crypto_generichash_state state;
  TRAIL_ASSERT(crypto_generichash_init(&state, mac_key_.data(), mac_key_.size(), 32) == 0);
  for (const ByteView part : parts) {
    TRAIL_ASSERT(crypto_generichash_update(&state, part.data(), part.size()) == 0);
  }
  Digest out{};
  TRAIL_ASSERT(crypto_generichash_final(&state, out.data(), out.size()) == 0);
  return out;
}

Digest DataKey::mac(ByteView data) const {
  Digest out{};
  TRAIL_ASSERT(crypto_generichash(out.data(), out.size(), data.data(), data.size(),
                                  mac_key_.data(), mac_key_.size()) == 0);
  return out;
}

}  // namespace trail::ledger
