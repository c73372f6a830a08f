// The byte codec of sealed view rows: a version byte the caller writes first, then fixed-width
// big-endian integers, 16-byte ids and u32-length-prefixed texts. Rows are sealed after
// encoding, so the codec needs no integrity of its own; the Reader refuses truncation and
// lengths that run past the end (every method returns false), and done() says whether the
// whole row was read.
// Thread safety: values; not shared.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "ledger/bytes.h"

namespace trail::proj::view {

class RowWriter {
 public:
  void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u32(std::uint32_t v) {
    std::uint8_t b[4];
    put_u32_be(b, v);
    out_.append(reinterpret_cast<const char*>(b), 4);
  }
  void u64(std::uint64_t v) {
    std::uint8_t b[8];
    put_u64_be(b, v);
    out_.append(reinterpret_cast<const char*>(b), 8);
  }
  void i64(std::int64_t v) { u64(static_cast<std::uint64_t>(v)); }
  void flag(bool v) { u8(v ? 1 : 0); }
  void text(std::string_view s) {
    u32(static_cast<std::uint32_t>(s.size()));
    out_.append(s);
  }
  void id(const EventId& v) { out_.append(reinterpret_cast<const char*>(v.data()), v.size()); }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class RowReader {
 public:
  explicit RowReader(std::string_view in) : in_{in} {}
  bool u8(std::uint8_t& v) {
    if (!need(1)) return false;
    v = static_cast<std::uint8_t>(in_[pos_++]);
    return true;
  }
  bool u32(std::uint32_t& v) {
    if (!need(4)) return false;
    v = get_u32_be(reinterpret_cast<const std::uint8_t*>(in_.data() + pos_));
    pos_ += 4;
    return true;
  }
  bool u64(std::uint64_t& v) {
    if (!need(8)) return false;
    v = get_u64_be(reinterpret_cast<const std::uint8_t*>(in_.data() + pos_));
    pos_ += 8;
    return true;
  }
  bool i64(std::int64_t& v) {
    std::uint64_t u = 0;
    if (!u64(u)) return false;
    v = static_cast<std::int64_t>(u);
    return true;
  }
  // One byte, 0 or 1; anything else is malformed.
  bool flag(bool& v) {
    std::uint8_t b = 0;
    if (!u8(b) || b > 1) return false;
    v = b == 1;
    return true;
  }
  bool text(std::string& s) {
    std::uint32_t n = 0;
    if (!u32(n) || !need(n)) return false;
    s.assign(in_.substr(pos_, n));
    pos_ += n;
    return true;
  }
  bool id(EventId& v) {
    if (!need(v.size())) return false;
    std::memcpy(v.data(), in_.data() + pos_, v.size());
    pos_ += v.size();
    return true;
  }
  bool done() const { return pos_ == in_.size(); }

 private:
  bool need(std::size_t n) const { return in_.size() - pos_ >= n; }
  std::string_view in_;
  std::size_t pos_ = 0;
};

}  // namespace trail::proj::view
