// trailctl append: JSON lines on stdin become events, appended in streaming batches; each
// batch's receipts are printed once that batch is durable.
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "ledger/key_ring.h"
#include "ledger/ledger.h"
#include "tools/trailctl/commands.h"
#include "projections/event_json.h"
#include "tools/trailctl/line_reader.h"
#include "tools/trailctl/open_ledger.h"

namespace trail::tools {

namespace {

bool blank(const std::string& line) {
  return line.find_first_not_of(" \t\r") == std::string::npos;
}

}  // namespace

int run_append(const CommonOptions& common, const std::string& project, std::size_t batch_max) {
  if (Status s = ledger::validate_project(project); !s.is_ok()) return fail(s.detail());
  auto opened = open_ledger(common, /*read_only=*/false);
  if (!opened.is_ok()) return fail(opened.status().detail());
  ledger::Ledger& ledger = *opened->ledger;

  LineReader reader{STDIN_FILENO, proj::kLineBytesMax};
  std::string line;
  bool end = false;
  while (!end) {
    std::vector<ledger::EventDraft> batch;
    std::size_t first_line = 0;
    // Up to batch_max lines, or whatever has arrived once the batch holds one.
    while (batch.size() < batch_max) {
      const auto next = reader.next(line, /*wait=*/batch.empty());
      if (next == LineReader::Next::kNone) break;
      if (next == LineReader::Next::kEnd) {
        end = true;
        break;
      }
      if (next == LineReader::Next::kError) return fail("cannot read standard input");
      if (next == LineReader::Next::kTooLong) {
        std::fprintf(stderr, "trailctl: line %zu: line exceeds %zu bytes; its batch is not appended\n",
                     reader.line_number(), proj::kLineBytesMax);
        return kExitRejected;
      }
      if (blank(line)) continue;
      auto draft = proj::parse_event_line(line);
      if (!draft.is_ok()) {
        std::fprintf(stderr, "trailctl: line %zu: %s; its batch is not appended\n",
                     reader.line_number(), draft.status().detail().c_str());
        return kExitRejected;
      }
      if (batch.empty()) first_line = reader.line_number();
      batch.push_back(std::move(*draft));
    }
    if (batch.empty()) continue;
    std::vector<EventId> ids;
    ids.reserve(batch.size());
    for (const auto& d : batch) ids.push_back(d.event_id);
    auto receipts = ledger.append(project, std::move(batch)).get();
    if (!receipts.is_ok()) {
      std::fprintf(stderr, "trailctl: lines %zu-%zu not appended: %s\n", first_line,
                   reader.line_number(), receipts.status().to_string().c_str());
      const Code code = receipts.status().code();
      return code == Code::kConflict || code == Code::kInvalid ? kExitRejected : kExitError;
    }
    std::string out;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      out += proj::receipt_to_json(ids[i], (*receipts)[i]);
      out += '\n';
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
  }
  return kExitOk;
}

}  // namespace trail::tools
