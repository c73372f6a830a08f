#include "ledger/verify.h"

#include <algorithm>
#include <cstring>

#include "ledger/internal/layout.h"
#include "ledger/internal/lmdb_env.h"
#include "ledger/sha256.h"

namespace trail::ledger {
using detail::Table;

namespace {

constexpr std::uint64_t kProgressEvery = 16'384;

class ChainVerifier {
 public:
  ChainVerifier(const Ledger& ledger, const detail::ReadTxn& txn, std::string project,
                const Head& head, VerifyReport& report, const VerifyOptions& options,
                std::uint64_t total)
      : ledger_{ledger}, txn_{txn}, project_{std::move(project)}, head_{head}, report_{report},
        options_{options}, total_{total} {}

  // Walks the chain; records the first problem in report_. Non-ok only for storage errors.
  Status run() {
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

 private:
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
  DecodedEnvelope env_;
  Digest prev_hash_{};
  TimeUs prev_time_us_ = 0;
  std::optional<std::uint64_t> broken_link_;
  Digest link_hash_{};
  std::shared_ptr<const DataKey> key_;  // The last key used: chains rarely switch keys.
  std::string aad_;
  std::string plain_;
};

// Every project that has a head record or any stored event: a chain whose head record was
// deleted must still be walked (and then fails, its events lying beyond a missing head).
Result<std::vector<std::string>> all_projects(const Ledger& ledger, const detail::ReadTxn& txn) {
  TRAIL_ASSIGN_OR_RETURN(auto projects, ledger.projects());
  auto cursor = txn.cursor(Table::kEvents);
  TRAIL_ASSIGN_OR_RETURN(bool more, cursor.first());
  while (more) {
    const ByteView key = cursor.key();
    if (key.empty() || key.size() < 1U + key[0]) {
      return Status::error(Code::kCorrupt, "malformed key in the events sub-database");
    }
    std::string project{as_chars(key.subspan(1, key[0]))};
    // Past every seq of this project: its prefix followed by more than 8 bytes of 0xff.
    std::string after = detail::project_key(project) + std::string(9, '\xff');
    if (std::find(projects.begin(), projects.end(), project) == projects.end()) {
      projects.push_back(std::move(project));
    }
    TRAIL_ASSIGN_OR_RETURN(more, cursor.seek(as_bytes(after)));
  }
  std::sort(projects.begin(), projects.end());
  return projects;
}

}  // namespace

Result<VerifyReport> verify(const Ledger& ledger, const VerifyOptions& options) {
  TRAIL_ASSIGN_OR_RETURN(auto txn, ledger.env().begin_read());
  std::vector<std::string> projects;
  if (options.project) {
    projects.push_back(*options.project);
  } else {
    TRAIL_ASSIGN_OR_RETURN(projects, all_projects(ledger, txn));
  }
  std::vector<Head> heads;
  std::uint64_t total = 0;
  for (const auto& project : projects) {
    TRAIL_ASSIGN_OR_RETURN(auto stored, txn.get(Table::kHeads, as_bytes(detail::project_key(project))));
    if (!stored) {
      if (options.project) return Status::error(Code::kNotFound, "project " + project + " has no chain");
      heads.emplace_back();
      continue;
    }
    auto head = detail::decode_head(*stored);
    if (!head) return Status::error(Code::kCorrupt, "head record of " + project + " is malformed");
    heads.push_back(Head{head->seq, head->hash, head->server_time_us});
    total += head->seq;
  }
  VerifyReport report;
  for (std::size_t i = 0; i < projects.size() && !report.problem; ++i) {
    ChainVerifier chain{ledger, txn, projects[i], heads[i], report, options, total};
    TRAIL_TRY(chain.run());
    ++report.projects;
  }
  if (options.progress) options.progress(report.events, total);
  return report;
}

}  // namespace trail::ledger
