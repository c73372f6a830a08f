// Verification of stored chains: the check an auditor runs on a data directory.
//
// For every project that has a head record or any event (or one), in chain order: every envelope decodes; its stored key, its own
// seq and its project agree; seq is dense from 1; prevHash of seq 1 is zero and of every other
// event equals the hash of the one before; server time never decreases; the last event's hash
// and seq equal the head record; and, when the ledger has keys, every payload's AEAD tag
// verifies (the header is its associated data, so a changed header fails too).
//
// Blame: when the link between seq n-1 and n breaks, the event after decides which one
// changed: if seq n+1 (or the head record) still commits to seq n's hash, seq n is intact and
// seq n-1 was altered; otherwise seq n itself was altered.
// Thread safety: reads through its own read transaction; safe beside a running writer.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "ledger/ledger.h"

namespace trail::ledger {

struct VerifyProblem {
  std::string project;
  std::uint64_t seq = 0;  // The first event found bad.
  std::string reason;
};

struct VerifyReport {
  std::uint64_t events = 0;    // Events checked.
  std::uint64_t projects = 0;  // Chains checked.
  bool payloads_opened = false;
  // Payloads whose cipher this CPU cannot run (AES-256-GCM without AES-NI): not checked.
  std::uint64_t payloads_unchecked = 0;
  std::optional<VerifyProblem> problem;  // Empty: every chain is intact.
};

struct VerifyOptions {
  std::optional<std::string> project;  // Empty: every project.
  // Called now and then with events checked so far and the total expected.
  std::function<void(std::uint64_t done, std::uint64_t total)> progress;
};

// Errors: kNotFound when options.project has no chain; kIo/kFatal when LMDB fails.
// A tampered chain is not an error: it is reported in VerifyReport::problem.
Result<VerifyReport> verify(const Ledger& ledger, const VerifyOptions& options);

}  // namespace trail::ledger
