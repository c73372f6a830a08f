#include "ledger/signed_note.h"

#include <sodium.h>

#include <utility>
#include <vector>

#include "ledger/assert.h"
#include "ledger/sha256.h"

namespace trail::ledger::note {
namespace {

// U+2014 EM DASH, then a space: how every signature line starts.
constexpr std::string_view kSignaturePrefix = "\xE2\x80\x94 ";
constexpr std::size_t kKeyIdBytes = 4;

// sodium_init is idempotent and thread-safe; sodium_malloc and randombytes need it first.
void ensure_sodium() { TRAIL_ASSERT(sodium_init() >= 0); }

struct Rune {
  std::uint32_t value = 0;
  std::size_t size = 0;  // 0: not a valid UTF-8 sequence.
};

// Decodes the UTF-8 sequence at the start of non-empty `s`. Refuses overlong forms,
// surrogates and values above U+10FFFF, as the Unicode standard requires.
Rune decode_rune(std::string_view s) {
  TRAIL_ASSERT(!s.empty());
  const auto lead = static_cast<std::uint8_t>(s[0]);
  if (lead < 0x80U) return {lead, 1};
  std::size_t size = 0;
  std::uint32_t value = 0;
  std::uint32_t min = 0;
  if ((lead & 0xE0U) == 0xC0U) {
    size = 2;
    value = lead & 0x1FU;
    min = 0x80U;
  } else if ((lead & 0xF0U) == 0xE0U) {
    size = 3;
    value = lead & 0x0FU;
    min = 0x800U;
  } else if ((lead & 0xF8U) == 0xF0U) {
    size = 4;
    value = lead & 0x07U;
    min = 0x10000U;
  } else {
    return {};
  }
  if (s.size() < size) return {};
  for (std::size_t i = 1; i < size; ++i) {
    const auto next = static_cast<std::uint8_t>(s[i]);
    if ((next & 0xC0U) != 0x80U) return {};
    value = (value << 6U) | (next & 0x3FU);
  }
  if (value < min || value > 0x10FFFFU) return {};
  if (value >= 0xD800U && value <= 0xDFFFU) return {};
  return {value, size};
}

// Unicode White_Space (what Go's unicode.IsSpace accepts, which the reference implementation
// uses for key names).
bool is_space(std::uint32_t r) {
  if (r >= 0x09U && r <= 0x0DU) return true;
  if (r == 0x20U || r == 0x85U || r == 0xA0U || r == 0x1680U) return true;
  if (r >= 0x2000U && r <= 0x200AU) return true;
  return r == 0x2028U || r == 0x2029U || r == 0x202FU || r == 0x205FU || r == 0x3000U;
}

Status malformed(std::size_t line, const std::string& why) {
  return Status::error(Code::kInvalid,
                       "malformed signed note: signature line " + std::to_string(line) + " " + why);
}

}  // namespace

bool is_valid_note_text(std::string_view text) {
  while (!text.empty()) {
    const Rune r = decode_rune(text);
    if (r.size == 0) return false;
    if (r.value < 0x20U && r.value != '\n') return false;
    text.remove_prefix(r.size);
  }
  return true;
}

bool is_valid_key_name(std::string_view name) {
  if (name.empty()) return false;
  while (!name.empty()) {
    const Rune r = decode_rune(name);
    if (r.size == 0) return false;
    if (r.value < 0x20U || r.value == '+' || is_space(r.value)) return false;
    name.remove_prefix(r.size);
  }
  return true;
}

std::uint32_t ed25519_key_id(std::string_view name, const PublicKey& public_key) {
  std::vector<std::uint8_t> input;
  input.reserve(name.size() + 2 + public_key.size());
  input.insert(input.end(), name.begin(), name.end());
  input.push_back('\n');
  input.push_back(kSignatureTypeEd25519);
  input.insert(input.end(), public_key.begin(), public_key.end());
  const Digest digest = sha256(input);
  return get_u32_be(digest.data());
}

// ---- Verifier ----

Result<Verifier> Verifier::parse(std::string_view vkey) {
  const std::size_t name_end = vkey.find('+');
  if (name_end == std::string_view::npos) {
    return Status::error(Code::kInvalid, "verifier key must be <name>+<key id>+<key>");
  }
  const std::string_view name = vkey.substr(0, name_end);
  const std::string_view rest = vkey.substr(name_end + 1);
  const std::size_t id_end = rest.find('+');  // The base64 key may itself contain '+'.
  if (id_end == std::string_view::npos) {
    return Status::error(Code::kInvalid, "verifier key must be <name>+<key id>+<key>");
  }
  if (!is_valid_key_name(name)) {
    return Status::error(Code::kInvalid, "verifier key has an invalid key name");
  }
  std::array<std::uint8_t, kKeyIdBytes> id{};
  if (!from_hex(rest.substr(0, id_end), id)) {
    return Status::error(Code::kInvalid,
                         "verifier key id of " + std::string(name) + " must be 8 hex digits");
  }
  const auto key = from_base64(rest.substr(id_end + 1));
  if (!key.has_value() || key->empty()) {
    return Status::error(Code::kInvalid,
                         "verifier key of " + std::string(name) + " is not canonical base64");
  }
  if ((*key)[0] != kSignatureTypeEd25519 || key->size() != 1 + PublicKey{}.size()) {
    return Status::error(Code::kInvalid, "verifier key of " + std::string(name) +
                                             " is not an Ed25519 key (type 0x01, 32 bytes)");
  }
  Verifier out{std::string(name), get_u32_be(id.data()), {}};
  std::copy(key->begin() + 1, key->end(), out.public_key.begin());
  if (ed25519_key_id(out.name, out.public_key) != out.key_id) {
    return Status::error(Code::kInvalid, "verifier key id of " + out.name +
                                             " does not match its name and public key");
  }
  return out;
}

std::string Verifier::to_string() const {
  std::array<std::uint8_t, kKeyIdBytes> id{};
  put_u32_be(id.data(), key_id);
  std::array<std::uint8_t, 1 + PublicKey{}.size()> typed{};
  typed[0] = kSignatureTypeEd25519;
  std::copy(public_key.begin(), public_key.end(), typed.begin() + 1);
  return name + "+" + to_hex(id) + "+" + to_base64(typed);
}

bool Verifier::verify(std::string_view text, ByteView signature) const {
  if (signature.size() != kSignatureBytes) return false;
  const ByteView message = as_bytes(text);
  return crypto_sign_ed25519_verify_detached(signature.data(), message.data(), message.size(),
                                             public_key.data()) == 0;
}

// ---- Signer ----

void Signer::SecretFree::operator()(std::uint8_t* secret) const noexcept {
  sodium_free(secret);  // Zeroes the bytes before releasing them.
}

Signer::SecretPtr Signer::new_secret() {
  ensure_sodium();
  SecretPtr secret{static_cast<std::uint8_t*>(sodium_malloc(kSecretKeyBytes))};
  TRAIL_ASSERT(secret != nullptr);
  sodium_memzero(secret.get(), kSecretKeyBytes);
  return secret;
}

Signer::Signer(std::string name, SecretPtr secret)
    : name_{std::move(name)}, secret_{std::move(secret)} {
  TRAIL_ASSERT(is_valid_key_name(name_));
  TRAIL_ASSERT(secret_ != nullptr);
  TRAIL_ASSERT(crypto_sign_ed25519_sk_to_pk(public_key_.data(), secret_.get()) == 0);
  key_id_ = ed25519_key_id(name_, public_key_);
}

Signer::Signer(Signer&& other) noexcept = default;
Signer& Signer::operator=(Signer&& other) noexcept = default;
Signer::~Signer() = default;

Result<Signer> Signer::generate(std::string name) {
  if (!is_valid_key_name(name)) {
    return Status::error(Code::kInvalid,
                         "signing key name must be non-empty UTF-8 without "
                         "spaces, control characters or '+'");
  }
  SecretPtr secret = new_secret();
  PublicKey public_key{};
  TRAIL_ASSERT(crypto_sign_ed25519_keypair(public_key.data(), secret.get()) == 0);
  return Signer{std::move(name), std::move(secret)};
}

Result<Signer> Signer::from_seed(std::string name, ByteView seed) {
  if (!is_valid_key_name(name)) {
    return Status::error(Code::kInvalid,
                         "signing key name must be non-empty UTF-8 without "
                         "spaces, control characters or '+'");
  }
  if (seed.size() != kSeedBytes) {
    return Status::error(Code::kInvalid,
                         "an Ed25519 seed has 32 bytes, not " + std::to_string(seed.size()));
  }
  SecretPtr secret = new_secret();
  PublicKey public_key{};
  TRAIL_ASSERT(crypto_sign_ed25519_seed_keypair(public_key.data(), secret.get(), seed.data()) == 0);
  return Signer{std::move(name), std::move(secret)};
}

Result<Signer> Signer::from_secret(std::string name, ByteView secret_key) {
  if (secret_key.size() != kSecretKeyBytes) {
    return Status::error(Code::kInvalid, "an Ed25519 secret key has 64 bytes, not " +
                                             std::to_string(secret_key.size()));
  }
  Result<Signer> signer = from_seed(std::move(name), secret_key.first(kSeedBytes));
  if (!signer.is_ok()) return signer;
  // The second half is the public key; a mismatch means a damaged or spliced key.
  const ByteView given_public = secret_key.subspan(kSeedBytes);
  if (sodium_memcmp(given_public.data(), signer->public_key().data(), given_public.size()) != 0) {
    return Status::error(Code::kInvalid,
                         "Ed25519 secret key's public half does not belong to its seed");
  }
  return signer;
}

std::string Signer::verifier_key() const { return verifier().to_string(); }

Verifier Signer::verifier() const { return Verifier{name_, key_id_, public_key_}; }

Result<std::string> Signer::sign(std::string_view text) const {
  TRAIL_ASSERT(secret_ != nullptr);  // Not moved from.
  if (text.empty() || text.back() != '\n') {
    return Status::error(Code::kInvalid, "note text must be non-empty and end in a newline");
  }
  if (!is_valid_note_text(text)) {
    return Status::error(Code::kInvalid,
                         "note text must be UTF-8 without control characters "
                         "other than newline");
  }
  std::array<std::uint8_t, kKeyIdBytes + kSignatureBytes> signature{};
  put_u32_be(signature.data(), key_id_);
  const ByteView message = as_bytes(text);
  TRAIL_ASSERT(crypto_sign_ed25519_detached(signature.data() + kKeyIdBytes, nullptr, message.data(),
                                            message.size(), secret_.get()) == 0);
  // Pair check: never publish a signature our own public key does not accept.
  TRAIL_ASSERT(verifier().verify(text, ByteView{signature}.subspan(kKeyIdBytes)));

  std::string out;
  out.reserve(text.size() + 1 + kSignaturePrefix.size() + name_.size() + 1 + 92 + 1);
  out.append(text).append("\n").append(kSignaturePrefix).append(name_).append(" ");
  out.append(to_base64(signature)).append("\n");
  return out;
}

// ---- open ----

Result<std::string> open(std::string_view note, std::span<const Verifier> verifiers) {
  ensure_sodium();
  for (std::size_t i = 0; i < verifiers.size(); ++i) {
    for (std::size_t j = i + 1; j < verifiers.size(); ++j) {
      if (verifiers[i].name == verifiers[j].name && verifiers[i].key_id == verifiers[j].key_id) {
        return Status::error(Code::kInvalid,
                             "two verifiers share the name and key id of " + verifiers[i].name);
      }
    }
  }
  if (!is_valid_note_text(note)) {
    return Status::error(Code::kInvalid,
                         "malformed signed note: not UTF-8, or a control "
                         "character other than newline");
  }
  // The text ends at the last blank line; it may itself contain blank lines.
  const std::size_t split = note.rfind("\n\n");
  if (split == std::string_view::npos) {
    return Status::error(Code::kInvalid,
                         "malformed signed note: no blank line before the "
                         "signatures");
  }
  const std::string_view text = note.substr(0, split + 1);
  std::string_view lines = note.substr(split + 2);
  if (lines.empty() || lines.back() != '\n') {
    return Status::error(Code::kInvalid,
                         "malformed signed note: no signature lines, or no "
                         "final newline");
  }

  std::size_t line_count = 0;
  std::size_t verified_count = 0;
  while (!lines.empty()) {
    const std::size_t end = lines.find('\n');
    TRAIL_ASSERT(end != std::string_view::npos);  // `lines` ends in "\n".
    std::string_view line = lines.substr(0, end);
    lines.remove_prefix(end + 1);
    if (++line_count > kSignaturesMax) {
      return Status::error(Code::kInvalid, "signed note has more than " +
                                               std::to_string(kSignaturesMax) + " signatures");
    }
    if (!line.starts_with(kSignaturePrefix))
      return malformed(line_count,
                       "does not start "
                       "with \"— \"");
    line.remove_prefix(kSignaturePrefix.size());
    const std::size_t space = line.find(' ');
    if (space == std::string_view::npos) return malformed(line_count, "has no signature");
    const std::string_view name = line.substr(0, space);
    if (!is_valid_key_name(name)) return malformed(line_count, "has an invalid key name");
    const auto signature = from_base64(line.substr(space + 1));
    if (!signature.has_value() || signature->size() <= kKeyIdBytes) {
      return malformed(line_count, "has no canonical base64 key id and signature");
    }
    const std::uint32_t key_id = get_u32_be(signature->data());
    for (const Verifier& verifier : verifiers) {
      if (verifier.name != name || verifier.key_id != key_id) continue;
      if (!verifier.verify(text, ByteView{*signature}.subspan(kKeyIdBytes))) {
        return Status::error(Code::kCorrupt, "signature by known key " + verifier.name +
                                                 " does not verify: the note was altered or "
                                                 "forged");
      }
      ++verified_count;
    }
  }
  TRAIL_ASSERT(line_count >= 1);
  if (verified_count == 0) {
    return Status::error(Code::kNotFound, "signed note carries no signature by a trusted key");
  }
  return std::string(text);
}

}  // namespace trail::ledger::note
