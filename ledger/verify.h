// Verification of stored chains: the check an auditor runs on a data directory.
//
// For every project that has a head record or any event (or one), in chain order: every envelope decodes; its stored key, its own
// seq and its project agree; seq is dense from 1; prevHash of seq 1 is zero and of every other
// event equals the hash of the one before; server time never decreases; the last event's hash
// and seq equal the head record; and, when the ledger has keys, every payload's AEAD tag
// verifies (the header is its associated data, so a changed header fails too).
//
// Blame: when the link between seq n-1 and n breaks, the event after decides which one
// changed: if seq n+1 (or the head record) still commits to seq n's hash, seq n is intact and
// seq n-1 was altered; otherwise seq n itself was altered.
// Merkle trees and checkpoints (VerifyOptions::check_trees): the same walk also recomputes
// each project's RFC 6962 tree from its event hashes and requires every stored node to equal
// the recomputed one (and no node to lie beyond the stored leaves), and every stored checkpoint
// to be signed by VerifyOptions::checkpoint_key, to name its project and size, and to hold the
// recomputed root of the first `size` events. With VerifyOptions::against, the project's chain
// must extend an auditor's saved checkpoint: at least as long, the same root at its size, and
// a consistency proof from the stored tree that verifies against the recomputed root.
// Problems found this way are reported only when the chain itself is intact (chain problems
// come first, with their blame rule); a problem about a saved checkpoint comes before one
// about a stored node or checkpoint.
//
// Thread safety: reads through its own read transaction; safe beside a running writer.
// BundleVerifier is a value: one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/checkpoint.h"
#include "ledger/ledger.h"
#include "ledger/merkle.h"
#include "ledger/signed_note.h"

namespace trail::ledger {

struct VerifyProblem {
  std::string project;
  std::uint64_t seq = 0;  // The first event found bad; 0 when no single event is to blame
                          // (a checkpoint, a truncated chain, a saved checkpoint's root).
  std::string reason;
};

struct VerifyReport {
  std::uint64_t events = 0;    // Events checked.
  std::uint64_t projects = 0;  // Chains checked.
  bool payloads_opened = false;
  // Payloads whose cipher this CPU cannot run (AES-256-GCM without AES-NI): not checked.
  std::uint64_t payloads_unchecked = 0;
  std::optional<VerifyProblem> problem;  // Empty: every chain is intact.
  // With check_trees:
  bool trees_checked = false;
  std::uint64_t nodes = 0;              // Stored Merkle nodes compared with recomputed ones.
  std::uint64_t checkpoints = 0;        // Stored checkpoints whose size and root were checked.
  bool checkpoint_signatures = false;   // ... and whose signatures (checkpoint_key given).
  std::uint64_t trees_behind = 0;       // Projects whose stored tree lags the chain (a chain
                                        // from before the trees, read-only since: the writer
                                        // grows it at its next open).
  // With against, once the chain extends it: the chain's size and root now.
  std::uint64_t tree_size = 0;
  Digest tree_root{};
};

struct VerifyOptions {
  std::optional<std::string> project;  // Empty: every project.
  // Called now and then with events checked so far and the total expected.
  std::function<void(std::uint64_t done, std::uint64_t total)> progress;
  // Also check the Merkle trees and checkpoints (see the top of this file). Without
  // checkpoint_key, stored checkpoints are checked for size, project and root but not for
  // their signatures. Every project with a head, an event, a node or a checkpoint is walked.
  bool check_trees = false;
  std::optional<note::Verifier> checkpoint_key;
  // An auditor's saved checkpoint (already opened, e.g. by open_saved_checkpoint): the chain
  // of options.project must extend it. Implies check_trees; needs options.project.
  std::optional<Checkpoint> against;
};

// Errors: kNotFound when options.project has no chain; kInvalid when check_trees is asked of
// a ledger without trees, or `against` without a project; kIo/kFatal when LMDB fails.
// A tampered chain is not an error: it is reported in VerifyReport::problem.
Result<VerifyReport> verify(const Ledger& ledger, const VerifyOptions& options);

// An auditor's saved checkpoint note. With `key` its signature must verify (note::open, then
// parse_body); without, only its text (before the blank line) is parsed.
// Errors: kInvalid when malformed; kCorrupt when `key`'s signature does not verify;
//         kNotFound when no signature is by `key` (the detail names the keys that did sign).
Result<Checkpoint> open_saved_checkpoint(std::string_view note, const note::Verifier* key);

// The project a checkpoint's origin names: Trail's origins are "<server origin>/<project>".
// Errors: kInvalid when the origin has no "/" or the part after the last one is no project id.
Result<std::string> checkpoint_project(const Checkpoint& checkpoint);

// Names (with key ids) of the keys that signed `note`, e.g. "other+1a2b3c4d"; for messages.
std::vector<std::string> note_signers(std::string_view note);

// Verifies an exported chain (docs/FORMAT.md, "Chain bundles") fed in order: the events of
// one project from seq 1 with each checkpoint right after the event that completes its size.
// Every envelope must decode, name the project and its seq; seq is dense from 1; prevHash of
// seq 1 is zero and of every other event the hash of the one before; server time never
// decreases. Every checkpoint must be signed by `key`, name the bundle's size, carry the same
// origin as the bundle's other checkpoints with the project as its last part, and hold the
// RFC 6962 root of the bundle's first `size` event hashes.
// The first problem is kept; after it every call returns false and does nothing.
class BundleVerifier {
 public:
  BundleVerifier(std::string project, note::Verifier key);
  // Event `seq` with its envelope bytes exactly as stored. False once a problem is known.
  bool add_event(std::uint64_t seq, ByteView envelope);
  // A checkpoint line: `size` as the bundle names it, `note` the signed note.
  bool add_checkpoint(std::uint64_t size, std::string_view note);
  // The end of the bundle, which announced `events` events and `checkpoints` checkpoints.
  bool finish(std::uint64_t events, std::uint64_t checkpoints);
  // A problem found outside the verifier (a malformed line): kept unless one is known.
  void fail(std::uint64_t seq, std::string reason);

  const std::optional<VerifyProblem>& problem() const { return problem_; }
  std::uint64_t events() const { return tree_.size(); }
  std::uint64_t checkpoints() const { return checkpoints_; }
  // Size of the last checkpoint (0: none): the events after it are signed by nothing.
  std::uint64_t covered() const { return covered_; }
  const std::string& origin() const { return origin_; }

 private:
  std::string project_;
  note::Verifier key_;
  merkle::StreamingRoot tree_;
  Digest prev_hash_{};
  TimeUs prev_time_us_ = 0;
  std::uint64_t checkpoints_ = 0;
  std::uint64_t covered_ = 0;
  std::string origin_;
  DecodedEnvelope envelope_;
  std::optional<VerifyProblem> problem_;
};

}  // namespace trail::ledger
