#include "projections/bucket_log.h"

#include "projections/view_keys.h"

namespace trail::proj {

Status BucketLog::read_stored(const ledger::DataKey& key, ByteView bucket_key, ByteView stored,
                              std::string& entries) const {
  if (options_.sealed) {
    TRAIL_TRY(key.open_deterministic(
        as_bytes(view::aad_for(options_.table_name, as_chars(bucket_key))), stored, entries));
  } else {
    entries.assign(as_chars(stored));
  }
  if (entries.empty() || entries.size() % options_.entry_bytes != 0) {
    return Status::error(Code::kCorrupt,
                         "malformed bucket in " + std::string(options_.table_name));
  }
  return Status::ok();
}

Result<std::string*> BucketLog::entries(ledger::ProjectionTables& tables, std::string bucket_key,
                                        const ledger::DataKey& key) {
  auto [slot, fresh] = pending_.try_emplace(std::move(bucket_key));
  Pending& pending = slot->second;
  if (!fresh) return &pending.entries;
  pending.key = &key;
  if (auto kept = written_.take(slot->first)) {
    pending.entries = std::move(*kept);
    return &pending.entries;
  }
  auto stored = tables.get(options_.table, as_bytes(slot->first));
  Status loaded = stored.is_ok() ? Status::ok() : stored.status();
  if (loaded.is_ok() && *stored) {
    loaded = read_stored(key, as_bytes(slot->first), **stored, pending.entries);
  }
  if (!loaded.is_ok()) {
    pending_.erase(slot);
    return loaded;
  }
  return &pending.entries;
}

Status BucketLog::flush(ledger::ProjectionTables& tables) {
  for (const auto& [bucket_key, pending] : pending_) {
    const std::string value =
        options_.sealed ? pending.key->seal_deterministic(
                              as_bytes(view::aad_for(options_.table_name, bucket_key)),
                              as_bytes(pending.entries))
                        : std::string{};
    const Status put = tables.put(options_.table, as_bytes(bucket_key),
                                  as_bytes(options_.sealed ? value : pending.entries));
    if (!put.is_ok()) {
      discard();
      return put;
    }
  }
  // Written (committed next, or discard() forgets them): kept for the next events.
  for (auto& [bucket_key, pending] : pending_) written_.keep(bucket_key, std::move(pending.entries));
  pending_.clear();
  return Status::ok();
}

void BucketLog::discard() {
  pending_.clear();
  written_.forget();
}

}  // namespace trail::proj
