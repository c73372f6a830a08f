// A project's data key, ready to seal and open payloads and to MAC event bodies.
// Sealing picks AES-256-GCM when the CPU has AES-NI (libsodium says so), else
// XChaCha20-Poly1305; opening handles either, as the cipher is recorded per event.
// Thread safety: immutable after construction; every method may be called from any thread.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

#include <sodium.h>

#include "ledger/bytes.h"
#include "ledger/key_ring.h"
#include "ledger/status.h"
#include "schema/event.capnp.h"

namespace trail::ledger {

inline constexpr std::size_t kAeadTagBytes = 16;

class DataKey {
 public:
  // Copies `key`; `id` is the key's id in the `keys` sub-database.
  DataKey(std::uint32_t id, const SecretKey& key);
  DataKey(const DataKey&) = delete;
  DataKey& operator=(const DataKey&) = delete;

  std::uint32_t id() const { return id_; }
  // The cipher seal() uses on this machine.
  schema::Cipher cipher() const { return cipher_; }

  // Bytes of nonce that seal() takes: 12 for AES-256-GCM, 24 for XChaCha20-Poly1305.
  std::size_t nonce_bytes() const;

  // Seals `plain` with associated data `aad` under a fresh random nonce.
  // On return `nonce` holds the nonce and `sealed` the ciphertext with its tag.
  void seal(ByteView aad, ByteView plain, std::string& nonce, std::string& sealed) const;
  // As above with a nonce the caller drew (nonce_bytes() long, never used before with this key).
  void seal_with_nonce(ByteView aad, ByteView plain, ByteView nonce, std::string& sealed) const;

  // Deterministic sealing for derived data (projections), which a rebuild must reproduce byte
  // for byte: the nonce is a keyed hash of `aad` and `plain` (a synthetic IV), so equal inputs
  // give equal output and nothing else repeats a nonce. Output: nonce || ciphertext || tag.
  std::string seal_deterministic(ByteView aad, ByteView plain) const;
  // Opens what seal_deterministic() made. Errors as open().
  Status open_deterministic(ByteView aad, ByteView sealed, std::string& plain) const;

  // Opens what seal() made. Errors: kCorrupt when the tag fails (altered ciphertext, nonce or
  // associated data, or another key); kInvalid when the nonce has the wrong size or the cipher
  // is unknown or unavailable on this CPU.
  Status open(schema::Cipher cipher, ByteView nonce, ByteView aad, ByteView sealed,
              std::string& plain) const;

  // Keyed BLAKE2b-256 of `data` under a subkey of this key: the body fingerprint that the
  // idempotency index compares, which reveals nothing about the body without the key.
  Digest mac(ByteView data) const;
  // The same over the concatenation of `parts`, without concatenating them.
  Digest mac(std::initializer_list<ByteView> parts) const;

 private:
  std::uint32_t id_;
  schema::Cipher cipher_;
  SecretKey key_;
  SecretKey mac_key_;
  // Expanded AES key schedule; libsodium requires 16-byte alignment.
  alignas(16) crypto_aead_aes256gcm_state aes_state_;
};

}  // namespace trail::ledger
