#include "projections/sync_projector.h"
#include "projections/view_keys.h"

#include <cstring>
#include <map>
#include <utility>

#include "ledger/assert.h"
#include "ledger/sha256.h"
#include "projections/case_payload.h"
#include "schema/event.capnp.h"

namespace trail::proj {
namespace {

// Shared key helpers: projections/view_keys.h.
std::string pk(std::string_view project) { return view::project_prefix(project); }
using view::add_id;
using view::add_u64;
using view::is_case_kind;

enum TableIndex : std::size_t { kCase, kLog };
constexpr const char* kTableNames[] = {"sync.case", "sync.changes"};
// A log entry in a bucket: seq u64 big-endian, case id, flags.
constexpr std::size_t kEntryBytes = 8 + 16 + 1;
constexpr std::uint8_t kCaseVersion = 1;
constexpr std::uint8_t kInBefore = 0x01U;
constexpr std::uint8_t kInAfter = 0x02U;

// ---- keys ----

std::string case_key(std::string_view project, const EventId& id) {
  std::string k = pk(project);
  add_id(k, id);
  return k;
}
std::string log_prefix(std::string_view project, std::string_view owner) {
  std::string k = pk(project);
  view::add_text(k, owner);
  return k;
}
std::string bucket_key(std::string_view project, std::string_view owner, std::uint64_t seq) {
  std::string k = log_prefix(project, owner);
  add_u64(k, seq / SyncProjector::kBucketSeqs);
  return k;
}

// ---- sealing ----

std::string aad_for(std::size_t table, std::string_view key) {
  return view::aad_for(kTableNames[table], key);
}

std::string seal(const ledger::DataKey& key, std::size_t table, std::string_view k,
                 std::string_view plain) {
  return key.seal_deterministic(as_bytes(aad_for(table, k)), as_bytes(plain));
}

Status open(const ledger::DataKey& key, std::size_t table, std::string_view k, ByteView sealed,
            std::string& plain) {
  return key.open_deterministic(as_bytes(aad_for(table, k)), sealed, plain);
}

// ---- case record: version u8, closed u8, last seq u64, owner (u32 length, bytes) ----

std::string encode_case(const SyncCase& c) {
  std::string out;
  out.push_back(static_cast<char>(kCaseVersion));
  out.push_back(c.closed ? '\1' : '\0');
  add_u64(out, c.last_seq);
  std::uint8_t n[4];
  put_u32_be(n, static_cast<std::uint32_t>(c.owner.size()));
  out.append(reinterpret_cast<const char*>(n), 4);
  out.append(c.owner);
  return out;
}

Result<SyncCase> decode_case(std::string_view bytes) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data());
  if (bytes.size() < 14 || p[0] != kCaseVersion || p[1] > 1 ||
      get_u32_be(p + 10) != bytes.size() - 14) {
    return Status::error(Code::kCorrupt, "sync case record does not decode");
  }
  SyncCase c;
  c.closed = p[1] == 1;
  c.last_seq = get_u64_be(p + 2);
  c.owner.assign(bytes.substr(14));
  return c;
}


}  // namespace

SyncProjector::SyncProjector()
    : log_{{.table = kLog, .table_name = kTableNames[kLog], .entry_bytes = kEntryBytes,
            .sealed = true}} {}

std::vector<std::string> SyncProjector::tables() const {
  return {std::begin(kTableNames), std::end(kTableNames)};
}

Result<SyncProjector::PendingCase*> SyncProjector::case_record(
    ledger::ProjectionTables& tables, const ledger::AppendedEvent& event, const EventId& case_id) {
  std::string ckey = case_key(event.project, case_id);
  if (auto it = pending_cases_.find(ckey); it != pending_cases_.end()) return &it->second;
  PendingCase pending;
  pending.key = event.key;
  if (auto kept = written_cases_.take(ckey)) {
    pending.state = std::move(*kept);
  } else {
    TRAIL_ASSIGN_OR_RETURN(auto stored, tables.get(kCase, as_bytes(ckey)));
    if (!stored) return nullptr;  // Not seen yet: apply() creates it.
    std::string plain;
    TRAIL_TRY(open(*event.key, kCase, ckey, *stored, plain));
    TRAIL_ASSIGN_OR_RETURN(pending.state, decode_case(plain));
  }
  return &pending_cases_.emplace(std::move(ckey), std::move(pending)).first->second;
}

// Adds the log entry of (owner, seq, case) to its bucket unless the case is out before and
// after.
Status SyncProjector::log_entry(ledger::ProjectionTables& tables,
                                const ledger::AppendedEvent& event, std::string_view owner,
                                const EventId& case_id, bool in_before, bool in_after) {
  if (owner.empty() || (!in_before && !in_after)) return Status::ok();
  TRAIL_ASSIGN_OR_RETURN(std::string * entries,
                         log_.entries(tables, bucket_key(event.project, owner, event.seq), *event.key));
  add_u64(*entries, event.seq);
  add_id(*entries, case_id);
  entries->push_back(static_cast<char>((in_before ? kInBefore : 0U) | (in_after ? kInAfter : 0U)));
  return Status::ok();
}

Status SyncProjector::apply(ledger::ProjectionTables& tables, const ledger::AppendedEvent& event) {
  TRAIL_ASSERT(event.draft != nullptr && event.key != nullptr);
  written_cases_.saw(event.project, event.seq);
  log_.saw(event.project, event.seq);
  const ledger::EventDraft& draft = *event.draft;
  if (!is_case_kind(draft.kind) || !draft.subject) return Status::ok();
  const CaseChangeData* change = case_change_of(event);
  if (change == nullptr) return Status::ok();  // Not a case change: the case view ignores it too.
  const EventId& case_id = *draft.subject;

  TRAIL_ASSIGN_OR_RETURN(PendingCase * record, case_record(tables, event, case_id));
  const bool existed = record != nullptr;
  if (!existed) {
    PendingCase created;
    created.key = event.key;
    record = &pending_cases_.emplace(case_key(event.project, case_id), std::move(created))
                  .first->second;
  }
  SyncCase& state = record->state;
  const std::string old_owner = state.owner;
  const bool was_closed = state.closed;
  const bool was_in = existed && !state.closed;  // In its (old) owner's set before.

  if (!change->owner.empty()) state.owner = change->owner;
  if (draft.kind == schema::Kind::CASE_CLOSED) state.closed = true;
  if (draft.kind == schema::Kind::CASE_REOPENED) state.closed = false;
  // Rewritten only when the case enters the view or leaves or moves between sets: a plain
  // update dirties no page of this table, only the owner's log.
  if (!existed || old_owner != state.owner || was_closed != state.closed) {
    state.last_seq = event.seq;
    record->dirty = true;
  }

  const bool is_in = !state.closed;
  if (old_owner == state.owner) {
    return log_entry(tables, event, state.owner, case_id, was_in, is_in);
  }
  TRAIL_TRY(log_entry(tables, event, old_owner, case_id, was_in, false));
  return log_entry(tables, event, state.owner, case_id, false, is_in);
}

Status SyncProjector::flush(ledger::ProjectionTables& tables) {
  Status written = Status::ok();
  for (const auto& [ckey, pending] : pending_cases_) {
    if (!written.is_ok()) break;
    if (!pending.dirty) continue;
    written = tables.put(kCase, as_bytes(ckey),
                         as_bytes(seal(*pending.key, kCase, ckey, encode_case(pending.state))));
  }
  if (written.is_ok()) written = log_.flush(tables);
  if (!written.is_ok()) {
    discard();
    return written;
  }
  // Written (committed next, or discard() forgets them): kept for the next events.
  for (auto& [ckey, pending] : pending_cases_) written_cases_.keep(ckey, std::move(pending.state));
  pending_cases_.clear();
  return Status::ok();
}

void SyncProjector::discard() {
  pending_cases_.clear();
  written_cases_.forget();
  log_.discard();
}

Result<SyncChanges> SyncProjector::changes(const ledger::Ledger& ledger,
                                           std::string_view project,
                                           const std::set<std::string>& owners,
                                           std::uint64_t since_seq) const {
  SyncChanges out;
  // Read before the snapshot below, which therefore holds at least everything up to head_seq.
  TRAIL_ASSIGN_OR_RETURN(out.head_seq, ledger.projection_seq(*this, project));
  if (since_seq > out.head_seq) {
    return Status::error(Code::kConflict, "sync seq " + std::to_string(since_seq) +
                                              " is beyond the view's head " +
                                              std::to_string(out.head_seq) + ": restore from 0");
  }
  if (since_seq == out.head_seq) return out;  // Nothing can have changed.
  TRAIL_ASSIGN_OR_RETURN(auto key, view::project_key(ledger, project));
  if (key == nullptr) return out;
  // Per case: in the set at since_seq (some owner's first entry after it says "in before"),
  // in the set at head_seq (some owner's last entry up to it says "in after").
  std::map<EventId, std::pair<bool, bool>> seen;
  TRAIL_TRY(ledger.read_projection(*this, [&](const ledger::ProjectionTables& tables) -> Status {
    for (const auto& owner : owners) {
      if (owner.empty()) continue;
      const std::string prefix = log_prefix(project, owner);
      std::string from = prefix;
      add_u64(from, (since_seq + 1) / kBucketSeqs);  // The bucket of since + 1 on.
      std::map<EventId, std::pair<bool, bool>> mine;  // First "before", last "after".
      Status inner = Status::ok();
      TRAIL_TRY(tables.scan(kLog, as_bytes(from), [&](ByteView k, ByteView value) {
        if (k.size() < prefix.size() || as_chars(k.subspan(0, prefix.size())) != prefix) {
          return false;
        }
        if (k.size() != prefix.size() + 8) {
          inner = Status::error(Code::kCorrupt, "malformed sync log key");
          return false;
        }
        const std::uint64_t bucket = get_u64_be(k.data() + prefix.size());
        if (bucket > out.head_seq / kBucketSeqs) return false;  // Wholly after the head.
        std::string plain;
        inner = log_.read_stored(*key, k, value, plain);
        if (!inner.is_ok()) return false;
        const auto* p = reinterpret_cast<const std::uint8_t*>(plain.data());
        for (std::size_t at = 0; at < plain.size(); at += kEntryBytes) {
          const std::uint64_t seq = get_u64_be(p + at);
          if (seq / kBucketSeqs != bucket) {
            inner = Status::error(Code::kCorrupt, "sync log entry in the wrong bucket");
            return false;
          }
          if (seq <= since_seq) continue;
          if (seq > out.head_seq) break;  // Ascending: the rest is after the head too.
          const auto flags = p[at + 24];
          EventId case_id{};
          std::memcpy(case_id.data(), p + at + 8, case_id.size());
          const bool after = (flags & kInAfter) != 0;
          auto [it, inserted] = mine.try_emplace(case_id, (flags & kInBefore) != 0, after);
          if (!inserted) it->second.second = after;
        }
        return true;
      }));
      TRAIL_TRY(inner);
      for (const auto& [case_id, in] : mine) {
        auto& both = seen[case_id];
        both.first = both.first || in.first;
        both.second = both.second || in.second;
      }
    }
    return Status::ok();
  }));
  for (const auto& [case_id, in] : seen) {
    if (in.second) {
      out.changed.push_back(case_id);
    } else if (in.first) {
      out.left.push_back(case_id);
    }
  }
  return out;
}

Result<std::optional<SyncCase>> SyncProjector::get(const ledger::Ledger& ledger,
                                                   std::string_view project,
                                                   const EventId& case_id) const {
  TRAIL_ASSIGN_OR_RETURN(auto key, view::project_key(ledger, project));
  if (key == nullptr) return std::optional<SyncCase>{};
  std::optional<SyncCase> out;
  TRAIL_TRY(ledger.read_projection(*this, [&](const ledger::ProjectionTables& tables) -> Status {
    const std::string ckey = case_key(project, case_id);
    TRAIL_ASSIGN_OR_RETURN(auto stored, tables.get(kCase, as_bytes(ckey)));
    if (!stored) return Status::ok();
    std::string plain;
    TRAIL_TRY(open(*key, kCase, ckey, *stored, plain));
    TRAIL_ASSIGN_OR_RETURN(auto state, decode_case(plain));
    out = std::move(state);
    return Status::ok();
  }));
  return out;
}

}  // namespace trail::proj
