#include "projections/access_projector.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <utility>

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>
#include <sodium.h>

#include "ledger/assert.h"
#include "projections/identity.h"
#include "projections/row_codec.h"
#include "projections/view_keys.h"

namespace trail::proj {
namespace {

// Shared key helpers: projections/view_keys.h.
std::string pk(std::string_view project) { return view::project_prefix(project); }
using view::add_id;
using view::add_text;
using view::add_time;
using view::add_u64;
using view::time_at;

// No index by time: rows are keyed by seq, and server time never decreases along a chain, so
// a time range is a seq range (Ledger::first_seq_at_or_after).
enum TableIndex : std::size_t { kReads, kByCase, kByReader, kGrants };
constexpr const char* kTableNames[] = {"access.reads", "access.by_case", "access.by_reader",
                                       "access.grants"};
// 2: address and endpoint. 3: outside_capture, grant and grant_expires_us (2 still decodes).
constexpr std::uint8_t kRowVersion = 3;
constexpr std::uint8_t kRowVersionV2 = 2;
constexpr std::uint8_t kGrantVersion = 1;
constexpr std::string_view kBreakGlassWhat = "break_glass";

// ---- keys ----

std::string row_key(std::string_view project, std::uint64_t seq) {
  std::string k = pk(project);
  add_u64(k, seq);
  return k;
}

// (project, case id, reader): the key of a grant.
std::string grant_key(std::string_view project, const EventId& case_id, std::string_view reader) {
  std::string k = pk(project);
  add_id(k, case_id);
  add_text(k, reader);
  return k;
}

// ---- row codec: a version byte, then fixed-width integers and u32-length-prefixed text ----

using Writer = view::RowWriter;
using Reader = view::RowReader;

std::string encode_row(const AccessRow& row) {
  Writer w;
  w.u8(kRowVersion);
  w.u64(row.seq);
  w.i64(row.server_time_us);
  w.i64(row.client_time_us);
  w.text(row.reader);
  w.text(row.device_id);
  w.u32(static_cast<std::uint32_t>(row.channel));
  w.text(row.what);
  w.text(row.reason);
  w.u32(static_cast<std::uint32_t>(row.subjects.size()));
  for (const auto& s : row.subjects) w.id(s);
  w.id(row.event_id);
  w.text(row.address);
  w.text(row.endpoint);
  w.flag(row.outside_capture);
  w.flag(row.grant.has_value());
  if (row.grant) w.id(*row.grant);
  w.i64(row.grant_expires_us);
  return w.take();
}

// Version 3's tail: outside_capture, a grant flag and the grant, grant_expires_us.
bool decode_row_v3_tail(Reader& r, AccessRow& row) {
  bool has_grant = false;
  if (!r.flag(row.outside_capture) || !r.flag(has_grant)) return false;
  if (has_grant) {
    row.grant.emplace();
    if (!r.id(*row.grant)) return false;
  }
  return r.i64(row.grant_expires_us);
}

Result<AccessRow> decode_row(std::string_view bytes) {
  Reader r{bytes};
  AccessRow row;
  std::uint8_t version = 0;
  std::uint32_t channel = 0;
  std::uint32_t count = 0;
  bool ok = r.u8(version) && (version == kRowVersion || version == kRowVersionV2) &&
            r.u64(row.seq) && r.i64(row.server_time_us) && r.i64(row.client_time_us) &&
            r.text(row.reader) && r.text(row.device_id) && r.u32(channel) && r.text(row.what) &&
            r.text(row.reason) && r.u32(count) && count <= bytes.size() / 16;
  if (ok) {
    row.subjects.resize(count);
    for (auto& s : row.subjects) ok = ok && r.id(s);
    ok = ok && r.id(row.event_id) && r.text(row.address) && r.text(row.endpoint);
    if (version == kRowVersion) ok = ok && decode_row_v3_tail(r, row);
    ok = ok && r.done();
  }
  if (!ok) return Status::error(Code::kCorrupt, "access row does not decode");
  row.channel = static_cast<schema::Channel>(channel);
  return row;
}

// ---- grant codec: a version byte, expires_us, the event id ----

std::string encode_grant(const Grant& grant) {
  Writer w;
  w.u8(kGrantVersion);
  w.i64(grant.expires_us);
  w.id(grant.event_id);
  return w.take();
}

Result<Grant> decode_grant(std::string_view bytes) {
  Reader r{bytes};
  Grant grant;
  std::uint8_t version = 0;
  const bool ok = r.u8(version) && version == kGrantVersion && r.i64(grant.expires_us) &&
                  r.id(grant.event_id) && r.done();
  if (!ok) return Status::error(Code::kCorrupt, "access grant does not decode");
  return grant;
}

// A decimal integer without sign, as break_glass.granted writes expires_us.
std::optional<TimeUs> parse_time_us(std::string_view text) {
  if (text.empty() || text.front() < '0' || text.front() > '9') return std::nullopt;
  TimeUs value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// ---- sealing ----

std::string aad_for(std::size_t table, std::string_view key) {
  return view::aad_for(kTableNames[table], key);
}

capnp::Text::Reader text(std::string_view s) { return {s.data(), s.size()}; }
std::string str(capnp::Text::Reader t) { return {t.begin(), t.size()}; }

// ---- folding ----

// The header fields every row takes from its event.
AccessRow header_row(const ledger::AppendedEvent& event) {
  const ledger::EventDraft& draft = *event.draft;
  AccessRow row;
  row.seq = event.seq;
  row.server_time_us = event.server_time_us;
  row.client_time_us = draft.client_time_us;
  row.reader = draft.actor;
  row.device_id = draft.device_id;
  row.channel = draft.channel;
  row.event_id = draft.event_id;
  return row;
}

// A record.read event: the payload's fields when it decodes, then the envelope subject when it
// is not among the payload's subjects.
void fold_read(const ledger::EventDraft& draft, AccessRow& row) {
  if (auto read = decode_record_read(draft.payload); read.is_ok()) {
    row.what = std::move(read->what);
    row.reason = std::move(read->reason);
    row.address = std::move(read->address);
    row.endpoint = std::move(read->endpoint);
    row.subjects = std::move(read->subjects);
    row.outside_capture = read->outside_capture;
    row.grant = read->grant;
  }
  if (draft.subject &&
      std::find(row.subjects.begin(), row.subjects.end(), *draft.subject) == row.subjects.end()) {
    row.subjects.push_back(*draft.subject);
  }
}

// A break_glass.granted event: its row, and the grant it makes (nullopt when it makes none: the
// payload does not decode, expires_us is missing or not a decimal, or there is no subject).
std::optional<Grant> fold_grant(const ledger::EventDraft& draft, AccessRow& row) {
  row.what = kBreakGlassWhat;
  if (draft.subject) row.subjects.push_back(*draft.subject);
  auto change = decode_account_change(draft.payload);
  if (!change.is_ok() || !draft.subject) return std::nullopt;
  const auto& detail = change->detail;
  const auto expires_it = detail.find("expires_us");
  if (expires_it == detail.end()) return std::nullopt;
  const std::optional<TimeUs> expires_us = parse_time_us(expires_it->second);
  if (!expires_us) return std::nullopt;
  if (auto it = detail.find("reason"); it != detail.end()) row.reason = it->second;
  if (auto it = detail.find("address"); it != detail.end()) row.address = it->second;
  row.grant_expires_us = *expires_us;
  return Grant{draft.event_id, *expires_us};
}

// Seals and stores `row` and its by-case and by-reader index entries.
Status put_row(ledger::ProjectionTables& tables, const ledger::AppendedEvent& event,
               const AccessRow& row) {
  TRAIL_ASSERT(row.seq == event.seq);
  const std::string rkey = row_key(event.project, event.seq);
  TRAIL_TRY(tables.put(kReads, as_bytes(rkey),
                       as_bytes(event.key->seal_deterministic(as_bytes(aad_for(kReads, rkey)),
                                                              as_bytes(encode_row(row))))));
  // Putting the same key twice (a subject named twice) stores it once.
  for (const auto& subject : row.subjects) {
    std::string k = pk(event.project);
    add_id(k, subject);
    add_time(k, event.server_time_us);
    add_u64(k, event.seq);
    TRAIL_TRY(tables.put(kByCase, as_bytes(k), {}));
  }
  std::string by_reader = pk(event.project);
  add_text(by_reader, row.reader);
  add_time(by_reader, event.server_time_us);
  add_u64(by_reader, event.seq);
  return tables.put(kByReader, as_bytes(by_reader), {});
}

}  // namespace

std::string encode_record_read(const RecordReadData& read) {
  capnp::MallocMessageBuilder message;
  auto out = message.initRoot<schema::Payload>().initRecordRead();
  out.setWhat(text(read.what));
  auto subjects = out.initSubjects(static_cast<unsigned>(read.subjects.size()));
  for (unsigned i = 0; i < read.subjects.size(); ++i) {
    subjects.set(i, {read.subjects[i].data(), read.subjects[i].size()});
  }
  out.setReason(text(read.reason));
  out.setAddress(text(read.address));
  out.setEndpoint(text(read.endpoint));
  out.setOutsideCapture(read.outside_capture);
  if (read.grant) out.setGrant({read.grant->data(), read.grant->size()});
  const auto words = capnp::messageToFlatArray(message);
  const auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

Result<RecordReadData> decode_record_read(std::string_view payload) {
  if (payload.empty() || payload.size() % sizeof(capnp::word) != 0) {
    return Status::error(Code::kCorrupt, "payload is not a Cap'n Proto message");
  }
  auto words = kj::heapArray<capnp::word>(payload.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), payload.data(), payload.size());
  RecordReadData out;
  try {
    capnp::FlatArrayMessageReader message(words);
    const auto root = message.getRoot<schema::Payload>();
    if (!root.isRecordRead()) return Status::error(Code::kNotFound, "payload is not a record read");
    const auto read = root.getRecordRead();
    out.what = str(read.getWhat());
    out.reason = str(read.getReason());
    out.address = str(read.getAddress());
    out.endpoint = str(read.getEndpoint());
    out.outside_capture = read.getOutsideCapture();
    if (read.hasGrant() && read.getGrant().size() != 0) {
      const auto grant = read.getGrant();
      if (grant.size() != 16) return Status::error(Code::kCorrupt, "grant is not 16 bytes");
      out.grant.emplace();
      std::memcpy(out.grant->data(), grant.begin(), 16);
    }
    for (const auto subject : read.getSubjects()) {
      if (subject.size() != 16) return Status::error(Code::kCorrupt, "subject is not 16 bytes");
      EventId id{};
      std::memcpy(id.data(), subject.begin(), 16);
      out.subjects.push_back(id);
    }
  } catch (const kj::Exception& e) {
    return Status::error(Code::kCorrupt,
                         std::string("payload does not decode: ") + e.getDescription().cStr());
  }
  return out;
}

ledger::EventDraft make_record_read(std::string actor, std::string device_id,
                                    schema::Channel channel, std::string what,
                                    std::vector<EventId> subjects, std::string reason,
                                    TimeUs client_time) {
  return make_record_read(std::move(actor), std::move(device_id), channel, std::move(what),
                          std::move(subjects), std::move(reason), client_time, time_ordered_id());
}

ledger::EventDraft make_record_read(std::string actor, std::string device_id,
                                    schema::Channel channel, std::string what,
                                    std::vector<EventId> subjects, std::string reason,
                                    TimeUs client_time, const EventId& event_id) {
  RecordReadData read;
  read.what = std::move(what);
  read.subjects = std::move(subjects);
  read.reason = std::move(reason);
  return make_record_read(std::move(actor), std::move(device_id), channel, std::move(read),
                          client_time, event_id);
}

ledger::EventDraft make_record_read(std::string actor, std::string device_id,
                                    schema::Channel channel, RecordReadData read,
                                    TimeUs client_time, const EventId& event_id) {
  ledger::EventDraft d;
  d.event_id = event_id;
  d.kind = schema::Kind::RECORD_READ;
  d.actor = std::move(actor);
  d.device_id = std::move(device_id);
  d.channel = channel;
  d.client_time_us = client_time;
  if (read.subjects.size() == 1) d.subject = read.subjects.front();
  d.payload = encode_record_read(read);
  return d;
}

std::vector<std::string> AccessProjector::tables() const {
  return {std::begin(kTableNames), std::end(kTableNames)};
}

Status AccessProjector::apply(ledger::ProjectionTables& tables,
                              const ledger::AppendedEvent& event) {
  TRAIL_ASSERT(event.draft != nullptr && event.key != nullptr);
  const ledger::EventDraft& draft = *event.draft;
  if (draft.kind != schema::Kind::RECORD_READ &&
      draft.kind != schema::Kind::BREAK_GLASS_GRANTED) {
    return Status::ok();
  }
  AccessRow row = header_row(event);
  if (draft.kind == schema::Kind::RECORD_READ) {
    fold_read(draft, row);
    return put_row(tables, event, row);
  }
  const std::optional<Grant> grant = fold_grant(draft, row);
  TRAIL_TRY(put_row(tables, event, row));
  if (!grant) return Status::ok();
  TRAIL_ASSERT(draft.subject.has_value());
  TRAIL_ASSERT(grant->event_id == draft.event_id);
  // A later grant of the same case to the same reader replaces this one.
  const std::string gkey = grant_key(event.project, *draft.subject, draft.actor);
  return tables.put(kGrants, as_bytes(gkey),
                    as_bytes(event.key->seal_deterministic(as_bytes(aad_for(kGrants, gkey)),
                                                           as_bytes(encode_grant(*grant)))));
}

Result<std::vector<AccessRow>> AccessProjector::reads(const ledger::Ledger& ledger,
                                                      std::string_view project,
                                                      const AccessFilter& filter,
                                                      std::size_t limit) const {
  std::vector<AccessRow> out;
  TRAIL_ASSIGN_OR_RETURN(auto key, view::project_key(ledger, project));
  if (key == nullptr) return out;
  if (filter.from_us && filter.to_us && *filter.from_us >= *filter.to_us) return out;
  // No case or reader: rows in seq order from the first event at or after from_us, and after
  // after_seq (a later page starts where the last one ended, not at the range's start).
  const bool by_seq = !filter.case_id && !filter.reader;
  std::uint64_t first_seq = filter.after_seq ? *filter.after_seq + 1 : 1;
  if (by_seq && filter.from_us) {
    TRAIL_ASSIGN_OR_RETURN(std::uint64_t at, ledger.first_seq_at_or_after(project, *filter.from_us));
    first_seq = std::max(first_seq, at);
  }
  TRAIL_TRY(ledger.read_projection(*this, [&](const ledger::ProjectionTables& tables) -> Status {
    Status inner = Status::ok();
    // Adds the row of `seq` (past after_seq) unless the filter leaves it out; false to stop
    // (page full, past to_us, or an error in `inner`).
    const auto visit = [&](std::uint64_t seq, ByteView sealed) {
      const std::string rkey = row_key(project, seq);
      std::string plain;
      inner = key->open_deterministic(as_bytes(aad_for(kReads, rkey)), sealed, plain);
      if (!inner.is_ok()) return false;
      auto row = decode_row(plain);
      if (!row.is_ok()) {
        inner = row.status();
        return false;
      }
      if (filter.to_us && row->server_time_us >= *filter.to_us) return false;
      if (!filter.reader || row->reader == *filter.reader) out.push_back(std::move(row).value());
      return limit == 0 || out.size() < limit;
    };
    const std::string project_prefix = pk(project);
    if (by_seq) {
      TRAIL_TRY(tables.scan(kReads, as_bytes(row_key(project, first_seq)), [&](ByteView k, ByteView v) {
        if (k.size() != project_prefix.size() + 8 ||
            as_chars(k.subspan(0, project_prefix.size())) != project_prefix) {
          return false;
        }
        return visit(get_u64_be(k.data() + project_prefix.size()), v);
      }));
      return inner;
    }
    std::size_t table = kByCase;
    std::string prefix = project_prefix;
    if (filter.case_id) {
      add_id(prefix, *filter.case_id);
    } else {
      table = kByReader;
      add_text(prefix, *filter.reader);
    }
    std::string from = prefix;
    if (filter.from_us) add_time(from, *filter.from_us);
    TRAIL_TRY(tables.scan(table, as_bytes(from), [&](ByteView k, ByteView) {
      if (k.size() < prefix.size() || as_chars(k.subspan(0, prefix.size())) != prefix) {
        return false;
      }
      const ByteView rest = k.subspan(prefix.size());
      if (rest.size() != 16) {
        inner = Status::error(Code::kCorrupt, "malformed access index key");
        return false;
      }
      if (filter.to_us && time_at(rest.data()) >= *filter.to_us) return false;
      const std::uint64_t seq = get_u64_be(rest.data() + 8);
      if (filter.after_seq && seq <= *filter.after_seq) return true;
      auto stored = tables.get(kReads, as_bytes(row_key(project, seq)));
      if (!stored.is_ok() || !*stored) {
        inner = stored.is_ok() ? Status::error(Code::kCorrupt, "access index names a missing row")
                               : stored.status();
        return false;
      }
      return visit(seq, **stored);
    }));
    return inner;
  }));
  return out;
}

Result<std::optional<Grant>> AccessProjector::grant(const ledger::Ledger& ledger,
                                                    std::string_view project,
                                                    const EventId& case_id,
                                                    std::string_view reader,
                                                    TimeUs now_us) const {
  std::optional<Grant> out;
  TRAIL_ASSIGN_OR_RETURN(auto key, view::project_key(ledger, project));
  if (key == nullptr) return out;
  const std::string gkey = grant_key(project, case_id, reader);
  TRAIL_TRY(ledger.read_projection(*this, [&](const ledger::ProjectionTables& tables) -> Status {
    TRAIL_ASSIGN_OR_RETURN(auto stored, tables.get(kGrants, as_bytes(gkey)));
    if (!stored) return Status::ok();
    std::string plain;
    TRAIL_TRY(key->open_deterministic(as_bytes(aad_for(kGrants, gkey)), *stored, plain));
    TRAIL_ASSIGN_OR_RETURN(auto grant, decode_grant(plain));
    if (grant.expires_us > now_us) out = grant;
    return Status::ok();
  }));
  if (out) TRAIL_ASSERT(out->expires_us > now_us);
  return out;
}

}  // namespace trail::proj
