// trailctl cat: a project's events as JSON lines, payloads opened.
#include <cstdio>

#include "ledger/key_ring.h"
#include "ledger/ledger.h"
#include "tools/trailctl/commands.h"
#include "tools/trailctl/event_json.h"
#include "tools/trailctl/open_ledger.h"

namespace trail::tools {

int run_cat(const CommonOptions& common, const std::string& project, std::uint64_t from,
            std::uint64_t limit) {
  if (Status s = ledger::validate_project(project); !s.is_ok()) return fail(s.detail());
  auto opened = open_ledger(common, /*read_only=*/true);
  if (!opened.is_ok()) return fail(opened.status().detail());
  const ledger::Ledger& ledger = *opened->ledger;

  Status bad = Status::ok();
  std::string out;
  const Status scanned = ledger.scan(project, from, limit, [&](const ledger::StoredEvent& stored) {
    auto event = ledger.open_event(stored);
    if (!event.is_ok()) {
      bad = Status::error(event.status().code(),
                          "seq " + std::to_string(stored.seq) + ": " + event.status().detail());
      return false;
    }
    auto json = event_to_json(*event);
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
