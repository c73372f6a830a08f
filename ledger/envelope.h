// Events on their way in (EventDraft, SealedEvent) and as stored (the Cap'n Proto envelope).
// docs/FORMAT.md specifies the envelope bytes, the header that is the AEAD associated data,
// and the hash.
//
// Thread safety: free functions; DecodedEnvelope is a value (not shared).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <kj/array.h>
#include <capnp/common.h>
#include <capnp/message.h>

#include "ledger/bytes.h"
#include "ledger/clock.h"
#include "ledger/status.h"
#include "schema/event.capnp.h"

namespace trail::ledger {

// Limits. Each is checked on input and named in the error that enforces it.
inline constexpr std::size_t kProjectBytesMax = 64;
inline constexpr std::size_t kActorBytesMax = 128;
inline constexpr std::size_t kDeviceIdBytesMax = 128;
inline constexpr std::size_t kPayloadBytesMax = 32U << 20U;   // A form with attachments.
inline constexpr std::size_t kBatchEventsMax = 10'000;        // Events in one atomic batch.
inline constexpr std::size_t kEnvelopeBytesMax = kPayloadBytesMax + 4096;
// The project that holds users, roles, projects and log-ins.
inline constexpr std::string_view kSystemProject = "_system";

// An event as a caller wants it appended; the payload is plaintext and opaque to the ledger.
struct EventDraft {
  EventId event_id{};
  schema::Kind kind = schema::Kind::CASE_CREATED;
  std::string actor;
  std::string device_id;
  schema::Channel channel = schema::Channel::API;
  std::optional<EventId> via;
  TimeUs client_time_us = 0;
  std::optional<EventId> subject;
  std::string payload;
};

// An event's envelope serialised ahead of its place in the chain, by the thread that sealed
// it, with the three fields only the writer knows (seq, prev_hash, server time) left zero. The
// writer copies it into place and fills them in (the three are of fixed size, so the layout
// does not depend on their values).
struct EnvelopeImage {
  std::string bytes;
  std::uint32_t seq_at = 0;          // Offsets in `bytes` of the little-endian seq,
  std::uint32_t prev_hash_at = 0;    // the 32 bytes of the previous event's hash,
  std::uint32_t server_time_at = 0;  // and the little-endian server time.

  // Writes bytes.size() bytes to `out` (any alignment): the envelope as event `seq`.
  void write_to(std::uint8_t* out, std::uint64_t seq, const Digest& prev_hash,
                TimeUs server_time_us) const;
};

// A draft after sealing: what the writer thread chains and stores. header.payload keeps the
// plaintext for projectors (in memory only; the envelope carries the ciphertext).
struct SealedEvent {
  EventDraft header;
  std::uint32_t key_id = 0;
  schema::Cipher cipher = schema::Cipher::AES256GCM;
  std::string nonce;
  std::string ciphertext;
  Digest body_mac{};  // DataKey::mac(body_bytes): what idempotency compares.
  EnvelopeImage envelope;  // make_envelope_image(project, *this), for the writer.
};

// The envelope of `event` in `project`, but for seq, prev hash and server time, which
// EnvelopeImage::write_to fills in.
EnvelopeImage make_envelope_image(std::string_view project, const SealedEvent& event);

// Project ids: 1 to 64 of [a-z0-9-], starting with a letter or digit; or "_system".
// Errors: kInvalid naming the rule broken.
Status validate_project(std::string_view project);
// Checks a draft against the limits above. Errors: kInvalid naming the field.
Status validate_draft(const EventDraft& draft);

// The event header: every envelope field the client chose, in the fixed layout FORMAT.md
// gives. `out` is replaced.
void encode_header(std::string_view project, const EventDraft& draft, std::string& out);
// What idempotency fingerprints: "trail/body/v1" || header || u64 payload size || payload.
void encode_body(std::string_view project, const EventDraft& draft, std::string& out);
// The body without its payload, for fingerprinting the payload in place.
void encode_body_prefix(std::string_view header, std::size_t payload_size, std::string& out);
class DataKey;
// The body MAC (FORMAT.md §10) of the event with header `header` (encode_header) and `payload`,
// under `key`: what the idempotency index stores. `scratch` is overwritten.
Digest body_mac(const DataKey& key, std::string_view header, std::string_view payload,
                std::string& scratch);
// The AEAD associated data: "trail/event/v1" || header || key id || cipher.
void encode_aad(std::string_view project, const EventDraft& draft, std::uint32_t key_id,
                schema::Cipher cipher, std::string& out);
void encode_aad_from_header(std::string_view header, std::uint32_t key_id, schema::Cipher cipher,
                            std::string& out);

// The stored envelope of `event` as event `seq` of `project`, as one array.
kj::Array<capnp::word> encode_envelope(std::string_view project, std::uint64_t seq,
                                       const Digest& prev_hash, TimeUs server_time_us,
                                       const SealedEvent& event);

// A stored envelope, checked and decoded. Views point into buffer_ and live as long as this
// object (or until the next decode into it).
struct DecodedEnvelope {
  std::string_view project;
  std::uint64_t seq = 0;
  Digest prev_hash{};
  EventId event_id{};
  schema::Kind kind = schema::Kind::CASE_CREATED;
  std::string_view actor;
  std::string_view device_id;
  schema::Channel channel = schema::Channel::API;
  std::optional<EventId> via;
  TimeUs client_time_us = 0;
  TimeUs server_time_us = 0;
  std::optional<EventId> subject;
  std::uint32_t key_id = 0;
  schema::Cipher cipher = schema::Cipher::AES256GCM;
  ByteView nonce;
  ByteView ciphertext;

  // The header fields again as a draft (payload empty), e.g. to rebuild the associated data.
  EventDraft header() const;

  kj::Array<capnp::word> buffer_;  // Word-aligned copy of the stored bytes.
};

// The associated data a decoded envelope's payload was sealed with.
void encode_aad(const DecodedEnvelope& envelope, std::string& out);

// Decodes untrusted envelope bytes into `out` (reusing its buffer when large enough).
// Errors: kCorrupt when the bytes are not a well-formed envelope: bad Cap'n Proto framing,
//         trailing bytes, a hash or id of the wrong size, or an unknown kind, channel or cipher.
Status decode_envelope(ByteView bytes, DecodedEnvelope& out);

// Names for JSON and logs: "case.created", "mobile-form", "aes-256-gcm" ...
std::string_view kind_name(schema::Kind kind);
std::optional<schema::Kind> parse_kind(std::string_view name);
std::string_view channel_name(schema::Channel channel);
std::optional<schema::Channel> parse_channel(std::string_view name);
std::string_view cipher_name(schema::Cipher cipher);

}  // namespace trail::ledger
