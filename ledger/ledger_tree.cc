// The Ledger's Merkle trees and checkpoints: roots, proofs and signed checkpoints read from one
// snapshot, the on-demand checkpoint, and the checkpoint timer.
#include <future>

#include "ledger/internal/layout.h"
#include "ledger/internal/tree_store.h"
#include "ledger/internal/writer.h"
#include "ledger/ledger.h"

namespace trail::ledger {
namespace {

using detail::Table;

// Calls `start` with a callback and waits for the status the callback gets.
Status wait_for(const std::function<void(std::function<void(Status)>)>& start) {
  std::promise<Status> done;
  auto future = done.get_future();
  start([&done](Status s) { done.set_value(std::move(s)); });
  return future.get();
}

Status no_trees() {
  return Status::error(Code::kInvalid, "this data directory holds no Merkle trees");
}

// The tree size of `project` in `txn`: the stored leaves, never beyond the head.
template <typename Txn>
Result<std::uint64_t> size_in(const Txn& txn, MDB_dbi merkle, std::string_view project) {
  TRAIL_ASSIGN_OR_RETURN(auto stored, txn.get(Table::kHeads, as_bytes(detail::project_key(project))));
  if (!stored) return std::uint64_t{0};
  auto head = detail::decode_head(*stored);
  if (!head) return Status::error(Code::kCorrupt, "head record is malformed");
  return detail::stored_tree_size(txn, merkle, project, head->seq);
}

}  // namespace

Result<std::uint64_t> Ledger::tree_size(std::string_view project) const {
  if (!has_trees_) return no_trees();
  TRAIL_ASSIGN_OR_RETURN(auto txn, env_->begin_read());
  return size_in(txn, merkle_dbi_, project);
}

Result<Digest> Ledger::tree_root(std::string_view project, std::uint64_t size) const {
  if (!has_trees_) return no_trees();
  TRAIL_ASSIGN_OR_RETURN(auto txn, env_->begin_read());
  TRAIL_ASSIGN_OR_RETURN(std::uint64_t stored, size_in(txn, merkle_dbi_, project));
  if (size > stored) {
    return Status::error(Code::kInvalid, "tree size " + std::to_string(size) + " exceeds " +
                                             std::to_string(stored));
  }
  return merkle::root(size, detail::node_reader(txn, merkle_dbi_, std::string(project)));
}

Result<std::vector<Digest>> Ledger::inclusion_proof(std::string_view project, std::uint64_t index,
                                                    std::uint64_t size) const {
  if (!has_trees_) return no_trees();
  TRAIL_ASSIGN_OR_RETURN(auto txn, env_->begin_read());
  TRAIL_ASSIGN_OR_RETURN(std::uint64_t stored, size_in(txn, merkle_dbi_, project));
  if (size > stored || index >= size) {
    return Status::error(Code::kInvalid, "no leaf " + std::to_string(index) + " in a tree of " +
                                             std::to_string(size) + " (the tree holds " +
                                             std::to_string(stored) + ")");
  }
  return merkle::inclusion_proof(index, size,
                                 detail::node_reader(txn, merkle_dbi_, std::string(project)));
}

Result<std::vector<Digest>> Ledger::consistency_proof(std::string_view project, std::uint64_t from,
                                                      std::uint64_t to) const {
  if (!has_trees_) return no_trees();
  TRAIL_ASSIGN_OR_RETURN(auto txn, env_->begin_read());
  TRAIL_ASSIGN_OR_RETURN(std::uint64_t stored, size_in(txn, merkle_dbi_, project));
  if (from == 0 || from > to || to > stored) {
    return Status::error(Code::kInvalid, "no consistency proof from " + std::to_string(from) +
                                             " to " + std::to_string(to) + " (the tree holds " +
                                             std::to_string(stored) + ")");
  }
  return merkle::consistency_proof(from, to,
                                   detail::node_reader(txn, merkle_dbi_, std::string(project)));
}

Result<std::optional<Ledger::StoredCheckpoint>> Ledger::checkpoint(
    std::string_view project, std::optional<std::uint64_t> size) const {
  if (!has_trees_) return no_trees();
  TRAIL_ASSIGN_OR_RETURN(auto txn, env_->begin_read());
  std::optional<StoredCheckpoint> out;
  if (size) {
    TRAIL_ASSIGN_OR_RETURN(auto note, txn.get(checkpoints_dbi_,
                                              as_bytes(detail::checkpoint_key(project, *size))));
    if (note) out = StoredCheckpoint{*size, std::string(as_chars(*note))};
    return out;
  }
  TRAIL_ASSIGN_OR_RETURN(auto latest, detail::latest_checkpoint(txn, checkpoints_dbi_, project));
  if (latest) out = StoredCheckpoint{latest->first, std::move(latest->second)};
  return out;
}

Result<std::vector<Ledger::StoredCheckpoint>> Ledger::checkpoints(std::string_view project,
                                                                  std::uint64_t from,
                                                                  std::size_t limit) const {
  if (!has_trees_) return no_trees();
  TRAIL_ASSIGN_OR_RETURN(auto txn, env_->begin_read());
  std::vector<StoredCheckpoint> out;
  detail::Cursor cursor = txn.cursor(checkpoints_dbi_);
  const std::string prefix = detail::project_key(project);
  TRAIL_ASSIGN_OR_RETURN(bool more, cursor.seek(as_bytes(detail::checkpoint_key(project, from))));
  while (more && (limit == 0 || out.size() < limit)) {
    const ByteView key = cursor.key();
    if (key.size() != prefix.size() + 8 || as_chars(key.subspan(0, prefix.size())) != prefix) break;
    out.push_back({get_u64_be(key.data() + prefix.size()), std::string(as_chars(cursor.value()))});
    TRAIL_ASSIGN_OR_RETURN(more, cursor.next());
  }
  return out;
}

Status Ledger::checkpoint_now(std::string_view project) {
  return wait_for([&](std::function<void(Status)> done) {
    checkpoint_now_async(project, std::move(done));
  });
}


void Ledger::checkpoint_now_async(std::string_view project, std::function<void(Status)> done) {
  if (!writer_) return done(Status::error(Code::kBusy, "ledger is open read-only"));
  if (!has_trees_) return done(no_trees());
  if (Status s = validate_project(project); !s.is_ok()) return done(std::move(s));
  writer_->submit(detail::CheckpointJob{std::string(project), std::move(done)});
}

Result<std::string> Ledger::verifier_key() const {
  if (!keys_) return Status::error(Code::kInvalid, "no key directory: no checkpoint key");
  return keys_->signer().verifier_key();
}

void Ledger::run_checkpointer(std::chrono::milliseconds interval) {
  std::unique_lock lock{timer_mutex_};
  for (;;) {
    timer_wake_.wait_for(lock, interval, [this] { return timer_stopping_; });
    if (timer_stopping_) return;
    if (!appended_.exchange(false)) continue;
    lock.unlock();
    const Status s = wait_for([this](std::function<void(Status)> done) {
      writer_->submit(detail::CheckpointJob{"", std::move(done)});
    });
    if (!s.is_ok() && s.code() != Code::kBusy) appended_.store(true);  // Try again next tick.
    lock.lock();
  }
}

}  // namespace trail::ledger
