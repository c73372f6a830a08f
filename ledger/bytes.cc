#include "ledger/bytes.h"

#include <sodium.h>

#include <array>
#include <chrono>
#include <cstdint>

#include "ledger/assert.h"

namespace trail {

std::string to_hex(ByteView bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(bytes.size() * 2, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4U];
    out[2 * i + 1] = kDigits[bytes[i] & 0xfU];
  }
  return out;
}

namespace {
// Each byte's value as a hex digit, or -1: one load instead of three range tests, whose
// branches random hex mispredicts.
constexpr std::array<std::int8_t, 256> kHexValues = [] {
  std::array<std::int8_t, 256> table{};
  table.fill(-1);
  for (int c = '0'; c <= '9'; ++c) table[static_cast<std::size_t>(c)] = static_cast<std::int8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) table[static_cast<std::size_t>(c)] = static_cast<std::int8_t>(c - 'a' + 10);
  for (int c = 'A'; c <= 'F'; ++c) table[static_cast<std::size_t>(c)] = static_cast<std::int8_t>(c - 'A' + 10);
  return table;
}();
int hex_value(char c) { return kHexValues[static_cast<unsigned char>(c)]; }
}  // namespace

bool from_hex(std::string_view hex, std::span<std::uint8_t> out) {
  if (hex.size() != out.size() * 2) return false;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int hi = hex_value(hex[2 * i]);
    const int lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::uint8_t>((hi << 4) | lo);
  }
  return true;
}

EventId time_ordered_id() {
  EventId id{};
  randombytes_buf(id.data(), id.size());
  const auto ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
  for (std::size_t i = 0; i < 6; ++i) id[i] = static_cast<std::uint8_t>(ms >> (8U * (5U - i)));
  id[6] = static_cast<std::uint8_t>((id[6] & 0x0fU) | 0x70U);  // Version 7.
  id[8] = static_cast<std::uint8_t>((id[8] & 0x3fU) | 0x80U);  // RFC 9562 variant.
  return id;
}

std::string format_uuid(const EventId& id) {
  const std::string hex = to_hex(id);
  std::string out;
  out.reserve(36);
  out.append(hex, 0, 8).append(1, '-').append(hex, 8, 4).append(1, '-');
  out.append(hex, 12, 4).append(1, '-').append(hex, 16, 4).append(1, '-').append(hex, 20, 12);
  return out;
}

std::optional<EventId> parse_uuid(std::string_view text) {
  if (text.size() != 36) return std::nullopt;
  if (text[8] != '-' || text[13] != '-' || text[18] != '-' || text[23] != '-') return std::nullopt;
  EventId id{};
  std::size_t at = 0;  // Into text: hex pairs, skipping the four dashes (no copy, no allocation).
  bool all_zero = true;
  for (auto& byte : id) {
    if (at == 8 || at == 13 || at == 18 || at == 23) ++at;
    const int hi = hex_value(text[at]);
    const int lo = hex_value(text[at + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    byte = static_cast<std::uint8_t>((hi << 4) | lo);
    all_zero = all_zero && byte == 0;
    at += 2;
  }
  if (all_zero) return std::nullopt;
  return id;
}

std::string to_base64(ByteView bytes) {
  const std::size_t size =
      sodium_base64_encoded_len(bytes.size(), sodium_base64_VARIANT_ORIGINAL);
  std::string out(size, '\0');
  sodium_bin2base64(out.data(), out.size(), bytes.data(), bytes.size(),
                    sodium_base64_VARIANT_ORIGINAL);
  out.resize(size - 1);  // Drop the terminating NUL.
  return out;
}

std::optional<std::vector<std::uint8_t>> from_base64(std::string_view text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::vector<std::uint8_t> out(text.size() / 4 * 3);
  std::size_t size = 0;
  // With no ignore set and no end pointer, libsodium refuses any character it does not
  // consume, missing or misplaced padding, and non-zero unused bits.
  if (sodium_base642bin(out.data(), out.size(), text.data(), text.size(), nullptr, &size, nullptr,
                        sodium_base64_VARIANT_ORIGINAL) != 0) {
    return std::nullopt;
  }
  TRAIL_ASSERT(size <= out.size());
  out.resize(size);
  return out;
}

}  // namespace trail
