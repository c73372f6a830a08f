// Second factor: RFC 4226 HOTP and RFC 6238 TOTP codes as authenticator apps compute them,
// RFC 4648 base32 for their secrets, the otpauth:// URI apps scan, and one-time recovery codes.
// Secrets are raw bytes (std::string used as a byte buffer); only base32 text leaves the server.
// Thread safety: free functions without shared state; sodium_init() must have run before
// new_secret() and new_recovery_codes().
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/clock.h"

namespace trail::proj::totp {

enum class Algorithm { kSha1, kSha256, kSha512 };

inline constexpr int kDigits = 6;
inline constexpr std::int64_t kPeriodSeconds = 30;
inline constexpr std::size_t kSecretBytes = 20;  // 160 bits, the RFC 4226 recommendation
inline constexpr int kDigitsMin = 6;             // RFC 4226 section 5.3
inline constexpr int kDigitsMax = 9;             // 10^9 < 2^31, the truncated value's range
inline constexpr int kWindowMax = 10;            // steps either side verify() may look at
inline constexpr std::size_t kRecoveryCodesMax = 100;

// kSecretBytes fresh random bytes (libsodium randombytes_buf).
std::string new_secret();

// RFC 4648 base32, upper case, without '=' padding.
std::string base32_encode(std::string_view bytes);
// Inverse of base32_encode. Accepts either case, trailing '=' padding (when present, the
// padded length is a multiple of 8), and ignores spaces. Nullopt on any other character, a
// length no encoding produces (1, 3 or 6 characters past a multiple of 8), or non-zero
// unused trailing bits (so every byte string has exactly one accepted spelling per case).
std::optional<std::string> base32_decode(std::string_view text);

// "otpauth://totp/<issuer>:<account>?secret=<BASE32>&issuer=<issuer>&algorithm=SHA1&digits=6
// &period=30" (one line), with issuer and account percent-encoded: RFC 3986 unreserved
// characters (A-Z a-z 0-9 - . _ ~) kept, every other byte as %XX in upper-case hex.
// `secret` is the raw secret, not its base32.
std::string otpauth_uri(std::string_view issuer, std::string_view account,
                        std::string_view secret);

// RFC 4226 HOTP of `counter`: zero-padded decimal of `digits` characters.
// Preconditions (asserted): secret non-empty; kDigitsMin <= digits <= kDigitsMax.
std::string hotp(std::string_view secret, std::uint64_t counter, int digits = kDigits,
                 Algorithm algorithm = Algorithm::kSha1);

// The RFC 6238 time step of `t`: floor(t / kPeriodSeconds); 0 for times before the epoch.
std::uint64_t step_at(TimeUs t);

// The TOTP code at time `t`: hotp(secret, step_at(t), digits, algorithm).
std::string code_at(std::string_view secret, TimeUs t, int digits = kDigits,
                    Algorithm algorithm = Algorithm::kSha1);

// Checks a user's `code` (untrusted) against the SHA-1, kDigits codes of steps
// step_at(now) - window .. step_at(now) + window, refusing every step <= last_used_step so a
// code is accepted at most once. Compares every candidate in constant time, without early exit.
// Returns the matched step, the latest if several match; the caller stores it as the new
// last_used_step. Nullopt when `code` is not exactly kDigits ASCII digits or matches no
// allowed step. Preconditions (asserted): secret non-empty; 0 <= window <= kWindowMax.
std::optional<std::uint64_t> verify(std::string_view secret, std::string_view code, TimeUs now,
                                    std::uint64_t last_used_step, int window = 1);

// `count` distinct recovery codes, each 80 random bits written as 16 lower-case base32
// characters grouped "xxxx-xxxx-xxxx-xxxx". Show them once; store only recovery_code_digest.
// Precondition (asserted): count <= kRecoveryCodesMax.
std::vector<std::string> new_recovery_codes(std::size_t count = 10);

// Lower-case hex SHA-256 of the normalised code: ASCII lower-cased, '-' and ' ' dropped, so
// "ABCD-efgh ..." and "abcdefgh..." digest alike. What is stored instead of the code.
std::string recovery_code_digest(std::string_view code);

// Whether `text` (untrusted), once normalised as for recovery_code_digest, is 16 base32
// characters: a recovery code rather than a kDigits-digit TOTP code.
bool looks_like_recovery_code(std::string_view text);

}  // namespace trail::proj::totp
