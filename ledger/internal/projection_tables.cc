#include "ledger/internal/projection_tables.h"

#include "ledger/internal/layout.h"

namespace trail::ledger::detail {
namespace {

Status scan_cursor(Cursor cursor, ByteView from,
                   const std::function<bool(ByteView, ByteView)>& visit) {
  TRAIL_ASSIGN_OR_RETURN(bool more, from.empty() ? cursor.first() : cursor.seek(from));
  while (more) {
    if (!visit(cursor.key(), cursor.value())) break;
    TRAIL_ASSIGN_OR_RETURN(more, cursor.next());
  }
  return Status::ok();
}

}  // namespace

Result<std::optional<ByteView>> WriteProjectionTables::get(std::size_t table, ByteView key) const {
  TRAIL_ASSERT(table < dbis_.size());
  return txn_.get(dbis_[table], key);
}

Status WriteProjectionTables::put(std::size_t table, ByteView key, ByteView value) {
  TRAIL_ASSERT(table < dbis_.size());
  return txn_.put(dbis_[table], key, value);
}

Status WriteProjectionTables::del(std::size_t table, ByteView key) {
  TRAIL_ASSERT(table < dbis_.size());
  return txn_.erase(dbis_[table], key);
}

Status WriteProjectionTables::scan(std::size_t table, ByteView from,
                                   const std::function<bool(ByteView, ByteView)>& visit) const {
  TRAIL_ASSERT(table < dbis_.size());
  return scan_cursor(txn_.cursor(dbis_[table]), from, visit);
}

Result<std::optional<ByteView>> ReadProjectionTables::get(std::size_t table, ByteView key) const {
  TRAIL_ASSERT(table < dbis_.size());
  if (dbis_[table] == kMissingTable) return std::optional<ByteView>{};
  return txn_.get(dbis_[table], key);
}

Status ReadProjectionTables::put(std::size_t, ByteView, ByteView) {
  return Status::error(Code::kInvalid, "projection view is read-only");
}

Status ReadProjectionTables::del(std::size_t, ByteView) {
  return Status::error(Code::kInvalid, "projection view is read-only");
}

Status ReadProjectionTables::scan(std::size_t table, ByteView from,
                                  const std::function<bool(ByteView, ByteView)>& visit) const {
  TRAIL_ASSERT(table < dbis_.size());
  if (dbis_[table] == kMissingTable) return Status::ok();
  return scan_cursor(txn_.cursor(dbis_[table]), from, visit);
}

std::string projection_state_key(std::string_view projector, std::string_view project) {
  std::string key;
  key.push_back(static_cast<char>(projector.size()));
  key.append(projector);
  key.append(project_key(project));
  return key;
}

}  // namespace trail::ledger::detail
