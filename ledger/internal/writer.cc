#include "ledger/internal/writer.h"

#include <sodium.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "ledger/internal/layout.h"
#include "ledger/sha256.h"

namespace trail::ledger::detail {

// State of one drain (one write transaction). Discarded when the transaction is retried.
struct Writer::Drain {
  TimeUs now_us = 0;
  std::unordered_map<std::string, HeadRecord> heads;  // Heads as this transaction left them.
  std::vector<std::string> dirty;                     // Projects whose head changed.
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

Writer::Writer(Env& env, std::shared_ptr<const KeyRing> keys)
    : env_{env}, keys_{std::move(keys)}, thread_{[this] { run(); }} {}

Writer::~Writer() {
  {
    std::lock_guard lock{mutex_};
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

std::future<Result<std::vector<Receipt>>> Writer::submit(AppendJob job) {
  auto future = job.done.get_future();
  const std::size_t count = job.events.size();
  std::unique_lock lock{mutex_};
  if (poisoned_) {
    job.done.set_value(Status::error(Code::kFatal, "ledger poisoned by an earlier commit failure"));
  } else if (stopping_) {
    job.done.set_value(Status::error(Code::kBusy, "ledger is shutting down"));
  } else if (queued_events_ + count > kQueueEventsMax) {
    job.done.set_value(Status::error(Code::kBusy, "append queue is full; retry later"));
  } else {
    queued_events_ += count;
    queue_.emplace_back(std::move(job));
    lock.unlock();
    wake_.notify_one();
  }
  return future;
}

std::future<Result<std::uint32_t>> Writer::submit(KeyJob job) {
  auto future = job.done.get_future();
  std::unique_lock lock{mutex_};
  if (poisoned_) {
    job.done.set_value(Status::error(Code::kFatal, "ledger poisoned by an earlier commit failure"));
  } else if (stopping_) {
    job.done.set_value(Status::error(Code::kBusy, "ledger is shutting down"));
  } else {
    queue_.emplace_back(std::move(job));
    lock.unlock();
    wake_.notify_one();
  }
  return future;
}

void Writer::inject_commit_failures(int count) {
  std::lock_guard lock{mutex_};
  injected_failures_ = count;
}

void Writer::run() {
  std::vector<Job> jobs;
  for (;;) {
    {
      std::unique_lock lock{mutex_};
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
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

void Writer::fail_all(std::vector<Job>& jobs, const Status& status) {
  for (auto& job : jobs) {
    std::visit([&](auto& j) { j.done.set_value(status); }, job);
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
    auto txn = env_.begin_write();
    Status status = txn.is_ok() ? apply_all(*txn, jobs, drain) : txn.status();
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
        status = txn->commit();
      }
    }
    if (status.is_ok()) {
      for (std::size_t i = 0; i < jobs.size(); ++i) {
        auto& result = drain.results[i];
        if (auto* append = std::get_if<AppendJob>(&jobs[i])) {
          if (auto* receipts = std::get_if<std::vector<Receipt>>(&result)) {
            append->done.set_value(std::move(*receipts));
          } else {
            append->done.set_value(std::get<Status>(result));
          }
        } else {
          auto& key = std::get<KeyJob>(jobs[i]);
          if (auto* id = std::get_if<std::uint32_t>(&result)) {
            key.done.set_value(*id);
          } else {
            key.done.set_value(std::get<Status>(result));
          }
        }
      }
      return;
    }
    if (txn.is_ok()) txn->abort();
    if (status.code() == Code::kBusy) {  // MDB_MAP_FULL: grow the map and redo the drain.
      const std::size_t before = env_.map_bytes();
      if (Status grown = env_.grow_map(); !grown.is_ok()) {
        status = grown;
      } else {
        spdlog::info("ledger map grown from {} to {} bytes", before, env_.map_bytes());
        continue;
      }
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

Status Writer::apply_all(WriteTxn& txn, std::vector<Job>& jobs, Drain& drain) {
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    if (auto* append = std::get_if<AppendJob>(&jobs[i])) {
      TRAIL_TRY(apply_append(txn, *append, drain, i));
    } else {
      TRAIL_TRY(apply_key(txn, std::get<KeyJob>(jobs[i]), drain, i));
    }
  }
  for (const auto& project : drain.dirty) {
    TRAIL_TRY(txn.put(Table::kHeads, as_bytes(project_key(project)),
                      as_bytes(encode_head(drain.heads.at(project)))));
  }
  return Status::ok();
}

Status Writer::apply_append(WriteTxn& txn, AppendJob& job, Drain& drain, std::size_t index) {
  TRAIL_ASSERT(!job.events.empty());
  TRAIL_ASSERT(job.events.size() <= kBatchEventsMax);
  TRAIL_ASSIGN_OR_RETURN(HeadRecord* head, drain.head(txn, job.project));

  // Phase 1: decide each event's fate without writing, so a rejected batch writes nothing.
  // plan[i]: -1 new; -2 duplicate of a stored event (stored_seq[i]); j >= 0 duplicate of event
  // j earlier in this batch.
  const std::size_t n = job.events.size();
  std::vector<std::int64_t> plan(n, -1);
  std::vector<std::uint64_t> stored_seq(n, 0);
  std::unordered_map<std::string_view, std::size_t> in_batch;
  in_batch.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const SealedEvent& ev = job.events[i];
    const std::string_view id_view = as_chars(ev.header.event_id);
    if (auto [it, fresh] = in_batch.emplace(id_view, i); !fresh) {
      if (std::memcmp(job.events[it->second].body_mac.data(), ev.body_mac.data(), 32) != 0) {
        drain.results[index] = Status::error(
            Code::kConflict, "event_id " + format_uuid(ev.header.event_id) +
                                 " appears twice in the batch with different bodies");
        return Status::ok();
      }
      plan[i] = static_cast<std::int64_t>(it->second);
      continue;
    }
    TRAIL_ASSIGN_OR_RETURN(auto stored,
                           txn.get(Table::kEventIds,
                                   as_bytes(event_id_key(job.project, ev.header.event_id))));
    if (!stored) continue;
    if (stored->size() != kEventIdValueBytes) {
      return Status::error(Code::kCorrupt, "event id index entry is malformed");
    }
    if (std::memcmp(stored->data() + 8, ev.body_mac.data(), 32) != 0) {
      drain.results[index] = Status::error(
          Code::kConflict, "event_id " + format_uuid(ev.header.event_id) +
                               " was already appended with a different body (seq " +
                               std::to_string(get_u64_be(stored->data())) + ")");
      return Status::ok();
    }
    plan[i] = -2;
    stored_seq[i] = get_u64_be(stored->data());
  }

  // Phase 2: chain and write the new events.
  std::vector<Receipt> receipts(n);
  const TimeUs server_time = std::max(drain.now_us, head->server_time_us);
  bool wrote = false;
  for (std::size_t i = 0; i < n; ++i) {
    SealedEvent& ev = job.events[i];
    if (plan[i] == -2) {
      TRAIL_ASSIGN_OR_RETURN(auto envelope,
                             txn.get(Table::kEvents, as_bytes(event_key(job.project, stored_seq[i]))));
      if (!envelope) {
        return Status::error(Code::kCorrupt, "event id index names seq " +
                                                 std::to_string(stored_seq[i]) + " which is missing");
      }
      receipts[i] = Receipt{stored_seq[i], leaf_hash(*envelope), true};
      continue;
    }
    if (plan[i] >= 0) {
      receipts[i] = receipts[static_cast<std::size_t>(plan[i])];
      receipts[i].duplicate = true;
      continue;
    }
    const std::uint64_t seq = head->seq + 1;
    const auto words = encode_envelope(job.project, seq, head->hash, server_time, ev);
    const auto bytes = words.asBytes();
    const Digest hash = leaf_hash({bytes.begin(), bytes.size()});
    const Status put = txn.put(Table::kEvents, as_bytes(event_key(job.project, seq)),
                               {bytes.begin(), bytes.size()}, /*no_overwrite=*/true);
    if (put.code() == Code::kConflict) {
      return Status::error(Code::kCorrupt, "head of " + job.project + " says seq " +
                                               std::to_string(head->seq) +
                                               " but a later event is stored");
    }
    TRAIL_TRY(put);
    std::uint8_t id_value[kEventIdValueBytes];
    put_u64_be(id_value, seq);
    std::memcpy(id_value + 8, ev.body_mac.data(), 32);
    TRAIL_TRY(txn.put(Table::kEventIds, as_bytes(event_id_key(job.project, ev.header.event_id)),
                      id_value));
    TRAIL_ASSERT(seq == head->seq + 1);
    *head = HeadRecord{seq, hash, server_time};
    receipts[i] = Receipt{seq, hash, false};
    wrote = true;
  }
  if (wrote && std::find(drain.dirty.begin(), drain.dirty.end(), job.project) == drain.dirty.end()) {
    drain.dirty.push_back(job.project);
  }
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

}  // namespace trail::ledger::detail
