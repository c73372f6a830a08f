// Credentials: Argon2id password hashes (libsodium crypto_pwhash_str, interactive limits),
// bearer tokens (256-bit random, base64url; stored and looked up only as SHA-256), generated
// passwords for new accounts.
// Thread safety: free functions without shared state; sodium_init() must have run.
#pragma once

#include <string>
#include <string_view>

#include "ledger/bytes.h"
#include "ledger/status.h"

namespace trail::proj {

// The Argon2id hash string of `password` ("$argon2id$v=19$m=...").
// Errors: kInvalid when the password is empty or longer than 4096 bytes; kFatal when
// libsodium runs out of memory.
Result<std::string> hash_password(std::string_view password);
// Whether `password` matches `hash`. False for a malformed hash. Takes the same time whether
// or not the hash is well-formed when given dummy_hash() for an unknown user.
bool verify_password(std::string_view hash, std::string_view password);
// A valid Argon2id hash of a random password, computed once: verify it against the given
// password for an unknown user so that unknown users cost as much as known ones.
const std::string& dummy_hash();

// A new bearer token: 32 random bytes, base64url without padding (43 characters).
std::string new_token();
// What a token is stored and looked up as: SHA-256 of its text.
Digest token_digest(std::string_view token);

// A password for a new account: 20 characters from a 56-letter alphabet without look-alikes
// (about 116 bits).
std::string generate_password();

}  // namespace trail::proj
