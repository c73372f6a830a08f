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

std::string checkpoint_key(std::string_view project, std::uint64_t size) {
  std::string key = project_key(project);
  std::uint8_t b[8];
  put_u64_be(b, size);
  key.append(reinterpret_cast<const char*>(b), 8);
  return key;
}

}  // namespace trail::ledger::detail
