// A projector's sub-databases in memory, for tests that fold events with chosen server times
// straight into a projector (no ledger, no LMDB). Two MemTables compare equal when every table
// holds the same bytes.
#pragma once

#include <sodium.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ledger/data_key.h"
#include "ledger/projector.h"

namespace trail::testing {

class MemTables final : public ledger::ProjectionTables {
 public:
  explicit MemTables(std::size_t count) : tables_(count) {}
  Result<std::optional<ByteView>> get(std::size_t table, ByteView key) const override {
    const auto& t = tables_.at(table);
    auto it = t.find(std::string(as_chars(key)));
    if (it == t.end()) return std::optional<ByteView>{};
    return std::optional<ByteView>{as_bytes(it->second)};
  }
  Status put(std::size_t table, ByteView key, ByteView value) override {
    tables_.at(table)[std::string(as_chars(key))] = std::string(as_chars(value));
    return Status::ok();
  }
  Status del(std::size_t table, ByteView key) override {
    tables_.at(table).erase(std::string(as_chars(key)));
    return Status::ok();
  }
  Status scan(std::size_t table, ByteView from,
              const std::function<bool(ByteView, ByteView)>& visit) const override {
    const auto& t = tables_.at(table);
    ++scans_[table];
    for (auto it = t.lower_bound(std::string(as_chars(from))); it != t.end(); ++it) {
      if (!visit(as_bytes(it->first), as_bytes(it->second))) break;
    }
    return Status::ok();
  }
  bool operator==(const MemTables& other) const { return tables_ == other.tables_; }
  const std::map<std::string, std::string>& table(std::size_t i) const { return tables_.at(i); }
  // How many scans of table `i` there have been.
  std::size_t scans(std::size_t i) const {
    auto it = scans_.find(i);
    return it == scans_.end() ? 0 : it->second;
  }

 private:
  std::vector<std::map<std::string, std::string>> tables_;
  mutable std::map<std::size_t, std::size_t> scans_;
};

// A project data key of random bytes, to seal what a projector folds into MemTables.
inline std::unique_ptr<ledger::DataKey> random_data_key(std::uint32_t id) {
  if (sodium_init() < 0) return nullptr;
  ledger::SecretKey secret;
  randombytes_buf(secret.data(), secret.size());
  return std::make_unique<ledger::DataKey>(id, secret);
}

}  // namespace trail::testing
