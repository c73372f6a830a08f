// The view environment: every projector's sub-databases and their bookkeeping
// (projection_state), in an LMDB environment of their own in DATA/views, apart from the chain.
//
// Why apart: the chain's commit is what an acknowledgement waits for, so it is synced
// (fdatasync, then the meta page). Views are derived from the chain, so their commits are not
// synced (MDB_NOSYNC): the kernel writes their pages back when it will, and a page that many
// commits dirty is written once. The writer commits the chain first, then the views, both
// before it answers, so what an answer acknowledged is in both.
//
// What a crash can do to them:
//   - The process dies: every commit is in the page cache, so the view environment is intact,
//     at most one commit behind the chain; the catch-up at the next writable open replays it.
//   - The machine stops (power, kernel): commits that were not yet written back may be lost in
//     any order, so the environment may be corrupt. Each writable open leaves a mark,
//     DATA/views/writer.<pid>, holding the kernel's boot id (and the pid namespace), and
//     removes it after a final sync
//     at a clean close. A writable open that finds a mark from another boot deletes the view
//     files and starts from empty views, which the catch-up refills from the chain.
//
// Invariants: the view environment never holds an event its chain does not (the chain commits
//             first). A mark is durable (file and directory synced) before the environment is
//             opened for writing.
// Thread safety: open and close run on one thread; env() is an Env (thread-safe as such).
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "ledger/internal/lmdb_env.h"
#include "ledger/status.h"

namespace trail::ledger::detail {

// The directory of the view environment inside a data directory.
std::filesystem::path views_dir(const std::filesystem::path& data_dir);

// The running kernel's boot id (empty when the system does not tell).
std::string current_boot_id();
// This process's pid namespace, as /proc/self/ns/pid names it (empty when unknown): a mark's
// pid is only checked for life within the namespace that wrote it.
std::string current_pid_namespace();

class ViewStore {
 public:
  struct Options {
    std::size_t initial_map_bytes = kInitialMapBytesDefault;
    bool read_only = false;
  };

  // Writable: creates DATA/views when missing; deletes its files first when a writer's mark
  // from another boot shows the machine stopped while views were being written (wiped() is
  // then true); leaves this process's mark. Read-only: nullptr when DATA/views does not exist
  // (a directory no writable open has moved the views of: they are still in the chain's
  // environment).
  // Errors: kBusy (read-only) when a mark from another boot says the views must be rebuilt by
  //         a writable open first; kIo on file-system failure; LMDB's errors.
  static Result<std::unique_ptr<ViewStore>> open(const std::filesystem::path& data_dir,
                                                 const Options& options);
  // Writable: syncs every commit to disk, closes the environment, then removes the mark.
  ~ViewStore();
  ViewStore(const ViewStore&) = delete;
  ViewStore& operator=(const ViewStore&) = delete;

  Env& env() const { return *env_; }
  bool wiped() const { return wiped_; }

 private:
  ViewStore() = default;
  std::unique_ptr<Env> env_;
  std::filesystem::path mark_;  // Empty when read-only.
  bool wiped_ = false;
};

}  // namespace trail::ledger::detail
