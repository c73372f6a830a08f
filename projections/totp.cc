// HOTP/TOTP over OpenSSL HMAC, base32, otpauth URIs and recovery codes (randomness from
// libsodium, digests through ledger/sha256.h).
#include "projections/totp.h"

#include <algorithm>
#include <array>
#include <climits>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>

#include "ledger/assert.h"
#include "ledger/bytes.h"
#include "ledger/sha256.h"

namespace trail::proj::totp {
namespace {

constexpr std::string_view kBase32Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
constexpr std::int64_t kPeriodUs = kPeriodSeconds * 1'000'000;
constexpr std::size_t kRecoveryCodeBytes = 10;  // 80 bits -> 16 base32 characters
constexpr std::size_t kRecoveryCodeChars = 16;
constexpr std::size_t kRecoveryGroupChars = 4;

// Value of one base32 character of either case, or -1.
int base32_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a';
  if (c >= '2' && c <= '7') return c - '2' + 26;
  return -1;
}

char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool is_unreserved(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_' || c == '~';
}

std::string percent_encode(std::string_view text) {
  constexpr std::string_view kHex = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (is_unreserved(c)) {
      out.push_back(c);
    } else {
      const auto byte = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(kHex[byte >> 4U]);
      out.push_back(kHex[byte & 0x0fU]);
    }
  }
  return out;
}

const EVP_MD* digest_of(Algorithm algorithm) {
  switch (algorithm) {
    case Algorithm::kSha1: return EVP_sha1();
    case Algorithm::kSha256: return EVP_sha256();
    case Algorithm::kSha512: return EVP_sha512();
  }
  TRAIL_ASSERT(false && "unknown TOTP algorithm");
  return nullptr;
}

// Lower-cased, with '-' and ' ' dropped: the form recovery codes are compared in.
std::string normalise_recovery_code(std::string_view code) {
  std::string out;
  out.reserve(code.size());
  for (char c : code) {
    if (c == '-' || c == ' ') continue;
    out.push_back(ascii_lower(c));
  }
  return out;
}

}  // namespace

std::string new_secret() {
  std::string secret(kSecretBytes, '\0');
  randombytes_buf(secret.data(), secret.size());
  TRAIL_ASSERT(secret.size() == kSecretBytes);
  return secret;
}

std::string base32_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 8 + 4) / 5);
  std::uint32_t buffer = 0;  // never holds more than 12 pending bits
  unsigned bits = 0;
  for (char c : bytes) {
    buffer = (buffer << 8U) | static_cast<unsigned char>(c);
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out.push_back(kBase32Alphabet[(buffer >> bits) & 0x1fU]);
    }
    buffer &= (1U << bits) - 1U;
  }
  if (bits > 0) out.push_back(kBase32Alphabet[(buffer << (5 - bits)) & 0x1fU]);
  TRAIL_ASSERT(out.size() == (bytes.size() * 8 + 4) / 5);
  return out;
}

std::optional<std::string> base32_decode(std::string_view text) {
  std::string compact;
  compact.reserve(text.size());
  for (char c : text) {
    if (c != ' ') compact.push_back(c);
  }
  const std::size_t data_chars = compact.find_last_not_of('=') + 1;  // npos + 1 == 0
  const std::size_t pad_chars = compact.size() - data_chars;
  if (pad_chars > 6) return std::nullopt;
  if (pad_chars > 0 && compact.size() % 8 != 0) return std::nullopt;
  const std::size_t tail = data_chars % 8;
  if (tail == 1 || tail == 3 || tail == 6) return std::nullopt;

  std::string out;
  out.reserve(data_chars * 5 / 8);
  std::uint32_t buffer = 0;  // never holds more than 12 pending bits
  unsigned bits = 0;
  for (std::size_t i = 0; i < data_chars; ++i) {
    const int value = base32_value(compact[i]);
    if (value < 0) return std::nullopt;  // includes '=' before the end
    buffer = (buffer << 5U) | static_cast<std::uint32_t>(value);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xffU));
      buffer &= (1U << bits) - 1U;
    }
  }
  if (buffer != 0) return std::nullopt;  // non-canonical: unused trailing bits set
  TRAIL_ASSERT(out.size() == data_chars * 5 / 8);
  return out;
}

std::string otpauth_uri(std::string_view issuer, std::string_view account,
                        std::string_view secret) {
  const std::string issuer_text = percent_encode(issuer);
  std::string uri = "otpauth://totp/";
  uri += issuer_text;
  uri += ':';
  uri += percent_encode(account);
  uri += "?secret=";
  uri += base32_encode(secret);
  uri += "&issuer=";
  uri += issuer_text;
  uri += "&algorithm=SHA1&digits=" + std::to_string(kDigits);
  uri += "&period=" + std::to_string(kPeriodSeconds);
  return uri;
}

std::string hotp(std::string_view secret, std::uint64_t counter, int digits,
                 Algorithm algorithm) {
  TRAIL_ASSERT(!secret.empty());
  TRAIL_ASSERT(secret.size() <= static_cast<std::size_t>(INT_MAX));
  TRAIL_ASSERT(digits >= kDigitsMin);
  TRAIL_ASSERT(digits <= kDigitsMax);

  std::array<std::uint8_t, 8> message{};
  put_u64_be(message.data(), counter);
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int mac_size = 0;
  const unsigned char* result =
      HMAC(digest_of(algorithm), secret.data(), static_cast<int>(secret.size()), message.data(),
           message.size(), mac.data(), &mac_size);
  TRAIL_ASSERT(result != nullptr);
  TRAIL_ASSERT(mac_size >= 20);

  // RFC 4226 section 5.3 dynamic truncation: 31 bits at the offset the last nibble names.
  const std::size_t offset = mac[mac_size - 1] & 0x0fU;
  const std::uint32_t binary = (static_cast<std::uint32_t>(mac[offset] & 0x7fU) << 24U) |
                               (static_cast<std::uint32_t>(mac[offset + 1]) << 16U) |
                               (static_cast<std::uint32_t>(mac[offset + 2]) << 8U) |
                               static_cast<std::uint32_t>(mac[offset + 3]);
  std::uint32_t modulus = 1;
  for (int i = 0; i < digits; ++i) modulus *= 10;
  const std::string value = std::to_string(binary % modulus);

  const auto width = static_cast<std::size_t>(digits);
  std::string code(width - value.size(), '0');
  code += value;
  TRAIL_ASSERT(code.size() == width);
  return code;
}

std::uint64_t step_at(TimeUs t) {
  if (t < 0) return 0;
  return static_cast<std::uint64_t>(t / kPeriodUs);
}

std::string code_at(std::string_view secret, TimeUs t, int digits, Algorithm algorithm) {
  return hotp(secret, step_at(t), digits, algorithm);
}

std::optional<std::uint64_t> verify(std::string_view secret, std::string_view code, TimeUs now,
                                    std::uint64_t last_used_step, int window) {
  TRAIL_ASSERT(window >= 0);
  TRAIL_ASSERT(window <= kWindowMax);
  if (code.size() != static_cast<std::size_t>(kDigits)) return std::nullopt;
  if (!std::all_of(code.begin(), code.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }

  const std::uint64_t now_step = step_at(now);
  const auto reach = static_cast<std::uint64_t>(window);
  const std::uint64_t first = now_step >= reach ? now_step - reach : 0;
  const std::uint64_t last = now_step + reach;
  std::optional<std::uint64_t> matched;
  for (std::uint64_t step = first; step <= last; ++step) {
    if (step <= last_used_step) continue;  // replay: this step, or an earlier one, was used
    const std::string expected = hotp(secret, step);
    TRAIL_ASSERT(expected.size() == code.size());
    if (CRYPTO_memcmp(expected.data(), code.data(), code.size()) == 0) matched = step;
  }
  if (matched) TRAIL_ASSERT(*matched > last_used_step);
  return matched;
}

std::vector<std::string> new_recovery_codes(std::size_t count) {
  TRAIL_ASSERT(count <= kRecoveryCodesMax);
  std::vector<std::string> codes;
  codes.reserve(count);
  while (codes.size() < count) {
    std::array<std::uint8_t, kRecoveryCodeBytes> random{};
    randombytes_buf(random.data(), random.size());
    const std::string plain = base32_encode(as_chars(random));
    sodium_memzero(random.data(), random.size());
    TRAIL_ASSERT(plain.size() == kRecoveryCodeChars);

    std::string code;
    for (std::size_t i = 0; i < plain.size(); ++i) {
      if (i > 0 && i % kRecoveryGroupChars == 0) code.push_back('-');
      code.push_back(ascii_lower(plain[i]));
    }
    // 80 random bits make a repeat all but impossible; keep the promise of distinct codes anyway.
    if (std::find(codes.begin(), codes.end(), code) == codes.end()) codes.push_back(code);
  }
  return codes;
}

std::string recovery_code_digest(std::string_view code) {
  const std::string normalised = normalise_recovery_code(code);
  return to_hex(sha256(as_bytes(normalised)));
}

bool looks_like_recovery_code(std::string_view text) {
  const std::string normalised = normalise_recovery_code(text);
  if (normalised.size() != kRecoveryCodeChars) return false;
  return std::all_of(normalised.begin(), normalised.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '2' && c <= '7');
  });
}

}  // namespace trail::proj::totp
