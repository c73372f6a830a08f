// Signed notes (ledger/signed_note.h): the C2SP example, key ids and vkeys, signing round
// trips, tampering, unknown and colliding keys, and every malformed-note rule.
#include "ledger/signed_note.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "ledger/sha256.h"

namespace trail::testing {
namespace {

namespace note = ledger::note;
using note::Signer;
using note::Verifier;

const std::filesystem::path kC2sp =
    std::filesystem::path(__FILE__).parent_path().parent_path() / "fixtures" / "merkle" / "c2sp";

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "missing fixture " << path;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// The fenced block that follows `marker` in a spec file, with its final newline.
std::string fenced_after(const std::string& doc, const std::string& marker) {
  const std::size_t at = doc.find(marker);
  EXPECT_NE(at, std::string::npos) << marker;
  const std::size_t open = doc.find("```\n", at);
  const std::size_t close = doc.find("\n```", open + 4);
  EXPECT_NE(close, std::string::npos);
  return doc.substr(open + 4, close + 1 - (open + 4));
}

constexpr const char* kExampleVkey =
    "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";

Signer make_signer(const std::string& name) {
  auto signer = Signer::generate(name);
  EXPECT_TRUE(signer.is_ok());
  return std::move(signer).value();
}

std::string sign(const Signer& signer, std::string_view text) {
  auto note = signer.sign(text);
  EXPECT_TRUE(note.is_ok()) << note.status().to_string();
  return std::move(note).value();
}

// The signature lines of a note signed once ("— name sig\n").
std::string signature_line(const std::string& note) { return note.substr(note.rfind("\n\n") + 2); }

Code open_code(std::string_view note, std::span<const Verifier> verifiers) {
  auto text = note::open(note, verifiers);
  return text.is_ok() ? Code::kOk : text.status().code();
}

class SignedNote : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_GE(sodium_init(), 0); }
};

TEST_F(SignedNote, C2spExampleVerifiesWithItsVkey) {
  const std::string spec = read_file(kC2sp / "signed-note.md");
  ASSERT_NE(spec.find(std::string("    ") + kExampleVkey + "\n"), std::string::npos);
  const std::string example = fenced_after(spec, "verifies the following signed note");
  auto verifier = Verifier::parse(kExampleVkey);
  ASSERT_TRUE(verifier.is_ok()) << verifier.status().to_string();
  EXPECT_EQ(verifier->name, "example.com/foo");
  EXPECT_EQ(verifier->key_id, 0x530d903aU);
  EXPECT_EQ(verifier->to_string(), kExampleVkey);

  auto text = note::open(example, std::span(&*verifier, 1));
  ASSERT_TRUE(text.is_ok()) << text.status().to_string();
  EXPECT_EQ(*text, "This is an example message.\n");

  // The spec's first note is by a key we do not know: nothing verifies it.
  const std::string poem = fenced_after(spec, "A note is text signed by one or more keys.");
  ASSERT_NE(poem.find("quasimodo.example/salvatore"), std::string::npos);
  EXPECT_EQ(open_code(poem, std::span(&*verifier, 1)), Code::kNotFound);
}

TEST_F(SignedNote, KeyIdAndVerifierKeyFollowTheSpec) {
  const Signer signer = make_signer("trail.example/log");
  std::string input = "trail.example/log\n\x01";
  input.append(reinterpret_cast<const char*>(signer.public_key().data()),
               signer.public_key().size());
  const Digest digest = sha256(as_bytes(input));
  EXPECT_EQ(signer.key_id(), get_u32_be(digest.data()));
  EXPECT_EQ(note::ed25519_key_id("trail.example/log", signer.public_key()), signer.key_id());

  const std::string vkey = signer.verifier_key();
  const std::string prefix = "trail.example/log+" + to_hex(ByteView(digest.data(), 4)) + "+";
  ASSERT_EQ(vkey.substr(0, prefix.size()), prefix);
  auto key = from_base64(vkey.substr(prefix.size()));
  ASSERT_TRUE(key.has_value());
  ASSERT_EQ(key->size(), 33U);
  EXPECT_EQ((*key)[0], 0x01);
  EXPECT_TRUE(std::equal(key->begin() + 1, key->end(), signer.public_key().begin()));

  auto parsed = Verifier::parse(vkey);
  ASSERT_TRUE(parsed.is_ok());
  EXPECT_EQ(parsed->name, signer.name());
  EXPECT_EQ(parsed->key_id, signer.key_id());
  EXPECT_EQ(parsed->public_key, signer.public_key());
}

TEST_F(SignedNote, SignThenOpenReturnsTheText) {
  const Signer signer = make_signer("trail.example/log");
  const Verifier verifier = signer.verifier();
  for (const std::string text : {"one line\n", "\n", "with\n\nblank lines\n\n",
                                 "ünïcödé — dashes\n", "— looks like a signature\n"}) {
    const std::string signed_note = sign(signer, text);
    EXPECT_EQ(signed_note.substr(0, text.size() + 1), text + "\n");
    EXPECT_EQ(signature_line(signed_note).substr(0, 22), "\xE2\x80\x94 trail.example/log ");
    EXPECT_EQ(signed_note.back(), '\n');
    auto opened = note::open(signed_note, std::span(&verifier, 1));
    ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
    EXPECT_EQ(*opened, text);
  }
}

TEST_F(SignedNote, EverySingleBitFlipIsRefused) {
  const Signer signer = make_signer("trail.example/log");
  const Verifier verifier = signer.verifier();
  const std::string good = sign(signer, "trail.example/log\n42\nroot\n");
  for (std::size_t i = 0; i < good.size(); ++i) {
    for (unsigned bit = 0; bit < 8; ++bit) {
      std::string bad = good;
      bad[i] = static_cast<char>(static_cast<unsigned>(bad[i]) ^ (1U << bit));
      EXPECT_NE(open_code(bad, std::span(&verifier, 1)), Code::kOk)
          << "byte " << i << " bit " << bit;
    }
  }
}

// Re-encodes the signature line of a singly signed note after `edit` changes its bytes.
std::string edit_signature(const std::string& signed_note,
                           const std::function<void(std::vector<std::uint8_t>&)>& edit) {
  const std::size_t space = signed_note.rfind(' ');
  auto bytes = from_base64(signed_note.substr(space + 1, signed_note.size() - space - 2));
  EXPECT_TRUE(bytes.has_value());
  edit(*bytes);
  return signed_note.substr(0, space + 1) + to_base64(*bytes) + "\n";
}

TEST_F(SignedNote, AlteredTextSignatureOrKeyIdFails) {
  const Signer signer = make_signer("trail.example/log");
  const Verifier verifier = signer.verifier();
  const std::string good = sign(signer, "payload\n");
  ASSERT_EQ(open_code(good, std::span(&verifier, 1)), Code::kOk);

  std::string text_changed = good;
  text_changed[0] = 'P';
  EXPECT_EQ(open_code(text_changed, std::span(&verifier, 1)), Code::kCorrupt);

  const auto sig_changed = edit_signature(good, [](auto& b) { b[4 + 10] ^= 0x01U; });
  EXPECT_EQ(open_code(sig_changed, std::span(&verifier, 1)), Code::kCorrupt);
  const auto sig_short = edit_signature(good, [](auto& b) { b.pop_back(); });
  EXPECT_EQ(open_code(sig_short, std::span(&verifier, 1)), Code::kCorrupt);

  // Another key id names another key: the only signature is then unknown.
  const auto id_changed = edit_signature(good, [](auto& b) { b[0] ^= 0x80U; });
  EXPECT_EQ(open_code(id_changed, std::span(&verifier, 1)), Code::kNotFound);
}

TEST_F(SignedNote, AnotherKeyWithTheSameNameIsIgnoredOrRefused) {
  const Signer ours = make_signer("trail.example/log");
  const Signer impostor = make_signer("trail.example/log");
  ASSERT_NE(ours.key_id(), impostor.key_id());
  const Verifier verifier = ours.verifier();
  const std::string forged = sign(impostor, "payload\n");
  // Same name, other key id: an unknown key, ignored, so nothing trusted signed the note.
  EXPECT_EQ(open_code(forged, std::span(&verifier, 1)), Code::kNotFound);
  // Same name and our key id but not our key: a known key's signature that fails.
  const auto claimed =
      edit_signature(forged, [&](auto& b) { put_u32_be(b.data(), ours.key_id()); });
  EXPECT_EQ(open_code(claimed, std::span(&verifier, 1)), Code::kCorrupt);
  // Our key id under another name is another key as well.
  std::string renamed = sign(ours, "payload\n");
  renamed.replace(renamed.rfind("trail.example/log"), 17, "trail.example/loh");
  EXPECT_EQ(open_code(renamed, std::span(&verifier, 1)), Code::kNotFound);
}

TEST_F(SignedNote, UnknownExtraSignaturesAreIgnored) {
  const Signer log = make_signer("trail.example/log");
  const Signer witness = make_signer("witness.example/w1");
  const std::string text = "trail.example/log\n7\nroot\n";
  std::string note_text = sign(log, text);
  note_text += signature_line(sign(witness, text));
  // An unknown key's line whose signature is nonsense is not even checked.
  note_text += "\xE2\x80\x94 stranger.example/x " + to_base64(as_bytes("abcdefgh")) + "\n";

  const Verifier log_v = log.verifier();
  const Verifier witness_v = witness.verifier();
  const std::vector<Verifier> both{log_v, witness_v};
  EXPECT_EQ(open_code(note_text, std::span(&log_v, 1)), Code::kOk);
  EXPECT_EQ(open_code(note_text, std::span(&witness_v, 1)), Code::kOk);
  EXPECT_EQ(open_code(note_text, both), Code::kOk);
  EXPECT_EQ(open_code(note_text, {}), Code::kNotFound);

  // A bad signature by any known key spoils the note even when another known key verifies.
  const std::string spoiled =
      sign(log, text) +
      signature_line(edit_signature(sign(witness, text), [](auto& b) { b[20] ^= 0x04U; }));
  EXPECT_EQ(open_code(spoiled, std::span(&log_v, 1)), Code::kOk);
  EXPECT_EQ(open_code(spoiled, both), Code::kCorrupt);
}

TEST_F(SignedNote, AcceptsUpToTheSignatureLimit) {
  const Signer log = make_signer("trail.example/log");
  const Verifier verifier = log.verifier();
  std::string full = sign(log, "t\n");
  const std::string stranger =
      "\xE2\x80\x94 stranger.example/x " + to_base64(as_bytes("abcdefgh")) + "\n";
  for (std::size_t i = 1; i < note::kSignaturesMax; ++i) full += stranger;
  EXPECT_EQ(open_code(full, std::span(&verifier, 1)), Code::kOk);
  EXPECT_EQ(open_code(full + stranger, std::span(&verifier, 1)), Code::kInvalid);
}

TEST_F(SignedNote, MalformedNotesAreRejected) {
  const Signer signer = make_signer("trail.example/log");
  const Verifier verifier = signer.verifier();
  const std::string good = sign(signer, "payload\n");
  const std::string line = signature_line(good);
  const std::string sig = line.substr(line.rfind(' ') + 1);  // With its newline.
  const std::string dash = "\xE2\x80\x94 ";
  const std::vector<std::pair<std::string, std::string>> cases{
      {"no blank line", "payload\n" + line},
      {"no final newline", good.substr(0, good.size() - 1)},
      {"no signatures", "payload\n\n"},
      {"nothing", ""},
      {"tab in text", "pay\tload\n\n" + line},
      {"CR in text", "payload\r\n\n" + line},
      {"NUL in text", std::string("pay\0load\n\n", 10) + line},
      {"invalid UTF-8", "pay\xFFload\n\n" + line},
      {"overlong UTF-8", "pay\xC0\xAFload\n\n" + line},
      {"surrogate", "pay\xED\xA0\x80load\n\n" + line},
      {"ASCII dash", "payload\n\n-- trail.example/log " + sig},
      {"no space after dash", "payload\n\n\xE2\x80\x94trail.example/log " + sig},
      {"empty name", "payload\n\n" + dash + " " + sig},
      {"name with plus", "payload\n\n" + dash + "trail+log " + sig},
      {"name with NBSP", "payload\n\n" + dash + "trail\xC2\xA0log " + sig},
      {"no signature", "payload\n\n" + dash + "trail.example/log\n"},
      {"empty signature", "payload\n\n" + dash + "trail.example/log \n"},
      {"two spaces", "payload\n\n" + dash + "trail.example/log  " + sig},
      {"bad base64", "payload\n\n" + dash + "trail.example/log %%%%\n"},
      {"unpadded base64",
       "payload\n\n" + dash + "trail.example/log " + sig.substr(0, sig.find('=')) + "\n"},
      {"signature too short",
       "payload\n\n" + dash + "trail.example/log " + to_base64(as_bytes("abcd")) + "\n"},
      {"trailing blank line", good + "\n"},
      {"text line after signatures", good + "more\n"},
  };
  for (const auto& [what, bad] : cases) {
    EXPECT_EQ(open_code(bad, std::span(&verifier, 1)), Code::kInvalid) << what;
  }
  EXPECT_EQ(open_code(good, std::span(&verifier, 1)), Code::kOk);
  // A blank line among signature lines is legal: the text runs to the last blank line, so the
  // first signature line becomes text and the second signs something else.
  EXPECT_EQ(open_code(good + "\n" + line, std::span(&verifier, 1)), Code::kCorrupt);
}

TEST_F(SignedNote, DuplicateVerifiersAreAConfigurationError) {
  const Signer signer = make_signer("trail.example/log");
  const std::vector<Verifier> twice{signer.verifier(), signer.verifier()};
  EXPECT_EQ(open_code(sign(signer, "x\n"), twice), Code::kInvalid);
}

TEST_F(SignedNote, SignRefusesTextThatIsNoNote) {
  const Signer signer = make_signer("trail.example/log");
  const std::vector<std::string> bads{
      "", "no newline", "tab\there\n", "bad \xFF utf8\n", std::string("nul\0\n", 5), "cr\r\n"};
  for (const std::string& bad : bads) {
    auto note_text = signer.sign(bad);
    ASSERT_FALSE(note_text.is_ok()) << bad;
    EXPECT_EQ(note_text.status().code(), Code::kInvalid);
  }
}

TEST_F(SignedNote, KeyNamesFollowTheSpec) {
  for (const char* good : {"example.com/foo", "a", "trail", "ünïcode/ключ", "x=y"}) {
    EXPECT_TRUE(note::is_valid_key_name(good)) << good;
  }
  for (const std::string bad : {"", "a b", "a+b", "a\tb", "a\nb", "a\u00A0b", "a\u3000b",
                                "a\u2028b", "a\u0085b", "\xFF", "a\x01"}) {
    EXPECT_FALSE(note::is_valid_key_name(bad)) << bad;
  }
  EXPECT_EQ(Signer::generate("has space").status().code(), Code::kInvalid);
  EXPECT_EQ(Signer::generate("").status().code(), Code::kInvalid);
}

TEST_F(SignedNote, SignersFromSecretAndSeedMatchLibsodium) {
  std::array<std::uint8_t, 32> public_key{};
  std::array<std::uint8_t, 64> secret{};
  crypto_sign_ed25519_keypair(public_key.data(), secret.data());
  auto from_secret = Signer::from_secret("k", secret);
  ASSERT_TRUE(from_secret.is_ok()) << from_secret.status().to_string();
  EXPECT_EQ(from_secret->public_key(), public_key);
  auto from_seed = Signer::from_seed("k", ByteView(secret).first(32));
  ASSERT_TRUE(from_seed.is_ok());
  EXPECT_EQ(from_seed->public_key(), public_key);
  EXPECT_EQ(from_seed->key_id(), from_secret->key_id());
  // Ed25519 is deterministic: both sign identically.
  EXPECT_EQ(*from_seed->sign("m\n"), *from_secret->sign("m\n"));

  std::array<std::uint8_t, 64> spliced = secret;
  spliced[40] ^= 0x01U;
  EXPECT_EQ(Signer::from_secret("k", spliced).status().code(), Code::kInvalid);
  EXPECT_EQ(Signer::from_secret("k", ByteView(secret).first(63)).status().code(), Code::kInvalid);
  EXPECT_EQ(Signer::from_seed("k", ByteView(secret).first(31)).status().code(), Code::kInvalid);
  sodium_memzero(secret.data(), secret.size());
}

TEST_F(SignedNote, MovedSignerKeepsSigning) {
  Signer first = make_signer("k");
  const Verifier verifier = first.verifier();
  Signer second = std::move(first);
  EXPECT_EQ(open_code(sign(second, "m\n"), std::span(&verifier, 1)), Code::kOk);
}

TEST_F(SignedNote, VerifierKeysAreParsedStrictly) {
  const Signer signer = make_signer("trail.example/log");
  const std::string vkey = signer.verifier_key();
  const std::string name = "trail.example/log";
  const std::string id = vkey.substr(name.size() + 1, 8);
  const std::string key = vkey.substr(name.size() + 10);
  std::array<std::uint8_t, 33> ecdsa_typed{};
  ecdsa_typed[0] = 0x02;
  std::copy(signer.public_key().begin(), signer.public_key().end(), ecdsa_typed.begin() + 1);
  std::string upper_id = id;
  for (char& c : upper_id) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));

  EXPECT_TRUE(Verifier::parse(vkey).is_ok());
  EXPECT_TRUE(Verifier::parse(name + "+" + upper_id + "+" + key).is_ok());
  for (const std::string& bad :
       {std::string(""), name, name + "+" + id, name + "+" + key, "+" + id + "+" + key,
        "a b+" + id + "+" + key, name + "+" + id.substr(1) + "+" + key,
        name + "+" + id + "0+" + key, name + "+zzzzzzzz+" + key,
        name + "+" + id + "+" + key.substr(0, key.size() - 4), name + "+" + id + "+" + key + "AAAA",
        name + "+" + id + "+" + to_base64(ecdsa_typed), "other.example/log+" + id + "+" + key}) {
    auto parsed = Verifier::parse(bad);
    ASSERT_FALSE(parsed.is_ok()) << bad;
    EXPECT_EQ(parsed.status().code(), Code::kInvalid) << bad;
  }
}

TEST(Base64, DecodesOnlyCanonicalStandardBase64) {
  EXPECT_EQ(from_base64(""), std::vector<std::uint8_t>{});
  EXPECT_EQ(from_base64("Zm9v"), (std::vector<std::uint8_t>{'f', 'o', 'o'}));
  EXPECT_EQ(from_base64("Zm8="), (std::vector<std::uint8_t>{'f', 'o'}));
  EXPECT_EQ(from_base64("+/+/"), (std::vector<std::uint8_t>{0xfb, 0xff, 0xbf}));
  for (const char* bad :
       {"Zm8", "Zm9=", "Zm8==", "Zm 8=", "Zm8=\n", "-_-_", "Z===", "====", "Zm8=Zm8="}) {
    EXPECT_FALSE(from_base64(bad).has_value()) << bad;
  }
  const std::array<std::uint8_t, 5> bytes{1, 2, 3, 254, 255};
  EXPECT_EQ(from_base64(to_base64(bytes)), std::vector<std::uint8_t>(bytes.begin(), bytes.end()));
}

}  // namespace
}  // namespace trail::testing
