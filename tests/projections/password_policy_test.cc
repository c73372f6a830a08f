// Password rules (NIST SP 800-63B with zxcvbn): length in code points, encoding, the user
// name, guessability, and reuse against Argon2id hashes.
#include <gtest/gtest.h>

#include <string>

#include <sodium.h>

#include "projections/credentials.h"
#include "projections/password_policy.h"

namespace trail::testing {
namespace {

using proj::check_new_password;
using proj::password_reused;
using proj::password_score;
using proj::PasswordRules;

// Every user's password in the rest of the suite: it must stay acceptable.
constexpr std::string_view kSuitePassword = "correct horse battery staple 42";

void expect_refused(std::string_view password, std::string_view user_name,
                    std::string_view detail_part, const PasswordRules& rules = {}) {
  const Status status = check_new_password(password, user_name, rules);
  ASSERT_FALSE(status.is_ok()) << password;
  EXPECT_EQ(status.code(), Code::kInvalid) << password;
  EXPECT_NE(status.detail().find(detail_part), std::string::npos)
      << password << " -> " << status.detail();
}

TEST(PasswordPolicy, SuitePasswordAndStrongOnesPass) {
  for (std::string_view password :
       {kSuitePassword, std::string_view{"Tr0ub4dour&3xtra-long"},
        std::string_view{"purple-elephant-dances-quietly"}, std::string_view{"xK9#mQ2$vL7pW!rT"}}) {
    const Status status = check_new_password(password, "alice");
    EXPECT_TRUE(status.is_ok()) << password << ": " << status.to_string();
  }
  EXPECT_GE(password_score(kSuitePassword, {"alice"}), 3);
}

TEST(PasswordPolicy, RefusesShortCountingCodePoints) {
  expect_refused("Zq8!vR2#", "alice", "at least 12 characters");
  expect_refused("", "alice", "at least 12 characters");
  // 11 code points in 22 bytes: still short; 12 two-byte code points are long enough.
  PasswordRules length_only;
  length_only.min_score = 0;
  expect_refused("ДжЁщЫфЮъЭьЧ", "alice", "at least 12 characters", length_only);
  const Status twelve = check_new_password("ДжЁщЫфЮъЭьЧя", "alice", length_only);
  EXPECT_TRUE(twelve.is_ok()) << twelve.to_string();
}

TEST(PasswordPolicy, RefusesLong) {
  expect_refused(std::string(257, 'x'), "alice", "at most 256 characters");
  // The limit counts code points, not bytes: 256 three-byte characters are within it.
  std::string wide;
  for (int i = 0; i < 256; ++i) wide += "語";
  PasswordRules length_only;
  length_only.min_score = 0;
  const Status status = check_new_password(wide, "alice", length_only);
  EXPECT_TRUE(status.is_ok()) << status.to_string();
  expect_refused(wide + "語", "alice", "at most 256 characters", length_only);
  PasswordRules rules;
  rules.max_length = 20;
  expect_refused("correct horse battery staple", "alice", "at most 20 characters", rules);
}

TEST(PasswordPolicy, RefusesNulAndInvalidUtf8) {
  expect_refused(std::string("correct horse\0battery staple 42", 31), "alice", "NUL");
  expect_refused("correct horse \xff battery staple", "alice", "UTF-8");
  expect_refused("correct horse \xc3 battery staple", "alice", "UTF-8");     // truncated
  expect_refused("correct horse \xc0\xaf battery staple", "alice", "UTF-8");  // overlong '/'
  expect_refused("correct horse \xed\xa0\x80 battery", "alice", "UTF-8");     // surrogate
  expect_refused("correct horse battery staple \xe2\x82", "alice", "UTF-8");  // cut at the end
}

TEST(PasswordPolicy, RefusesTheUserNameInAnyCase) {
  expect_refused("my-AlIcE-password-is-long", "alice", "user name");
  expect_refused("xyzzyALICE plugh 42 zork", "Alice", "user name");
  // Names of fewer than 3 characters are not looked for.
  EXPECT_TRUE(check_new_password("purple-elephant-dances-quietly", "el").is_ok());
}

TEST(PasswordPolicy, RefusesCommonPasswordsNamingTheScores) {
  for (std::string_view weak : {"password12345", "qwertyuiop123", "123456789012",
                                "aaaaaaaaaaaaaaaa", "Password1234"}) {
    const Status status = check_new_password(weak, "alice");
    ASSERT_FALSE(status.is_ok()) << weak;
    EXPECT_NE(status.detail().find("too easy to guess"), std::string::npos) << status.detail();
    EXPECT_NE(status.detail().find("of 4"), std::string::npos) << status.detail();
    EXPECT_NE(status.detail().find("at least 3"), std::string::npos) << status.detail();
  }
}

TEST(PasswordPolicy, ScoreIsMonotonicOnExamples) {
  const int s0 = password_score("password", {});
  const int s1 = password_score("qwertyuiop123", {});
  const int s2 = password_score("Tr0ub4dour&3", {});
  const int s3 = password_score("Tr0ub4dour&3xtra-long", {});
  const int s4 = password_score(kSuitePassword, {});
  EXPECT_EQ(s0, 0);
  EXPECT_LE(s0, s1);
  EXPECT_LE(s1, s2);
  EXPECT_LE(s2, s3);
  EXPECT_LE(s3, s4);
  EXPECT_EQ(s4, 4);
  EXPECT_LT(s1, s3);
}

TEST(PasswordPolicy, UserInputsLowerTheScore) {
  // A rare word is worth less once it is known to be the user's own.
  EXPECT_LT(password_score("Zyxwvutbergson", {"zyxwvutbergson"}),
            password_score("Zyxwvutbergson", {}));
}

TEST(PasswordPolicy, RulesAreConfigurable) {
  PasswordRules lax;
  lax.min_length = 4;
  lax.min_score = 0;
  EXPECT_TRUE(check_new_password("pass", "alice", lax).is_ok());
  PasswordRules strict;
  strict.min_score = 4;
  EXPECT_TRUE(check_new_password(kSuitePassword, "alice", strict).is_ok());
  expect_refused("Tr0ub4dour&3", "alice", "at least 4", strict);
}

TEST(PasswordPolicy, DetectsReuseAgainstArgon2Hashes) {
  ASSERT_GE(sodium_init(), 0);
  // Two hashes only: Argon2id is slow by design.
  auto first = proj::hash_password("first passphrase of old");
  auto second = proj::hash_password(kSuitePassword);
  ASSERT_TRUE(first.is_ok());
  ASSERT_TRUE(second.is_ok());
  const std::vector<std::string> recent = {*first, *second};
  EXPECT_TRUE(password_reused(kSuitePassword, recent));
  EXPECT_TRUE(password_reused("first passphrase of old", recent));
  EXPECT_FALSE(password_reused("a brand new passphrase 7", recent));
  EXPECT_FALSE(password_reused(kSuitePassword, {}));
  EXPECT_FALSE(password_reused(kSuitePassword, {"not a hash"}));
}

}  // namespace
}  // namespace trail::testing
