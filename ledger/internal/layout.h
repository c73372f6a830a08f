// Key and value layouts of the ledger's sub-databases (docs/FORMAT.md, "Sub-databases").
// Keys are big-endian composites so that LMDB's byte order is chain order.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ledger/bytes.h"
#include "ledger/clock.h"
#include "ledger/key_ring.h"

namespace trail::ledger::detail {

inline constexpr std::string_view kMetaFormat = "format";
inline constexpr std::string_view kMetaKekCheck = "kek_check";
inline constexpr std::string_view kMetaNextKeyId = "next_key_id";
inline constexpr std::string_view kFormatVersion = "trail-ledger-1";

// u8 length || project: groups a project's keys together and keeps "a" apart from "ab".
inline std::string project_key(std::string_view project) {
  std::string key;
  key.reserve(1 + project.size() + 16);
  key.push_back(static_cast<char>(project.size()));
  key.append(project);
  return key;
}

// events: project_key || u64 seq
inline std::string event_key(std::string_view project, std::uint64_t seq) {
  std::string key = project_key(project);
  std::uint8_t b[8];
  put_u64_be(b, seq);
  key.append(reinterpret_cast<const char*>(b), 8);
  return key;
}

// Splits an events key. Returns false when `key` is not one of `project`'s event keys.
inline bool parse_event_key(ByteView key, std::string_view project, std::uint64_t& seq) {
  if (key.size() != 1 + project.size() + 8 || key[0] != project.size()) return false;
  if (as_chars(key.subspan(1, project.size())) != project) return false;
  seq = get_u64_be(key.data() + 1 + project.size());
  return true;
}

// event_ids: project_key || event id (16) -> u64 seq || body mac (32)
inline std::string event_id_key(std::string_view project, const EventId& id) {
  std::string key = project_key(project);
  key.append(as_chars(id));
  return key;
}
inline constexpr std::size_t kEventIdValueBytes = 8 + 32;

// heads: project_key -> u64 seq || hash (32) || i64 server time (us)
struct HeadRecord {
  std::uint64_t seq = 0;
  Digest hash{};
  TimeUs server_time_us = 0;
};
inline constexpr std::size_t kHeadValueBytes = 8 + 32 + 8;

inline std::string encode_head(const HeadRecord& h) {
  std::string out(kHeadValueBytes, '\0');
  auto* p = reinterpret_cast<std::uint8_t*>(out.data());
  put_u64_be(p, h.seq);
  std::copy(h.hash.begin(), h.hash.end(), p + 8);
  put_u64_be(p + 40, static_cast<std::uint64_t>(h.server_time_us));
  return out;
}
inline std::optional<HeadRecord> decode_head(ByteView v) {
  if (v.size() != kHeadValueBytes) return std::nullopt;
  HeadRecord h;
  h.seq = get_u64_be(v.data());
  std::copy(v.begin() + 8, v.begin() + 40, h.hash.begin());
  h.server_time_us = static_cast<TimeUs>(get_u64_be(v.data() + 40));
  return h;
}

// keys: u32 key id -> u8 version (1) || u8 project length || project || nonce (24) || sealed (48)
inline std::string key_id_key(std::uint32_t id) {
  std::string key(4, '\0');
  put_u32_be(reinterpret_cast<std::uint8_t*>(key.data()), id);
  return key;
}
inline std::string encode_wrapped(std::string_view project, const WrappedKey& w) {
  std::string out;
  out.push_back(1);
  out.push_back(static_cast<char>(project.size()));
  out.append(project);
  out.append(as_chars(w.nonce));
  out.append(as_chars(w.sealed));
  return out;
}
inline bool decode_wrapped(ByteView v, std::string& project, WrappedKey& w) {
  if (v.size() < 2 || v[0] != 1) return false;
  const std::size_t project_size = v[1];
  if (v.size() != 2 + project_size + w.nonce.size() + w.sealed.size()) return false;
  project.assign(as_chars(v.subspan(2, project_size)));
  const auto* p = v.data() + 2 + project_size;
  std::copy(p, p + w.nonce.size(), w.nonce.begin());
  p += w.nonce.size();
  std::copy(p, p + w.sealed.size(), w.sealed.begin());
  return true;
}

}  // namespace trail::ledger::detail
