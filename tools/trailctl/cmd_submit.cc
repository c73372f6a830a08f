// trailctl submit: XForm instances (with CommCare case blocks) from files become one atomic
// batch each: the form.submitted event and the case events it causes.
#include <cstdio>
#include <fstream>
#include <sstream>

#include <boost/json.hpp>

#include "projections/intake.h"
#include "tools/trailctl/commands.h"
#include "tools/trailctl/open_ledger.h"

namespace trail::tools {
namespace json = boost::json;

int run_submit(const CommonOptions& common, const SubmitCommand& cmd) {
  if (Status s = ledger::validate_project(cmd.project); !s.is_ok()) return fail(s.detail());
  if (cmd.files.empty()) return fail("submit needs at least one file");
  auto opened = open_ledger(common, /*read_only=*/false);
  if (!opened.is_ok()) return fail(opened.status().detail());
  auto& ledger = *opened->ledger;

  proj::IntakeOptions options;
  options.fallback_actor = cmd.user;
  options.device_id = cmd.device;
  options.channel = schema::Channel::IMPORT;
  for (const auto& file : cmd.files) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return fail("cannot read " + file);
    std::stringstream bytes;
    bytes << in.rdbuf();
    const std::string xml = bytes.str();
    if (xml.size() > options.max_bytes) {
      std::fprintf(stderr, "trailctl: %s: larger than %zu bytes; nothing appended\n",
                   file.c_str(), options.max_bytes);
      return kExitRejected;
    }
    auto submission = proj::parse_submission(xml, options);
    if (!submission.is_ok()) {
      std::fprintf(stderr, "trailctl: %s: %s; nothing appended\n", file.c_str(),
                   submission.status().detail().c_str());
      return kExitRejected;
    }
    const EventId form_id = submission->events.front().event_id;
    const std::size_t count = submission->events.size();
    auto receipts = ledger.append(cmd.project, std::move(submission->events)).get();
    if (!receipts.is_ok()) {
      std::fprintf(stderr, "trailctl: %s: %s; nothing appended\n", file.c_str(),
                   receipts.status().to_string().c_str());
      const Code code = receipts.status().code();
      return code == Code::kConflict || code == Code::kInvalid ? kExitRejected : kExitError;
    }
    json::object out;
    out["file"] = file;
    out["instance_id"] = submission->instance_id;
    out["xmlns"] = submission->xmlns;
    out["form_event_id"] = format_uuid(form_id);
    out["seq"] = receipts->front().seq;
    out["events"] = count;
    out["duplicate"] = receipts->front().duplicate;
    const std::string line = json::serialize(out) + "\n";
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fflush(stdout);
  }
  return kExitOk;
}

}  // namespace trail::tools
