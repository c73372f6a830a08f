#include "ledger/internal/writer.h"

#include "ledger/checkpoint.h"
#include "ledger/internal/tree_store.h"
#include "ledger/merkle.h"

#include <chrono>

#include <pthread.h>
#include <sodium.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <unordered_map>

#include "ledger/internal/layout.h"
#include "ledger/sha256.h"

namespace trail::ledger::detail {
namespace {

// An append guard's view of the writer's transaction (read-only).
class TxnGuardContext final : public GuardContext {
 public:
  TxnGuardContext(WriteTxn& txn, const std::vector<ProjectorBinding>& projectors,
                  const DataKey& key)
      : txn_{txn}, projectors_{projectors}, key_{key} {}

  Result<const ProjectionTables*> tables(const Projector& projector) const override {
    for (std::size_t i = 0; i < projectors_.size(); ++i) {
      if (projectors_[i].projector != &projector) continue;
      if (!tables_[i]) tables_[i].emplace(txn_, projectors_[i].dbis);
      return &*tables_[i];
    }
    return Status::error(Code::kNotFound, "view " + std::string(projector.name()) +
                                              " is not registered with this ledger");
  }
  const DataKey& key() const override { return key_; }

 private:
  WriteTxn& txn_;
  const std::vector<ProjectorBinding>& projectors_;
  const DataKey& key_;
  mutable std::vector<std::optional<WriteProjectionTables>> tables_ =
      std::vector<std::optional<WriteProjectionTables>>(projectors_.size());
};

}  // namespace

// State of one drain (one write transaction). Discarded when the transaction is retried.
struct Writer::Drain {
  TimeUs now_us = 0;
  std::unordered_map<std::string, HeadRecord> heads;  // Heads as this transaction left them.
  std::vector<std::string> dirty;                     // Projects whose head changed.
  std::vector<std::string> views_checked;             // Projects whose views are up to date.
  // Per job: receipts (append), key id (key) or the batch's rejection.
  std::vector<std::variant<std::vector<Receipt>, std::uint32_t, Status>> results;

  Result<HeadRecord*> head(WriteTxn& txn, const std::string& project) {
    if (auto it = heads.find(project); it != heads.end()) return &it->second;
    TRAIL_ASSIGN_OR_RETURN(auto stored, txn.get(Table::kHeads, as_bytes(project_key(project))));
    HeadRecord head;
    if (stored) {
      auto decoded = decode_head(*stored);
      if (!decoded) return Status::error(Code::kCorrupt, "head record of " + project + " is malformed");
      head = *decoded;
    }
    return &heads.emplace(project, head).first->second;
  }
};

struct Writer::Completion {
  std::vector<Job> jobs;
  std::vector<std::variant<std::vector<Receipt>, std::uint32_t, Status>> results;
};

Writer::Writer(Env& env, Env& views, std::shared_ptr<const KeyRing> keys, ProjectorBinding ids,
               std::vector<ProjectorBinding> projectors, KeyLookup key_lookup, CommitHook on_commit,
               TreeOptions tree)
    : env_{env},
      views_env_{views},
      keys_{std::move(keys)},
      ids_{std::move(ids)},
      projectors_{std::move(projectors)},
      key_lookup_{std::move(key_lookup)},
      on_commit_{std::move(on_commit)},
      tree_{std::move(tree)},
      kept_up_{[this] {
        std::vector<ProjectorBinding> all{ids_};
        all.insert(all.end(), projectors_.begin(), projectors_.end());
        return all;
      }()},
      completion_thread_{[this] { complete(); }},
      thread_{[this] { run(); }} {}

Writer::~Writer() {
  {
    std::lock_guard lock{mutex_};
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();  // Everything queued is committed and handed to the completion thread.
  {
    std::lock_guard lock{completion_mutex_};
    completion_stopping_ = true;
  }
  completion_wake_.notify_one();
  completion_thread_.join();
}

void Writer::complete() {
  pthread_setname_np(pthread_self(), "trail-complete");  // As top -H and perf show it.
  for (;;) {
    std::unique_ptr<Completion> done;
    {
      std::unique_lock lock{completion_mutex_};
      completion_wake_.wait(lock, [this] { return completion_stopping_ || !completions_.empty(); });
      if (completions_.empty()) return;
      done = std::move(completions_.front());
      completions_.pop_front();
    }
    for (std::size_t i = 0; i < done->jobs.size(); ++i) {
      auto& result = done->results[i];
      if (auto* append = std::get_if<AppendJob>(&done->jobs[i])) {
        if (auto* receipts = std::get_if<std::vector<Receipt>>(&result)) {
          append->done(std::move(*receipts));
        } else {
          append->done(std::get<Status>(result));
        }
      } else if (auto* key = std::get_if<KeyJob>(&done->jobs[i])) {
        if (auto* id = std::get_if<std::uint32_t>(&result)) {
          key->done.set_value(*id);
        } else {
          key->done.set_value(std::get<Status>(result));
        }
      } else {
        std::get<CheckpointJob>(done->jobs[i]).done(std::get<Status>(result));
      }
    }
  }
}

Status Writer::refusal() const {
  if (poisoned_) return Status::error(Code::kFatal, "ledger poisoned by an earlier commit failure");
  if (stopping_) return Status::error(Code::kBusy, "ledger is shutting down");
  return Status::ok();
}

void Writer::submit(AppendJob job) {
  const std::size_t count = job.events.size();
  std::unique_lock lock{mutex_};
  Status refused = refusal();
  if (refused.is_ok() && queued_events_ + count > kQueueEventsMax) {
    refused = Status::error(Code::kBusy, "append queue is full; retry later");
  }
  if (refused.is_ok()) {
    queued_events_ += count;
    queue_.emplace_back(std::move(job));
    lock.unlock();
    wake_.notify_one();
    return;
  }
  lock.unlock();
  job.done(refused);  // Outside the lock: the callback may append again.
}

std::future<Result<std::uint32_t>> Writer::submit(KeyJob job) {
  auto future = job.done.get_future();
  std::unique_lock lock{mutex_};
  if (Status refused = refusal(); !refused.is_ok()) {
    job.done.set_value(std::move(refused));
  } else {
    queue_.emplace_back(std::move(job));
    lock.unlock();
    wake_.notify_one();
  }
  return future;
}

void Writer::submit(CheckpointJob job) {
  std::unique_lock lock{mutex_};
  Status refused = refusal();
  if (refused.is_ok() && !tree_.enabled) {
    refused = Status::error(Code::kInvalid, "this ledger keeps no Merkle trees");
  }
  if (refused.is_ok()) {
    queue_.emplace_back(std::move(job));
    lock.unlock();
    wake_.notify_one();
    return;
  }
  lock.unlock();
  job.done(std::move(refused));
}

std::future<Status> Writer::run_exclusive(std::function<Status()> work) {
  std::promise<Status> done;
  auto future = done.get_future();
  std::unique_lock lock{mutex_};
  if (Status refused = refusal(); !refused.is_ok()) {
    done.set_value(std::move(refused));
  } else {
    exclusive_.emplace_back(std::move(work), std::move(done));
    lock.unlock();
    wake_.notify_one();
  }
  return future;
}

void Writer::inject_commit_failures(int count) {
  std::lock_guard lock{mutex_};
  injected_failures_ = count;
}

void Writer::inject_view_commit_failures(int count) {
  std::lock_guard lock{mutex_};
  injected_view_failures_ = count;
}

Status Writer::commit_views(WriteTxn& views) {
  {
    std::lock_guard lock{mutex_};
    if (injected_view_failures_ > 0) {
      --injected_view_failures_;
      views.abort();
      return Status::error(Code::kFatal, "injected views commit failure");
    }
  }
  return views.commit();
}

void Writer::run() {
  pthread_setname_np(pthread_self(), "trail-writer");
  std::vector<Job> jobs;
  for (;;) {
    {
      std::unique_lock lock{mutex_};
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty() || !exclusive_.empty(); });
      if (!exclusive_.empty()) {
        auto [work, done] = std::move(exclusive_.front());
        exclusive_.pop_front();
        lock.unlock();
        done.set_value(work());
        continue;
      }
      if (queue_.empty()) return;  // Stopping, and everything queued is committed.
      std::size_t events = 0;
      while (!queue_.empty()) {
        const std::size_t next =
            std::holds_alternative<AppendJob>(queue_.front())
                ? std::get<AppendJob>(queue_.front()).events.size()
                : 0;
        if (!jobs.empty() && events + next > kDrainEventsMax) break;
        events += next;
        jobs.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      queued_events_ -= events;
    }
    process(jobs);
    jobs.clear();
  }
}

std::size_t Writer::events_in(const std::vector<Job>& jobs) {
  std::size_t events = 0;
  for (const auto& job : jobs) {
    if (const auto* append = std::get_if<AppendJob>(&job)) events += append->events.size();
  }
  return events;
}

void Writer::fail_all(std::vector<Job>& jobs, const Status& status) {
  for (auto& job : jobs) {
    if (auto* append = std::get_if<AppendJob>(&job)) {
      append->done(status);
    } else if (auto* key = std::get_if<KeyJob>(&job)) {
      key->done.set_value(status);
    } else {
      std::get<CheckpointJob>(job).done(status);
    }
  }
}

void Writer::process(std::vector<Job>& jobs) {
  if (poisoned_) {
    fail_all(jobs, Status::error(Code::kFatal, "ledger poisoned by an earlier commit failure"));
    return;
  }
  for (;;) {
    Drain drain;
    drain.now_us = now_us();
    drain.results.resize(jobs.size());
    // The chain's transaction first, then the views' (invariant 5).
    auto txn = env_.begin_write();
    std::optional<Result<WriteTxn>> views;
    Status status = txn.is_ok() ? Status::ok() : txn.status();
    if (status.is_ok()) {
      views.emplace(views_env_.begin_write());
      if (!views->is_ok()) status = views->status();
    }
    if (status.is_ok()) status = apply_all(*txn, **views, jobs, drain);
    if (status.is_ok()) status = apply_checkpoints_due(*txn, drain);
    // What the views will write is sealed on the side while the chain's commit waits for the
    // disk; the views flush and commit once the chain is durable (invariant 5).
    const bool aside = status.is_ok() && !projectors_.empty() &&
                       events_in(jobs) >= kSealAsideEventsMin;
    if (aside) {
      sealer_.start([this] {
        for (auto& binding : projectors_) binding.projector->prepare_flush();
      });
    }
    if (status.is_ok()) {
      bool inject = false;
      {
        std::lock_guard lock{mutex_};
        if (injected_failures_ > 0) {
          --injected_failures_;
          inject = true;
        }
      }
      if (inject) {
        txn->abort();
        status = Status::error(Code::kFatal, "injected commit failure");
      } else {
        const auto started = std::chrono::steady_clock::now();
        status = txn->commit();
        if (status.is_ok() && on_commit_) {
          on_commit_(events_in(jobs), static_cast<std::uint64_t>(
                                 std::chrono::duration_cast<std::chrono::microseconds>(
                                     std::chrono::steady_clock::now() - started)
                                     .count()));
        }
      }
    }
    if (aside) sealer_.wait();  // Before anything else touches the projectors.
    if (status.is_ok()) {  // Durable. The views follow, then the outcomes are handed over.
      Status folded = Status::ok();
      for (auto& binding : projectors_) {
        WriteProjectionTables tables{**views, binding.dbis};
        folded = binding.projector->flush(tables);
        if (!folded.is_ok()) break;
      }
      if (folded.is_ok()) {
        folded = commit_views(**views);
      } else {
        (*views)->abort();  // recover_views starts the views over in a transaction of its own.
      }
      if (!folded.is_ok()) {
        for (auto& binding : projectors_) binding.projector->discard();
        if (folded = recover_views(jobs, drain, folded); !folded.is_ok()) {
          // The appends are durable, so they are answered as such; the views stay behind
          // until the next writable open catches them up.
          spdlog::critical("views commit failed, refusing further appends: {}",
                           folded.to_string());
          std::lock_guard lock{mutex_};
          poisoned_ = true;
        }
      }
      auto done = std::make_unique<Completion>();
      done->jobs = std::move(jobs);
      done->results = std::move(drain.results);
      jobs.clear();
      {
        std::lock_guard lock{completion_mutex_};
        completions_.push_back(std::move(done));
      }
      completion_wake_.notify_one();
      return;
    }
    if (views && views->is_ok()) (*views)->abort();
    if (txn.is_ok()) txn->abort();
    // What the abandoned transaction wrote is gone, and so is what anything kept of it.
    for (auto& binding : projectors_) binding.projector->discard();
    tree_sizes_.clear();
    tree_edges_.clear();
    checkpoint_sizes_.clear();
    if (status.code() == Code::kBusy) {  // MDB_MAP_FULL: grow that map and redo the drain.
      const bool chain_full = env_.found_full() || !views_env_.found_full();
      Status grown = Status::ok();
      for (Env* env : {&env_, &views_env_}) {
        if (!grown.is_ok() || (env == &env_ ? !chain_full : !env->found_full())) continue;
        const std::size_t before = env->map_bytes();
        grown = env->grow_map();
        if (grown.is_ok()) {
          spdlog::info("{} map grown from {} to {} bytes", env == &env_ ? "ledger" : "views",
                       before, env->map_bytes());
        }
      }
      if (grown.is_ok()) continue;
      status = grown;
    }
    spdlog::critical("ledger commit failed, refusing further appends: {}", status.to_string());
    {
      std::lock_guard lock{mutex_};
      poisoned_ = true;
    }
    fail_all(jobs, Status::error(Code::kFatal, "commit failed: " + status.to_string()));
    return;
  }
}

Status Writer::recover_views(const std::vector<Job>& jobs, const Drain& drain, Status failure) {
  for (int attempt = 0; attempt < 3 && !failure.is_ok(); ++attempt) {
    if (failure.code() == Code::kBusy) TRAIL_TRY(views_env_.grow_map());
    // The chain's transaction only reads the events (and keeps the order of invariant 5).
    TRAIL_ASSIGN_OR_RETURN(auto txn, env_.begin_write());
    TRAIL_ASSIGN_OR_RETURN(auto views, views_env_.begin_write());
    failure = Status::ok();
    for (const auto& project : drain.dirty) {
      const DataKey* key = nullptr;
      for (const auto& job : jobs) {
        const auto* append = std::get_if<AppendJob>(&job);
        if (append != nullptr && append->project == project) key = append->key.get();
      }
      TRAIL_ASSERT(key != nullptr);
      for (const auto& binding : kept_up_) {
        if (!failure.is_ok()) break;
        auto applied = applied_seq(views, binding.projector->name(), project);
        failure = applied.is_ok() ? replay(txn, views, project, *applied,
                                           drain.heads.at(project).seq, {binding}, *key,
                                           key_lookup_)
                                  : applied.status();
      }
    }
    for (auto& binding : projectors_) {
      if (!failure.is_ok()) break;
      WriteProjectionTables tables{views, binding.dbis};
      failure = binding.projector->flush(tables);
    }
    if (failure.is_ok()) failure = commit_views(views);
    if (!failure.is_ok()) {
      for (auto& binding : projectors_) binding.projector->discard();
    }
    if (!failure.is_ok() && failure.code() != Code::kBusy) return failure;
  }
  return failure;
}

Status Writer::apply_all(WriteTxn& txn, WriteTxn& views, std::vector<Job>& jobs,
                         Drain& drain) {
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    if (auto* append = std::get_if<AppendJob>(&jobs[i])) {
      TRAIL_TRY(apply_append(txn, views, *append, drain, i));
    } else if (auto* key = std::get_if<KeyJob>(&jobs[i])) {
      TRAIL_TRY(apply_key(txn, *key, drain, i));
    } else {
      TRAIL_TRY(apply_checkpoint(txn, std::get<CheckpointJob>(jobs[i]), drain, i));
    }
  }
  for (const auto& project : drain.dirty) {
    const HeadRecord& head = drain.heads.at(project);
    TRAIL_TRY(txn.put(Table::kHeads, as_bytes(project_key(project)), as_bytes(encode_head(head))));
    // Every view folded this project's new events (apply_append): its applied seq, once per
    // commit rather than once per job.
    std::uint8_t last[8];
    put_u64_be(last, head.seq);
    for (const auto& binding : kept_up_) {
      TRAIL_TRY(views.put(Table::kProjectionState,
                          as_bytes(projection_state_key(binding.projector->name(), project)),
                          last));
    }
    // The tree grew with the chain (apply_append): its size record, once per commit.
    if (tree_.enabled) TRAIL_TRY(put_tree_size(txn, tree_.merkle, project, head.seq));
  }
  return Status::ok();
}

Status Writer::apply_append(WriteTxn& txn, WriteTxn& views, AppendJob& job, Drain& drain,
                            std::size_t index) {
  TRAIL_ASSERT(!job.events.empty());
  TRAIL_ASSERT(job.events.size() <= kBatchEventsMax);
  TRAIL_ASSIGN_OR_RETURN(HeadRecord* head, drain.head(txn, job.project));
  if (std::find(drain.views_checked.begin(), drain.views_checked.end(), job.project) ==
      drain.views_checked.end()) {
    // Pair check: every view must have folded the whole chain before it folds more, and the
    // id index must hold every stored id before ids are checked. A view registered late (or
    // emptied, or left a commit behind by a process that died) catches up here.
    for (const auto& binding : kept_up_) {
      TRAIL_ASSIGN_OR_RETURN(std::uint64_t applied,
                             applied_seq(views, binding.projector->name(), job.project));
      if (applied > head->seq) {
        return Status::error(Code::kCorrupt, "view " + std::string(binding.projector->name()) +
                                                 " of " + job.project + " is ahead of its chain");
      }
      TRAIL_TRY(replay(txn, views, job.project, applied, head->seq, {binding}, *job.key,
                       key_lookup_));
    }
    drain.views_checked.push_back(job.project);
  }
  if (tree_.enabled) TRAIL_TRY(ensure_tree(txn, job.project, head->seq));
  if (job.guard) {
    // After the views caught up and every earlier job of this drain was applied.
    Status allowed = job.guard(TxnGuardContext{views, projectors_, *job.key});
    if (allowed.code() == Code::kFatal || allowed.code() == Code::kBusy) return allowed;
    if (!allowed.is_ok()) {
      drain.results[index] = std::move(allowed);
      return Status::ok();
    }
  }

  // Phase 1: claim each new event id in the index (one B-tree descent per event: the insert
  // itself reports an id that is already there). plan[i]: -1 new (seq[i] assigned); -2
  // duplicate of a stored event (seq[i]); j >= 0 duplicate of event j earlier in this batch.
  // A conflict un-claims this batch's ids, so a rejected batch leaves nothing behind.
  const std::size_t n = job.events.size();
  std::vector<std::int64_t> plan(n, -1);
  std::vector<std::uint64_t> seq(n, 0);
  std::vector<std::size_t> claimed;
  claimed.reserve(n);
  std::unordered_map<std::string_view, std::size_t> in_batch;
  in_batch.reserve(n);
  std::uint64_t next_seq = head->seq + 1;
  for (std::size_t i = 0; i < n; ++i) {
    const SealedEvent& ev = job.events[i];
    const std::string_view id_view = as_chars(ev.header.event_id);
    std::string conflict;
    if (auto [it, fresh] = in_batch.emplace(id_view, i); !fresh) {
      if (job.events[it->second].body_mac == ev.body_mac) {
        plan[i] = static_cast<std::int64_t>(it->second);
        continue;
      }
      conflict = "event_id " + format_uuid(ev.header.event_id) +
                 " appears twice in the batch with different bodies";
    } else {
      std::uint8_t id_value[kEventIdValueBytes];
      put_u64_be(id_value, next_seq);
      std::memcpy(id_value + 8, ev.body_mac.data(), 32);
      TRAIL_ASSIGN_OR_RETURN(auto present,
                             views.insert(ids_.dbis.front(),
                                          as_bytes(event_id_key(job.project, ev.header.event_id)),
                                          id_value));
      if (!present) {
        seq[i] = next_seq++;
        claimed.push_back(i);
        continue;
      }
      if (present->size() != kEventIdValueBytes) {
        return Status::error(Code::kCorrupt, "event id index entry is malformed");
      }
      const std::uint64_t stored_seq = get_u64_be(present->data());
      if (std::memcmp(present->data() + 8, ev.body_mac.data(), 32) == 0) {
        plan[i] = -2;
        seq[i] = stored_seq;
        continue;
      }
      conflict = "event_id " + format_uuid(ev.header.event_id) +
                 " was already appended with a different body (seq " +
                 std::to_string(stored_seq) + ")";
    }
    for (const std::size_t c : claimed) {
      TRAIL_TRY(views.erase(ids_.dbis.front(),
                            as_bytes(event_id_key(job.project, job.events[c].header.event_id))));
    }
    drain.results[index] = Status::error(Code::kConflict, std::move(conflict));
    return Status::ok();
  }

  // Phase 2: chain and write the new events, each envelope copied straight into LMDB from its
  // image, with its place in the chain filled in.
  std::vector<Receipt> receipts(n);
  const EventLoader loader = [&](std::uint64_t s) {
    return load_event(txn, job.project, s, key_lookup_);
  };
  const TimeUs server_time = std::max(drain.now_us, head->server_time_us);
  // The tree's right edge: append() reads only left siblings (even indexes), each the last
  // even-indexed node put at its level, so keeping those serves every read once warm (and
  // spares levels below kStoredLevelMin a fold of their events); the key buffer is reused.
  TreeEdge& edge = tree_edges_[job.project];
  const merkle::NodeGet stored_get = node_reader(txn, tree_.merkle, job.project);
  const auto tree_get = [&](unsigned level, std::uint64_t at) -> Result<Digest> {
    if (edge.valid[level] && edge.index[level] == at) return edge.node[level];
    return stored_get(level, at);
  };
  std::string node_key = merkle_key(job.project, 0, 0);
  const std::size_t prefix = node_key.size() - 9;
  const auto tree_put = [&](unsigned level, std::uint64_t at, const Digest& node) -> Status {
    if ((at & 1U) == 0) {
      edge.valid[level] = true;
      edge.index[level] = at;
      edge.node[level] = node;
    }
    if (level < kStoredLevelMin) return Status::ok();  // Folded from the events when read.
    node_key[prefix] = static_cast<char>(level);
    put_u64_be(reinterpret_cast<std::uint8_t*>(node_key.data() + prefix + 1), at);
    return txn.put(tree_.merkle, as_bytes(node_key), node);
  };
  for (std::size_t i = 0; i < n; ++i) {
    SealedEvent& ev = job.events[i];
    if (plan[i] == -2) {
      TRAIL_ASSIGN_OR_RETURN(auto envelope,
                             txn.get(Table::kEvents, as_bytes(event_key(job.project, seq[i]))));
      if (!envelope) {
        return Status::error(Code::kCorrupt, "event id index names seq " +
                                                 std::to_string(seq[i]) + " which is missing");
      }
      receipts[i] = Receipt{seq[i], leaf_hash(*envelope), true};
      continue;
    }
    if (plan[i] >= 0) {
      receipts[i] = receipts[static_cast<std::size_t>(plan[i])];
      receipts[i].duplicate = true;
      continue;
    }
    TRAIL_ASSERT(seq[i] == head->seq + 1);
    const EnvelopeImage& envelope = ev.envelope;  // Serialised when the event was sealed.
    TRAIL_ASSERT(!envelope.bytes.empty());
    auto slot = txn.reserve(Table::kEvents, as_bytes(event_key(job.project, seq[i])),
                            envelope.bytes.size());
    if (!slot.is_ok() && slot.status().code() == Code::kConflict) {
      return Status::error(Code::kCorrupt, "head of " + job.project + " says seq " +
                                               std::to_string(head->seq) +
                                               " but a later event is stored");
    }
    if (!slot.is_ok()) return std::move(slot).take_status();
    envelope.write_to(*slot, seq[i], head->hash, server_time);
    const Digest hash = leaf_hash({*slot, envelope.bytes.size()});
    *head = HeadRecord{seq[i], hash, server_time};
    receipts[i] = Receipt{seq[i], hash, false};
    if (tree_.enabled) TRAIL_TRY(merkle::append_with(seq[i] - 1, hash, tree_get, tree_put));
    if (!projectors_.empty()) {
      const AppendedEvent appended{job.project, seq[i], server_time, &ev.header, job.key.get(),
                                   &loader, job.key.get()};
      for (auto& binding : projectors_) {
        WriteProjectionTables tables{views, binding.dbis};
        TRAIL_TRY(binding.projector->apply(tables, appended));
      }
    }
  }
  if (!claimed.empty() &&
      std::find(drain.dirty.begin(), drain.dirty.end(), job.project) == drain.dirty.end()) {
    drain.dirty.push_back(job.project);
  }
  TRAIL_ASSERT(head->seq + 1 == next_seq);
  if (tree_.enabled) tree_sizes_[job.project] = head->seq;
  drain.results[index] = std::move(receipts);
  return Status::ok();
}

Status Writer::apply_key(WriteTxn& txn, KeyJob& job, Drain& drain, std::size_t index) {
  const std::string pkey = project_key(job.project);
  TRAIL_ASSIGN_OR_RETURN(auto existing, txn.get(Table::kProjectKeys, as_bytes(pkey)));
  if (existing) {
    if (existing->size() != 4) return Status::error(Code::kCorrupt, "project key entry is malformed");
    drain.results[index] = get_u32_be(existing->data());
    return Status::ok();
  }
  TRAIL_ASSIGN_OR_RETURN(auto next, txn.get(Table::kMeta, as_bytes(kMetaNextKeyId)));
  if (!next || next->size() != 4) return Status::error(Code::kCorrupt, "next_key_id is missing");
  const std::uint32_t id = get_u32_be(next->data());
  SecretKey key;
  randombytes_buf(key.data(), key.size());
  const WrappedKey wrapped = keys_->wrap(id, job.project, key);
  TRAIL_TRY(txn.put(Table::kKeys, as_bytes(key_id_key(id)),
                    as_bytes(encode_wrapped(job.project, wrapped)), /*no_overwrite=*/true));
  TRAIL_TRY(txn.put(Table::kProjectKeys, as_bytes(pkey), as_bytes(key_id_key(id))));
  TRAIL_TRY(txn.put(Table::kMeta, as_bytes(kMetaNextKeyId), as_bytes(key_id_key(id + 1))));
  drain.results[index] = id;
  return Status::ok();
}

Status Writer::ensure_tree(WriteTxn& txn, const std::string& project, std::uint64_t head_seq) {
  if (auto it = tree_sizes_.find(project); it != tree_sizes_.end() && it->second == head_seq) {
    return Status::ok();
  }
  TRAIL_ASSIGN_OR_RETURN(auto recorded, read_tree_size(txn, tree_.merkle, project));
  if (!recorded) TRAIL_TRY(erase_tree(txn, project));  // Entries of the earlier layout.
  TRAIL_ASSIGN_OR_RETURN(std::uint64_t size, stored_tree_size(txn, tree_.merkle, project, head_seq));
  if (size < head_seq || !recorded) {
    // A chain from before the trees (or appended to with them off): grow the tree from the
    // stored events, whose hashes are its leaves.
    const merkle::NodeGet get = node_reader(txn, tree_.merkle, project);
    const merkle::NodePut put = [&](unsigned level, std::uint64_t at, const Digest& node) {
      return put_node(txn, tree_.merkle, project, level, at, node);
    };
    std::string key = event_key(project, 0);
    for (std::uint64_t seq = size + 1; seq <= head_seq; ++seq) {
      put_u64_be(reinterpret_cast<std::uint8_t*>(key.data() + key.size() - 8), seq);
      TRAIL_ASSIGN_OR_RETURN(auto envelope, txn.get(Table::kEvents, as_bytes(key)));
      if (!envelope) {
        return Status::error(Code::kCorrupt, "event " + std::to_string(seq) + " of " + project +
                                                 " is missing");
      }
      TRAIL_TRY(merkle::append(seq - 1, leaf_hash(*envelope), get, put));
    }
    TRAIL_TRY(put_tree_size(txn, tree_.merkle, project, head_seq));
    tree_edges_.erase(project);
  }
  tree_sizes_[project] = head_seq;
  return Status::ok();
}

Status Writer::erase_tree(WriteTxn& txn, const std::string& project) {
  const std::string prefix = project_key(project);
  Cursor cursor = txn.cursor(tree_.merkle);
  std::string key;
  for (;;) {
    TRAIL_ASSIGN_OR_RETURN(bool found, cursor.seek(as_bytes(prefix)));
    if (!found) break;
    const std::string_view at = as_chars(cursor.key());
    if (at.substr(0, prefix.size()) != prefix) break;
    key.assign(at);
    TRAIL_TRY(txn.erase(tree_.merkle, as_bytes(key)));
  }
  return Status::ok();
}

Result<std::uint64_t> Writer::checkpoint_size(WriteTxn& txn, const std::string& project) {
  if (auto it = checkpoint_sizes_.find(project); it != checkpoint_sizes_.end()) return it->second;
  TRAIL_ASSIGN_OR_RETURN(auto latest, latest_checkpoint(txn, tree_.checkpoints, project));
  const std::uint64_t size = latest ? latest->first : 0;
  checkpoint_sizes_[project] = size;
  return size;
}

Status Writer::write_checkpoint(WriteTxn& txn, const std::string& project, std::uint64_t size) {
  TRAIL_ASSIGN_OR_RETURN(Digest root, merkle::root(size, node_reader(txn, tree_.merkle, project)));
  Checkpoint checkpoint;
  checkpoint.origin = tree_.origin + "/" + project;
  checkpoint.size = size;
  checkpoint.root = root;
  TRAIL_ASSIGN_OR_RETURN(std::string note, sign_checkpoint(checkpoint, keys_->signer()));
  TRAIL_TRY(txn.put(tree_.checkpoints, as_bytes(checkpoint_key(project, size)), as_bytes(note)));
  checkpoint_sizes_[project] = size;
  return Status::ok();
}

Status Writer::apply_checkpoint(WriteTxn& txn, CheckpointJob& job, Drain& drain,
                                std::size_t index) {
  std::vector<std::string> projects;
  if (!job.project.empty()) {
    projects.push_back(job.project);
  } else {
    Cursor cursor = txn.cursor(Table::kHeads);
    TRAIL_ASSIGN_OR_RETURN(bool more, cursor.first());
    while (more) {
      const ByteView key = cursor.key();
      if (key.empty() || key[0] + 1U != key.size()) {
        return Status::error(Code::kCorrupt, "heads key is malformed");
      }
      projects.emplace_back(as_chars(key.subspan(1)));
      TRAIL_ASSIGN_OR_RETURN(more, cursor.next());
    }
  }
  for (const auto& project : projects) {
    TRAIL_ASSIGN_OR_RETURN(HeadRecord* head, drain.head(txn, project));
    if (head->seq == 0) {
      if (!job.project.empty()) {
        drain.results[index] = Status::error(Code::kNotFound, project + " has no events");
        return Status::ok();
      }
      continue;
    }
    // Every project's tree first, checkpointed or not: the timer's first sweep after a
    // writable open is what grows (or converts) trees the writer has not touched yet.
    TRAIL_TRY(ensure_tree(txn, project, head->seq));
    TRAIL_ASSIGN_OR_RETURN(std::uint64_t last, checkpoint_size(txn, project));
    if (last >= head->seq) continue;
    TRAIL_TRY(write_checkpoint(txn, project, head->seq));
  }
  drain.results[index] = Status::ok();
  return Status::ok();
}

Status Writer::apply_checkpoints_due(WriteTxn& txn, Drain& drain) {
  if (!tree_.enabled || tree_.checkpoint_every == 0) return Status::ok();
  for (const auto& project : drain.dirty) {
    const HeadRecord& head = drain.heads.at(project);
    TRAIL_ASSIGN_OR_RETURN(std::uint64_t last, checkpoint_size(txn, project));
    if (head.seq >= last + tree_.checkpoint_every) TRAIL_TRY(write_checkpoint(txn, project, head.seq));
  }
  return Status::ok();
}

}  // namespace trail::ledger::detail
