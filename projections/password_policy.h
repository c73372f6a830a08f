// Password rules after NIST SP 800-63B section 5.1.1.2: a minimum length, a generous maximum,
// any Unicode, no composition rules, refusal of guessable passwords (zxcvbn's estimate, with
// the user's own name as a dictionary word) and of recently used ones.
// Thread safety: free functions without shared state (zxcvbn-c keeps none); password_reused
// needs sodium_init() to have run.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/status.h"

namespace trail::proj {

struct PasswordRules {
  std::size_t min_length = 12;   // in Unicode code points (UTF-8 lead bytes)
  std::size_t max_length = 256;  // in code points; bounds the zxcvbn and Argon2 cost
  int min_score = 3;             // zxcvbn score 0..4
  std::size_t history = 5;       // the last N passwords may not be reused (caller's slice)
};

// zxcvbn score 0..4 from the guesses estimate 2^entropy of zxcvbn-c: below 1e3+5 -> 0,
// 1e6+5 -> 1, 1e8+5 -> 2, 1e10+5 -> 3, else 4 (the thresholds of zxcvbn JS). `user_inputs`
// (the user name, e-mail, ...) count as dictionary words. zxcvbn reads C strings, so only
// the part before a NUL byte is scored. Cost grows faster than length (measured: ~7 ms for
// 1 KiB, ~90 ms for 4 KiB): bound the length first, as check_new_password does.
int password_score(std::string_view password, const std::vector<std::string>& user_inputs);

// Ok when `password` may be set for `user_name` under `rules`. Otherwise kInvalid whose
// detail, meant for the person choosing the password, names the first rule broken, checked
// in this order: contains a NUL byte; is not valid UTF-8; shorter than rules.min_length
// ("at least 12 characters"); longer than rules.max_length; contains the user name, ignoring
// ASCII case (only when the name has 3+ code points); zxcvbn score below rules.min_score
// (the detail gives both scores). Reuse is checked separately (password_reused), as it needs
// the stored hashes.
Status check_new_password(std::string_view password, std::string_view user_name,
                          const PasswordRules& rules = {});

// Whether `password` matches any of `recent_hashes` (Argon2id strings from hash_password;
// malformed ones never match). The caller passes at most PasswordRules::history hashes:
// each costs one Argon2id verification (tens of milliseconds).
bool password_reused(std::string_view password, const std::vector<std::string>& recent_hashes);

}  // namespace trail::proj
