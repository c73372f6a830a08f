// What an append answers for each event.
#pragma once

#include <cstdint>

#include "ledger/bytes.h"
#include "ledger/clock.h"

namespace trail::ledger {

struct Receipt {
  std::uint64_t seq = 0;   // The event's place in its project's chain.
  Digest hash{};           // SHA-256(0x00 || envelope): its RFC 6962 leaf hash.
  bool duplicate = false;  // The event id was already appended with this body; nothing new.
};

// A project's chain head.
struct Head {
  std::uint64_t seq = 0;  // Last appended; 0 for an empty chain.
  Digest hash{};          // Hash of event[seq]; all zero for an empty chain.
  TimeUs server_time_us = 0;
};

}  // namespace trail::ledger
