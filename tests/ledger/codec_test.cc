// Small codecs: hex, UUIDs, RFC 3339 times, envelope decoding of hostile bytes.
#include <gtest/gtest.h>

#include <random>

#include <chrono>
#include <vector>

#include "ledger/bytes.h"
#include "ledger/clock.h"
#include "ledger/envelope.h"
#include "tests/support/ledger_fixture.h"

namespace trail::testing {
namespace {

TEST(Uuid, ParsesAndFormatsCanonically) {
  auto id = parse_uuid("7F1E2A40-0000-4000-8000-00000000000A");
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(format_uuid(*id), "7f1e2a40-0000-4000-8000-00000000000a");
}

TEST(Uuid, RejectsMalformedAndNil) {
  for (const char* bad : {"", "7f1e2a40000040008000000000000001", "7f1e2a40-0000-4000-8000-00000000000",
                          "7f1e2a40-0000-4000-8000-0000000000001", "7f1e2a40+0000-4000-8000-000000000001",
                          "zf1e2a40-0000-4000-8000-000000000001", "00000000-0000-0000-0000-000000000000"}) {
    EXPECT_FALSE(parse_uuid(bad).has_value()) << bad;
  }
}

TEST(Rfc3339, ParsesOffsetsAndFractions) {
  EXPECT_EQ(parse_rfc3339("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parse_rfc3339("1970-01-01T01:00:00+01:00"), 0);
  EXPECT_EQ(parse_rfc3339("1970-01-01T00:00:01.5Z"), 1'500'000);
  EXPECT_EQ(parse_rfc3339("1970-01-01T00:00:00.1234567Z"), 123'456);
  EXPECT_EQ(parse_rfc3339("2024-02-29T12:00:00-03:30"), parse_rfc3339("2024-02-29T15:30:00Z"));
  EXPECT_EQ(parse_rfc3339("1969-12-31T23:59:59Z"), -1'000'000);
}

TEST(Rfc3339, RejectsInvalidDates) {
  for (const char* bad : {"", "2024-13-01T00:00:00Z", "2023-02-29T00:00:00Z", "2024-01-01T24:00:00Z",
                          "2024-01-01 00:00:00Z", "2024-01-01T00:00:00", "2024-01-01T00:00:00+1:00",
                          "2024-01-01T00:00:00.Z", "2024-01-01T00:00:00Zjunk", "yesterday"}) {
    EXPECT_FALSE(parse_rfc3339(bad).has_value()) << bad;
  }
}

TEST(Rfc3339, FormatsWhatItParses) {
  for (const char* text : {"2024-05-01T09:30:00.000000Z", "1969-12-31T23:59:59.999999Z",
                           "2000-02-29T00:00:00.000001Z"}) {
    auto t = parse_rfc3339(text);
    ASSERT_TRUE(t.has_value());
    EXPECT_EQ(format_rfc3339(*t), text);
  }
}

TEST(Envelope, EncodeDecodeRoundTrip) {
  ledger::SealedEvent ev;
  ev.header = make_draft(0);
  ev.key_id = 9;
  ev.nonce = "123456789012";
  ev.ciphertext = "sealed-bytes";
  Digest prev{};
  prev[0] = 0xab;
  auto words = ledger::encode_envelope("proj", 42, prev, 77, ev);
  const auto bytes = words.asBytes();
  ledger::DecodedEnvelope out;
  ASSERT_TRUE(ledger::decode_envelope({bytes.begin(), bytes.size()}, out).is_ok());
  EXPECT_EQ(out.project, "proj");
  EXPECT_EQ(out.seq, 42U);
  EXPECT_EQ(out.prev_hash, prev);
  EXPECT_EQ(out.server_time_us, 77);
  EXPECT_EQ(out.key_id, 9U);
  EXPECT_EQ(as_chars(out.ciphertext), "sealed-bytes");
  EXPECT_EQ(out.event_id, ev.header.event_id);
}

// The writer copies an image made when the event was sealed and fills in its place in the
// chain: whatever the fields' sizes, the result must decode to every field it was given, the
// three filled in among them.
TEST(Envelope, AnImageFilledInDecodesToEveryFieldGiven) {
  std::mt19937_64 rng{7};
  for (int i = 0; i < 200; ++i) {
    ledger::SealedEvent ev;
    ev.header = make_draft(static_cast<std::size_t>(i));
    ev.header.actor = std::string(rng() % 70, 'a');
    ev.header.device_id = std::string(rng() % 40, 'd');
    if (rng() % 2 == 0) ev.header.via = random_id();
    if (rng() % 3 == 0) ev.header.subject.reset();
    ev.header.client_time_us = static_cast<TimeUs>(rng() >> 1U);
    ev.key_id = static_cast<std::uint32_t>(rng());
    ev.cipher = rng() % 2 == 0 ? schema::Cipher::AES256GCM : schema::Cipher::XCHACHA20POLY1305;
    ev.nonce = std::string(ev.cipher == schema::Cipher::AES256GCM ? 12 : 24, 'n');
    ev.ciphertext = std::string(16 + rng() % 900, 'c');
    const std::string project(1 + rng() % 64, 'p');
    const std::uint64_t seq = 1 + rng() % 1'000'000'000'000;
    Digest prev{};
    for (auto& b : prev) b = static_cast<std::uint8_t>(rng());
    const auto server_time = static_cast<TimeUs>(rng() >> 1U);

    const auto image = ledger::make_envelope_image(project, ev);
    std::string filled(image.bytes.size(), '\0');
    image.write_to(reinterpret_cast<std::uint8_t*>(filled.data()), seq, prev, server_time);
    ledger::DecodedEnvelope out;
    ASSERT_TRUE(ledger::decode_envelope(as_bytes(filled), out).is_ok()) << "event " << i;
    EXPECT_EQ(out.project, project);
    EXPECT_EQ(out.seq, seq);
    EXPECT_EQ(out.prev_hash, prev);
    EXPECT_EQ(out.server_time_us, server_time);
    EXPECT_EQ(out.event_id, ev.header.event_id);
    EXPECT_EQ(out.kind, ev.header.kind);
    EXPECT_EQ(out.actor, ev.header.actor);
    EXPECT_EQ(out.device_id, ev.header.device_id);
    EXPECT_EQ(out.channel, ev.header.channel);
    EXPECT_EQ(out.via, ev.header.via);
    EXPECT_EQ(out.client_time_us, ev.header.client_time_us);
    EXPECT_EQ(out.subject, ev.header.subject);
    EXPECT_EQ(out.key_id, ev.key_id);
    EXPECT_EQ(out.cipher, ev.cipher);
    EXPECT_EQ(as_chars(out.nonce), ev.nonce);
    ASSERT_EQ(as_chars(out.ciphertext), ev.ciphertext) << "event " << i;
  }
}

TEST(Envelope, HostileBytesAreCorruptNotACrash) {
  ledger::DecodedEnvelope out;
  std::string junk(64, '\xff');
  EXPECT_EQ(ledger::decode_envelope(as_bytes(junk), out).code(), Code::kCorrupt);
  EXPECT_EQ(ledger::decode_envelope(as_bytes("abc"), out).code(), Code::kCorrupt);
  EXPECT_EQ(ledger::decode_envelope({}, out).code(), Code::kCorrupt);
  // Every truncation of a valid envelope is refused.
  ledger::SealedEvent ev;
  ev.header = make_draft(0);
  ev.nonce = "123456789012";
  ev.ciphertext = std::string(40, 'c');
  auto words = ledger::encode_envelope("proj", 1, Digest{}, 1, ev);
  const auto bytes = words.asBytes();
  for (std::size_t size = 8; size < bytes.size(); size += 8) {
    EXPECT_FALSE(ledger::decode_envelope({bytes.begin(), size}, out).is_ok()) << size;
  }
}

}  // namespace
}  // namespace trail::testing

namespace trail::testing {
namespace {

TEST(TimeOrderedId, IsAVersion7UuidWhosePrefixIsTheCurrentMillisecond) {
  ASSERT_GE(sodium_init(), 0);
  const auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  const EventId a = time_ordered_id();
  const EventId b = time_ordered_id();
  const auto after = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
  std::uint64_t ms = 0;
  for (int i = 0; i < 6; ++i) ms = (ms << 8U) | a[static_cast<std::size_t>(i)];
  EXPECT_GE(static_cast<std::int64_t>(ms), before);
  EXPECT_LE(static_cast<std::int64_t>(ms), after);
  EXPECT_EQ(a[6] >> 4U, 7U);
  EXPECT_EQ(a[8] >> 6U, 2U);
  EXPECT_NE(a, b);
  EXPECT_LE(std::vector<std::uint8_t>(a.begin(), a.begin() + 6),
            std::vector<std::uint8_t>(b.begin(), b.begin() + 6));
  EXPECT_TRUE(parse_uuid(format_uuid(a)).has_value());
}

}  // namespace
}  // namespace trail::testing
