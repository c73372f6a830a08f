// The ledger of one data directory: encrypted, hash-chained, append-only event chains, one per
// project, in LMDB.
//
// Appends: any thread calls append(); the caller's thread validates and seals the batch (so
// sealing runs in parallel), then the writer thread chains, stores and group-commits it. The
// future resolves only after the commit is durable.
// Reads: any thread; each call uses its own LMDB read transaction and never blocks the writer.
//
// Thread safety: every public method may be called from any thread.
// Lifetime: destroying the Ledger commits what is queued, then stops the writer.
#pragma once

#include <filesystem>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <thread>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "ledger/data_key.h"
#include "ledger/envelope.h"
#include "ledger/key_ring.h"
#include "ledger/projector.h"
#include "ledger/receipt.h"
#include "ledger/status.h"

namespace trail::ledger {

namespace detail {
class Env;
class ViewStore;
class Writer;
struct ProjectorBinding;
}  // namespace detail

struct LedgerOptions {
  std::filesystem::path data_dir;
  // Without keys the ledger is read-only and cannot open payloads: enough for verification.
  std::shared_ptr<const KeyRing> keys;
  bool read_only = false;
  std::size_t initial_map_bytes = 64U << 20U;
  // Views folded by the writer with every append, before it is answered; their sub-databases
  // are opened with the ledger, in the view environment DATA/views (view_store.h).
  std::vector<std::shared_ptr<Projector>> projectors;
  // Writable only: a view behind its chain at open (registered since, or renamed because its
  // layout changed) catches up before open() returns, in commits of at most 100,000 events,
  // so no read sees it partial (a view that applied nothing yet starts from empty tables);
  // then the sub-databases of its earlier layout
  // (Projector::retired_tables) are deleted. Off: the first append to each project catches it
  // up, and retired sub-databases stay.
  bool catch_up_views = true;
  // Hears of every group commit: events in it and the commit's own duration (the fsync), for
  // metrics. Runs on the writer thread; must be quick.
  std::function<void(std::size_t events, std::uint64_t commit_us)> on_commit;
  // Merkle trees and signed checkpoints (RFC 6962 / C2SP tlog-checkpoint), kept inside the
  // append's commit. A project's checkpoints name `checkpoint_origin` + "/" + project; empty
  // means the signing key's name (`trailctl init --key-name`, by default the host name), so
  // every process writing to the directory names checkpoints alike.
  bool merkle_trees = true;
  std::string checkpoint_origin;
  // A checkpoint is issued in the commit that reaches this many events since the last one
  // (0: never by count), and by a timer within `checkpoint_interval` of any append.
  std::uint64_t checkpoint_every_events = 10'000;
  std::chrono::milliseconds checkpoint_interval{2000};
  // Events per commit when views are rebuilt or caught up (tests make it small).
  std::uint64_t replay_chunk_events = 100'000;
};

// An event as stored: its envelope bytes (exactly as hashed) and its hash.
struct StoredEvent {
  std::uint64_t seq = 0;
  std::string envelope;
  Digest hash{};
};

// An event decoded and, when keys allow, opened.
struct OpenedEvent {
  DecodedEnvelope envelope;
  Digest hash{};
  std::string payload;  // Plaintext payload bytes.
};

class Ledger {
 public:
  // Initialises an empty data directory bound to `keys` (it records a one-way check of the
  // KEK, so a wrong key directory is refused at open).
  // Errors: kConflict when `data_dir` already holds a ledger; kIo on file-system failure.
  static Status create(const std::filesystem::path& data_dir, const KeyRing& keys,
                       std::size_t initial_map_bytes = 64U << 20U);

  // Opens an initialised data directory.
  // Errors: kNotFound when it holds no ledger; kInvalid when `keys` belong to another data
  //         directory; kCorrupt when the format is unknown; kIo on file-system failure.
  static Result<std::unique_ptr<Ledger>> open(const LedgerOptions& options);

  ~Ledger();
  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  // Appends `drafts` to `project` atomically: every new event is appended or none is.
  // Receipts come in the order of `drafts`. An event whose id is already in the project with
  // the same body gets the original receipt with duplicate = true and appends nothing.
  // Errors (through the future): kInvalid for a bad project id, an empty or oversized batch, or
  //   a draft over a limit (the detail names the event index and field); kConflict when an
  //   event id is already used with another body; kBusy when the queue is full or the ledger
  //   is read-only; kFatal once a commit has failed.
  std::future<Result<std::vector<Receipt>>> append(std::string project,
                                                   std::vector<EventDraft> drafts);

  // Called exactly once with an append's outcome: on the ledger's completion thread after the
  // commit (keep it quick, e.g. post to an event loop, and never append from it: an append
  // may wait on that thread), or on the caller's thread when the batch is refused before it
  // is queued.
  using AppendCallback = std::function<void(Result<std::vector<Receipt>>)>;
  // As append(), without blocking a thread on the commit: the caller's thread seals, the
  // writer commits, `done` gets the result. A `guard` is called inside the commit's
  // transaction, right before the append is applied: what it refuses fails with its status
  // and writes nothing (a check made before queueing can be overtaken by an append queued
  // ahead; the guard cannot). Errors: as append(), and the guard's.
  void append_async(std::string project, std::vector<EventDraft> drafts, AppendCallback done,
                    AppendGuard guard = {});

  // The project's head; seq 0 when it has no events.
  Result<Head> head(std::string_view project) const;
  // Projects with at least one event, in key order.
  Result<std::vector<std::string>> projects() const;
  // Event `seq` of `project`. Errors: kNotFound.
  Result<StoredEvent> read(std::string_view project, std::uint64_t seq) const;
  // The first seq of `project` whose server time is at least `time_us` (head + 1 when none):
  // a binary search, since server time never decreases along a chain, so a time range is a
  // seq range. Errors: kCorrupt when an envelope does not decode; storage errors.
  Result<std::uint64_t> first_seq_at_or_after(std::string_view project, TimeUs time_us) const;
  // Calls `visit` for events from seq `from` on, in order, at most `limit` of them (0: all),
  // until it returns false. All from one snapshot.
  Status scan(std::string_view project, std::uint64_t from, std::uint64_t limit,
              const std::function<bool(const StoredEvent&)>& visit) const;
  // Decodes `stored` and opens its payload. Errors: kCorrupt when the envelope does not decode
  //   or the tag fails; kInvalid when this ledger has no keys.
  Result<OpenedEvent> open_event(const StoredEvent& stored) const;

  // The data key with id `key_id`, unwrapped (cached). Errors: kNotFound, kCorrupt, kInvalid
  // (no keys).
  Result<std::shared_ptr<const DataKey>> data_key_by_id(std::uint32_t key_id) const;

  // The data key of `project`, without creating one. Errors: kNotFound, kCorrupt, kInvalid.
  Result<std::shared_ptr<const DataKey>> existing_project_key(std::string_view project) const;

  // Runs `read` over `projector`'s sub-databases in one read transaction (one snapshot).
  // Errors: kInvalid when `projector` is not registered; whatever `read` returns.
  Status read_projection(const Projector& projector,
                         const std::function<Status(const ProjectionTables&)>& read) const;
  // The last seq of `project` that `projector` has applied (0: none).
  Result<std::uint64_t> projection_seq(const Projector& projector, std::string_view project) const;

  // Empties every registered view and replays every chain into it, committing in chunks.
  // `progress` (optional) gets events replayed so far and the total. Appends wait meanwhile.
  // Errors: kBusy when read-only; kCorrupt when an event does not open; storage errors.
  Status rebuild_projections(const std::function<void(std::uint64_t, std::uint64_t)>& progress);
  // SHA-256 over every key and value of every registered view (and their bookkeeping), from
  // one snapshot: equal digests mean byte-identical views.
  Result<Digest> projection_digest() const;

  // ---- Merkle trees and checkpoints (ledger_tree.cc) ----
  // Whether this data directory holds trees (a read-only copy from before them does not).
  bool has_trees() const { return has_trees_; }
  // Leaves in `project`'s tree: its event count once the writer has caught the tree up.
  Result<std::uint64_t> tree_size(std::string_view project) const;
  // RFC 6962 root of the first `size` events. Errors: kInvalid when size > tree_size.
  Result<Digest> tree_root(std::string_view project, std::uint64_t size) const;
  // RFC 9162 proofs; the leaf index of event seq is seq - 1. Errors: kInvalid for an index,
  // size or range outside the tree.
  Result<std::vector<Digest>> inclusion_proof(std::string_view project, std::uint64_t index,
                                              std::uint64_t size) const;
  Result<std::vector<Digest>> consistency_proof(std::string_view project, std::uint64_t from,
                                                std::uint64_t to) const;
  // A signed checkpoint (the note exactly as signed): the latest, or the one at `size`.
  // nullopt when there is none.
  struct StoredCheckpoint {
    std::uint64_t size = 0;
    std::string note;
  };
  Result<std::optional<StoredCheckpoint>> checkpoint(std::string_view project,
                                                     std::optional<std::uint64_t> size = {}) const;
  // The checkpoints of `project` of size `from` and up, by size, at most `limit` (0: all).
  Result<std::vector<StoredCheckpoint>> checkpoints(std::string_view project,
                                                    std::uint64_t from = 0,
                                                    std::size_t limit = 0) const;
  // Issues a checkpoint of `project` at its head now (none when the latest covers the head)
  // and waits until it is durable. Errors: kNotFound without events; kBusy when read-only.
  Status checkpoint_now(std::string_view project);
  // As checkpoint_now(), without blocking: `done` gets the outcome once, on the ledger's
  // completion thread (keep it quick), or on the caller's thread when refused at once.
  void checkpoint_now_async(std::string_view project, std::function<void(Status)> done);
  // The checkpoint key in signed-note form: name+hex key id+base64(0x01 || public key).
  // Errors: kInvalid without keys.
  Result<std::string> verifier_key() const;

  bool has_keys() const { return keys_ != nullptr; }
  detail::Env& env() const { return *env_; }
  // The environment of the views: DATA/views, or, read-only in a directory no writable open
  // has moved the views of yet, the chain's own.
  detail::Env& views_env() const { return *views_env_; }
  // Whether this open found the views possibly corrupt after a stop of the machine, deleted
  // them and rebuilt them from the chains.
  bool views_were_rebuilt() const;
  // Size of the LMDB map now (grows on demand).
  std::size_t map_bytes() const;
  // Test seam: the next `count` commits fail as a disk failure would.
  void inject_commit_failures(int count);
  // Test seam: the next `count` commits of the views fail so, after the chain's succeeded.
  void inject_view_commit_failures(int count);

 private:
  Ledger() = default;
  // On the writer thread (run_exclusive): replays events after+1 .. to of `project` into
  // `bindings`, committing every kRebuildChunkEvents; `advanced` hears of each chunk's size.
  Status replay_in_chunks(const std::string& project, std::uint64_t after, std::uint64_t to,
                          const std::vector<detail::ProjectorBinding>& bindings,
                          const std::function<void(std::uint64_t)>& advanced);
  // Brings every view behind its chain up to date (LedgerOptions::catch_up_views).
  Status catch_up_views();
  Result<std::shared_ptr<const DataKey>> project_key(const std::string& project);
  Status seal_all(const std::string& project, const DataKey& key, std::vector<EventDraft>& drafts,
                  std::vector<SealedEvent>& sealed) const;

  // Moves views out of the chain's environment (the layout before DATA/views): deletes their
  // sub-databases and bookkeeping there once the view environment has caught up.
  Status drop_views_from_chain_env();

  std::unique_ptr<detail::Env> env_;
  std::unique_ptr<detail::ViewStore> views_;
  detail::Env* views_env_ = nullptr;
  std::shared_ptr<const KeyRing> keys_;
  std::vector<std::shared_ptr<Projector>> projectors_;
  std::unique_ptr<Projector> id_index_;  // detail::EventIdIndex.
  // Every view: the id index first, then projectors_ in order.
  std::vector<detail::ProjectorBinding> bindings_;
  std::unique_ptr<detail::Writer> writer_;
  std::uint64_t replay_chunk_events_ = 100'000;
  bool has_trees_ = false;
  unsigned merkle_dbi_ = 0;
  unsigned checkpoints_dbi_ = 0;
  // The checkpoint timer: every checkpoint_interval, when something was appended, a job that
  // checkpoints every project whose tree grew.
  void run_checkpointer(std::chrono::milliseconds interval);
  std::atomic<bool> appended_{true};  // True at open: catch up trees and checkpoints.
  std::mutex timer_mutex_;
  std::condition_variable timer_wake_;
  bool timer_stopping_ = false;
  std::thread checkpointer_;
  mutable std::mutex keys_mutex_;
  mutable std::unordered_map<std::string, std::shared_ptr<const DataKey>> by_project_;
  mutable std::unordered_map<std::uint32_t, std::shared_ptr<const DataKey>> by_id_;
};

}  // namespace trail::ledger
