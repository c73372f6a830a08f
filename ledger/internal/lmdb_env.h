// Thin RAII wrappers over LMDB: the environment with its named sub-databases, read and write
// transactions, cursors, and growth of the memory map.
//
// Invariants: every sub-database in Table is opened once, at Env::open, and its handle is
//             valid for the Env's life. The map only grows.
// Thread safety: Env is shared; a ReadTxn belongs to one thread at a time (MDB_NOTLS lets it
//                move between threads); only one WriteTxn exists at a time (the writer thread).
//                ReadTxn holds resize_mutex_ shared, so grow_map() (exclusive) never runs
//                while a read transaction of this process is open: LMDB requires that.
//                Never wait for an append while holding a ReadTxn: the writer may need to grow.
#pragma once

#include <lmdb.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>

#include "ledger/assert.h"
#include "ledger/bytes.h"
#include "ledger/status.h"

namespace trail::ledger::detail {

// The sub-databases. docs/FORMAT.md gives each one's key and value layout.
// (The idempotency index, event_ids, lives in the view environment: event_id_index.h.)
enum class Table : std::uint8_t { kMeta, kEvents, kHeads, kKeys, kProjectKeys, kProjectionState };
inline constexpr std::size_t kTableCount = 6;
const char* table_name(Table table);

inline constexpr std::size_t kInitialMapBytesDefault = 64U << 20U;
inline constexpr std::size_t kMapBytesMax = std::size_t{1} << 40U;  // 1 TiB of address space.

struct EnvOptions {
  std::size_t initial_map_bytes = kInitialMapBytesDefault;
  bool read_only = false;
  bool create = false;  // Create the directory and sub-databases if missing.
  // A view environment (view_store.h): of the fixed tables only projection_state.
  bool views = false;
  // Writable only: commits are not synced (MDB_NOSYNC), and, with write_map, written through
  // a writable map (MDB_WRITEMAP) rather than pwrite. The file's blocks are then allocated for
  // the whole map (at open and as it grows), so a full disk fails an open or a growth with an
  // error instead of a write into the map with SIGBUS.
  bool no_sync = false;
  bool write_map = false;
};

inline MDB_val val_of(ByteView b) {
  return MDB_val{b.size(), const_cast<std::uint8_t*>(b.data())};
}
inline ByteView view_of(const MDB_val& v) {
  return {static_cast<const std::uint8_t*>(v.mv_data), v.mv_size};
}

Status lmdb_status(int rc, const std::string& what);

class Env;

class Cursor {
 public:
  Cursor(MDB_txn* txn, MDB_dbi dbi);
  ~Cursor();
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;
  // Positions at the first key >= `key`. Returns false when there is none.
  Result<bool> seek(ByteView key);
  // Positions at the first key. Returns false when the table is empty.
  Result<bool> first();
  // Advances. Returns false at the end.
  Result<bool> next();
  // Positions at the last key. Returns false when the table is empty.
  Result<bool> last();
  // Steps back. Returns false before the first key.
  Result<bool> prev();
  ByteView key() const { return view_of(key_); }
  ByteView value() const { return view_of(value_); }

 private:
  Result<bool> step(MDB_cursor_op op);
  MDB_cursor* cursor_ = nullptr;
  MDB_val key_{};
  MDB_val value_{};
};

class ReadTxn {
 public:
  ReadTxn(ReadTxn&&) noexcept;
  ReadTxn& operator=(ReadTxn&&) = delete;
  ~ReadTxn();
  // Views are valid until this transaction ends.
  Result<std::optional<ByteView>> get(Table table, ByteView key) const;
  Result<std::optional<ByteView>> get(MDB_dbi dbi, ByteView key) const;
  Cursor cursor(Table table) const;
  Cursor cursor(MDB_dbi dbi) const { return Cursor{txn_, dbi}; }
  MDB_txn* raw() const { return txn_; }

 private:
  friend class Env;
  ReadTxn(const Env* env, MDB_txn* txn, std::shared_lock<std::shared_mutex> lock);
  const Env* env_;
  MDB_txn* txn_;
  std::shared_lock<std::shared_mutex> lock_;
};

class WriteTxn {
 public:
  WriteTxn(WriteTxn&&) noexcept;
  WriteTxn& operator=(WriteTxn&&) = delete;
  ~WriteTxn();  // Aborts unless committed.
  Result<std::optional<ByteView>> get(Table table, ByteView key) const;
  Result<std::optional<ByteView>> get(MDB_dbi dbi, ByteView key) const;
  // Errors: kConflict when `no_overwrite` and the key exists; kBusy for MDB_MAP_FULL (grow
  //         and retry); kFatal for anything else.
  Status put(Table table, ByteView key, ByteView value, bool no_overwrite = false);
  Status put(MDB_dbi dbi, ByteView key, ByteView value, bool no_overwrite = false);
  // Deletes `key` when present (a missing key is fine).
  Status erase(MDB_dbi dbi, ByteView key);
  // Empties a sub-database.
  Status clear(MDB_dbi dbi);
  // Deletes the sub-database `name` with its contents; false when there is none.
  Result<bool> drop_named(const std::string& name);
  Cursor cursor(MDB_dbi dbi) const { return Cursor{txn_, dbi}; }
  // Puts `value` unless `key` is present. Returns nothing when it was put, else the present
  // value (valid until the next write). Errors as put().
  Result<std::optional<ByteView>> insert(MDB_dbi dbi, ByteView key, ByteView value);
  // Reserves `size` bytes for `key` and returns where to write them (valid until the next
  // write in this transaction). Errors as put().
  Result<std::uint8_t*> reserve(Table table, ByteView key, std::size_t size);
  Status del(Table table, ByteView key);
  Cursor cursor(Table table) const;
  // Durable on return (LMDB syncs on commit). Errors: kBusy for MDB_MAP_FULL; kFatal otherwise.
  Status commit();
  void abort();
  bool is_open() const { return txn_ != nullptr; }
  MDB_txn* raw() const { return txn_; }

 private:
  friend class Env;
  WriteTxn(const Env* env, MDB_txn* txn) : env_{env}, txn_{txn} {}
  // lmdb_status(), noting a full map on the environment.
  Status status_of(int rc, const std::string& what) const;
  const Env* env_;
  MDB_txn* txn_;
};

class Env {
 public:
  // Opens (or with options.create, creates) the environment in `dir`.
  // Errors: kNotFound when the directory or a sub-database is missing and create is false;
  //         kIo for OS errors; kCorrupt when LMDB finds the file invalid.
  static Result<std::unique_ptr<Env>> open(const std::filesystem::path& dir,
                                           const EnvOptions& options);
  ~Env();
  Env(const Env&) = delete;
  Env& operator=(const Env&) = delete;

  Result<ReadTxn> begin_read() const;
  Result<WriteTxn> begin_write();
  // Opens (creating it when the environment is writable) a sub-database outside Table, for a
  // projector. Call before any other thread uses the environment.
  Result<MDB_dbi> open_named(const std::string& name);
  // Doubles the map (up to kMapBytesMax). Call with no transaction of this thread open.
  // Errors: kFatal when the map is at its maximum or LMDB refuses.
  Status grow_map();
  std::size_t map_bytes() const;
  // The handle of a fixed table. A view environment has projection_state only.
  MDB_dbi dbi(Table table) const {
    const MDB_dbi dbi = dbis_[static_cast<std::size_t>(table)];
    TRAIL_ASSERT(dbi != kNoTable);
    return dbi;
  }
  // Flushes every commit to disk (for an environment whose commits are not synced).
  Status sync();
  // Whether a write transaction of this environment found the map full since it last grew
  // (so a writer holding transactions in two environments grows the one that needs it).
  bool found_full() const { return found_full_.load(std::memory_order_relaxed); }
  MDB_env* raw() const { return env_; }

 private:
  Env() = default;
  // Adopts a map size another process set (after MDB_MAP_RESIZED).
  Status adopt_map_size() const;
  static constexpr MDB_dbi kNoTable = static_cast<MDB_dbi>(-1);
  MDB_env* env_ = nullptr;
  std::array<MDB_dbi, kTableCount> dbis_ = filled(kNoTable);
  static constexpr std::array<MDB_dbi, kTableCount> filled(MDB_dbi value) {
    std::array<MDB_dbi, kTableCount> out{};
    out.fill(value);
    return out;
  }
  bool write_map_ = false;
  mutable std::atomic<bool> found_full_{false};  // Set by WriteTxn on MDB_MAP_FULL.
  friend class WriteTxn;
  // With write_map: allocates the file's blocks up to the map's size.
  Status preallocate() const;
  mutable std::shared_mutex resize_mutex_;
  bool read_only_ = false;
};

}  // namespace trail::ledger::detail
