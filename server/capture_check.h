// The capture-scope check of an append's case events (issue 5's "appends and edits only for
// cases whose owner is in the caller's capture scope"), made twice: against the views before
// the append is queued, for a quick answer, and again as the append's guard inside the commit
// (Ledger::append_async), where an owner change queued ahead of the append is visible.
//
// Thread safety: a CaptureCheck is used by one thread at a time: the request's thread, then
// the writer thread (the guard), then the thread that answers; the ledger's queue orders them.
#pragma once

#include <boost/beast/http/status.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ledger/envelope.h"
#include "ledger/status.h"
#include "projections/case_gate.h"
#include "projections/case_projector.h"

namespace trail::server {

// Why a batch may not be appended: the answer to give.
struct CaptureDenial {
  boost::beast::http::status status;  // 403, or 404 for a case the caller may not know of.
  std::string code;
  std::string message;
};

class CaptureCheck {
 public:
  // A case's current state, or nullopt when there is no such case.
  using CaseLookup = std::function<Result<std::optional<proj::CaseState>>(const EventId&)>;

  // The case events of `drafts` that `gate` must allow; nullptr when there is nothing to check
  // (the caller captures the whole project, or the batch has no case events). `gate` must
  // outlive the check.
  static std::shared_ptr<CaptureCheck> make(proj::CaseGate& gate,
                                            const std::vector<ledger::EventDraft>& drafts);

  // The first case event outside the capture scope, or nullopt. `in_commit`: run as the
  // guard, where a refusal means the case changed hands after the first run (the message
  // says so). Errors: `lookup`'s.
  Result<std::optional<CaptureDenial>> run(const CaseLookup& lookup, bool in_commit = false);

  // Set by the guard when it refused the append, for the answer.
  std::optional<CaptureDenial> denial;

 private:
  struct CaseWrite {
    std::size_t index;  // In the batch.
    EventId case_id;
    std::string owner;  // The owner the event gives the case, or empty.
  };
  CaptureCheck(proj::CaseGate& gate, std::vector<CaseWrite> writes)
      : gate_{gate}, writes_{std::move(writes)} {}

  proj::CaseGate& gate_;
  std::vector<CaseWrite> writes_;
};

}  // namespace trail::server
