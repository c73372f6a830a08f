// ProjectionTables over an LMDB transaction: a projector's sub-databases, by index.
#pragma once

#include <vector>

#include "ledger/internal/lmdb_env.h"
#include "ledger/projector.h"

namespace trail::ledger::detail {

// The handle of a sub-database that a read-only ledger found missing (a newer build's table
// in an older directory): reads see it empty.
inline constexpr MDB_dbi kMissingTable = static_cast<MDB_dbi>(-1);

// A projector with the handles of its sub-databases, in the order of Projector::tables().
struct ProjectorBinding {
  Projector* projector = nullptr;
  std::vector<MDB_dbi> dbis;
};

// Writable view inside the writer's transaction.
class WriteProjectionTables final : public ProjectionTables {
 public:
  WriteProjectionTables(WriteTxn& txn, const std::vector<MDB_dbi>& dbis) : txn_{txn}, dbis_{dbis} {}
  Result<std::optional<ByteView>> get(std::size_t table, ByteView key) const override;
  Status put(std::size_t table, ByteView key, ByteView value) override;
  Status del(std::size_t table, ByteView key) override;
  Status scan(std::size_t table, ByteView from,
              const std::function<bool(ByteView, ByteView)>& visit) const override;

 private:
  WriteTxn& txn_;
  const std::vector<MDB_dbi>& dbis_;
};

// Read-only view inside a read transaction; put and del fail with kInvalid.
class ReadProjectionTables final : public ProjectionTables {
 public:
  ReadProjectionTables(const ReadTxn& txn, const std::vector<MDB_dbi>& dbis) : txn_{txn}, dbis_{dbis} {}
  Result<std::optional<ByteView>> get(std::size_t table, ByteView key) const override;
  Status put(std::size_t table, ByteView key, ByteView value) override;
  Status del(std::size_t table, ByteView key) override;
  Status scan(std::size_t table, ByteView from,
              const std::function<bool(ByteView, ByteView)>& visit) const override;

 private:
  const ReadTxn& txn_;
  const std::vector<MDB_dbi>& dbis_;
};

// projection_state key: u8 name length || name || project_key(project) -> u64 last applied seq.
std::string projection_state_key(std::string_view projector, std::string_view project);

}  // namespace trail::ledger::detail
