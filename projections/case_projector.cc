#include "projections/case_projector.h"
#include "projections/view_keys.h"

#include "schema/event.capnp.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>

namespace trail::proj {
namespace {

// Shared key helpers: projections/view_keys.h.
std::string pk(std::string_view project) { return view::project_prefix(project); }
using view::add_id;
using view::add_text;
using view::add_time;
using view::add_u64;
using view::id_at;
using view::is_case_kind;

// No index by time: the chain is in seq order and server time never decreases along it, so a
// time range is a seq range of the ledger itself.
// A case's history (the seqs of its events): the state keeps the seqs of the latest events,
// and every kChunkSeqs of them move to a chunk keyed by the case and the first seq, in a table
// of their own. A case event so rewrites only the state (one page), and case.records holds the
// states alone, so a commit that touches many cases rewrites as few of its pages as they fill.
enum TableIndex : std::size_t { kCases, kByOwner, kByType, kByParent, kHistoryByUser, kForms, kChunks };
constexpr const char* kTableNames[] = {"case.records",   "case.by_owner",        "case.by_type",
                                       "case.by_parent", "case.history_by_user", "case.forms",
                                       "case.chunks"};

// The seq slot of a case's state record in case.records: above every event's seq.
constexpr std::uint64_t kStateSlot = ~std::uint64_t{0};
// Entries a history chunk holds: the state carries up to this many more.
constexpr std::size_t kChunkSeqs = 32;
// An entry in a chunk: the seq, then the device time (two's complement), u64 big-endian each.
constexpr std::size_t kEntryBytes = 16;
// An entry in a case.history_by_user bucket: the seq (u64 big-endian), then the case id.
constexpr std::size_t kUserEntryBytes = 8 + 16;


// ---- keys ----

// project || case id: the case's state key and its chunks' keys start so.
std::string case_prefix(std::string_view project, const EventId& id) {
  std::string k = pk(project);
  add_id(k, id);
  return k;
}
// A history chunk of the case (case.chunks), keyed by the first seq it holds; the state
// (case.records) at kStateSlot.
std::string chunk_key(std::string_view project, const EventId& id, std::uint64_t first_seq) {
  std::string k = case_prefix(project, id);
  add_u64(k, first_seq);
  return k;
}
std::string state_key(std::string_view project, const EventId& id) {
  return chunk_key(project, id, kStateSlot);
}
std::string text_index_key(std::string_view project, std::string_view text, const EventId& id) {
  std::string k = pk(project);
  add_text(k, text);
  add_id(k, id);
  return k;
}
std::string parent_key(std::string_view project, const EventId& parent, const EventId& child) {
  std::string k = pk(project);
  add_id(k, parent);
  add_id(k, child);
  return k;
}

// ---- sealing ----

std::string aad_for(std::size_t table, ByteView key) {
  return view::aad_for(kTableNames[table], as_chars(key));
}

std::string seal_message(const ledger::DataKey& key, std::size_t table, std::string_view k,
                         capnp::MessageBuilder& message) {
  const auto words = capnp::messageToFlatArray(message);
  const auto bytes = words.asBytes();
  return key.seal_deterministic(as_bytes(aad_for(table, as_bytes(k))), {bytes.begin(), bytes.size()});
}

Result<kj::Array<capnp::word>> open_message(const ledger::DataKey& key, std::size_t table,
                                            ByteView k, ByteView sealed) {
  std::string plain;
  TRAIL_TRY(key.open_deterministic(as_bytes(aad_for(table, k)), sealed, plain));
  if (plain.empty() || plain.size() % sizeof(capnp::word) != 0) {
    return Status::error(Code::kCorrupt, "view value is not a Cap'n Proto message");
  }
  auto words = kj::heapArray<capnp::word>(plain.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), plain.data(), plain.size());
  return words;
}

capnp::Text::Reader text(std::string_view s) { return {s.data(), s.size()}; }
std::string str(capnp::Text::Reader t) { return {t.begin(), t.size()}; }
std::optional<EventId> opt_id(capnp::Data::Reader d) {
  if (d.size() != 16) return std::nullopt;
  EventId id{};
  std::memcpy(id.data(), d.begin(), 16);
  return id;
}

// ---- CaseState <-> CaseRecord ----

void build_record(const CaseState& s, schema::CaseRecord::Builder r) {
  r.setCaseId({s.case_id.data(), s.case_id.size()});
  r.setCaseType(text(s.case_type));
  r.setName(text(s.name));
  r.setOwner(text(s.owner));
  r.setClosed(s.closed);
  auto fields = r.initFields(static_cast<unsigned>(s.fields.size()));
  for (unsigned i = 0; i < s.fields.size(); ++i) {
    fields[i].setName(text(s.fields[i].first));
    fields[i].setValue(text(s.fields[i].second));
  }
  auto indices = r.initIndices(static_cast<unsigned>(s.indices.size()));
  for (unsigned i = 0; i < s.indices.size(); ++i) {
    indices[i].setName(text(s.indices[i].name));
    indices[i].setCaseType(text(s.indices[i].case_type));
    if (s.indices[i].case_id) indices[i].setCaseId({s.indices[i].case_id->data(), 16});
    indices[i].setRelationship(text(s.indices[i].relationship));
  }
  r.setOpenedUs(s.opened_us);
  r.setModifiedUs(s.modified_us);
  r.setClosedUs(s.closed_us);
  r.setLastUser(text(s.last_user));
  r.setLastSeq(s.last_seq);
  r.setImplicit(s.implicit);
  r.setLastClientUs(s.last_client_us);
  r.setRunFirstSeq(s.run_first_seq);
  r.setRunFirstUs(s.run_first_us);
  const auto count = static_cast<unsigned>(s.recent.size());
  auto seqs = r.initRecentSeqs(count);
  auto client_us = r.initRecentClientUs(count);
  for (unsigned i = 0; i < count; ++i) {
    seqs.set(i, s.recent[i].seq);
    client_us.set(i, s.recent[i].client_us);
  }
}

Result<CaseState> read_record(kj::Array<capnp::word>& words) {
  CaseState s;
  try {
    capnp::FlatArrayMessageReader message(words);
    const auto r = message.getRoot<schema::CaseRecord>();
    auto id = opt_id(r.getCaseId());
    if (!id) return Status::error(Code::kCorrupt, "case record without a case id");
    s.case_id = *id;
    s.case_type = str(r.getCaseType());
    s.name = str(r.getName());
    s.owner = str(r.getOwner());
    s.closed = r.getClosed();
    for (const auto f : r.getFields()) s.fields.emplace_back(str(f.getName()), str(f.getValue()));
    for (const auto i : r.getIndices()) {
      s.indices.push_back({str(i.getName()), str(i.getCaseType()), opt_id(i.getCaseId()),
                           str(i.getRelationship())});
    }
    s.opened_us = r.getOpenedUs();
    s.modified_us = r.getModifiedUs();
    s.closed_us = r.getClosedUs();
    s.last_user = str(r.getLastUser());
    s.last_seq = r.getLastSeq();
    s.implicit = r.getImplicit();
    s.last_client_us = r.getLastClientUs();
    s.run_first_seq = r.getRunFirstSeq();
    s.run_first_us = r.getRunFirstUs();
    const auto seqs = r.getRecentSeqs();
    const auto client_us = r.getRecentClientUs();
    if (seqs.size() != client_us.size()) {
      return Status::error(Code::kCorrupt, "case record: recent seqs without their device times");
    }
    s.recent.reserve(seqs.size());
    for (unsigned i = 0; i < seqs.size(); ++i) s.recent.push_back({seqs[i], client_us[i]});
  } catch (const kj::Exception& e) {
    return Status::error(Code::kCorrupt, std::string("case record: ") + e.getDescription().cStr());
  }
  return s;
}

// The stored state of a case, or nullopt.
Result<std::optional<CaseState>> load_state(const ledger::ProjectionTables& tables,
                                            const ledger::DataKey& key, std::string_view project,
                                            const EventId& case_id) {
  const std::string skey = state_key(project, case_id);
  TRAIL_ASSIGN_OR_RETURN(auto stored, tables.get(kCases, as_bytes(skey)));
  if (!stored) return std::optional<CaseState>{};
  TRAIL_ASSIGN_OR_RETURN(auto words, open_message(key, kCases, as_bytes(skey), *stored));
  TRAIL_ASSIGN_OR_RETURN(auto state, read_record(words));
  return std::optional<CaseState>{std::move(state)};
}

// Every entry of the case's history, ascending by seq, into `out`: its history chunks, then
// the entries `state` (its stored or pending state) still carries.
Status history_entries(const ledger::ProjectionTables& tables, std::string_view project,
                       const EventId& case_id, const CaseState& state,
                       std::vector<HistoryEntry>& out) {
  const std::string prefix = case_prefix(project, case_id);
  Status inner = Status::ok();
  TRAIL_TRY(tables.scan(kChunks, as_bytes(prefix), [&](ByteView k, ByteView v) {
    if (k.size() != prefix.size() + 8 || as_chars(k.subspan(0, prefix.size())) != prefix) {
      return false;
    }
    if (v.empty() || v.size() % kEntryBytes != 0 || v.size() / kEntryBytes > kChunkSeqs) {
      inner = Status::error(Code::kCorrupt, "malformed history chunk");
      return false;
    }
    for (std::size_t i = 0; i < v.size(); i += kEntryBytes) {
      out.push_back({get_u64_be(v.data() + i), static_cast<TimeUs>(get_u64_be(v.data() + i + 8))});
    }
    return true;
  }));
  TRAIL_TRY(inner);
  out.insert(out.end(), state.recent.begin(), state.recent.end());
  return Status::ok();
}

// The seqs alone.
Status history_seqs(const ledger::ProjectionTables& tables, std::string_view project,
                    const EventId& case_id, const CaseState& state,
                    std::vector<std::uint64_t>& out) {
  std::vector<HistoryEntry> entries;
  TRAIL_TRY(history_entries(tables, project, case_id, state, entries));
  out.reserve(out.size() + entries.size());
  for (const HistoryEntry& entry : entries) out.push_back(entry.seq);
  return Status::ok();
}



std::string index_value(const CaseIndexData& index) {
  return index.case_id ? format_uuid(*index.case_id) : std::string{};
}

// Folds one case event into `state`, listing what changed in `changes` when it is given (the
// history's queries); the writer's folds pass none, so no value is copied for them.
void fold(CaseState& state, bool existed, const ledger::AppendedEvent& event,
          const CaseChangeData& change, std::vector<FieldChange>* changes) {
  const auto kind = event.draft->kind;
  auto set_attr = [&](schema::Action action, std::string& attr, const std::string& value) {
    if (value.empty()) return;
    if (changes != nullptr) {
      FieldChange c{action, "", std::nullopt, value, attr == value};
      if (existed || !attr.empty()) c.prior = attr;
      changes->push_back(std::move(c));
    }
    attr = value;
  };
  if (!existed) {
    if (changes != nullptr) {
      changes->push_back({kind == schema::Kind::CASE_CREATED ? schema::Action::CREATE
                                                             : schema::Action::IMPLICIT_CREATE,
                          "", std::nullopt, "", false});
    }
    state.implicit = kind != schema::Kind::CASE_CREATED;
    state.opened_us = event.server_time_us;
  }
  set_attr(schema::Action::TYPE, state.case_type, change.case_type);
  set_attr(schema::Action::NAME, state.name, change.case_name);
  set_attr(schema::Action::OWNER, state.owner, change.owner);
  for (const auto& [name, value] : change.fields) {
    auto it = std::lower_bound(state.fields.begin(), state.fields.end(), name,
                               [](const auto& f, const std::string& n) { return f.first < n; });
    const bool present = it != state.fields.end() && it->first == name;
    if (changes != nullptr) {
      FieldChange c{schema::Action::UPDATE, name, std::nullopt, value, false};
      if (present) {
        c.prior = it->second;
        c.unchanged = it->second == value;
      }
      changes->push_back(std::move(c));
    }
    if (present) {
      it->second = value;
    } else {
      state.fields.insert(it, {name, value});
    }
  }
  for (const auto& index : change.indices) {
    auto it = std::lower_bound(state.indices.begin(), state.indices.end(), index.name,
                               [](const auto& i, const std::string& n) { return i.name < n; });
    const bool present = it != state.indices.end() && it->name == index.name;
    if (changes != nullptr) {
      FieldChange c{schema::Action::INDEX, index.name, std::nullopt, index_value(index), false};
      if (present) {
        c.prior = index_value(*it);
        c.unchanged = it->case_id == index.case_id;
      }
      changes->push_back(std::move(c));
    }
    if (!index.case_id) {
      if (present) state.indices.erase(it);
    } else if (present) {
      *it = index;
    } else {
      state.indices.insert(it, index);
    }
  }
  if (kind == schema::Kind::CASE_CLOSED) {
    const bool was_closed = state.closed;
    if (changes != nullptr) {
      changes->push_back({was_closed ? schema::Action::CLOSE_CLOSED : schema::Action::CLOSE, "",
                          std::nullopt, "", was_closed});
    }
    if (!was_closed) {
      state.closed = true;
      state.closed_us = event.server_time_us;
    }
  } else if (kind == schema::Kind::CASE_REOPENED) {
    if (changes != nullptr) {
      changes->push_back({schema::Action::REOPEN, "", std::nullopt, "", !state.closed});
    }
    state.closed = false;
  }
  state.modified_us = event.server_time_us;
  state.last_user = event.draft->actor;
  state.last_seq = std::max(state.last_seq, event.seq);
  state.last_client_us = std::max(state.last_client_us, event.draft->client_time_us);
}

// Folds the case's events again, from nothing, in reconciled order: runs of consecutive events
// by one user within kReorderWindowUs of the run's first are sorted by device time (then seq).
// `prior` holds the history entries of the case's earlier events, ascending by seq.
Result<CaseState> refold(const ledger::AppendedEvent& current, const EventId& case_id,
                         const std::vector<HistoryEntry>& prior) {
  struct Item {
    std::uint64_t seq;
    ledger::LoadedEvent loaded;
  };
  std::vector<Item> items;
  items.reserve(prior.size() + 1);
  for (const HistoryEntry& entry : prior) {
    TRAIL_ASSIGN_OR_RETURN(auto loaded, (*current.load)(entry.seq));
    items.push_back({entry.seq, std::move(loaded)});
  }
  items.push_back({current.seq, {*current.draft, current.server_time_us}});
  for (std::size_t start = 0; start < items.size();) {
    std::size_t end = start + 1;
    while (end < items.size() && items[end].loaded.draft.actor == items[start].loaded.draft.actor &&
           items[end].loaded.server_time_us - items[start].loaded.server_time_us <= kReorderWindowUs) {
      ++end;
    }
    std::stable_sort(items.begin() + static_cast<std::ptrdiff_t>(start),
                     items.begin() + static_cast<std::ptrdiff_t>(end),
                     [](const Item& a, const Item& b) {
                       return a.loaded.draft.client_time_us < b.loaded.draft.client_time_us;
                     });
    start = end;
  }
  CaseState state;
  state.case_id = case_id;
  bool existed = false;
  for (const auto& item : items) {
    auto change = decode_case_change(item.loaded.draft.payload);
    if (!change.is_ok()) continue;
    const ledger::AppendedEvent event{current.project, item.seq, item.loaded.server_time_us,
                                      &item.loaded.draft, current.key, current.load};
    fold(state, existed, event, *change, nullptr);
    existed = true;
  }
  // Times and the last user describe the latest arrival, whatever the folding order.
  state.modified_us = current.server_time_us;
  state.last_user = current.draft->actor;
  return state;
}

// The reconciled fold with the late event `current` in it, from `before` (every earlier event
// of the case folded in reconciled order) rather than from nothing; nullopt where that does not
// give the same state as refold(), which the caller then runs:
//   * The late event sorts into the run of `before`'s latest event (the caller checked that the
//     same user sent both), unless it starts a run of its own (over kReorderWindowUs after that
//     run's first): after the run's events dated no later than it, before those dated later
//     (`after`). Runs before it, and the run's events before it, fold as they did.
//   * Folding the event and then `after` again onto `before` gives the same state as folding
//     them in that order after the events before it, because a fold sets attributes, fields and
//     indices last-writer-wins. Not so for a close or reopen (closed_us is when it first closed)
//     or when the late event would be the case's first (implicit): those take refold().
// Cost: the history entries `prior` (device times beside seqs: no event loaded to find the
// run), and the events of `after` opened, instead of every event of the case.
Result<std::optional<CaseState>> refold_late(const CaseState& before,
                                             const ledger::AppendedEvent& current,
                                             const CaseChangeData& change,
                                             const std::vector<HistoryEntry>& prior) {
  const auto closes = [](schema::Kind kind) {
    return kind == schema::Kind::CASE_CLOSED || kind == schema::Kind::CASE_REOPENED;
  };
  if (current.load == nullptr || closes(current.draft->kind) || prior.empty() ||
      before.last_user != current.draft->actor) {
    return std::optional<CaseState>{};
  }
  const TimeUs client_us = current.draft->client_time_us;
  const bool own_run = current.server_time_us - before.run_first_us > kReorderWindowUs;
  bool any_before = own_run || prior.front().seq < before.run_first_seq;  // Folded ahead of it.
  std::vector<const HistoryEntry*> after;
  if (!own_run) {
    const auto run = std::lower_bound(
        prior.begin(), prior.end(), before.run_first_seq,
        [](const HistoryEntry& entry, std::uint64_t seq) { return entry.seq < seq; });
    for (auto it = run; it != prior.end(); ++it) {
      if (it->client_us > client_us) {
        after.push_back(&*it);
      } else {
        any_before = true;
      }
    }
  }
  if (!any_before) return std::optional<CaseState>{};
  std::stable_sort(after.begin(), after.end(), [](const HistoryEntry* a, const HistoryEntry* b) {
    return a->client_us < b->client_us;
  });
  CaseState state = before;
  fold(state, true, current, change, nullptr);
  for (const HistoryEntry* entry : after) {
    TRAIL_ASSIGN_OR_RETURN(auto loaded, (*current.load)(entry->seq));
    if (closes(loaded.draft.kind)) return std::optional<CaseState>{};
    auto later = decode_case_change(loaded.draft.payload);
    if (!later.is_ok()) continue;  // As refold() skips it.
    const ledger::AppendedEvent event{current.project, entry->seq, loaded.server_time_us,
                                      &loaded.draft, current.key, current.load};
    fold(state, true, event, *later, nullptr);
  }
  // Times and the last user describe the latest arrival, whatever the folding order.
  state.modified_us = current.server_time_us;
  state.last_user = current.draft->actor;
  return std::optional<CaseState>{std::move(state)};
}

}  // namespace

std::string_view action_name(schema::Action action) {
  switch (action) {
    case schema::Action::CREATE: return "create";
    case schema::Action::UPDATE: return "update";
    case schema::Action::CLOSE: return "close";
    case schema::Action::REOPEN: return "reopen";
    case schema::Action::INDEX: return "index";
    case schema::Action::OWNER: return "owner";
    case schema::Action::IMPLICIT_CREATE: return "implicit_create";
    case schema::Action::CLOSE_CLOSED: return "close_closed";
    case schema::Action::TYPE: return "case_type";
    case schema::Action::NAME: return "case_name";
  }
  return "unknown";
}

CaseProjector::CaseProjector(bool refold_from_scratch)
    : by_user_{{.table = kHistoryByUser, .table_name = kTableNames[kHistoryByUser],
                .entry_bytes = kUserEntryBytes, .sealed = false}},
      from_scratch_{refold_from_scratch} {}

std::vector<std::string> CaseProjector::tables() const {
  return {std::begin(kTableNames), std::end(kTableNames)};
}

Status CaseProjector::apply(ledger::ProjectionTables& tables, const ledger::AppendedEvent& event) {
  TRAIL_ASSERT(event.draft != nullptr && event.key != nullptr);
  const ledger::EventDraft& draft = *event.draft;
  sealed_.clear();  // A prepared flush is out of date once anything more is folded.
  written_.saw(event.project, event.seq);
  by_user_.saw(event.project, event.seq);
  if (draft.kind == schema::Kind::FORM_SUBMITTED) {  // Remember its xmlns for the history.
    auto xmlns = decode_form_xmlns(draft.payload);
    if (!xmlns) return Status::ok();
    std::string fkey = pk(event.project);
    add_id(fkey, draft.event_id);
    return tables.put(kForms, as_bytes(fkey),
                      as_bytes(event.key->seal_deterministic(as_bytes(aad_for(kForms, as_bytes(fkey))),
                                                             as_bytes(*xmlns))));
  }
  if (!is_case_kind(draft.kind) || !draft.subject) return Status::ok();
  const CaseChangeData* change = case_change_of(event);
  if (change == nullptr) return Status::ok();  // Not a case change: nothing to fold.
  const EventId& case_id = *draft.subject;

  // The state is folded where it waits for flush(): on the case's first event of the
  // transaction, taken from what this instance last wrote, else read from its record.
  auto [slot, first_in_txn] = pending_.try_emplace(state_key(event.project, case_id));
  bool existed = true;
  if (first_in_txn) {
    slot->second.key = event.key;
    if (auto written = written_.take(slot->first)) {
      slot->second.state = std::move(*written);
    } else {
      auto stored = load_state(tables, *event.key, event.project, case_id);
      if (!stored.is_ok()) {
        pending_.erase(slot);
        return std::move(stored).take_status();
      }
      existed = stored->has_value();
      if (existed) {
        slot->second.state = std::move(**stored);
      } else {
        slot->second.state.case_id = case_id;
      }
    }
  }
  CaseState& state = slot->second.state;
  const std::string old_owner = state.owner;
  const std::string old_type = state.case_type;
  std::vector<std::optional<EventId>> old_parents;
  for (const auto& i : state.indices) old_parents.push_back(i.case_id);

  // Runs are told in arrival order, as refold() tells them.
  const bool same_run = existed && draft.actor == state.last_user &&
                        event.server_time_us - state.run_first_us <= kReorderWindowUs;
  const bool out_of_order = existed && event.load != nullptr &&
                            draft.actor == state.last_user &&
                            draft.client_time_us < state.last_client_us &&
                            event.server_time_us - state.modified_us <= kReorderWindowUs;
  std::optional<CaseState> before;
  if (out_of_order && !from_scratch_) before = state;
  fold(state, existed, event, *change, nullptr);
  if (out_of_order) {
    // refold_late reads the run's entries (seqs from its first on) and whether any entry
    // precedes them. When the entries the state carries reach back to the run's first, they
    // answer both without reading the case's chunks: a late event then costs its run, not
    // the case's whole history. (Had an earlier entry been missed, refold_late declines and
    // the whole history is read below: the same state either way.)
    std::vector<HistoryEntry> prior;
    bool whole = false;
    if (before && !state.recent.empty() && state.recent.front().seq <= before->run_first_seq) {
      prior = state.recent;
    } else {
      TRAIL_TRY(history_entries(tables, event.project, case_id, state, prior));
      whole = true;
    }
    std::optional<CaseState> refolded;
    if (before) {
      TRAIL_ASSIGN_OR_RETURN(refolded, refold_late(*before, event, *change, prior));
      if (refolded) ++in_place_;
    }
    if (!refolded) {
      if (!whole) {
        prior.clear();
        TRAIL_TRY(history_entries(tables, event.project, case_id, state, prior));
      }
      TRAIL_ASSIGN_OR_RETURN(refolded, refold(event, case_id, prior));
    }
    refolded->opened_us = state.opened_us;
    refolded->run_first_seq = state.run_first_seq;
    refolded->run_first_us = state.run_first_us;
    refolded->recent = std::move(state.recent);
    state = std::move(*refolded);
  }
  if (!same_run) {
    state.run_first_seq = event.seq;
    state.run_first_us = event.server_time_us;
  }

  // History: the event's seq and device time, carried by the state until kChunkSeqs of them
  // move to a chunk. Entries are derived at query time by folding the case's events from the
  // ledger in arrival order, so prior values are never stored twice.
  state.recent.push_back({event.seq, draft.client_time_us});
  if (state.recent.size() >= kChunkSeqs) {
    std::string chunk;
    chunk.reserve(state.recent.size() * kEntryBytes);
    for (const HistoryEntry& entry : state.recent) {
      add_u64(chunk, entry.seq);
      add_u64(chunk, static_cast<std::uint64_t>(entry.client_us));
    }
    TRAIL_TRY(tables.put(kChunks, as_bytes(chunk_key(event.project, case_id, state.recent.front().seq)),
                         as_bytes(chunk)));
    state.recent.clear();
  }

  // The state's lookups (the state itself is written at flush).
  if (!existed || old_owner != state.owner) {
    if (existed) TRAIL_TRY(tables.del(kByOwner, as_bytes(text_index_key(event.project, old_owner, case_id))));
    TRAIL_TRY(tables.put(kByOwner, as_bytes(text_index_key(event.project, state.owner, case_id)), {}));
  }
  if (!existed || old_type != state.case_type) {
    if (existed) TRAIL_TRY(tables.del(kByType, as_bytes(text_index_key(event.project, old_type, case_id))));
    TRAIL_TRY(tables.put(kByType, as_bytes(text_index_key(event.project, state.case_type, case_id)), {}));
  }
  const bool parents_changed =
      !std::equal(old_parents.begin(), old_parents.end(), state.indices.begin(),
                  state.indices.end(),
                  [](const std::optional<EventId>& old, const CaseIndexData& now) {
                    return old == now.case_id;
                  });
  if (parents_changed) {
    for (const auto& parent : old_parents) {
      if (parent) TRAIL_TRY(tables.del(kByParent, as_bytes(parent_key(event.project, *parent, case_id))));
    }
    for (const auto& index : state.indices) {
      if (index.case_id) {
        TRAIL_TRY(tables.put(kByParent, as_bytes(parent_key(event.project, *index.case_id, case_id)), {}));
      }
    }
  }

  // The user's entry, in its bucket (written at flush).
  std::string by_user = pk(event.project);
  add_text(by_user, draft.actor);
  add_u64(by_user, event.seq / kUserBucketSeqs);
  TRAIL_ASSIGN_OR_RETURN(std::string * entries,
                         by_user_.entries(tables, std::move(by_user), *event.key));
  add_u64(*entries, event.seq);
  add_id(*entries, case_id);
  return Status::ok();
}

void CaseProjector::prepare_flush() {
  sealed_.clear();
  sealed_.reserve(pending_.size());
  std::vector<const std::pair<const std::string, Pending>*> ordered;  // Key order: LMDB likes it.
  ordered.reserve(pending_.size());
  for (const auto& entry : pending_) ordered.push_back(&entry);
  std::sort(ordered.begin(), ordered.end(), [](const auto* a, const auto* b) { return a->first < b->first; });
  for (const auto* entry : ordered) {
    const auto& [skey, pending] = *entry;
    capnp::MallocMessageBuilder message;
    build_record(pending.state, message.initRoot<schema::CaseRecord>());
    sealed_.emplace_back(&skey, seal_message(*pending.key, kCases, skey, message));
  }
}

Status CaseProjector::flush(ledger::ProjectionTables& tables) {
  if (sealed_.size() != pending_.size()) prepare_flush();  // Not prepared since the last apply.
  for (const auto& [skey, sealed] : sealed_) {
    const Status put = tables.put(kCases, as_bytes(*skey), as_bytes(sealed));
    if (!put.is_ok()) {
      discard();
      return put;
    }
  }
  sealed_.clear();
  if (Status put = by_user_.flush(tables); !put.is_ok()) {
    discard();
    return put;
  }
  // Written (committed next, or discard() forgets them): kept for the cases' next events.
  for (auto& [skey, pending] : pending_) written_.keep(skey, std::move(pending.state));
  pending_.clear();
  return Status::ok();
}

void CaseProjector::discard() {
  sealed_.clear();
  pending_.clear();
  written_.forget();
  by_user_.discard();
}

Result<std::optional<CaseState>> CaseProjector::get(const ledger::Ledger& ledger,
                                                    std::string_view project,
                                                    const EventId& case_id) const {
  TRAIL_ASSIGN_OR_RETURN(auto key, view::project_key(ledger, project));
  if (key == nullptr) return std::optional<CaseState>{};
  std::optional<CaseState> out;
  TRAIL_TRY(ledger.read_projection(*this, [&](const ledger::ProjectionTables& tables) -> Status {
    TRAIL_ASSIGN_OR_RETURN(out, load_state(tables, *key, project, case_id));
    return Status::ok();
  }));
  return out;
}

Result<std::optional<CaseState>> CaseProjector::get_in(const ledger::GuardContext& context,
                                                       std::string_view project,
                                                       const EventId& case_id) const {
  const std::string skey = state_key(project, case_id);
  if (auto it = pending_.find(skey); it != pending_.end()) {
    return std::optional<CaseState>{it->second.state};
  }
  TRAIL_ASSIGN_OR_RETURN(const ledger::ProjectionTables* tables, context.tables(*this));
  return load_state(*tables, context.key(), project, case_id);
}

Result<std::vector<CaseState>> CaseProjector::list(const ledger::Ledger& ledger,
                                                   std::string_view project,
                                                   const CaseFilter& filter,
                                                   std::optional<EventId> after,
                                                   std::size_t limit) const {
  std::vector<CaseState> out;
  TRAIL_ASSIGN_OR_RETURN(auto key, view::project_key(ledger, project));
  if (key == nullptr) return out;
  TRAIL_TRY(ledger.read_projection(*this, [&](const ledger::ProjectionTables& tables) -> Status {
    // Adds case `id` when it matches; false when the page is full or on an error (in `inner`).
    Status inner = Status::ok();
    const auto visit = [&](const EventId& id) {
      auto state = load_state(tables, *key, project, id);
      if (!state.is_ok() || !*state) {
        inner = state.is_ok() ? Status::error(Code::kCorrupt, "index names a missing case")
                              : state.status();
        return false;
      }
      const CaseState& s = **state;
      const bool match = (!filter.owner || s.owner == *filter.owner) &&
                         (!filter.case_type || s.case_type == *filter.case_type) &&
                         (!filter.open || s.closed != *filter.open);
      if (match) out.push_back(std::move(**state));
      return limit == 0 || out.size() < limit;
    };
    // Pick the narrowest index; the rest of the filter is checked on each state.
    std::optional<std::size_t> index;
    std::string prefix = pk(project);
    if (filter.parent) {
      index = kByParent;
      add_id(prefix, *filter.parent);
    } else if (filter.owner) {
      index = kByOwner;
      add_text(prefix, *filter.owner);
    } else if (filter.case_type) {
      index = kByType;
      add_text(prefix, *filter.case_type);
    }
    std::string from = prefix;
    if (index) {
      if (after) {
        add_id(from, *after);
        from.push_back('\0');
      }
      TRAIL_TRY(tables.scan(*index, as_bytes(from), [&](ByteView k, ByteView) {
        if (k.size() != prefix.size() + 16 || as_chars(k.subspan(0, prefix.size())) != prefix) {
          return false;
        }
        return visit(id_at(k, prefix.size()));
      }));
      return inner;
    }
    // Every case, in id order, from case.records: the first key at or after `from` names the
    // next case; the scan resumes past that case's state (past `after`'s, for a later page).
    if (after) {
      from = state_key(project, *after);
      from.push_back('\0');
    }
    for (bool more = true; more;) {
      std::optional<EventId> next;
      TRAIL_TRY(tables.scan(kCases, as_bytes(from), [&](ByteView k, ByteView) {
        if (k.size() == prefix.size() + 24 && as_chars(k.subspan(0, prefix.size())) == prefix) {
          next = id_at(k, prefix.size());
        }
        return false;
      }));
      if (!next) break;
      more = visit(*next);
      from = state_key(project, *next);
      from.push_back('\0');
    }
    return inner;
  }));
  return out;
}

namespace {

// The case events of `project` whose server time lies in [from_us, to_us), in seq order: a
// binary search for the first (server time never decreases along a chain), then a scan.
Result<std::vector<std::pair<EventId, std::uint64_t>>> events_in_time_range(
    const ledger::Ledger& ledger, std::string_view project, const HistoryFilter& filter) {
  std::vector<std::pair<EventId, std::uint64_t>> out;
  TRAIL_ASSIGN_OR_RETURN(auto head, ledger.head(project));
  std::uint64_t lo = 1;
  if (filter.from_us) {
    TRAIL_ASSIGN_OR_RETURN(lo, ledger.first_seq_at_or_after(project, *filter.from_us));
  }
  if (lo > head.seq) return out;
  ledger::DecodedEnvelope envelope;
  Status inner = Status::ok();
  TRAIL_TRY(ledger.scan(project, lo, head.seq - lo + 1, [&](const ledger::StoredEvent& stored) {
    inner = ledger::decode_envelope(as_bytes(stored.envelope), envelope);
    if (!inner.is_ok()) return false;
    if (filter.to_us && envelope.server_time_us >= *filter.to_us) return false;
    if (view::is_case_kind(envelope.kind) && envelope.subject) {
      out.emplace_back(*envelope.subject, stored.seq);
    }
    return true;
  }));
  TRAIL_TRY(inner);
  return out;
}

}  // namespace

Result<std::vector<HistoryItem>> CaseProjector::history(const ledger::Ledger& ledger,
                                                        std::string_view project,
                                                        const HistoryFilter& filter,
                                                        std::size_t limit) const {
  std::vector<HistoryItem> out;
  TRAIL_ASSIGN_OR_RETURN(auto key, view::project_key(ledger, project));
  if (key == nullptr) return out;
  using Entry = std::pair<EventId, std::uint64_t>;  // (case, seq)
  // 1. From one snapshot of the indexes: the entries asked for, and every seq of their cases.
  std::vector<Entry> wanted;
  std::map<EventId, std::vector<std::uint64_t>> case_seqs;
  const bool post_filter = filter.case_id && (filter.actor || filter.from_us || filter.to_us);
  const bool time_post_filter = !filter.case_id && filter.actor && (filter.from_us || filter.to_us);
  const bool by_time = !filter.case_id && !filter.actor;
  std::vector<Entry> candidates;  // By time: the chain's case events in the range, in seq order.
  if (by_time) {
    TRAIL_ASSIGN_OR_RETURN(candidates, events_in_time_range(ledger, project, filter));
  }
  TRAIL_TRY(ledger.read_projection(*this, [&](const ledger::ProjectionTables& tables) -> Status {
    // Every seq of a case, ascending (its chunks and its state's latest), read once per case.
    const auto seqs_of = [&](const EventId& case_id) -> Result<const std::vector<std::uint64_t>*> {
      auto it = case_seqs.find(case_id);
      if (it != case_seqs.end()) return &it->second;
      std::vector<std::uint64_t> seqs;
      TRAIL_ASSIGN_OR_RETURN(auto state, load_state(tables, *key, project, case_id));
      if (state) TRAIL_TRY(history_seqs(tables, project, case_id, *state, seqs));
      return &case_seqs.emplace(case_id, std::move(seqs)).first->second;
    };
    if (by_time) {  // Keep the events the view folded (its history names them).
      for (const auto& [case_id, seq] : candidates) {
        TRAIL_ASSIGN_OR_RETURN(const auto* seqs, seqs_of(case_id));
        if (std::binary_search(seqs->begin(), seqs->end(), seq)) wanted.emplace_back(case_id, seq);
        if (limit != 0 && wanted.size() >= limit) break;
      }
    } else if (filter.case_id) {
      TRAIL_ASSIGN_OR_RETURN(const auto* seqs, seqs_of(*filter.case_id));
      for (const std::uint64_t seq : *seqs) {
        wanted.emplace_back(*filter.case_id, seq);
        if (!post_filter && limit != 0 && wanted.size() >= limit) break;
      }
    } else {
      Status inner = Status::ok();
      std::string prefix = pk(project);
      add_text(prefix, *filter.actor);
      std::string entries;
      TRAIL_TRY(tables.scan(kHistoryByUser, as_bytes(prefix), [&](ByteView k, ByteView v) {
        if (k.size() < prefix.size() || as_chars(k.subspan(0, prefix.size())) != prefix) {
          return false;
        }
        if (k.size() != prefix.size() + 8) {
          inner = Status::error(Code::kCorrupt, "malformed history bucket key");
          return false;
        }
        inner = by_user_.read_stored(*key, k, v, entries);
        if (!inner.is_ok()) return false;
        const ByteView e = as_bytes(entries);
        for (std::size_t at = 0; at < e.size(); at += kUserEntryBytes) {
          wanted.emplace_back(id_at(e, at + 8), get_u64_be(e.data() + at));
          if (!time_post_filter && limit != 0 && wanted.size() >= limit) return false;
        }
        return true;
      }));
      TRAIL_TRY(inner);
    }
    for (const auto& [case_id, ignored_seq] : wanted) {
      TRAIL_ASSIGN_OR_RETURN(const auto* seqs, seqs_of(case_id));
      static_cast<void>(seqs);
    }
    return Status::ok();
  }));

  // 2. Fold each case's events from the ledger in arrival order, as apply() first saw them,
  //    keeping the entries asked for.
  std::map<Entry, HistoryItem> built;
  std::map<EventId, std::uint64_t> last_wanted;
  for (const auto& [case_id, seq] : wanted) {
    auto& last = last_wanted[case_id];
    last = std::max(last, seq);
  }
  std::set<Entry> wanted_set(wanted.begin(), wanted.end());
  for (const auto& [case_id, seqs] : case_seqs) {
    CaseState state;
    state.case_id = case_id;
    bool existed = false;
    for (const std::uint64_t seq : seqs) {
      if (seq > last_wanted[case_id]) break;
      TRAIL_ASSIGN_OR_RETURN(auto stored, ledger.read(project, seq));
      TRAIL_ASSIGN_OR_RETURN(auto opened, ledger.open_event(stored));
      auto change = decode_case_change(opened.payload);
      if (!change.is_ok()) return Status::error(Code::kCorrupt, "history names a non-case event");
      ledger::EventDraft draft = opened.envelope.header();
      const ledger::AppendedEvent event{project, seq, opened.envelope.server_time_us,
                                        &draft, key.get(), nullptr};
      std::vector<FieldChange> changes;
      fold(state, existed, event, *change, &changes);
      existed = true;
      if (wanted_set.count({case_id, seq}) == 0) continue;
      HistoryItem item;
      item.case_id = case_id;
      item.seq = seq;
      item.server_time_us = opened.envelope.server_time_us;
      item.client_time_us = draft.client_time_us;
      item.actor = draft.actor;
      item.device_id = draft.device_id;
      item.channel = draft.channel;
      item.event_id = draft.event_id;
      item.via = draft.via;
      item.kind = draft.kind;
      item.changes = std::move(changes);
      built.emplace(Entry{case_id, seq}, std::move(item));
    }
  }

  // 3. The forms the submissions named, then the entries in index order, filtered.
  TRAIL_TRY(ledger.read_projection(*this, [&](const ledger::ProjectionTables& tables) -> Status {
    for (auto& [entry, item] : built) {
      if (!item.via) continue;
      std::string fkey = pk(project);
      add_id(fkey, *item.via);
      TRAIL_ASSIGN_OR_RETURN(auto form, tables.get(kForms, as_bytes(fkey)));
      if (!form) continue;
      TRAIL_TRY(key->open_deterministic(as_bytes(aad_for(kForms, as_bytes(fkey))), *form,
                                        item.form_xmlns));
    }
    return Status::ok();
  }));
  for (const auto& entry : wanted) {
    auto it = built.find(entry);
    if (it == built.end()) continue;
    HistoryItem& item = it->second;
    const bool in_time = (!filter.from_us || item.server_time_us >= *filter.from_us) &&
                         (!filter.to_us || item.server_time_us < *filter.to_us);
    if (!in_time || (filter.actor && item.actor != *filter.actor)) continue;
    out.push_back(std::move(item));
    if (limit != 0 && out.size() >= limit) break;
  }
  return out;
}

}  // namespace trail::proj
