// Building blocks every view shares: order-preserving key encodings, the associated data that
// binds a sealed value to its sub-database and key, and the event kinds views fold.
// Keys are byte strings compared by LMDB byte-wise, so integers are big-endian and signed
// times have their sign bit flipped; texts carry a length prefix so that "a" and "ab" never
// interleave.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "ledger/bytes.h"
#include "ledger/clock.h"
#include "ledger/ledger.h"
#include "ledger/sha256.h"
#include "schema/event.capnp.h"

namespace trail::proj::view {

// Texts up to this many bytes are keyed as they are; longer ones as 0xff and their SHA-256, so
// no two texts share a key and every key stays far below LMDB's 511-byte limit.
inline constexpr std::size_t kKeyTextBytesMax = 254;

// u8 length || project: the prefix of every key of a project.
inline std::string project_prefix(std::string_view project) {
  std::string k;
  k.reserve(1 + project.size() + 40);
  k.push_back(static_cast<char>(project.size()));
  k.append(project);
  return k;
}

inline void add_id(std::string& k, const EventId& id) { k.append(as_chars(id)); }

inline void add_u64(std::string& k, std::uint64_t v) {
  std::uint8_t b[8];
  put_u64_be(b, v);
  k.append(reinterpret_cast<const char*>(b), 8);
}

// Signed time, order-preserving: the sign bit flipped.
inline void add_time(std::string& k, TimeUs t) {
  add_u64(k, static_cast<std::uint64_t>(t) ^ (1ULL << 63U));
}
inline TimeUs time_at(const std::uint8_t* p) {
  return static_cast<TimeUs>(get_u64_be(p) ^ (1ULL << 63U));
}

// A length-prefixed text (owner, user, case type), or 0xff || SHA-256 when it is long.
inline void add_text(std::string& k, std::string_view s) {
  if (s.size() <= kKeyTextBytesMax) {
    k.push_back(static_cast<char>(s.size()));
    k.append(s);
    return;
  }
  k.push_back(static_cast<char>(0xff));
  k.append(as_chars(sha256(as_bytes(s))));
}

inline EventId id_at(ByteView b, std::size_t offset) {
  EventId id{};
  std::memcpy(id.data(), b.data() + offset, id.size());
  return id;
}

// The associated data of a sealed value: sub-database name, NUL, key.
inline std::string aad_for(std::string_view table, std::string_view key) {
  std::string aad;
  aad.reserve(table.size() + 1 + key.size());
  aad.append(table);
  aad.push_back('\0');
  aad.append(key);
  return aad;
}

inline bool is_case_kind(schema::Kind kind) {
  switch (kind) {
    case schema::Kind::CASE_CREATED:
    case schema::Kind::CASE_UPDATED:
    case schema::Kind::CASE_CLOSED:
    case schema::Kind::CASE_REOPENED:
    case schema::Kind::CASE_INDEXED:
    case schema::Kind::CASE_REASSIGNED: return true;
    default: return false;
  }
}

// The data key that sealed `project`'s views, or null when the project has none yet (no event
// was ever appended to it, so every view of it is empty). Errors: as existing_project_key.
inline Result<std::shared_ptr<const ledger::DataKey>> project_key(const ledger::Ledger& ledger,
                                                                  std::string_view project) {
  auto key = ledger.existing_project_key(project);
  if (key.is_ok()) return std::move(key).value();
  if (key.status().code() == Code::kNotFound) return std::shared_ptr<const ledger::DataKey>{};
  return std::move(key).take_status();
}

}  // namespace trail::proj::view
