// Password rules: UTF-8 checks and code-point length here, the guessability estimate from
// zxcvbn-c, reuse through Argon2id verification (projections/credentials.h).
#include "projections/password_policy.h"

#include <algorithm>
#include <cmath>

#include <zxcvbn.h>

#include "ledger/assert.h"
#include "projections/credentials.h"

namespace trail::proj {
namespace {

constexpr int kScoreMax = 4;
constexpr std::size_t kUserNameCodePointsMin = 3;  // shorter names are not looked for

// The guesses below which each score is given (zxcvbn JS guesses_to_score).
constexpr double kScoreGuessesBelow[kScoreMax] = {1e3 + 5, 1e6 + 5, 1e8 + 5, 1e10 + 5};

bool is_continuation(unsigned char byte) { return (byte & 0xc0U) == 0x80U; }

std::size_t code_points(std::string_view text) {
  return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return !is_continuation(static_cast<unsigned char>(c));
  }));
}

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
bool valid_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    std::size_t extra = 0;
    unsigned char low = 0x80;  // bounds of the first continuation byte
    unsigned char high = 0xbf;
    if (lead < 0x80U) {
      extra = 0;
    } else if (lead >= 0xc2U && lead <= 0xdfU) {
      extra = 1;
    } else if (lead >= 0xe0U && lead <= 0xefU) {
      extra = 2;
      if (lead == 0xe0U) low = 0xa0;   // overlong
      if (lead == 0xedU) high = 0x9f;  // surrogates
    } else if (lead >= 0xf0U && lead <= 0xf4U) {
      extra = 3;
      if (lead == 0xf0U) low = 0x90;   // overlong
      if (lead == 0xf4U) high = 0x8f;  // above U+10FFFF
    } else {
      return false;  // continuation byte as lead, overlong 0xc0/0xc1, or 0xf5..0xff
    }
    if (text.size() - i <= extra) return false;  // truncated sequence
    for (std::size_t k = 1; k <= extra; ++k) {
      const auto byte = static_cast<unsigned char>(text[i + k]);
      const unsigned char min = k == 1 ? low : 0x80;
      const unsigned char max = k == 1 ? high : 0xbf;
      if (byte < min || byte > max) return false;
    }
    i += extra + 1;
  }
  return true;
}

std::string ascii_lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace

int password_score(std::string_view password, const std::vector<std::string>& user_inputs) {
  const std::string text(password);  // c_str() ends at the first NUL, as zxcvbn reads it
  std::vector<const char*> dictionary;
  dictionary.reserve(user_inputs.size() + 1);
  for (const std::string& word : user_inputs) {
    if (!word.empty()) dictionary.push_back(word.c_str());
  }
  dictionary.push_back(nullptr);  // zxcvbn's argv-style terminator

  const double entropy_bits = ZxcvbnMatch(text.c_str(), dictionary.data(), nullptr);
  TRAIL_ASSERT(!std::isnan(entropy_bits));
  const double guesses = std::exp2(entropy_bits);
  int score = 0;
  while (score < kScoreMax && guesses >= kScoreGuessesBelow[score]) ++score;
  TRAIL_ASSERT(score >= 0);
  TRAIL_ASSERT(score <= kScoreMax);
  return score;
}

Status check_new_password(std::string_view password, std::string_view user_name,
                          const PasswordRules& rules) {
  TRAIL_ASSERT(rules.min_length <= rules.max_length);
  if (password.find('\0') != std::string_view::npos) {
    return Status::error(Code::kInvalid, "password must not contain a NUL character");
  }
  if (!valid_utf8(password)) {
    return Status::error(Code::kInvalid, "password is not valid UTF-8 text");
  }
  const std::size_t length = code_points(password);
  if (length < rules.min_length) {
    return Status::error(Code::kInvalid,
                         "password must have at least " + std::to_string(rules.min_length) +
                             " characters (it has " + std::to_string(length) +
                             "); a passphrase of several words is easiest to remember");
  }
  if (length > rules.max_length) {
    return Status::error(Code::kInvalid, "password must have at most " +
                                             std::to_string(rules.max_length) +
                                             " characters (it has " + std::to_string(length) + ")");
  }
  if (code_points(user_name) >= kUserNameCodePointsMin &&
      ascii_lower(password).find(ascii_lower(user_name)) != std::string::npos) {
    return Status::error(Code::kInvalid, "password must not contain the user name");
  }
  std::vector<std::string> user_inputs;
  if (!user_name.empty()) user_inputs.emplace_back(user_name);
  const int score = password_score(password, user_inputs);
  if (score < rules.min_score) {
    return Status::error(Code::kInvalid,
                         "password is too easy to guess (strength " + std::to_string(score) +
                             " of 4; at least " + std::to_string(rules.min_score) +
                             " required): avoid common words, names, dates and keyboard "
                             "patterns, or add more unrelated words");
  }
  return Status::ok();
}

bool password_reused(std::string_view password, const std::vector<std::string>& recent_hashes) {
  return std::any_of(recent_hashes.begin(), recent_hashes.end(),
                     [&](const std::string& hash) { return verify_password(hash, password); });
}

}  // namespace trail::proj
