// Checkpoints (c2sp.org/tlog-checkpoint, tests/fixtures/merkle/c2sp/tlog-checkpoint.md): a
// log's Merkle tree head as the text of a signed note (ledger/signed_note.h).
//
//   <origin>\n
//   <tree size: decimal, no leading zeros>\n
//   <base64 of the 32-byte RFC 6962 root>\n
//   [<extension line>\n]...          optional, opaque, each non-empty
//
// Trail's origin for a project is "<server origin>/<project>"; callers choose it, nothing here
// assumes a form. The spec recommends (SHOULD) that the signing key's name equal the origin.
//
// Invariants: body() and parse_body() are inverse on every Checkpoint that validate() accepts.
// Thread safety: pure functions; any thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/bytes.h"
#include "ledger/signed_note.h"
#include "ledger/status.h"

namespace trail::ledger {

struct Checkpoint {
  std::string origin;                   // Identifies the log; non-empty, one line.
  std::uint64_t size = 0;               // Leaves in the tree.
  Digest root{};                        // RFC 6962 Merkle tree hash of those leaves.
  std::vector<std::string> extensions;  // Extra lines, without their newlines.

  bool operator==(const Checkpoint&) const = default;
};

// Ok when `checkpoint` can be written as a body: origin and every extension line non-empty
// valid UTF-8 without control characters. Errors: kInvalid naming the first bad field.
Status validate(const Checkpoint& checkpoint);

// The note text of `checkpoint`, ending in "\n". The checkpoint must pass validate()
// (asserted): validate origins when they are configured, not when signing.
std::string body(const Checkpoint& checkpoint);

// Parses checkpoint note text (what note::open returns), strictly: every line ends in "\n";
// the origin is non-empty; the size is decimal without sign or leading zeros and fits 64 bits;
// the root is canonical base64 of exactly 32 bytes; extension lines are non-empty; the text is
// UTF-8 without control characters other than "\n".
// Errors: kInvalid naming the first rule broken.
Result<Checkpoint> parse_body(std::string_view text);

// validate() then signer.sign(body()): the signed note to publish.
// Errors: kInvalid from validate().
Result<std::string> sign_checkpoint(const Checkpoint& checkpoint, const note::Signer& signer);

// note::open(note, verifiers) then parse_body() of its text.
// Errors: as note::open (kInvalid malformed, kCorrupt bad signature by a known key, kNotFound
//         no trusted signature), then kInvalid from parse_body().
Result<Checkpoint> open_checkpoint(std::string_view note,
                                   std::span<const note::Verifier> verifiers);

}  // namespace trail::ledger
