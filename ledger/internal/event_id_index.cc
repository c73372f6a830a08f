#include "ledger/internal/event_id_index.h"

#include <cstring>

#include "ledger/internal/layout.h"

namespace trail::ledger::detail {

Status EventIdIndex::apply(ProjectionTables& tables, const AppendedEvent& event) {
  TRAIL_ASSERT(event.draft != nullptr);
  const DataKey* key = event.payload_key != nullptr ? event.payload_key : event.key;
  TRAIL_ASSERT(key != nullptr);
  encode_header(event.project, *event.draft, header_);
  const Digest mac = body_mac(*key, header_, event.draft->payload, prefix_);
  std::uint8_t value[kEventIdValueBytes];
  put_u64_be(value, event.seq);
  std::memcpy(value + 8, mac.data(), mac.size());
  return tables.put(0, as_bytes(event_id_key(event.project, event.draft->event_id)), value);
}

}  // namespace trail::ledger::detail
