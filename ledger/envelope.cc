#include "ledger/envelope.h"

#include <cstring>

#include <capnp/any.h>
#include <capnp/message.h>
#include <capnp/schema.h>
#include <capnp/serialize.h>
#include <kj/io.h>
#include <kj/exception.h>

#include "ledger/data_key.h"

namespace trail::ledger {
namespace {

constexpr std::string_view kAadLabel = "trail/event/v1";
constexpr std::string_view kBodyLabel = "trail/body/v1";
constexpr std::uint16_t kKindCount = 28;     // Kinds known to this build (schema/event.capnp).
constexpr std::uint16_t kChannelCount = 5;
constexpr std::uint16_t kCipherCount = 2;

struct KindName {
  schema::Kind kind;
  std::string_view name;
};
constexpr KindName kKindNames[] = {
    {schema::Kind::FORM_SUBMITTED, "form.submitted"},
    {schema::Kind::CASE_CREATED, "case.created"},
    {schema::Kind::CASE_UPDATED, "case.updated"},
    {schema::Kind::CASE_CLOSED, "case.closed"},
    {schema::Kind::CASE_REOPENED, "case.reopened"},
    {schema::Kind::CASE_INDEXED, "case.indexed"},
    {schema::Kind::CASE_REASSIGNED, "case.reassigned"},
    {schema::Kind::ATTACHMENT_ADDED, "attachment.added"},
    {schema::Kind::RECORD_READ, "record.read"},
    {schema::Kind::BREAK_GLASS_GRANTED, "break_glass.granted"},
    {schema::Kind::USER_CREATED, "user.created"},
    {schema::Kind::USER_DISABLED, "user.disabled"},
    {schema::Kind::ROLE_CHANGED, "role.changed"},
    {schema::Kind::PASSWORD_CHANGED, "password.changed"},
    {schema::Kind::LOGIN_SUCCEEDED, "login.succeeded"},
    {schema::Kind::LOGIN_FAILED, "login.failed"},
    {schema::Kind::SESSION_ENDED, "session.ended"},
    {schema::Kind::EXPORT_MADE, "export.made"},
    {schema::Kind::POLICY_CHANGED, "policy.changed"},
    {schema::Kind::KEY_SHREDDED, "key.shredded"},
    {schema::Kind::PROJECT_CREATED, "project.created"},
    {schema::Kind::ORG_UNIT_ADDED, "org_unit.added"},
    {schema::Kind::SCOPES_CHANGED, "scopes.changed"},
    {schema::Kind::ROLE_DEFINED, "role.defined"},
    {schema::Kind::CASE_TYPE_CHANGED, "case_type.changed"},
    {schema::Kind::TOTP_ENROLLED, "totp.enrolled"},
    {schema::Kind::TOTP_CONFIRMED, "totp.confirmed"},
    {schema::Kind::ACCOUNT_LOCKED, "account.locked"},
};
static_assert(std::size(kKindNames) == kKindCount);

struct ChannelName {
  schema::Channel channel;
  std::string_view name;
};
constexpr ChannelName kChannelNames[] = {
    {schema::Channel::MOBILE_FORM, "mobile-form"}, {schema::Channel::WEB, "web"},
    {schema::Channel::API, "api"},                 {schema::Channel::IMPORT, "import"},
    {schema::Channel::SYSTEM, "system"},
};
static_assert(std::size(kChannelNames) == kChannelCount);

void put_u8(std::string& out, std::uint8_t v) { out.push_back(static_cast<char>(v)); }
void put_u16(std::string& out, std::uint16_t v) {
  out.push_back(static_cast<char>(v >> 8U));
  out.push_back(static_cast<char>(v & 0xffU));
}
void put_u32(std::string& out, std::uint32_t v) {
  std::uint8_t b[4];
  put_u32_be(b, v);
  out.append(reinterpret_cast<const char*>(b), 4);
}
void put_u64(std::string& out, std::uint64_t v) {
  std::uint8_t b[8];
  put_u64_be(b, v);
  out.append(reinterpret_cast<const char*>(b), 8);
}
void put_bytes(std::string& out, ByteView b) { out.append(as_chars(b)); }
void put_optional_id(std::string& out, const std::optional<EventId>& id) {
  put_u8(out, id ? 1 : 0);
  if (id) put_bytes(out, *id);
}

capnp::Data::Reader data_of(ByteView b) { return {b.data(), b.size()}; }

bool valid_project_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }

template <std::size_t N>
bool copy_fixed(capnp::Data::Reader in, std::array<std::uint8_t, N>& out) {
  if (in.size() != N) return false;
  std::memcpy(out.data(), in.begin(), N);
  return true;
}

bool copy_optional_id(capnp::Data::Reader in, std::optional<EventId>& out) {
  if (in.size() == 0) {
    out.reset();
    return true;
  }
  EventId id{};
  if (!copy_fixed(in, id)) return false;
  out = id;
  return true;
}

}  // namespace

Status validate_project(std::string_view project) {
  if (project == kSystemProject) return Status::ok();
  if (project.empty() || project.size() > kProjectBytesMax) {
    return Status::error(Code::kInvalid, "project id must be 1 to 64 characters");
  }
  for (const char c : project) {
    if (!valid_project_char(c)) {
      return Status::error(Code::kInvalid,
                           "project id may hold only lower-case letters, digits and dashes");
    }
  }
  if (project.front() == '-') {
    return Status::error(Code::kInvalid, "project id must start with a letter or digit");
  }
  return Status::ok();
}

Status validate_draft(const EventDraft& draft) {
  if (draft.actor.empty() || draft.actor.size() > kActorBytesMax) {
    return Status::error(Code::kInvalid, "actor must be 1 to 128 bytes");
  }
  if (draft.device_id.size() > kDeviceIdBytesMax) {
    return Status::error(Code::kInvalid, "device_id must be at most 128 bytes");
  }
  if (draft.payload.size() > kPayloadBytesMax) {
    return Status::error(Code::kInvalid, "payload exceeds " + std::to_string(kPayloadBytesMax) +
                                             " bytes (kPayloadBytesMax)");
  }
  if (static_cast<std::uint16_t>(draft.kind) >= kKindCount) {
    return Status::error(Code::kInvalid, "unknown event kind");
  }
  if (static_cast<std::uint16_t>(draft.channel) >= kChannelCount) {
    return Status::error(Code::kInvalid, "unknown channel");
  }
  bool zero_id = true;
  for (auto b : draft.event_id) zero_id = zero_id && b == 0;
  if (zero_id) return Status::error(Code::kInvalid, "event_id must not be the nil UUID");
  return Status::ok();
}

namespace {

// Appends the header of `e`: an EventDraft or a DecodedEnvelope (same member names).
template <typename E>
void append_header(std::string_view project, const E& e, std::string& out) {
  TRAIL_ASSERT(project.size() <= kProjectBytesMax);
  TRAIL_ASSERT(e.actor.size() <= kActorBytesMax && e.device_id.size() <= kDeviceIdBytesMax);
  put_u8(out, static_cast<std::uint8_t>(project.size()));
  out.append(project);
  put_bytes(out, e.event_id);
  put_u16(out, static_cast<std::uint16_t>(e.kind));
  put_u8(out, static_cast<std::uint8_t>(e.channel));
  put_u16(out, static_cast<std::uint16_t>(e.actor.size()));
  out.append(e.actor);
  put_u16(out, static_cast<std::uint16_t>(e.device_id.size()));
  out.append(e.device_id);
  put_optional_id(out, e.via);
  put_u64(out, static_cast<std::uint64_t>(e.client_time_us));
  put_optional_id(out, e.subject);
}

}  // namespace

void encode_header(std::string_view project, const EventDraft& d, std::string& out) {
  out.clear();
  append_header(project, d, out);
}

void encode_body_prefix(std::string_view header, std::size_t payload_size, std::string& out) {
  out.clear();
  out.append(kBodyLabel);
  out.append(header);
  put_u64(out, payload_size);
}

Digest body_mac(const DataKey& key, std::string_view header, std::string_view payload,
                std::string& scratch) {
  encode_body_prefix(header, payload.size(), scratch);
  return key.mac({as_bytes(scratch), as_bytes(payload)});
}

void encode_body(std::string_view project, const EventDraft& draft, std::string& out) {
  std::string header;
  encode_header(project, draft, header);
  encode_body_prefix(header, draft.payload.size(), out);
  out.append(draft.payload);
}

void encode_aad_from_header(std::string_view header, std::uint32_t key_id, schema::Cipher cipher,
                            std::string& out) {
  out.clear();
  out.append(kAadLabel);
  out.append(header);
  put_u32(out, key_id);
  put_u8(out, static_cast<std::uint8_t>(cipher));
}

void encode_aad(std::string_view project, const EventDraft& draft, std::uint32_t key_id,
                schema::Cipher cipher, std::string& out) {
  out.clear();
  out.append(kAadLabel);
  append_header(project, draft, out);
  put_u32(out, key_id);
  put_u8(out, static_cast<std::uint8_t>(cipher));
}

void encode_aad(const DecodedEnvelope& envelope, std::string& out) {
  out.clear();
  out.append(kAadLabel);
  append_header(envelope.project, envelope, out);
  put_u32(out, envelope.key_id);
  put_u8(out, static_cast<std::uint8_t>(envelope.cipher));
}

namespace {

unsigned first_segment_words(std::string_view project, const SealedEvent& event) {
  const EventDraft& h = event.header;
  // One segment large enough for everything, so the stored message is a single segment.
  const std::size_t estimate = 256 + project.size() + h.actor.size() + h.device_id.size() +
                               event.nonce.size() + event.ciphertext.size();
  return static_cast<unsigned>(estimate / sizeof(capnp::word) + 8);
}

// Sets every field of the envelope but seq, prev hash and server time, which are left zero,
// in one order (the order decides where each blob lies).
void fill_envelope(schema::Envelope::Builder env, std::string_view project,
                   const SealedEvent& event) {
  const EventDraft& h = event.header;  // Its payload (plaintext) is never stored.
  env.setProject(capnp::Text::Reader(project.data(), project.size()));
  env.setSeq(0);
  env.setPrevHash(data_of(Digest{}));
  env.setEventId(data_of(h.event_id));
  env.setKind(h.kind);
  env.setActor(capnp::Text::Reader(h.actor.data(), h.actor.size()));
  env.setDeviceId(capnp::Text::Reader(h.device_id.data(), h.device_id.size()));
  env.setChannel(h.channel);
  if (h.via) env.setVia(data_of(*h.via));
  env.setClientTimeUs(h.client_time_us);
  env.setServerTimeUs(0);
  if (h.subject) env.setSubject(data_of(*h.subject));
  env.setKeyId(event.key_id);
  env.setCipher(event.cipher);
  env.setNonce(data_of(as_bytes(event.nonce)));
  env.setCiphertext(data_of(as_bytes(event.ciphertext)));
}

// Byte offsets of seq and serverTimeUs in the Envelope's data section (from its schema).
std::size_t data_field_at(const char* name) {
  const auto field = capnp::Schema::from<schema::Envelope>().getFieldByName(name);
  return field.getProto().getSlot().getOffset() * sizeof(std::uint64_t);  // Both 64-bit.
}

void put_u64_le(std::uint8_t* out, std::uint64_t v) {
  for (std::size_t i = 0; i < 8; ++i) out[i] = static_cast<std::uint8_t>(v >> (8U * i));
}

}  // namespace

EnvelopeImage make_envelope_image(std::string_view project, const SealedEvent& event) {
  static const std::size_t seq_in_data = data_field_at("seq");
  static const std::size_t time_in_data = data_field_at("serverTimeUs");
  capnp::MallocMessageBuilder message(first_segment_words(project, event),
                                      capnp::AllocationStrategy::FIXED_SIZE);
  auto env = message.initRoot<schema::Envelope>();
  fill_envelope(env, project, event);
  const auto segments = message.getSegmentsForOutput();
  TRAIL_ASSERT(segments.size() == 1);
  // A one-segment message is its segment table (one word) and then the segment.
  const auto* segment = reinterpret_cast<const std::uint8_t*>(segments[0].begin());
  const std::size_t table = sizeof(capnp::word);
  const auto* data = capnp::AnyStruct::Builder(schema::Envelope::Builder(env)).getDataSection().begin();
  const auto at = [&](const std::uint8_t* p) {
    TRAIL_ASSERT(p >= segment && p < segment + segments[0].size() * sizeof(capnp::word));
    return static_cast<std::uint32_t>(table + static_cast<std::size_t>(p - segment));
  };
  EnvelopeImage image;
  image.seq_at = at(data + seq_in_data);
  image.server_time_at = at(data + time_in_data);
  image.prev_hash_at = at(env.getPrevHash().begin());
  const auto words = capnp::messageToFlatArray(message);
  const auto bytes = words.asBytes();
  image.bytes.assign(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
  return image;
}

void EnvelopeImage::write_to(std::uint8_t* out, std::uint64_t seq, const Digest& prev_hash,
                             TimeUs server_time_us) const {
  TRAIL_ASSERT(seq >= 1);
  std::memcpy(out, bytes.data(), bytes.size());
  put_u64_le(out + seq_at, seq);
  std::memcpy(out + prev_hash_at, prev_hash.data(), prev_hash.size());
  put_u64_le(out + server_time_at, static_cast<std::uint64_t>(server_time_us));
}

kj::Array<capnp::word> encode_envelope(std::string_view project, std::uint64_t seq,
                                       const Digest& prev_hash, TimeUs server_time_us,
                                       const SealedEvent& event) {
  const EnvelopeImage image = make_envelope_image(project, event);
  auto words = kj::heapArray<capnp::word>(image.bytes.size() / sizeof(capnp::word));
  image.write_to(reinterpret_cast<std::uint8_t*>(words.begin()), seq, prev_hash, server_time_us);
  return words;
}

EventDraft DecodedEnvelope::header() const {
  EventDraft d;
  d.event_id = event_id;
  d.kind = kind;
  d.actor = std::string(actor);
  d.device_id = std::string(device_id);
  d.channel = channel;
  d.via = via;
  d.client_time_us = client_time_us;
  d.subject = subject;
  return d;
}

Status decode_envelope(ByteView bytes, DecodedEnvelope& out) {
  if (bytes.size() % sizeof(capnp::word) != 0 || bytes.size() > kEnvelopeBytesMax ||
      bytes.empty()) {
    return Status::error(Code::kCorrupt, "envelope size " + std::to_string(bytes.size()) +
                                             " is not a whole Cap'n Proto message");
  }
  const std::size_t words = bytes.size() / sizeof(capnp::word);
  if (out.buffer_.size() < words) out.buffer_ = kj::heapArray<capnp::word>(words);
  std::memcpy(out.buffer_.begin(), bytes.data(), bytes.size());
  const auto view = out.buffer_.slice(0, words).asConst();
  try {
    capnp::ReaderOptions options;
    options.traversalLimitInWords = words + 16;
    options.nestingLimit = 8;
    capnp::FlatArrayMessageReader message(view, options);
    if (message.getEnd() != view.end()) {
      return Status::error(Code::kCorrupt, "trailing bytes after the envelope message");
    }
    const auto env = message.getRoot<schema::Envelope>();
    const auto project = env.getProject();
    out.project = std::string_view(project.begin(), project.size());
    out.seq = env.getSeq();
    if (!copy_fixed(env.getPrevHash(), out.prev_hash)) {
      return Status::error(Code::kCorrupt, "prevHash is not 32 bytes");
    }
    if (!copy_fixed(env.getEventId(), out.event_id)) {
      return Status::error(Code::kCorrupt, "eventId is not 16 bytes");
    }
    out.kind = env.getKind();
    if (static_cast<std::uint16_t>(out.kind) >= kKindCount) {
      return Status::error(Code::kCorrupt, "unknown kind");
    }
    const auto actor = env.getActor();
    out.actor = std::string_view(actor.begin(), actor.size());
    const auto device = env.getDeviceId();
    out.device_id = std::string_view(device.begin(), device.size());
    out.channel = env.getChannel();
    if (static_cast<std::uint16_t>(out.channel) >= kChannelCount) {
      return Status::error(Code::kCorrupt, "unknown channel");
    }
    if (!copy_optional_id(env.getVia(), out.via)) {
      return Status::error(Code::kCorrupt, "via is neither empty nor 16 bytes");
    }
    out.client_time_us = env.getClientTimeUs();
    out.server_time_us = env.getServerTimeUs();
    if (!copy_optional_id(env.getSubject(), out.subject)) {
      return Status::error(Code::kCorrupt, "subject is neither empty nor 16 bytes");
    }
    out.key_id = env.getKeyId();
    out.cipher = env.getCipher();
    if (static_cast<std::uint16_t>(out.cipher) >= kCipherCount) {
      return Status::error(Code::kCorrupt, "unknown cipher");
    }
    const auto nonce = env.getNonce();
    out.nonce = ByteView(nonce.begin(), nonce.size());
    const auto ciphertext = env.getCiphertext();
    out.ciphertext = ByteView(ciphertext.begin(), ciphertext.size());
  } catch (const kj::Exception& e) {
    return Status::error(Code::kCorrupt, "envelope does not decode: " +
                                             std::string(e.getDescription().cStr()));
  }
  if (out.actor.size() > kActorBytesMax || out.device_id.size() > kDeviceIdBytesMax ||
      out.project.size() > kProjectBytesMax) {
    return Status::error(Code::kCorrupt, "envelope field exceeds its limit");
  }
  return Status::ok();
}

std::string_view kind_name(schema::Kind kind) {
  for (const auto& k : kKindNames) {
    if (k.kind == kind) return k.name;
  }
  return "unknown";
}

std::optional<schema::Kind> parse_kind(std::string_view name) {
  for (const auto& k : kKindNames) {
    if (k.name == name) return k.kind;
  }
  return std::nullopt;
}

std::string_view channel_name(schema::Channel channel) {
  for (const auto& c : kChannelNames) {
    if (c.channel == channel) return c.name;
  }
  return "unknown";
}

std::optional<schema::Channel> parse_channel(std::string_view name) {
  for (const auto& c : kChannelNames) {
    if (c.name == name) return c.channel;
  }
  return std::nullopt;
}

std::string_view cipher_name(schema::Cipher cipher) {
  switch (cipher) {
    case schema::Cipher::AES256GCM: return "aes-256-gcm";
    case schema::Cipher::XCHACHA20POLY1305: return "xchacha20-poly1305";
  }
  return "unknown";
}

}  // namespace trail::ledger
