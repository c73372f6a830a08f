#include "ledger/internal/replay.h"

#include "ledger/envelope.h"
#include "ledger/internal/layout.h"

namespace trail::ledger::detail {

Result<std::uint64_t> applied_seq(const WriteTxn& views, std::string_view projector,
                                  std::string_view project) {
  TRAIL_ASSIGN_OR_RETURN(auto stored, views.get(Table::kProjectionState,
                                              as_bytes(projection_state_key(projector, project))));
  if (!stored) return std::uint64_t{0};
  if (stored->size() != 8) return Status::error(Code::kCorrupt, "projection state is malformed");
  return get_u64_be(stored->data());
}

namespace {

Result<ByteView> stored_event(const WriteTxn& txn, std::string_view project, std::uint64_t seq) {
  TRAIL_ASSIGN_OR_RETURN(auto stored, txn.get(Table::kEvents, as_bytes(event_key(project, seq))));
  if (!stored) {
    return Status::error(Code::kCorrupt, "event " + std::to_string(seq) + " of " +
                                             std::string(project) + " is missing");
  }
  return *stored;
}

}  // namespace

Result<LoadedEvent> load_event(const WriteTxn& txn, std::string_view project, std::uint64_t seq,
                               const KeyLookup& keys) {
  TRAIL_ASSIGN_OR_RETURN(ByteView stored, stored_event(txn, project, seq));
  DecodedEnvelope envelope;
  TRAIL_TRY(decode_envelope(stored, envelope));
  TRAIL_ASSIGN_OR_RETURN(auto key, keys(envelope.key_id));
  LoadedEvent out;
  out.draft = envelope.header();
  out.server_time_us = envelope.server_time_us;
  std::string aad;
  encode_aad(envelope, aad);
  TRAIL_TRY(key->open(envelope.cipher, envelope.nonce, as_bytes(aad), envelope.ciphertext,
                      out.draft.payload));
  return out;
}

Status replay(const WriteTxn& txn, WriteTxn& views, std::string_view project, std::uint64_t after_seq,
              std::uint64_t to_seq, const std::vector<ProjectorBinding>& bindings,
              const DataKey& project_key, const KeyLookup& keys) {
  if (bindings.empty() || to_seq <= after_seq) return Status::ok();
  DecodedEnvelope envelope;
  std::string aad;
  EventDraft draft;
  std::shared_ptr<const DataKey> key;
  const EventLoader loader = [&](std::uint64_t s) { return load_event(txn, project, s, keys); };
  // One cursor walk along the chain rather than a B-tree descent per event.
  auto cursor = txn.cursor(Table::kEvents);
  TRAIL_ASSIGN_OR_RETURN(bool more, cursor.seek(as_bytes(event_key(project, after_seq + 1))));
  for (std::uint64_t seq = after_seq + 1; seq <= to_seq; ++seq) {
    std::uint64_t stored_seq = 0;
    if (!more || !parse_event_key(cursor.key(), project, stored_seq) || stored_seq != seq) {
      return Status::error(Code::kCorrupt, "replay: event " + std::to_string(seq) + " of " +
                                               std::string(project) + " is missing");
    }
    const ByteView stored = cursor.value();
    TRAIL_TRY(decode_envelope(stored, envelope));
    if (key == nullptr || key->id() != envelope.key_id) {
      TRAIL_ASSIGN_OR_RETURN(key, keys(envelope.key_id));
    }
    draft = envelope.header();
    encode_aad(envelope, aad);
    TRAIL_TRY(key->open(envelope.cipher, envelope.nonce, as_bytes(aad), envelope.ciphertext,
                        draft.payload));
    const AppendedEvent event{project, seq, envelope.server_time_us, &draft,
                              &project_key, &loader, key.get()};
    for (const auto& binding : bindings) {
      WriteProjectionTables tables{views, binding.dbis};
      TRAIL_TRY(binding.projector->apply(tables, event));
    }
    // Projectors write only their own sub-databases; the events' pages stay as they were.
    if (seq < to_seq) {
      TRAIL_ASSIGN_OR_RETURN(more, cursor.next());
    }
  }
  std::uint8_t last[8];
  put_u64_be(last, to_seq);
  for (const auto& binding : bindings) {
    TRAIL_TRY(views.put(Table::kProjectionState,
                        as_bytes(projection_state_key(binding.projector->name(), project)), last));
  }
  return Status::ok();
}

}  // namespace trail::ledger::detail
