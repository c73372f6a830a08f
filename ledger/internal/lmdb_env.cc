#include "ledger/internal/lmdb_env.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <mutex>

namespace trail::ledger::detail {
namespace fs = std::filesystem;

const char* table_name(Table table) {
  switch (table) {
    case Table::kMeta: return "meta";
    case Table::kEvents: return "events";
    case Table::kHeads: return "heads";
    case Table::kKeys: return "keys";
    case Table::kProjectKeys: return "project_keys";
    case Table::kProjectionState: return "projection_state";
  }
  return "?";
}

Status lmdb_status(int rc, const std::string& what) {
  if (rc == MDB_SUCCESS) return Status::ok();
  std::string detail = what + ": " + mdb_strerror(rc);
  switch (rc) {
    case MDB_NOTFOUND: return Status::error(Code::kNotFound, std::move(detail));
    case MDB_KEYEXIST: return Status::error(Code::kConflict, std::move(detail));
    case MDB_MAP_FULL: return Status::error(Code::kBusy, std::move(detail));
    case MDB_CORRUPTED:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH: return Status::error(Code::kCorrupt, std::move(detail));
    case ENOENT: return Status::error(Code::kNotFound, std::move(detail));
    case EACCES: return Status::error(Code::kIo, std::move(detail));
    default: return Status::error(Code::kFatal, std::move(detail));
  }
}

// ---- Cursor ----

Cursor::Cursor(MDB_txn* txn, MDB_dbi dbi) {
  TRAIL_ASSERT(mdb_cursor_open(txn, dbi, &cursor_) == MDB_SUCCESS);
}

Cursor::~Cursor() {
  if (cursor_ != nullptr) mdb_cursor_close(cursor_);
}

Result<bool> Cursor::step(MDB_cursor_op op) {
  const int rc = mdb_cursor_get(cursor_, &key_, &value_, op);
  if (rc == MDB_NOTFOUND) return false;
  if (rc != MDB_SUCCESS) return lmdb_status(rc, "cursor");
  return true;
}

Result<bool> Cursor::seek(ByteView key) {
  key_ = val_of(key);
  return step(MDB_SET_RANGE);
}

Result<bool> Cursor::first() { return step(MDB_FIRST); }
Result<bool> Cursor::next() { return step(MDB_NEXT); }
Result<bool> Cursor::last() { return step(MDB_LAST); }
Result<bool> Cursor::prev() { return step(MDB_PREV); }

// ---- ReadTxn ----

ReadTxn::ReadTxn(const Env* env, MDB_txn* txn, std::shared_lock<std::shared_mutex> lock)
    : env_{env}, txn_{txn}, lock_{std::move(lock)} {}

ReadTxn::ReadTxn(ReadTxn&& other) noexcept
    : env_{other.env_}, txn_{other.txn_}, lock_{std::move(other.lock_)} {
  other.txn_ = nullptr;
}

ReadTxn::~ReadTxn() {
  if (txn_ != nullptr) mdb_txn_abort(txn_);
}

namespace {
Result<std::optional<ByteView>> get_in(MDB_txn* txn, MDB_dbi dbi, ByteView key) {
  MDB_val k = val_of(key);
  MDB_val v{};
  const int rc = mdb_get(txn, dbi, &k, &v);
  if (rc == MDB_NOTFOUND) return std::optional<ByteView>{};
  if (rc != MDB_SUCCESS) return lmdb_status(rc, "get");
  return std::optional<ByteView>{view_of(v)};
}
}  // namespace

Result<std::optional<ByteView>> ReadTxn::get(Table table, ByteView key) const {
  return get_in(txn_, env_->dbi(table), key);
}

Result<std::optional<ByteView>> ReadTxn::get(MDB_dbi dbi, ByteView key) const {
  return get_in(txn_, dbi, key);
}

Cursor ReadTxn::cursor(Table table) const { return Cursor{txn_, env_->dbi(table)}; }

// ---- WriteTxn ----

WriteTxn::WriteTxn(WriteTxn&& other) noexcept : env_{other.env_}, txn_{other.txn_} {
  other.txn_ = nullptr;
}

WriteTxn::~WriteTxn() { abort(); }

Status WriteTxn::status_of(int rc, const std::string& what) const {
  if (rc == MDB_MAP_FULL) env_->found_full_.store(true, std::memory_order_relaxed);
  return lmdb_status(rc, what);
}

Result<std::optional<ByteView>> WriteTxn::get(Table table, ByteView key) const {
  TRAIL_ASSERT(txn_ != nullptr);
  return get_in(txn_, env_->dbi(table), key);
}

Result<std::optional<ByteView>> WriteTxn::get(MDB_dbi dbi, ByteView key) const {
  TRAIL_ASSERT(txn_ != nullptr);
  return get_in(txn_, dbi, key);
}

Status WriteTxn::put(Table table, ByteView key, ByteView value, bool no_overwrite) {
  return put(env_->dbi(table), key, value, no_overwrite);
}

Status WriteTxn::put(MDB_dbi dbi, ByteView key, ByteView value, bool no_overwrite) {
  TRAIL_ASSERT(txn_ != nullptr);
  MDB_val k = val_of(key);
  MDB_val v = val_of(value);
  const int rc = mdb_put(txn_, dbi, &k, &v, no_overwrite ? MDB_NOOVERWRITE : 0U);
  if (rc == MDB_SUCCESS) return Status::ok();
  return status_of(rc, "put");
}

Status WriteTxn::erase(MDB_dbi dbi, ByteView key) {
  TRAIL_ASSERT(txn_ != nullptr);
  MDB_val k = val_of(key);
  const int rc = mdb_del(txn_, dbi, &k, nullptr);
  if (rc == MDB_SUCCESS || rc == MDB_NOTFOUND) return Status::ok();
  return status_of(rc, "delete");
}

Result<bool> WriteTxn::drop_named(const std::string& name) {
  MDB_dbi dbi = 0;
  const int rc = mdb_dbi_open(txn_, name.c_str(), 0U, &dbi);
  if (rc == MDB_NOTFOUND) return false;
  TRAIL_TRY(lmdb_status(rc, "open sub-database " + name));
  TRAIL_TRY(status_of(mdb_drop(txn_, dbi, 1), "drop sub-database " + name));
  return true;
}

Status WriteTxn::clear(MDB_dbi dbi) {
  TRAIL_ASSERT(txn_ != nullptr);
  return status_of(mdb_drop(txn_, dbi, 0), "clear");
}

Result<std::optional<ByteView>> WriteTxn::insert(MDB_dbi dbi, ByteView key, ByteView value) {
  TRAIL_ASSERT(txn_ != nullptr);
  MDB_val k = val_of(key);
  MDB_val v = val_of(value);
  const int rc = mdb_put(txn_, dbi, &k, &v, MDB_NOOVERWRITE);
  if (rc == MDB_SUCCESS) return std::optional<ByteView>{};
  if (rc == MDB_KEYEXIST) return std::optional<ByteView>{view_of(v)};  // LMDB returns it.
  return status_of(rc, "insert");
}

Result<std::uint8_t*> WriteTxn::reserve(Table table, ByteView key, std::size_t size) {
  TRAIL_ASSERT(txn_ != nullptr);
  MDB_val k = val_of(key);
  MDB_val v{size, nullptr};
  const int rc = mdb_put(txn_, env_->dbi(table), &k, &v, MDB_RESERVE | MDB_NOOVERWRITE);
  if (rc != MDB_SUCCESS) return status_of(rc, std::string("reserve in ") + table_name(table));
  TRAIL_ASSERT(v.mv_size == size);
  return static_cast<std::uint8_t*>(v.mv_data);
}

Status WriteTxn::del(Table table, ByteView key) {
  TRAIL_ASSERT(txn_ != nullptr);
  MDB_val k = val_of(key);
  const int rc = mdb_del(txn_, env_->dbi(table), &k, nullptr);
  if (rc == MDB_SUCCESS) return Status::ok();
  return status_of(rc, std::string("delete from ") + table_name(table));
}

Cursor WriteTxn::cursor(Table table) const { return Cursor{txn_, env_->dbi(table)}; }

Status WriteTxn::commit() {
  TRAIL_ASSERT(txn_ != nullptr);
  MDB_txn* txn = txn_;
  txn_ = nullptr;  // LMDB frees the transaction whether or not the commit succeeds.
  return status_of(mdb_txn_commit(txn), "commit");
}

void WriteTxn::abort() {
  if (txn_ != nullptr) {
    mdb_txn_abort(txn_);
    txn_ = nullptr;
  }
}

// ---- Env ----

Result<std::unique_ptr<Env>> Env::open(const fs::path& dir, const EnvOptions& options) {
  TRAIL_ASSERT(!(options.read_only && options.create));
  std::error_code ec;
  if (options.create) {
    fs::create_directories(dir, ec);
    if (ec) return Status::error(Code::kIo, "cannot create " + dir.string() + ": " + ec.message());
    ::chmod(dir.c_str(), 0700);
  } else if (!fs::exists(dir / "data.mdb", ec)) {
    return Status::error(Code::kNotFound,
                         dir.string() + " holds no Trail data (run trailctl init first)");
  }
  std::unique_ptr<Env> env{new Env()};
  env->read_only_ = options.read_only;
  env->write_map_ = options.write_map && !options.read_only;
  TRAIL_TRY(lmdb_status(mdb_env_create(&env->env_), "mdb_env_create"));
  TRAIL_TRY(lmdb_status(mdb_env_set_maxdbs(env->env_, 128), "mdb_env_set_maxdbs"));
  TRAIL_TRY(lmdb_status(mdb_env_set_maxreaders(env->env_, 1024), "mdb_env_set_maxreaders"));
  TRAIL_TRY(lmdb_status(mdb_env_set_mapsize(env->env_, options.initial_map_bytes),
                        "mdb_env_set_mapsize"));
  unsigned flags = MDB_NOTLS | (options.read_only ? MDB_RDONLY : 0U);
  if (!options.read_only) {
    flags |= (options.no_sync ? MDB_NOSYNC : 0U) | (options.write_map ? MDB_WRITEMAP : 0U);
  }
  const int rc = mdb_env_open(env->env_, dir.c_str(), flags, 0600);
  if (rc != MDB_SUCCESS) return lmdb_status(rc, "cannot open LMDB in " + dir.string());
  int dead = 0;
  mdb_reader_check(env->env_, &dead);  // Clears reader slots of crashed processes.
  TRAIL_TRY(env->preallocate());

  MDB_txn* txn = nullptr;
  TRAIL_TRY(lmdb_status(mdb_txn_begin(env->env_, nullptr, options.create ? 0U : MDB_RDONLY, &txn),
                        "begin"));
  for (std::size_t i = 0; i < kTableCount; ++i) {
    const auto table = static_cast<Table>(i);
    if (options.views && table != Table::kProjectionState) continue;
    const int open_rc = mdb_dbi_open(txn, table_name(table), options.create ? MDB_CREATE : 0U,
                                     &env->dbis_[i]);
    if (open_rc != MDB_SUCCESS) {
      mdb_txn_abort(txn);
      if (open_rc == MDB_NOTFOUND) {
        return Status::error(Code::kNotFound, dir.string() + " is not a Trail data directory "
                                              "(sub-database " + table_name(table) + " missing)");
      }
      return lmdb_status(open_rc, std::string("open sub-database ") + table_name(table));
    }
  }
  TRAIL_TRY(lmdb_status(mdb_txn_commit(txn), "commit sub-database handles"));
  return env;
}

Status Env::sync() { return lmdb_status(mdb_env_sync(env_, 1), "sync"); }

Env::~Env() {
  if (env_ != nullptr) mdb_env_close(env_);
}

Status Env::adopt_map_size() const {
  std::unique_lock lock{resize_mutex_};
  return lmdb_status(mdb_env_set_mapsize(env_, 0), "adopt map size");
}

Result<MDB_dbi> Env::open_named(const std::string& name) {
  MDB_txn* txn = nullptr;
  TRAIL_TRY(lmdb_status(mdb_txn_begin(env_, nullptr, read_only_ ? MDB_RDONLY : 0U, &txn), "begin"));
  MDB_dbi dbi = 0;
  const int rc = mdb_dbi_open(txn, name.c_str(), read_only_ ? 0U : MDB_CREATE, &dbi);
  if (rc != MDB_SUCCESS) {
    mdb_txn_abort(txn);
    return lmdb_status(rc, "open sub-database " + name);
  }
  TRAIL_TRY(lmdb_status(mdb_txn_commit(txn), "commit sub-database " + name));
  return dbi;
}

Result<ReadTxn> Env::begin_read() const {
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::shared_lock lock{resize_mutex_};
    MDB_txn* txn = nullptr;
    const int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
    if (rc == MDB_SUCCESS) return ReadTxn{this, txn, std::move(lock)};
    if (rc != MDB_MAP_RESIZED) return lmdb_status(rc, "begin read");
    lock.unlock();
    TRAIL_TRY(adopt_map_size());
  }
  return Status::error(Code::kBusy, "map keeps being resized by another process");
}

Result<WriteTxn> Env::begin_write() {
  TRAIL_ASSERT(!read_only_);
  for (int attempt = 0; attempt < 3; ++attempt) {
    MDB_txn* txn = nullptr;
    const int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
    if (rc == MDB_SUCCESS) return WriteTxn{this, txn};
    if (rc != MDB_MAP_RESIZED) return lmdb_status(rc, "begin write");
    TRAIL_TRY(adopt_map_size());
  }
  return Status::error(Code::kBusy, "map keeps being resized by another process");
}

std::size_t Env::map_bytes() const {
  MDB_envinfo info{};
  mdb_env_info(env_, &info);
  return info.me_mapsize;
}

Status Env::grow_map() {
  std::unique_lock lock{resize_mutex_};
  MDB_envinfo info{};
  mdb_env_info(env_, &info);
  const std::size_t current = info.me_mapsize;
  if (current >= kMapBytesMax) {
    return Status::error(Code::kFatal, "map is at its maximum size of " +
                                           std::to_string(kMapBytesMax) + " bytes");
  }
  const std::size_t next = std::min(current * 2, kMapBytesMax);
  TRAIL_TRY(lmdb_status(mdb_env_set_mapsize(env_, next), "grow map"));
  if (Status allocated = preallocate(); !allocated.is_ok()) {
    (void)mdb_env_set_mapsize(env_, current);  // No map beyond the allocated blocks.
    return allocated;
  }
  found_full_.store(false, std::memory_order_relaxed);
  return Status::ok();
}

Status Env::preallocate() const {
  if (!write_map_) return Status::ok();
  int fd = -1;
  TRAIL_TRY(lmdb_status(mdb_env_get_fd(env_, &fd), "file of the map"));
  MDB_envinfo info{};
  mdb_env_info(env_, &info);
  const int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(info.me_mapsize));
  if (rc != 0) {
    return Status::error(Code::kIo, "cannot allocate " + std::to_string(info.me_mapsize) +
                                        " bytes for the map: " + std::strerror(rc));
  }
  return Status::ok();
}

}  // namespace trail::ledger::detail
