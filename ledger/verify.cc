#include "ledger/verify.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "ledger/internal/layout.h"
#include "ledger/internal/lmdb_env.h"
#include "ledger/internal/tree_store.h"
#include "ledger/sha256.h"

namespace trail::ledger {
using detail::Table;

namespace {

constexpr std::uint64_t kProgressEvery = 16'384;

std::string hex_of_id(std::uint32_t id) {
  char out[9];
  std::snprintf(out, sizeof out, "%08x", id);
  return out;
}

std::string b64_of(const Digest& d) { return to_base64(ByteView{d.data(), d.size()}); }

// Why a checkpoint note did not open, for a message that begins "checkpoint at size N".
std::string open_failure(const Status& s, std::string_view note, const note::Verifier* key) {
  switch (s.code()) {
    case Code::kCorrupt:
      return "its signature does not verify with the checkpoint key (forged or altered)";
    case Code::kNotFound: {
      std::string signers;
      for (const auto& name : note_signers(note)) signers += (signers.empty() ? "" : ", ") + name;
      return "it is not signed by the checkpoint key " +
             (key != nullptr ? key->name + "+" + hex_of_id(key->key_id) : std::string()) +
             " (signed by " + (signers.empty() ? std::string("no one") : signers) + ")";
    }
    default:
      return "it is malformed: " + s.detail();
  }
}

// One project's Merkle tree, recomputed from its event hashes as the chain walk passes them,
// against the stored nodes, the stored checkpoints and an auditor's saved checkpoint.
class TreeChecker {
 public:
  TreeChecker(const detail::ReadTxn& txn, MDB_dbi merkle, MDB_dbi checkpoints, std::string project,
              const VerifyOptions& options, VerifyReport& report)
      : txn_{txn}, merkle_{merkle}, checkpoints_{checkpoints}, project_{std::move(project)},
        options_{options}, report_{report} {}

  // Reads and opens the stored checkpoints; notes the roots to compare.
  Status begin() {
    auto recorded = detail::read_tree_size(txn_, merkle_, project_);
    if (recorded.is_ok()) {
      leaves_ = *recorded;
    } else if (recorded.status().code() == Code::kCorrupt) {
      tree_fail(0, "the Merkle tree's size record is malformed");
    } else {
      return recorded.status();
    }
    const std::string prefix = detail::project_key(project_);
    detail::Cursor cursor = txn_.cursor(checkpoints_);
    TRAIL_ASSIGN_OR_RETURN(bool more, cursor.seek(as_bytes(prefix)));
    const note::Verifier* key = options_.checkpoint_key ? &*options_.checkpoint_key : nullptr;
    while (more) {
      const ByteView k = cursor.key();
      if (k.size() < prefix.size() || as_chars(k.subspan(0, prefix.size())) != prefix) break;
      if (k.size() != prefix.size() + 8) {
        tree_fail(0, "a checkpoints key of the project is malformed");
        break;
      }
      const std::uint64_t size = get_u64_be(k.data() + prefix.size());
      const std::string_view note = as_chars(cursor.value());
      const std::string at = "checkpoint at size " + std::to_string(size) + ": ";
      auto opened = open_saved_checkpoint(note, key);
      if (!opened.is_ok()) {
        tree_fail(0, at + open_failure(opened.status(), note, key));
      } else if (opened->size != size) {
        tree_fail(0, at + "it says size " + std::to_string(opened->size));
      } else if (auto named = checkpoint_project(*opened); !named.is_ok() || *named != project_) {
        tree_fail(0, at + "its origin '" + opened->origin + "' names another project");
      } else {
        expected_.push_back({size, opened->root, false});
      }
      TRAIL_ASSIGN_OR_RETURN(more, cursor.next());
    }
    if (options_.against) expected_.push_back({options_.against->size, options_.against->root, true});
    std::stable_sort(expected_.begin(), expected_.end(),
                     [](const Expected& a, const Expected& b) { return a.size < b.size; });
    compare_roots();
    return Status::ok();
  }

  // The next event's hash: leaf number size_ (0-based).
  Status add(const Digest& leaf) {
    Digest node = leaf;
    unsigned level = 0;
    std::uint64_t index = size_;
    TRAIL_TRY(check_node(level, index, node));
    while (!stack_.empty() && stack_.back().level == level) {
      node = merkle::node_hash(stack_.back().hash, node);
      stack_.pop_back();
      ++level;
      index >>= 1U;
      TRAIL_TRY(check_node(level, index, node));
    }
    stack_.push_back({level, node});
    ++size_;
    compare_roots();
    return Status::ok();
  }

  // After the chain's last event.
  Status finish() {
    const std::uint64_t leaves = leaves_.value_or(0);
    if (leaves > size_) {
      tree_fail(0, "the Merkle tree says " + std::to_string(leaves) +
                               " leaves but the chain has " + std::to_string(size_) +
                               " events (events were removed)");
    }
    if (leaves < size_) ++report_.trees_behind;
    TRAIL_TRY(check_no_stray_nodes(leaves));
    for (std::size_t i = next_expected_; i < expected_.size(); ++i) {
      const Expected& e = expected_[i];
      if (e.saved) {
        against_fail(size_ + 1, "the chain has " + std::to_string(size_) +
                                    " events but the saved checkpoint covers " +
                                    std::to_string(e.size) +
                                    ": events were removed (truncated or rolled back)");
      } else {
        tree_fail(0, "checkpoint at size " + std::to_string(e.size) + ": it lies beyond the " +
                         std::to_string(size_) + " events of the chain (events were removed)");
      }
    }
    report_.tree_size = size_;
    report_.tree_root = root();
    if (options_.against && !against_problem_ && options_.against->size > 0) {
      if (leaves < size_) {
        return Status::error(Code::kInvalid,
                             "the stored Merkle tree of " + project_ + " holds " +
                                 std::to_string(leaves) + " of " + std::to_string(size_) +
                                 " events, too few for a consistency proof (a writable open, "
                                 "e.g. trailctl checkpoint --now, grows it)");
      }
      const std::uint64_t from = options_.against->size;
      auto proof = merkle::consistency_proof(from, size_,
                                             detail::node_reader(txn_, merkle_, project_));
      Status checked = proof.is_ok()
                           ? merkle::verify_consistency(from, size_, options_.against->root,
                                                        report_.tree_root, *proof)
                           : proof.status();
      if (!checked.is_ok()) {
        against_fail(0, "the consistency proof from the saved size " + std::to_string(from) +
                            " to the current size " + std::to_string(size_) +
                            " does not verify: " + checked.detail());
      }
    }
    return Status::ok();
  }

  std::optional<VerifyProblem> problem() const {
    return against_problem_ ? against_problem_ : tree_problem_;
  }

 private:
  struct Node {
    unsigned level;
    Digest hash;
  };
  struct Expected {
    std::uint64_t size;
    Digest root;
    bool saved;  // The auditor's saved checkpoint, not a stored one.
  };

  Digest root() const {
    if (stack_.empty()) return merkle::empty_root();
    Digest r = stack_.back().hash;
    for (std::size_t j = stack_.size() - 1; j-- > 0;) r = merkle::node_hash(stack_[j].hash, r);
    return r;
  }

  void compare_roots() {
    while (next_expected_ < expected_.size() && expected_[next_expected_].size == size_) {
      const Expected& e = expected_[next_expected_++];
      const Digest now = root();
      if (e.saved) {
        if (now != e.root) {
          against_fail(0, "history was rewritten: the first " + std::to_string(size_) +
                              " events hash to root " + b64_of(now) +
                              ", the saved checkpoint has root " + b64_of(e.root));
        }
      } else if (now != e.root) {
        tree_fail(0, "checkpoint at size " + std::to_string(size_) + ": its root " +
                         b64_of(e.root) + " is not the root of the first " +
                         std::to_string(size_) + " events (" + b64_of(now) + ")");
      } else {
        ++report_.checkpoints;
      }
    }
  }

  // Compares stored node (level, index) with `hash`, recomputed. Levels below
  // kStoredLevelMin are not stored; nodes beyond the size record are left to
  // check_no_stray_nodes().
  Status check_node(unsigned level, std::uint64_t index, const Digest& hash) {
    if (tree_problem_ || level < detail::kStoredLevelMin) return Status::ok();
    if (!leaves_ || ((index + 1) << level) > *leaves_) return Status::ok();
    TRAIL_ASSIGN_OR_RETURN(auto stored,
                           txn_.get(merkle_, as_bytes(detail::merkle_key(project_, level, index))));
    const std::uint64_t first = (index << level) + 1;
    const std::string name = "Merkle node " + std::to_string(level) + "/" + std::to_string(index) +
                             " (events " + std::to_string(first) + ".." +
                             std::to_string((index + 1) << level) + ")";
    if (!stored) {
      tree_fail(first, name + " is missing");
    } else if (stored->size() != hash.size() ||
               std::memcmp(stored->data(), hash.data(), hash.size()) != 0) {
      tree_fail(first, name + " does not equal the node recomputed from the events");
    } else {
      ++report_.nodes;
    }
    return Status::ok();
  }

  // The project's `merkle` entries must be the size record and the stored levels' nodes of the
  // first `leaves` leaves: none below kStoredLevelMin, none at level L from index leaves >> L,
  // no other level byte, and no entry at all without a size record.
  Status check_no_stray_nodes(std::uint64_t leaves) {
    if (tree_problem_) return Status::ok();
    const std::string prefix = detail::project_key(project_);
    detail::Cursor cursor = txn_.cursor(merkle_);
    if (!leaves_) {
      TRAIL_ASSIGN_OR_RETURN(bool found, cursor.seek(as_bytes(prefix)));
      if (found && as_chars(cursor.key()).substr(0, prefix.size()) == prefix) {
        tree_fail(0, "Merkle entries are stored for a tree with no size record");
      }
      return Status::ok();
    }
    for (unsigned level = 0; level < detail::kTreeSizeLevel; ++level) {
      const bool stored = level >= detail::kStoredLevelMin && level < merkle::kLevelsMax;
      const std::uint64_t from = stored ? leaves >> level : 0;
      TRAIL_ASSIGN_OR_RETURN(bool found,
                             cursor.seek(as_bytes(detail::merkle_key(project_, level, from))));
      if (!found) break;
      const ByteView k = cursor.key();
      if (k.size() <= prefix.size() || as_chars(k.subspan(0, prefix.size())) != prefix) break;
      const unsigned at = k[prefix.size()];
      if (at == detail::kTreeSizeLevel && k.size() == prefix.size() + 1) break;
      if (at != level) {  // Nothing left at this level: go on from the level found.
        if (at < level) return Status::error(Code::kCorrupt, "merkle cursor went backwards");
        level = at - 1;
        continue;
      }
      std::string name = "a malformed Merkle key";
      if (k.size() == prefix.size() + 9) {
        name = "Merkle node " + std::to_string(at) + "/" +
               std::to_string(get_u64_be(k.data() + prefix.size() + 1));
      }
      if (!stored) {
        tree_fail(0, name + " lies outside the stored levels " +
                         std::to_string(detail::kStoredLevelMin) + ".." +
                         std::to_string(merkle::kLevelsMax - 1));
      } else {
        tree_fail(0, name + " lies beyond the tree's " + std::to_string(leaves) +
                         " leaves (the chain has " + std::to_string(size_) + " events)");
      }
      return Status::ok();
    }
    // The size record must be exactly its key; anything else at level 0xFF is malformed.
    TRAIL_ASSIGN_OR_RETURN(bool found, cursor.seek(as_bytes(detail::tree_size_key(project_))));
    if (found) {
      TRAIL_ASSIGN_OR_RETURN(bool more, cursor.next());
      if (more && as_chars(cursor.key()).substr(0, prefix.size()) == prefix) {
        tree_fail(0, "a malformed Merkle key lies after the size record");
      }
    }
    return Status::ok();
  }

  void tree_fail(std::uint64_t seq, std::string reason) {
    if (!tree_problem_) tree_problem_ = VerifyProblem{project_, seq, std::move(reason)};
  }
  void against_fail(std::uint64_t seq, std::string reason) {
    if (!against_problem_) against_problem_ = VerifyProblem{project_, seq, std::move(reason)};
  }

  const detail::ReadTxn& txn_;
  MDB_dbi merkle_;
  MDB_dbi checkpoints_;
  std::string project_;
  const VerifyOptions& options_;
  VerifyReport& report_;
  std::vector<Node> stack_;  // Complete subtrees of the leaves so far, largest first.
  std::uint64_t size_ = 0;
  std::optional<std::uint64_t> leaves_;  // The size record; nullopt: no tree yet.
  std::vector<Expected> expected_;
  std::size_t next_expected_ = 0;
  std::optional<VerifyProblem> tree_problem_;
  std::optional<VerifyProblem> against_problem_;
};

class ChainVerifier {
 public:
  ChainVerifier(const Ledger& ledger, const detail::ReadTxn& txn, std::string project,
                const Head& head, VerifyReport& report, const VerifyOptions& options,
                std::uint64_t total, TreeChecker* tree)
      : ledger_{ledger}, txn_{txn}, project_{std::move(project)}, head_{head}, report_{report},
        options_{options}, total_{total}, tree_{tree} {}

  // Walks the chain (and its tree); records the first problem in report_. Non-ok only for
  // storage errors.
  Status run() {
    if (tree_ != nullptr) TRAIL_TRY(tree_->begin());
    TRAIL_TRY(walk());
    if (report_.problem || tree_ == nullptr) return Status::ok();
    TRAIL_TRY(tree_->finish());
    if (auto problem = tree_->problem()) report_.problem = std::move(problem);
    return Status::ok();
  }

 private:
  Status walk() {
    auto cursor = txn_.cursor(Table::kEvents);
    TRAIL_ASSIGN_OR_RETURN(bool more, cursor.seek(as_bytes(detail::project_key(project_))));
    std::uint64_t expected = 1;
    while (more) {
      std::uint64_t seq = 0;
      if (!detail::parse_event_key(cursor.key(), project_, seq)) break;  // Past this project.
      if (seq != expected) {
        return fail(expected, "event is missing (the next stored event is seq " +
                                  std::to_string(seq) + ")");
      }
      if (seq > head_.seq) {
        return fail(seq, "event lies beyond the head record (head records seq " +
                             std::to_string(head_.seq) + ")");
      }
      TRAIL_TRY(check_event(seq, cursor.value()));
      if (report_.problem) return Status::ok();
      if (tree_ != nullptr) TRAIL_TRY(tree_->add(prev_hash_));
      ++expected;
      ++report_.events;
      if (options_.progress && report_.events % kProgressEvery == 0) {
        options_.progress(report_.events, total_);
      }
      TRAIL_ASSIGN_OR_RETURN(more, cursor.next());
    }
    const std::uint64_t last = expected - 1;
    if (last < head_.seq) {
      return fail(last + 1, "event is missing (the chain ends at seq " + std::to_string(last) +
                                " but the head records seq " + std::to_string(head_.seq) + ")");
    }
    // The head record is the last commitment to the final event's hash.
    if (broken_link_) return blame_broken_link(head_.hash);
    if (last > 0 && prev_hash_ != head_.hash) {
      return fail(last, "event hash does not match the head record");
    }
    return Status::ok();
  }

  Status check_event(std::uint64_t seq, ByteView bytes) {
    if (Status s = decode_envelope(bytes, env_); !s.is_ok()) return fail(seq, s.detail());
    if (env_.project != project_) {
      return fail(seq, "envelope names project '" + std::string(env_.project) + "'");
    }
    if (env_.seq != seq) {
      return fail(seq, "envelope says seq " + std::to_string(env_.seq) + " but is stored at seq " +
                           std::to_string(seq));
    }
    const Digest hash = leaf_hash(bytes);
    if (broken_link_) {
      // Does this event still commit to the one whose link broke?
      TRAIL_TRY(blame_broken_link(env_.prev_hash));
      if (report_.problem) return Status::ok();
    }
    if (seq == 1) {
      if (env_.prev_hash != Digest{}) return fail(1, "prevHash of the first event is not zero");
    } else if (env_.prev_hash != prev_hash_) {
      broken_link_ = seq;  // Decided at the next event (or the head).
      link_hash_ = hash;
    }
    // With the link broken, the time of seq-1 is suspect too: the blame rule decides first.
    if (seq > 1 && broken_link_ != seq && env_.server_time_us < prev_time_us_) {
      return fail(seq, "server time goes backwards");
    }
    if (ledger_.has_keys()) {
      report_.payloads_opened = true;
      TRAIL_TRY(check_payload(seq));
      if (report_.problem) return Status::ok();
    }
    prev_hash_ = hash;
    prev_time_us_ = env_.server_time_us;
    return Status::ok();
  }

  Status check_payload(std::uint64_t seq) {
    if (key_ == nullptr || key_->id() != env_.key_id) {
      auto key = ledger_.data_key_by_id(env_.key_id);
      if (!key.is_ok()) {
        if (key.status().code() == Code::kNotFound || key.status().code() == Code::kCorrupt) {
          return fail(seq, "payload key: " + key.status().detail());
        }
        return key.status();
      }
      key_ = std::move(key).value();
    }
    encode_aad(env_, aad_);
    const Status s = key_->open(env_.cipher, env_.nonce, as_bytes(aad_), env_.ciphertext, plain_);
    if (s.code() == Code::kInvalid) {  // This CPU cannot run the event's cipher: not a verdict.
      ++report_.payloads_unchecked;
      return Status::ok();
    }
    if (!s.is_ok()) {
      return fail(seq, "payload does not authenticate: " + s.detail() +
                           " (header, nonce or ciphertext altered)");
    }
    return Status::ok();
  }

  // `commitment` is what the successor of the broken link's event records as its prevHash.
  Status blame_broken_link(const Digest& commitment) {
    const std::uint64_t n = *broken_link_;
    if (commitment == link_hash_) {
      return fail(n - 1, "event altered: its hash no longer matches the prevHash of seq " +
                             std::to_string(n));
    }
    return fail(n, "event altered: prevHash does not match the hash of seq " +
                       std::to_string(n - 1));
  }

  Status fail(std::uint64_t seq, std::string reason) {
    if (!report_.problem) report_.problem = VerifyProblem{project_, seq, std::move(reason)};
    return Status::ok();
  }

  const Ledger& ledger_;
  const detail::ReadTxn& txn_;
  std::string project_;
  Head head_;
  VerifyReport& report_;
  const VerifyOptions& options_;
  std::uint64_t total_;
  TreeChecker* tree_;
  DecodedEnvelope env_;
  Digest prev_hash_{};
  TimeUs prev_time_us_ = 0;
  std::optional<std::uint64_t> broken_link_;
  Digest link_hash_{};
  std::shared_ptr<const DataKey> key_;  // The last key used: chains rarely switch keys.
  std::string aad_;
  std::string plain_;
};

// Adds every project with a key in `cursor`'s sub-database (keys begin with project_key(P)),
// skipping over each project's keys.
Status add_projects(detail::Cursor cursor, const char* what, std::vector<std::string>& projects) {
  TRAIL_ASSIGN_OR_RETURN(bool more, cursor.first());
  while (more) {
    const ByteView key = cursor.key();
    if (key.empty() || key.size() < 1U + key[0]) {
      return Status::error(Code::kCorrupt, std::string("malformed key in the ") + what +
                                               " sub-database");
    }
    std::string project{as_chars(key.subspan(1, key[0]))};
    // Past every key of this project: its prefix followed by more 0xff bytes than any suffix.
    const std::string prefix = detail::project_key(project);
    const std::string after = prefix + std::string(10, '\xff');
    if (std::find(projects.begin(), projects.end(), project) == projects.end()) {
      projects.push_back(std::move(project));
    }
    TRAIL_ASSIGN_OR_RETURN(more, cursor.seek(as_bytes(after)));
    while (more && cursor.key().size() >= prefix.size() &&
           as_chars(cursor.key().subspan(0, prefix.size())) == prefix) {
      TRAIL_ASSIGN_OR_RETURN(more, cursor.next());  // An overlong key: step over it.
    }
  }
  return Status::ok();
}

// Every project that has a head record or any stored event: a chain whose head record was
// deleted must still be walked (and then fails, its events lying beyond a missing head).
Result<std::vector<std::string>> all_projects(const Ledger& ledger, const detail::ReadTxn& txn) {
  TRAIL_ASSIGN_OR_RETURN(auto projects, ledger.projects());
  TRAIL_TRY(add_projects(txn.cursor(Table::kEvents), "events", projects));
  std::sort(projects.begin(), projects.end());
  return projects;
}

// The handle of a sub-database the ledger opened at its own open ("merkle", "checkpoints").
// For a name already open, mdb_dbi_open only looks it up: it writes nothing and is safe in a
// read transaction beside a running writer.
Result<MDB_dbi> opened_dbi(const detail::ReadTxn& txn, const char* name) {
  MDB_dbi dbi = 0;
  const int rc = mdb_dbi_open(txn.raw(), name, 0, &dbi);
  if (rc != MDB_SUCCESS) return detail::lmdb_status(rc, std::string("open sub-database ") + name);
  return dbi;
}

}  // namespace

Result<VerifyReport> verify(const Ledger& ledger, const VerifyOptions& options) {
  const bool trees = options.check_trees || options.against.has_value();
  if (trees && !ledger.has_trees()) {
    return Status::error(Code::kInvalid,
                         "this data directory holds no Merkle trees or checkpoints (written "
                         "before them, and not opened writable since)");
  }
  if (options.against && !options.project) {
    return Status::error(Code::kInvalid, "a saved checkpoint is checked against one project");
  }
  TRAIL_ASSIGN_OR_RETURN(auto txn, ledger.env().begin_read());
  MDB_dbi merkle_dbi = 0;
  MDB_dbi checkpoints_dbi = 0;
  if (trees) {
    TRAIL_ASSIGN_OR_RETURN(merkle_dbi, opened_dbi(txn, "merkle"));
    TRAIL_ASSIGN_OR_RETURN(checkpoints_dbi, opened_dbi(txn, "checkpoints"));
  }
  std::vector<std::string> projects;
  if (options.project) {
    projects.push_back(*options.project);
  } else {
    TRAIL_ASSIGN_OR_RETURN(projects, all_projects(ledger, txn));
    if (trees) {
      // A chain deleted whole leaves its nodes and checkpoints behind: walk those too.
      TRAIL_TRY(add_projects(txn.cursor(merkle_dbi), "merkle", projects));
      TRAIL_TRY(add_projects(txn.cursor(checkpoints_dbi), "checkpoints", projects));
      std::sort(projects.begin(), projects.end());
    }
  }
  std::vector<Head> heads;
  std::uint64_t total = 0;
  for (const auto& project : projects) {
    TRAIL_ASSIGN_OR_RETURN(auto stored, txn.get(Table::kHeads, as_bytes(detail::project_key(project))));
    if (!stored) {
      // Against a saved checkpoint, a missing chain is a truncated one.
      if (options.project && !options.against) {
        return Status::error(Code::kNotFound, "project " + project + " has no chain");
      }
      heads.emplace_back();
      continue;
    }
    auto head = detail::decode_head(*stored);
    if (!head) return Status::error(Code::kCorrupt, "head record of " + project + " is malformed");
    heads.push_back(Head{head->seq, head->hash, head->server_time_us});
    total += head->seq;
  }
  VerifyReport report;
  report.trees_checked = trees;
  report.checkpoint_signatures = trees && options.checkpoint_key.has_value();
  for (std::size_t i = 0; i < projects.size() && !report.problem; ++i) {
    std::optional<TreeChecker> tree;
    if (trees) tree.emplace(txn, merkle_dbi, checkpoints_dbi, projects[i], options, report);
    ChainVerifier chain{ledger, txn,   projects[i], heads[i],
                        report, options, total,     tree ? &*tree : nullptr};
    TRAIL_TRY(chain.run());
    ++report.projects;
  }
  if (options.progress) options.progress(report.events, total);
  return report;
}

}  // namespace trail::ledger

namespace trail::ledger {

Result<Checkpoint> open_saved_checkpoint(std::string_view note, const note::Verifier* key) {
  if (key != nullptr) {
    auto opened = open_checkpoint(note, std::span<const note::Verifier>(key, 1));
    if (!opened.is_ok() && opened.status().code() == Code::kNotFound) {
      std::string signers;
      for (const auto& name : note_signers(note)) signers += (signers.empty() ? "" : ", ") + name;
      return Status::error(Code::kNotFound,
                           "not signed by " + key->name + "+" + hex_of_id(key->key_id) +
                               " (signed by " +
                               (signers.empty() ? std::string("no one") : signers) + ")");
    }
    return opened;
  }
  // Unchecked: the text ends at the blank line before the signature lines.
  const std::size_t end = note.find("\n\n");
  if (end == std::string_view::npos) {
    return Status::error(Code::kInvalid, "not a signed note: no blank line before signatures");
  }
  return parse_body(note.substr(0, end + 1));
}

Result<std::string> checkpoint_project(const Checkpoint& checkpoint) {
  const std::size_t slash = checkpoint.origin.rfind('/');
  if (slash == std::string::npos) {
    return Status::error(Code::kInvalid, "origin '" + checkpoint.origin + "' names no project");
  }
  std::string project = checkpoint.origin.substr(slash + 1);
  if (!validate_project(project).is_ok()) {
    return Status::error(Code::kInvalid, "origin '" + checkpoint.origin + "' names no project");
  }
  return project;
}

std::vector<std::string> note_signers(std::string_view note) {
  std::vector<std::string> out;
  const std::size_t end = note.find("\n\n");
  if (end == std::string_view::npos) return out;
  std::string_view rest = note.substr(end + 2);
  constexpr std::string_view kDash = "\u2014 ";
  while (!rest.empty()) {
    const std::size_t nl = rest.find('\n');
    const std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    if (!line.starts_with(kDash)) continue;
    const std::string_view fields = line.substr(kDash.size());
    const std::size_t space = fields.rfind(' ');
    if (space == std::string_view::npos) continue;
    std::string name{fields.substr(0, space)};
    if (auto sig = from_base64(fields.substr(space + 1)); sig && sig->size() >= 4) {
      name += "+" + hex_of_id(get_u32_be(sig->data()));
    }
    out.push_back(std::move(name));
  }
  return out;
}

BundleVerifier::BundleVerifier(std::string project, note::Verifier key)
    : project_{std::move(project)}, key_{std::move(key)} {}

void BundleVerifier::fail(std::uint64_t seq, std::string reason) {
  if (!problem_) problem_ = VerifyProblem{project_, seq, std::move(reason)};
}

bool BundleVerifier::add_event(std::uint64_t seq, ByteView bytes) {
  if (problem_) return false;
  const std::uint64_t expected = tree_.size() + 1;
  if (seq != expected) {
    fail(expected, seq < expected
                       ? "event seq " + std::to_string(seq) + " comes again or out of order " +
                             "(seq " + std::to_string(expected) + " expected)"
                       : "event is missing or out of order (seq " + std::to_string(seq) +
                             " comes next in the bundle)");
    return false;
  }
  if (Status s = decode_envelope(bytes, envelope_); !s.is_ok()) {
    fail(seq, "envelope does not decode: " + s.detail());
    return false;
  }
  if (envelope_.project != project_) {
    fail(seq, "envelope names project '" + std::string(envelope_.project) + "'");
    return false;
  }
  if (envelope_.seq != seq) {
    fail(seq, "envelope says seq " + std::to_string(envelope_.seq));
    return false;
  }
  if (seq == 1 && envelope_.prev_hash != Digest{}) {
    fail(1, "prevHash of the first event is not zero");
    return false;
  }
  if (seq > 1 && envelope_.prev_hash != prev_hash_) {
    fail(seq, "prevHash does not match the hash of seq " + std::to_string(seq - 1) +
                  " (an event was altered, dropped or reordered)");
    return false;
  }
  if (seq > 1 && envelope_.server_time_us < prev_time_us_) {
    fail(seq, "server time goes backwards");
    return false;
  }
  prev_hash_ = leaf_hash(bytes);
  prev_time_us_ = envelope_.server_time_us;
  tree_.add(prev_hash_);
  return true;
}

bool BundleVerifier::add_checkpoint(std::uint64_t size, std::string_view note) {
  if (problem_) return false;
  const std::string at = "checkpoint at size " + std::to_string(size) + ": ";
  if (size != tree_.size()) {
    fail(0, at + "it follows event " + std::to_string(tree_.size()) +
                 " (a checkpoint follows the event that completes its size)");
    return false;
  }
  if (checkpoints_ > 0 && covered_ == size) {
    fail(0, at + "it comes twice");
    return false;
  }
  auto opened = open_checkpoint(note, std::span<const note::Verifier>(&key_, 1));
  if (!opened.is_ok()) {
    fail(0, at + open_failure(opened.status(), note, &key_));
    return false;
  }
  if (opened->size != size) {
    fail(0, at + "it says size " + std::to_string(opened->size));
    return false;
  }
  if (auto named = checkpoint_project(*opened); !named.is_ok() || *named != project_) {
    fail(0, at + "its origin '" + opened->origin + "' does not name project " + project_);
    return false;
  }
  if (!origin_.empty() && opened->origin != origin_) {
    fail(0, at + "its origin '" + opened->origin + "' differs from the earlier checkpoints' '" +
                 origin_ + "'");
    return false;
  }
  const Digest root = tree_.root();
  if (opened->root != root) {
    fail(0, at + "its root " + b64_of(opened->root) + " is not the root of the bundle's first " +
                 std::to_string(size) + " events (" + b64_of(root) + ")");
    return false;
  }
  origin_ = opened->origin;
  ++checkpoints_;
  covered_ = size;
  return true;
}

bool BundleVerifier::finish(std::uint64_t events, std::uint64_t checkpoints) {
  if (problem_) return false;
  if (tree_.size() != events || checkpoints_ != checkpoints) {
    fail(0, "the bundle holds " + std::to_string(tree_.size()) + " events and " +
                std::to_string(checkpoints_) + " checkpoints but its header announces " +
                std::to_string(events) + " and " + std::to_string(checkpoints) +
                " (lines dropped or added)");
    return false;
  }
  return true;
}

}  // namespace trail::ledger
