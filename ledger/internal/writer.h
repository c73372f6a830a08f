// The writer thread: owns every LMDB write transaction of this process and group-commits.
// Callers queue jobs from any thread; the writer drains the queue, applies each job in one
// write transaction of the chain's environment and one of the view environment
// (view_store.h), commits the chain (synced: durable), then flushes the views' kept-back
// writes and commits them (not synced), and only then resolves the jobs' promises. While the
// chain's commit waits for the disk, a side thread (trail-seal) prepares those writes
// (Projector::prepare_flush) for a drain of kSealAsideEventsMin events or more.
//
// Invariants: (1) per project, seq is dense and event[n].prev_hash == hash(event[n-1]).
//             (2) A batch is all-or-nothing: a rejected batch writes nothing; the other
//                 batches of the same commit are unaffected.
//             (3) A promise resolves with receipts only after the commit that holds them
//                 returned success, and after the views' commit that folded them.
//             (5) The chain's write transaction is always begun before the views' one, in
//                 every process, so two writers never wait on each other.
//             (4) After a failed commit (other than a full map, which grows and retries), the
//                 writer is poisoned: every later job fails with kFatal.
// Thread safety: submit() from any thread; everything else runs on the writer thread, but for
//                resolving promises, which a completion thread does so that waking callers
//                overlaps the next commit, and the projectors' prepare_flush, which the side
//                thread runs while the writer thread touches no projector.
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <variant>
#include <vector>

#include "ledger/envelope.h"
#include "ledger/internal/lmdb_env.h"
#include "ledger/internal/side_task.h"
#include "ledger/internal/projection_tables.h"
#include "ledger/internal/replay.h"
#include "ledger/key_ring.h"
#include "ledger/receipt.h"

namespace trail::ledger::detail {

inline constexpr std::size_t kDrainEventsMax = 65'536;    // Events in one commit, at most.
// A drain of at least this many events has its views' records sealed on the side while the
// chain commits; a smaller one seals them itself (the hand-off would cost more than it saves).
inline constexpr std::size_t kSealAsideEventsMin = 256;
inline constexpr std::size_t kQueueEventsMax = 1'000'000;  // Queued and not yet committed.

// Called once with the job's outcome, on the completion thread (or on the submitting thread
// when the job is refused at once). Must be quick: it delays the callbacks of later commits.
using AppendCallback = std::function<void(Result<std::vector<Receipt>>)>;

struct AppendJob {
  std::string project;
  std::shared_ptr<const DataKey> key;  // The project's data key, for projectors.
  std::vector<SealedEvent> events;
  AppendCallback done;
  AppendGuard guard;  // Empty: none.
};

// Makes sure `project` has a data key; resolves with its key id.
struct KeyJob {
  std::string project;
  std::promise<Result<std::uint32_t>> done;
};

// Issues checkpoints: for one project (on demand), or for every project whose tree grew since
// its last checkpoint (project ""). Resolves once they are durable.
struct CheckpointJob {
  std::string project;
  std::function<void(Status)> done;  // Called once, as AppendJob::done.
};

// The Merkle trees and checkpoints (tree_store.h). Disabled: no tree is kept.
struct TreeOptions {
  bool enabled = false;
  MDB_dbi merkle = 0;
  MDB_dbi checkpoints = 0;
  std::string origin;                 // A project's checkpoints name origin + "/" + project.
  std::uint64_t checkpoint_every = 0;  // Also checkpoint in a commit that reaches this many
                                       // events since the last one (0: never by count).
};

using CommitHook = std::function<void(std::size_t events, std::uint64_t commit_us)>;

class Writer {
 public:
  // Every new event is applied to every projector in `projectors` inside its commit, and its
  // id claimed in the idempotency index `ids` (event_id_index.h; its projector only replays).
  // Views found behind their chain, the index among them, are first brought up to date from
  // the stored events, whose payloads `key_lookup` opens.
  // `on_commit` (optional) hears of every successful commit: events in it and how long the
  // commit itself (the fsync) took; it runs on the writer thread and must be quick.
  Writer(Env& env, Env& views, std::shared_ptr<const KeyRing> keys, ProjectorBinding ids,
         std::vector<ProjectorBinding> projectors,
         KeyLookup key_lookup, CommitHook on_commit = {}, TreeOptions tree = {});
  ~Writer();  // Commits what is queued, then stops.
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Errors (through job.done): kBusy when kQueueEventsMax events already wait;
  // kFatal once poisoned.
  void submit(AppendJob job);
  std::future<Result<std::uint32_t>> submit(KeyJob job);
  void submit(CheckpointJob job);

  // Runs `work` on the writer thread between commits, with no other write in progress, and
  // resolves with what it returns (e.g. a projection rebuild, which commits in chunks).
  // Errors: kFatal once poisoned; kBusy when stopping.
  std::future<Status> run_exclusive(std::function<Status()> work);

  // Test seam: the next `count` commits fail as if the disk had failed.
  void inject_commit_failures(int count);
  // Test seam: the next `count` commits of the views fail so (after the chain's succeeded).
  void inject_view_commit_failures(int count);

 private:
  // Why no job is taken now (poisoned, stopping), or ok. Call with mutex_ held.
  Status refusal() const;
  using Job = std::variant<AppendJob, KeyJob, CheckpointJob>;
  struct Drain;

  // Jobs of a committed drain with their outcomes, waiting to be resolved.
  struct Completion;

  void run();
  void complete();  // The completion thread: wakes callers so the writer need not.
  void process(std::vector<Job>& jobs);
  // Applies every job; returns non-ok only for storage failures that void the whole commit.
  Status apply_all(WriteTxn& txn, WriteTxn& views, std::vector<Job>& jobs, Drain& drain);
  Status apply_append(WriteTxn& txn, WriteTxn& views, AppendJob& job, Drain& drain,
                      std::size_t index);
  // After the chain committed and the views' commit failed: grows the view map if it was full
  // and catches the drain's projects up in a new views commit, so the answers still find
  // their events in the views. Errors: the second failure (the writer is then poisoned).
  Status recover_views(const std::vector<Job>& jobs, const Drain& drain, Status failure);
  Status apply_key(WriteTxn& txn, KeyJob& job, Drain& drain, std::size_t index);
  Status apply_checkpoint(WriteTxn& txn, CheckpointJob& job, Drain& drain, std::size_t index);
  // Brings `project`'s Merkle tree up to `head_seq` leaves from the stored events.
  Status ensure_tree(WriteTxn& txn, const std::string& project, std::uint64_t head_seq);
  // Removes every `merkle` entry of `project` (a tree in the layout before the size record).
  Status erase_tree(WriteTxn& txn, const std::string& project);
  // Size of `project`'s latest checkpoint (0: none).
  Result<std::uint64_t> checkpoint_size(WriteTxn& txn, const std::string& project);
  // Signs and stores the checkpoint of `project` at `size` (its tree must hold `size` leaves).
  Status write_checkpoint(WriteTxn& txn, const std::string& project, std::uint64_t size);
  // The checkpoints due by count in the drain's projects.
  Status apply_checkpoints_due(WriteTxn& txn, Drain& drain);
  static std::size_t events_in(const std::vector<Job>& jobs);  // Appended events (with duplicates).
  void fail_all(std::vector<Job>& jobs, const Status& status);

  Env& env_;
  Env& views_env_;
  std::shared_ptr<const KeyRing> keys_;
  ProjectorBinding ids_;
  std::vector<ProjectorBinding> projectors_;
  KeyLookup key_lookup_;
  CommitHook on_commit_;
  TreeOptions tree_;
  std::vector<ProjectorBinding> kept_up_;  // Every view the writer keeps up: ids_, projectors_.
  // Writer thread only; what committed transactions left (cleared when one is abandoned).
  std::unordered_map<std::string, std::uint64_t> tree_sizes_;
  std::unordered_map<std::string, std::uint64_t> checkpoint_sizes_;
  // Per project, the last Merkle node put at each level (committed or in this transaction).
  struct TreeEdge {
    std::array<Digest, 64> node{};
    std::array<std::uint64_t, 64> index{};
    std::array<bool, 64> valid{};
  };
  std::unordered_map<std::string, TreeEdge> tree_edges_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;
  std::deque<std::pair<std::function<Status()>, std::promise<Status>>> exclusive_;
  std::size_t queued_events_ = 0;
  bool stopping_ = false;
  bool poisoned_ = false;  // Written and read by the writer thread; read under mutex_ by submit.
  int injected_failures_ = 0;
  int injected_view_failures_ = 0;
  // Commits the views' transaction, or fails it as injected.
  Status commit_views(WriteTxn& views);

  // Seals the views' records (Projector::prepare_flush) while the chain commits.
  SideTask sealer_{"trail-seal"};

  std::mutex completion_mutex_;
  std::condition_variable completion_wake_;
  std::deque<std::unique_ptr<Completion>> completions_;
  bool completion_stopping_ = false;
  std::thread completion_thread_;
  std::thread thread_;
};

}  // namespace trail::ledger::detail
