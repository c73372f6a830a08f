// Signed notes (c2sp.org/signed-note, tests/fixtures/merkle/c2sp/signed-note.md): text signed
// by one or more keys, the envelope of Trail's checkpoints. Only Ed25519 (signature type 0x01)
// is supported.
//
//   <text, ending in "\n">
//   <blank line>
//   — <key name> <base64(key id as 4 bytes big-endian || 64-byte Ed25519 signature)>
//   ... one line per signature; the signature covers the text including its final newline.
//
// A note is valid UTF-8 with no control character other than "\n". A key is named by the pair
// (key name, key id); key id = SHA-256(name || 0x0A || 0x01 || public key)[:4], big-endian.
//
// Invariants: a Signer's secret key lives only in sodium_malloc'd memory (guard pages, locked
//             against swapping); it is never copied out, and it is zeroed when the Signer dies.
// Thread safety: Signer and Verifier are immutable once made; their const methods and the free
//                functions may be called from any thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "ledger/bytes.h"
#include "ledger/status.h"

namespace trail::ledger::note {

using PublicKey = std::array<std::uint8_t, 32>;

inline constexpr std::uint8_t kSignatureTypeEd25519 = 0x01;
inline constexpr std::size_t kSeedBytes = 32;       // RFC 8032 private key.
inline constexpr std::size_t kSecretKeyBytes = 64;  // libsodium's: seed || public key.
inline constexpr std::size_t kSignatureBytes = 64;
// Signature lines open() reads before refusing the note; the spec requires accepting 16.
inline constexpr std::size_t kSignaturesMax = 100;

// True when `name` may name a key: non-empty valid UTF-8 without '+', a Unicode space
// (U+0009..U+000D, U+0020, U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F,
// U+205F, U+3000) or any other control character.
bool is_valid_key_name(std::string_view name);

// True when `text` obeys the character rule of notes: valid UTF-8 with no control character
// (below U+0020) other than "\n".
bool is_valid_note_text(std::string_view text);

// The Ed25519 key id of (name, public_key): SHA-256(name || 0x0A || 0x01 || public_key)[:4]
// read as a big-endian integer. An identifier, not a strong hash: verification always uses the
// full public key.
std::uint32_t ed25519_key_id(std::string_view name, const PublicKey& public_key);

// A trusted public key, as given to open(). Build one with parse(); a hand-built Verifier
// whose key_id does not match (name, public_key) simply never matches a signature line.
struct Verifier {
  std::string name;
  std::uint32_t key_id = 0;
  PublicKey public_key{};

  // Parses a verifier key "<name>+<8 hex digits of key id>+<base64(0x01 || public key)>".
  // Errors: kInvalid when a part is missing or malformed, the name is not is_valid_key_name,
  //         the signature type is not Ed25519, or the key id does not match the name and key.
  static Result<Verifier> parse(std::string_view vkey);

  // The vkey text that parse() accepts (lower-case hex key id).
  std::string to_string() const;

  // True when `signature` (the 64 bytes after the key id) is this key's Ed25519 signature of
  // `text`. False for any other signature length.
  bool verify(std::string_view text, ByteView signature) const;
};

// An Ed25519 private key and its name: signs note texts. Move-only; a moved-from Signer may
// only be destroyed or assigned to.
class Signer {
 public:
  // A fresh random key. Errors: kInvalid when `name` is not is_valid_key_name.
  static Result<Signer> generate(std::string name);
  // From libsodium's 64-byte secret key (seed || public key).
  // Errors: kInvalid for a bad name, a size other than 64, or a public half that does not
  //         belong to the seed.
  static Result<Signer> from_secret(std::string name, ByteView secret_key);
  // From the 32-byte RFC 8032 seed (the form KeyRing stores).
  // Errors: kInvalid for a bad name or a size other than 32.
  static Result<Signer> from_seed(std::string name, ByteView seed);

  Signer(Signer&& other) noexcept;
  Signer& operator=(Signer&& other) noexcept;
  Signer(const Signer&) = delete;
  Signer& operator=(const Signer&) = delete;
  ~Signer();

  const std::string& name() const { return name_; }
  const PublicKey& public_key() const { return public_key_; }
  std::uint32_t key_id() const { return key_id_; }
  // "<name>+<hex8(key id)>+<base64(0x01 || public key)>": what verifiers configure.
  std::string verifier_key() const;
  Verifier verifier() const;

  // The whole signed note: text + "\n" + "— <name> <base64(key id || signature)>\n". Each
  // signature is checked against the public key before it is returned.
  // Errors: kInvalid when `text` is empty, does not end in "\n", is not valid UTF-8, or holds a
  //         control character other than "\n".
  Result<std::string> sign(std::string_view text) const;

 private:
  struct SecretFree {
    void operator()(std::uint8_t* secret) const noexcept;
  };
  using SecretPtr = std::unique_ptr<std::uint8_t, SecretFree>;  // kSecretKeyBytes, sodium_malloc'd.

  static SecretPtr new_secret();
  Signer(std::string name, SecretPtr secret);

  std::string name_;
  PublicKey public_key_{};
  std::uint32_t key_id_ = 0;
  SecretPtr secret_;
};

// Splits `note` into text and signature lines and verifies it against `verifiers`. Signature
// lines whose (name, key id) matches no verifier are ignored, as the spec requires, so other
// parties may cosign; every line that matches one must verify.
// Returns the text, including its final newline, when at least one signature verifies.
// Errors: kInvalid when the note is malformed (not UTF-8, a control character other than "\n",
//         no blank line before the signatures, no final newline, a line not of the form
//         "— <name> <base64>", a signature shorter than 5 bytes, more than kSignaturesMax
//         lines) or when two verifiers share a name and key id;
//         kCorrupt when a signature from a known key does not verify (tampered or forged);
//         kNotFound when no line is signed by a known key.
Result<std::string> open(std::string_view note, std::span<const Verifier> verifiers);

}  // namespace trail::ledger::note
