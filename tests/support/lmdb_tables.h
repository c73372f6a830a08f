// Test helper: whether an LMDB environment of the ledger holds a named sub-database.
#pragma once

#include <lmdb.h>

#include <string>

#include "ledger/internal/lmdb_env.h"

namespace trail::testing {

inline bool has_table(const ledger::detail::Env& env, const std::string& name) {
  MDB_txn* txn = nullptr;
  if (mdb_txn_begin(env.raw(), nullptr, MDB_RDONLY, &txn) != MDB_SUCCESS) return false;
  MDB_dbi dbi = 0;
  const int rc = mdb_dbi_open(txn, name.c_str(), 0U, &dbi);
  mdb_txn_abort(txn);
  return rc == MDB_SUCCESS;
}

}  // namespace trail::testing
