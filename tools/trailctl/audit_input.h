// What the auditor commands (verify, proof, checkpoint, export-chain, verify-bundle) read
// besides the ledger: a checkpoint key given on the command line, small text files, and the
// data directory opened for reading only, without the key directory.
#pragma once

#include <memory>
#include <string>

#include "ledger/ledger.h"
#include "ledger/signed_note.h"
#include "ledger/status.h"
#include "tools/trailctl/commands.h"

namespace trail::tools {

// --pubkey KEY: a verifier key "name+hexid+base64(0x01 || public key)" as `trailctl keys show`
// prints it, or @FILE holding one (its first line; surrounding white space ignored).
// Errors: kInvalid for a malformed key; kIo when FILE cannot be read.
Result<ledger::note::Verifier> parse_pubkey(const std::string& arg);

// The whole content of `path` ("-": standard input). Errors: kIo.
Result<std::string> read_text_file(const std::string& path);

// The data directory read-only and without keys: chains, trees and checkpoints, no payloads.
// Errors: as Ledger::open.
Result<std::unique_ptr<ledger::Ledger>> open_for_audit(const CommonOptions& common);

}  // namespace trail::tools
