// Fixed-size byte values the ledger passes around (digests, ids) and their text forms.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace trail {

using Digest = std::array<std::uint8_t, 32>;   // SHA-256 output
using EventId = std::array<std::uint8_t, 16>;  // client-chosen idempotency key (a UUID)
using ByteView = std::span<const std::uint8_t>;

inline ByteView as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
inline std::string_view as_chars(ByteView b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// Lower-case hex of `bytes`.
std::string to_hex(ByteView bytes);
// Parses exactly `out.size()` bytes of hex (either case); false on any other input.
bool from_hex(std::string_view hex, std::span<std::uint8_t> out);

// Canonical 8-4-4-4-12 lower-case UUID text of 16 bytes.
std::string format_uuid(const EventId& id);
// Parses a UUID in 8-4-4-4-12 form (either case). Any version is accepted; nil is refused.
std::optional<EventId> parse_uuid(std::string_view text);

// A fresh time-ordered UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits.
// Event ids the server mints take this form: consecutive ones land on the same leaf page of
// the idempotency index, so a commit writes far fewer pages than with random v4 ids.
// sodium_init() must have run.
EventId time_ordered_id();

// Standard base64 (RFC 4648, with padding).
std::string to_base64(ByteView bytes);
// Decodes canonical standard base64: padding required, no whitespace, and unused trailing bits
// zero, so every byte string has exactly one accepted text. nullopt on any other input.
std::optional<std::vector<std::uint8_t>> from_base64(std::string_view text);

// Big-endian integer codecs: LMDB compares keys byte-wise, so big-endian keeps numeric order.
inline void put_u64_be(std::uint8_t* out, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<std::uint8_t>(v & 0xffU);
    v >>= 8U;
  }
}
inline std::uint64_t get_u64_be(const std::uint8_t* in) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8U) | in[i];
  return v;
}
inline void put_u32_be(std::uint8_t* out, std::uint32_t v) {
  for (int i = 3; i >= 0; --i) {
    out[i] = static_cast<std::uint8_t>(v & 0xffU);
    v >>= 8U;
  }
}
inline std::uint32_t get_u32_be(const std::uint8_t* in) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8U) | in[i];
  return v;
}

}  // namespace trail
