// TOTP/HOTP against the RFC test vectors, base32 against RFC 4648, verification windows and
// replay, recovery codes and the otpauth URI.
#include <gtest/gtest.h>

#include <cctype>
#include <set>
#include <string>

#include <sodium.h>

#include "projections/totp.h"

namespace trail::testing {
namespace {

namespace totp = proj::totp;
using totp::Algorithm;

constexpr TimeUs kSecondUs = 1'000'000;
constexpr TimeUs kStepUs = totp::kPeriodSeconds * kSecondUs;

// RFC 6238 Appendix B seeds: the ASCII digits "1234567890" repeated to the hash's key size.
const std::string kSeed20 = "12345678901234567890";
const std::string kSeed32 = "12345678901234567890123456789012";
const std::string kSeed64 =
    "1234567890123456789012345678901234567890123456789012345678901234";

struct TotpVector {
  std::int64_t unix_seconds;
  Algorithm algorithm;
  const char* code;
};

// RFC 6238 Appendix B, "Test Vectors" (8 digits, T0 = 0, X = 30).
const TotpVector kRfc6238Vectors[] = {
    {59, Algorithm::kSha1, "94287082"},
    {59, Algorithm::kSha256, "46119246"},
    {59, Algorithm::kSha512, "90693936"},
    {1111111109, Algorithm::kSha1, "07081804"},
    {1111111109, Algorithm::kSha256, "68084774"},
    {1111111109, Algorithm::kSha512, "25091201"},
    {1111111111, Algorithm::kSha1, "14050471"},
    {1111111111, Algorithm::kSha256, "67062674"},
    {1111111111, Algorithm::kSha512, "99943326"},
    {1234567890, Algorithm::kSha1, "89005924"},
    {1234567890, Algorithm::kSha256, "91819424"},
    {1234567890, Algorithm::kSha512, "93441116"},
    {2000000000, Algorithm::kSha1, "69279037"},
    {2000000000, Algorithm::kSha256, "90698825"},
    {2000000000, Algorithm::kSha512, "38618901"},
    {20000000000, Algorithm::kSha1, "65353130"},
    {20000000000, Algorithm::kSha256, "77737706"},
    {20000000000, Algorithm::kSha512, "47863826"},
};

const std::string& seed_for(Algorithm algorithm) {
  switch (algorithm) {
    case Algorithm::kSha1: return kSeed20;
    case Algorithm::kSha256: return kSeed32;
    case Algorithm::kSha512: return kSeed64;
  }
  return kSeed20;
}

TEST(Totp, Rfc6238AppendixBVectors) {
  for (const TotpVector& v : kRfc6238Vectors) {
    EXPECT_EQ(totp::code_at(seed_for(v.algorithm), v.unix_seconds * kSecondUs, 8, v.algorithm),
              v.code)
        << "T=" << v.unix_seconds << " algorithm=" << static_cast<int>(v.algorithm);
  }
}

TEST(Totp, Rfc6238StepsMatchAppendixB) {
  // Appendix B lists T (hex) per time: 1, 0x23523EC, 0x23523ED, 0x273EF07, 0x3F940AA, 0x27BC86AA.
  EXPECT_EQ(totp::step_at(59 * kSecondUs), 1U);
  EXPECT_EQ(totp::step_at(1111111109 * kSecondUs), 0x23523ECU);
  EXPECT_EQ(totp::step_at(1111111111 * kSecondUs), 0x23523EDU);
  EXPECT_EQ(totp::step_at(1234567890 * kSecondUs), 0x273EF07U);
  EXPECT_EQ(totp::step_at(2000000000 * kSecondUs), 0x3F940AAU);
  EXPECT_EQ(totp::step_at(20000000000 * kSecondUs), 0x27BC86AAU);
  EXPECT_EQ(totp::step_at(0), 0U);
  EXPECT_EQ(totp::step_at(-1), 0U);
  EXPECT_EQ(totp::step_at(-100 * kStepUs), 0U);
  EXPECT_EQ(totp::step_at(kStepUs - 1), 0U);
  EXPECT_EQ(totp::step_at(kStepUs), 1U);
}

TEST(Totp, Rfc4226AppendixDHotpValues) {
  // RFC 4226 Appendix D: secret "12345678901234567890", counters 0..9, 6 digits.
  const char* const kExpected[] = {"755224", "287082", "359152", "969429", "338314",
                                   "254676", "287922", "162583", "399871", "520489"};
  for (std::uint64_t counter = 0; counter < 10; ++counter) {
    EXPECT_EQ(totp::hotp(kSeed20, counter), kExpected[counter]) << "counter " << counter;
  }
}

TEST(Totp, HotpPadsWithLeadingZeros) {
  // RFC 6238 Appendix B at T=1111111109 truncates to 07081804: the leading zero must survive.
  EXPECT_EQ(totp::code_at(kSeed20, 1111111109 * kSecondUs, 8), "07081804");
  EXPECT_EQ(totp::code_at(kSeed20, 1111111109 * kSecondUs), "081804");
}

TEST(TotpBase32, Rfc4648Vectors) {
  // RFC 4648 section 10 (the encoder omits the padding).
  const std::pair<std::string, std::string> kVectors[] = {
      {"", ""},           {"f", "MY"},        {"fo", "MZXQ"},          {"foo", "MZXW6"},
      {"foob", "MZXW6YQ"}, {"fooba", "MZXW6YTB"}, {"foobar", "MZXW6YTBOI"},
  };
  const char* const kPadded[] = {"",         "MY======", "MZXQ====",        "MZXW6===",
                                 "MZXW6YQ=", "MZXW6YTB", "MZXW6YTBOI======"};
  std::size_t i = 0;
  for (const auto& [plain, encoded] : kVectors) {
    EXPECT_EQ(totp::base32_encode(plain), encoded);
    EXPECT_EQ(totp::base32_decode(encoded), plain) << encoded;
    EXPECT_EQ(totp::base32_decode(kPadded[i]), plain) << kPadded[i];
    std::string lower = kPadded[i];
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    EXPECT_EQ(totp::base32_decode(lower), plain) << lower;
    ++i;
  }
}

TEST(TotpBase32, DecodeIgnoresSpacesAndRoundTripsBinary) {
  EXPECT_EQ(totp::base32_decode("MZXW 6YTB OI"), "foobar");
  EXPECT_EQ(totp::base32_decode(" mzxw6ytboi ====== "), "foobar");
  std::string all_bytes;
  for (int b = 0; b < 256; ++b) all_bytes.push_back(static_cast<char>(b));
  for (std::size_t n = 0; n <= all_bytes.size(); n += 7) {
    const std::string part = all_bytes.substr(0, n);
    EXPECT_EQ(totp::base32_decode(totp::base32_encode(part)), part) << n;
  }
}

TEST(TotpBase32, DecodeRefusesBadInput) {
  EXPECT_EQ(totp::base32_decode("MZXW1"), std::nullopt);      // '1' is not base32
  EXPECT_EQ(totp::base32_decode("MZXW8"), std::nullopt);      // nor '8'
  EXPECT_EQ(totp::base32_decode("MZ=XW6"), std::nullopt);     // padding inside
  EXPECT_EQ(totp::base32_decode("M"), std::nullopt);          // impossible length
  EXPECT_EQ(totp::base32_decode("MZX"), std::nullopt);        // impossible length
  EXPECT_EQ(totp::base32_decode("MZXW6Y"), std::nullopt);     // impossible length
  EXPECT_EQ(totp::base32_decode("MY==="), std::nullopt);      // padding to no multiple of 8
  EXPECT_EQ(totp::base32_decode("========"), std::nullopt);   // padding alone
  EXPECT_EQ(totp::base32_decode("MZ"), std::nullopt);         // unused bits set ("f" is MY)
  EXPECT_EQ(totp::base32_decode("MZXW6\tYTB"), std::nullopt); // only spaces are ignored
}

TEST(TotpVerify, AcceptsWithinOneStepRefusesTwo) {
  const TimeUs now = 1'700'000'000 * kSecondUs + 7 * kSecondUs;
  const std::uint64_t step = totp::step_at(now);
  for (int delta = -1; delta <= 1; ++delta) {
    const std::string code = totp::code_at(kSeed20, now + delta * kStepUs);
    const auto expected = static_cast<std::uint64_t>(static_cast<std::int64_t>(step) + delta);
    EXPECT_EQ(totp::verify(kSeed20, code, now, 0), expected) << delta;
  }
  for (int delta : {-3, -2, 2, 3}) {
    const std::string code = totp::code_at(kSeed20, now + delta * kStepUs);
    // Guard against a chance collision with a code inside the window.
    bool collides = false;
    for (int near = -1; near <= 1; ++near) {
      collides = collides || code == totp::code_at(kSeed20, now + near * kStepUs);
    }
    if (!collides) {
      EXPECT_EQ(totp::verify(kSeed20, code, now, 0), std::nullopt) << delta;
    }
  }
  // A wider window reaches the second step.
  EXPECT_EQ(totp::verify(kSeed20, totp::code_at(kSeed20, now - 2 * kStepUs), now, 0, 2),
            step - 2);
  // Window zero: only the current step.
  EXPECT_EQ(totp::verify(kSeed20, totp::code_at(kSeed20, now), now, 0, 0), step);
}

TEST(TotpVerify, RefusesReplayOfSameOrEarlierStep) {
  const TimeUs now = 1'700'000'000 * kSecondUs;
  const std::uint64_t step = totp::step_at(now);
  const std::string code = totp::code_at(kSeed20, now);
  auto first = totp::verify(kSeed20, code, now, 0);
  ASSERT_EQ(first, step);
  EXPECT_EQ(totp::verify(kSeed20, code, now, *first), std::nullopt);           // same step
  EXPECT_EQ(totp::verify(kSeed20, code, now + kStepUs, *first), std::nullopt); // still in window
  // An earlier step's code after a later one was used.
  const std::string previous = totp::code_at(kSeed20, now - kStepUs);
  EXPECT_EQ(totp::verify(kSeed20, previous, now, step), std::nullopt);
  // The next step's code is still good after this one was used.
  EXPECT_EQ(totp::verify(kSeed20, totp::code_at(kSeed20, now + kStepUs), now + kStepUs, step),
            step + 1);
}

TEST(TotpVerify, RefusesMalformedCodes) {
  const TimeUs now = 1'700'000'000 * kSecondUs;
  const std::string code = totp::code_at(kSeed20, now);
  EXPECT_EQ(totp::verify(kSeed20, "", now, 0), std::nullopt);
  EXPECT_EQ(totp::verify(kSeed20, code.substr(0, 5), now, 0), std::nullopt);
  EXPECT_EQ(totp::verify(kSeed20, code + "0", now, 0), std::nullopt);
  EXPECT_EQ(totp::verify(kSeed20, " " + code.substr(1), now, 0), std::nullopt);
  EXPECT_EQ(totp::verify(kSeed20, code.substr(0, 3) + " " + code.substr(3), now, 0),
            std::nullopt);
  EXPECT_EQ(totp::verify(kSeed20, "12a456", now, 0), std::nullopt);
  EXPECT_EQ(totp::verify(kSeed20, "-12345", now, 0), std::nullopt);
  EXPECT_EQ(totp::verify(kSeed20, std::string("123\0" "56", 6), now, 0), std::nullopt);
  EXPECT_EQ(totp::verify(kSeed20, totp::code_at(kSeed20, now, 8), now, 0), std::nullopt);
}

TEST(TotpVerify, WorksNearTheEpoch) {
  // step_at(now) - window would go below zero; step 0 is refused as "used" with last 0.
  const std::string code1 = totp::code_at(kSeed20, kStepUs);
  EXPECT_EQ(totp::verify(kSeed20, code1, 10 * kSecondUs, 0), 1U);
  EXPECT_EQ(totp::verify(kSeed20, totp::code_at(kSeed20, 0), 10 * kSecondUs, 0), std::nullopt);
}

TEST(TotpSecret, NewSecretsAreRandomAndSized) {
  ASSERT_GE(sodium_init(), 0);
  const std::string a = totp::new_secret();
  const std::string b = totp::new_secret();
  EXPECT_EQ(a.size(), totp::kSecretBytes);
  EXPECT_EQ(b.size(), totp::kSecretBytes);
  EXPECT_NE(a, b);
  EXPECT_EQ(totp::base32_encode(a).size(), 32U);
}

TEST(TotpRecovery, CodesHaveTheFormatAndAreDistinct) {
  ASSERT_GE(sodium_init(), 0);
  const auto codes = totp::new_recovery_codes();
  ASSERT_EQ(codes.size(), 10U);
  std::set<std::string> seen;
  for (const std::string& code : codes) {
    ASSERT_EQ(code.size(), 19U) << code;
    for (std::size_t i = 0; i < code.size(); ++i) {
      if (i % 5 == 4) {
        EXPECT_EQ(code[i], '-') << code;
      } else {
        const char c = code[i];
        EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '2' && c <= '7')) << code;
      }
    }
    EXPECT_TRUE(totp::looks_like_recovery_code(code)) << code;
    seen.insert(code);
  }
  EXPECT_EQ(seen.size(), codes.size());
  EXPECT_EQ(totp::new_recovery_codes(3).size(), 3U);
  EXPECT_TRUE(totp::new_recovery_codes(0).empty());
}

TEST(TotpRecovery, DigestNormalisesCaseDashesAndSpaces) {
  const std::string digest = totp::recovery_code_digest("abcd-efgh-ijkl-mnop");
  EXPECT_EQ(digest.size(), 64U);
  EXPECT_EQ(digest, totp::recovery_code_digest("ABCD-EFGH-IJKL-MNOP"));
  EXPECT_EQ(digest, totp::recovery_code_digest("abcdefghijklmnop"));
  EXPECT_EQ(digest, totp::recovery_code_digest(" abcd efgh-IJKL mnop "));
  EXPECT_NE(digest, totp::recovery_code_digest("abcd-efgh-ijkl-mnoq"));
  // SHA-256("abcdefghijklmnop"), so a verifier outside Trail can recompute it.
  EXPECT_EQ(digest, "f39dac6cbaba535e2c207cd0cd8f154974223c848f727f98b3564cea569b41cf");
}

TEST(TotpRecovery, TellsRecoveryCodesFromTotpCodes) {
  EXPECT_TRUE(totp::looks_like_recovery_code("abcd-efgh-ijkl-mnop"));
  EXPECT_TRUE(totp::looks_like_recovery_code("ABCDEFGHIJKLMNOP"));
  EXPECT_TRUE(totp::looks_like_recovery_code("abcd efgh ijkl 2345"));
  EXPECT_FALSE(totp::looks_like_recovery_code("123456"));
  EXPECT_FALSE(totp::looks_like_recovery_code(""));
  EXPECT_FALSE(totp::looks_like_recovery_code("abcd-efgh-ijkl-mno"));    // 15
  EXPECT_FALSE(totp::looks_like_recovery_code("abcd-efgh-ijkl-mnopq"));  // 17
  EXPECT_FALSE(totp::looks_like_recovery_code("abcd-efgh-ijkl-mn01"));   // not base32
}

TEST(TotpUri, HasTheShapeAppsScanAndItsSecretDecodes) {
  const std::string secret = kSeed20;
  const std::string uri = totp::otpauth_uri("Trail", "alice", secret);
  EXPECT_EQ(uri,
            "otpauth://totp/Trail:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Trail"
            "&algorithm=SHA1&digits=6&period=30");

  const std::string odd = totp::otpauth_uri("Trail Health & Co", "dr.o'neil@example.org", secret);
  EXPECT_TRUE(odd.starts_with(
      "otpauth://totp/Trail%20Health%20%26%20Co:dr.o%27neil%40example.org?secret="))
      << odd;
  EXPECT_NE(odd.find("&issuer=Trail%20Health%20%26%20Co&algorithm=SHA1&digits=6&period=30"),
            std::string::npos)
      << odd;

  const auto begin = uri.find("secret=") + 7;
  const auto end = uri.find('&', begin);
  EXPECT_EQ(totp::base32_decode(uri.substr(begin, end - begin)), secret);
}

}  // namespace
}  // namespace trail::testing
