// SHA-256 through OpenSSL (which uses SHA-NI where the CPU has it) and the RFC 6962 hashes.
// Thread safety: every function may be called from any thread (contexts are thread-local).
#pragma once

#include "ledger/bytes.h"

namespace trail {

Digest sha256(ByteView data);

// RFC 6962 leaf hash: SHA-256(0x00 || data). The hash of an event is leaf_hash(envelope).
Digest leaf_hash(ByteView data);

// RFC 6962 interior node hash: SHA-256(0x01 || left || right).
Digest node_hash(const Digest& left, const Digest& right);

}  // namespace trail
