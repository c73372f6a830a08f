// trailctl cat: a project's events as JSON lines, payloads opened.
#include <algorithm>
#include <cstdio>
#include <vector>

#include "ledger/key_ring.h"
#include "ledger/ledger.h"
#include "tools/trailctl/commands.h"
#include "projections/event_json.h"
#include "tools/trailctl/open_ledger.h"

namespace trail::tools {

int run_cat(const CommonOptions& common, const std::string& project, std::uint64_t from,
            std::uint64_t limit) {
  if (Status s = ledger::validate_project(project); !s.is_ok()) return fail(s.detail());
  auto opened = open_ledger(common, /*read_only=*/false);  // The read is recorded: it appends.
  if (!opened.is_ok()) return fail(opened.status().detail());
  ledger::Ledger& ledger = *opened->ledger;

  // Pass 1, envelopes only: which records will be shown, up to the head as it is now. No
  // audit record, no data: the read is durable in the access audit before anything is shown.
  auto head = ledger.head(project);
  if (!head.is_ok()) return fail(head.status().detail());
  if (from > head->seq) return kExitOk;
  const std::uint64_t last = limit == 0 ? head->seq : std::min(head->seq, from + limit - 1);
  const std::uint64_t count = last - from + 1;
  std::vector<EventId> subjects;
  ledger::DecodedEnvelope envelope;
  Status bad = Status::ok();
  Status scanned = ledger.scan(project, from, count, [&](const ledger::StoredEvent& stored) {
    if (Status s = ledger::decode_envelope(as_bytes(stored.envelope), envelope); !s.is_ok()) {
      bad = Status::error(Code::kCorrupt, "seq " + std::to_string(stored.seq) + ": " + s.detail());
      return false;
    }
    if (envelope.subject) subjects.push_back(*envelope.subject);
    return true;
  });
  if (!scanned.is_ok()) return fail(scanned.detail());
  if (!bad.is_ok()) {
    std::fprintf(stderr, "trailctl: %s\n", bad.detail().c_str());
    return kExitRejected;
  }
  std::sort(subjects.begin(), subjects.end());
  subjects.erase(std::unique(subjects.begin(), subjects.end()), subjects.end());
  if (Status s = record_read(ledger, project, operator_identity(), "events", std::move(subjects),
                             "", "trailctl cat");
      !s.is_ok()) {
    return fail(s.to_string());
  }

  // Pass 2: the same events, opened.
  std::string out;
  scanned = ledger.scan(project, from, count, [&](const ledger::StoredEvent& stored) {
    auto event = ledger.open_event(stored);
    if (!event.is_ok()) {
      bad = Status::error(event.status().code(),
                          "seq " + std::to_string(stored.seq) + ": " + event.status().detail());
      return false;
    }
    auto json = proj::event_to_json(*event);
    if (!json.is_ok()) {
      bad = Status::error(Code::kCorrupt, "seq " + std::to_string(stored.seq) + ": " +
                                              json.status().detail());
      return false;
    }
    out += *json;
    out += '\n';
    if (out.size() > (1U << 16U)) {
      std::fwrite(out.data(), 1, out.size(), stdout);
      out.clear();
    }
    return true;
  });
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
  if (!scanned.is_ok()) return fail(scanned.detail());
  if (!bad.is_ok()) {
    std::fprintf(stderr, "trailctl: %s\n", bad.detail().c_str());
    return bad.code() == Code::kCorrupt ? kExitRejected : kExitError;
  }
  return kExitOk;
}

}  // namespace trail::tools
