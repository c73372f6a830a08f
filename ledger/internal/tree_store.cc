#include "ledger/internal/tree_store.h"

#include "ledger/internal/layout.h"

namespace trail::ledger::detail {

std::string merkle_key(std::string_view project, unsigned level, std::uint64_t index) {
  std::string key = project_key(project);
  key.push_back(static_cast<char>(level));
  std::uint8_t b[8];
  put_u64_be(b, index);
  key.append(reinterpret_cast<const char*>(b), 8);
  return key;
}

std::string tree_size_key(std::string_view project) {
  std::string key = project_key(project);
  key.push_back(static_cast<char>(kTreeSizeLevel));
  return key;
}

Status put_node(WriteTxn& txn, MDB_dbi dbi, std::string_view project, unsigned level,
                std::uint64_t index, const Digest& node) {
  if (level < kStoredLevelMin) return Status::ok();
  return txn.put(dbi, as_bytes(merkle_key(project, level, index)), node);
}

Status put_tree_size(WriteTxn& txn, MDB_dbi dbi, std::string_view project, std::uint64_t size) {
  std::uint8_t b[8];
  put_u64_be(b, size);
  return txn.put(dbi, as_bytes(tree_size_key(project)), ByteView{b, 8});
}

std::string checkpoint_key(std::string_view project, std::uint64_t size) {
  std::string key = project_key(project);
  std::uint8_t b[8];
  put_u64_be(b, size);
  key.append(reinterpret_cast<const char*>(b), 8);
  return key;
}

}  // namespace trail::ledger::detail
