// The key directory and what it holds: the key-encryption key (KEK) that wraps every data
// key, and the Ed25519 key that signs checkpoints. docs/FORMAT.md specifies the files.
//
// Invariants: the KEK never leaves this object unwrapped except into libsodium calls; it is
//             never written to LMDB, never logged, and zeroed when the ring is destroyed.
//             The signing key's secret exists only in signing.key and inside signer(), which
//             zeroes it when the ring is destroyed.
// Thread safety: a loaded KeyRing is immutable; every const method may be called from any
//                thread.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "ledger/bytes.h"
#include "ledger/signed_note.h"
#include "ledger/status.h"

namespace trail::ledger {

inline constexpr std::size_t kKekBytes = 32;
inline constexpr std::size_t kDataKeyBytes = 32;
inline constexpr std::size_t kSigningSeedBytes = 32;
inline constexpr std::size_t kSigningPublicBytes = 32;
// Environment variable that, when set, supplies the KEK as 64 hex digits instead of the file.
inline constexpr const char* kKekEnvVar = "TRAIL_KEK";

// 32 secret bytes in memory that is locked against swapping and zeroed on destruction.
class SecretKey {
 public:
  SecretKey();
  ~SecretKey();
  SecretKey(const SecretKey&) = delete;
  SecretKey& operator=(const SecretKey&) = delete;
  std::uint8_t* data() { return bytes_; }
  const std::uint8_t* data() const { return bytes_; }
  static constexpr std::size_t size() { return 32; }

 private:
  std::uint8_t* bytes_;  // sodium_malloc'd: guard pages, mlocked, zeroed on free.
};

// A data key as stored: sealed under the KEK with the key id and project as associated data,
// so a wrapped key cannot be moved to another id or project.
struct WrappedKey {
  std::array<std::uint8_t, 24> nonce{};
  std::array<std::uint8_t, kDataKeyBytes + 16> sealed{};
};

class KeyRing {
 public:
  // Creates `dir` (mode 0700) holding a fresh random KEK and Ed25519 checkpoint signing key
  // (files 0600) and the key name used in signed notes.
  // Errors: kConflict if `dir` already holds keys (keys are never overwritten); kIo when the
  //         directory or a file cannot be written; kInvalid for a key name that is empty,
  //         longer than 128 bytes, or not a note::is_valid_key_name (spaces, '+', controls).
  static Status create(const std::filesystem::path& dir, const std::string& key_name);

  // Loads the keys in `dir`; the KEK comes from $TRAIL_KEK instead when that is set.
  // signer() signs under `signer_name`, or under the stored key_name when that is empty.
  // A key directory without signing.key (and signing.pub) gets a fresh pair, written
  // atomically with mode 0600, when `dir` is writable; concurrent loaders agree on one key.
  // Errors: kNotFound when `dir` holds no keys, or no signing key and is not writable;
  //         kInvalid when a file has the wrong size or is readable by group or others (mode
  //         must be 0600 or stricter), or the signer name is not a note::is_valid_key_name;
  //         kIo on read or write failure.
  static Result<std::shared_ptr<const KeyRing>> load(const std::filesystem::path& dir,
                                                     std::string_view signer_name = {});

  // Wraps `key` for storage under id `key_id` of `project`.
  WrappedKey wrap(std::uint32_t key_id, std::string_view project, const SecretKey& key) const;
  // Reverses wrap(). Errors: kCorrupt when the tag fails (wrong KEK, or tampered record).
  Status unwrap(std::uint32_t key_id, std::string_view project, const WrappedKey& wrapped,
                SecretKey& out) const;

  // A value derived one-way from the KEK and stored in the data directory, so that opening a
  // data directory with the wrong key directory is refused at once rather than failing later.
  Digest kek_check() const;

  const std::string& key_name() const { return key_name_; }
  // Signs checkpoints (ledger/checkpoint.h); valid as long as the ring.
  const note::Signer& signer() const { return *signer_; }
  const std::array<std::uint8_t, kSigningPublicBytes>& signing_public_key() const {
    return signer_->public_key();
  }

 private:
  KeyRing() = default;
  SecretKey kek_;
  std::optional<note::Signer> signer_;  // Set by load(); never empty afterwards.
  std::string key_name_;
};

}  // namespace trail::ledger
